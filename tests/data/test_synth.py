import filecmp
import json
import re

import numpy as np
import pytest

from sew.data.corpus import read_corpus
from sew.data.espeak import get_synthesizer
from sew.data.sentences import generate_sentences, vocabulary_words
from sew.data.synth import VOICES, default_corpus, plan_corpus, synthesize_corpus


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_same_seed_same_bytes_and_speed_printed(tmp_path, cli):
    code, out_a, _ = cli("data", "synth", "--out", tmp_path / "a", "--minutes", "2", "--seed", "3", "--no-progress")
    assert code == 0
    speed = re.search(r"in [\d.]+ s: (\d+)x real time", out_a)
    assert speed and int(speed.group(1)) > 0, out_a  # reported; its value is a benchmark's business, not a test's
    code, _, _ = cli("data", "synth", "--out", tmp_path / "b", "--minutes", "2", "--seed", "3", "--workers", "1",
                     "--no-progress")
    a, b = tmp_path / "a", tmp_path / "b"
    assert code == 0 and _files(a) == _files(b) and len(_files(a)) > 10
    match, mismatch, errors = filecmp.cmpfiles(a, b, [str(p) for p in _files(a)], shallow=False)
    assert not mismatch and not errors
    synthesize_corpus(tmp_path / "c", 0.5, seed=4, progress=False, log=None)
    assert (tmp_path / "c" / "train.wrd").read_text() != (a / "train.wrd").read_text()


def test_corpus_is_canonical_with_disjoint_splits(tmp_path):
    info = synthesize_corpus(tmp_path, 0.5, seed=0, progress=False, log=None)
    assert set(info["splits"]) == {"train", "dev", "test"}
    texts = {s: [u.transcript for u in read_corpus(tmp_path, s)] for s in info["splits"]}
    assert not set(texts["train"]) & (set(texts["dev"]) | set(texts["test"])) and not set(texts["dev"]) & set(texts["test"])
    train = read_corpus(tmp_path)
    assert 25 <= train.total_seconds() <= 40  # 0.5 min asked; durations are estimated before synthesis
    assert all(u.num_samples >= 400 for u in train)
    assert json.loads((tmp_path / "vocab.json").read_text())["<pad>"] == 0
    from sew.data.audio import load_audio

    wave, info_ = load_audio(train.utterances[0].path)
    assert info_.sample_rate == 16000 and len(wave) == train.utterances[0].num_samples and np.abs(wave).max() > 0.05


def test_voices_exist_and_rate_pitch_vary():
    synth = get_synthesizer()
    for voice in VOICES:
        synth.set_voice(voice)  # raises ValueError for an unknown voice
    with pytest.raises(ValueError, match="en-gb"):
        synth.set_voice("en-gb")
    items = plan_corpus(10, seed=0)
    assert len(VOICES) >= 8 and {it.voice for it in items} == set(VOICES)
    assert len({it.rate for it in items}) > 20 and len({it.pitch for it in items}) > 20


def test_sentence_generator_vocabulary_and_determinism():
    assert len(vocabulary_words()) >= 1000
    a = generate_sentences(300, seed=5)
    assert a == generate_sentences(300, seed=5) and a != generate_sentences(300, seed=6)
    assert len(set(a)) == 300 and all(5 <= len(s.split()) <= 15 for s in a)
    assert all(re.fullmatch(r"[a-z' ]+", s) for s in a) and {w for s in a for w in s.split()} <= vocabulary_words()


def test_default_corpus_is_generated_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEW_CACHE", str(tmp_path))
    first = default_corpus(minutes=0.2, progress=False)
    assert first.parent.parent == tmp_path and (first / "train.tsv").is_file()
    stamp = (first / "corpus.json").stat().st_mtime_ns
    assert default_corpus(minutes=0.2, progress=False) == first
    assert (first / "corpus.json").stat().st_mtime_ns == stamp  # reused, not regenerated
    assert not list(tmp_path.glob("corpus/*.tmp-*"))


def test_cli_synth_default_out_is_the_cache_and_info_describes_it(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("SEW_CACHE", str(tmp_path))
    code, out, _ = cli("data", "synth", "--minutes", "0.2", "--no-progress")
    path = out.split("built-in corpus: ")[1].strip()
    assert code == 0 and path.startswith(str(tmp_path))
    code, out, _ = cli("data", "info", path)
    assert code == 0 and re.search(r"train: \d+ utterances, 0\.\d min, \d+ transcribed", out) and "dev:" in out
    code, _, err = cli("data", "manifest", tmp_path / "nothing", "--out", tmp_path / "o")
    assert code == 2 and err.startswith("sew data: error:") and "nothing" in err
