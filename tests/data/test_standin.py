"""The stand-in Czech corpus: planned at full size, generated tiny, read back as an audiofolder."""

import csv
import json
import os
import re
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from sew.data import espeak, standin, tasks
from sew.data.audio import load_audio, write_ogg
from sew.data.corpus import detect_format, dev_split, list_splits, read_corpus
from sew.data.text import SPECIALS, Vocabulary, normalize_text

DIACRITICS = set("áčďéěíňóřšťúůýž")


def test_tiny_standin_is_a_deterministic_audiofolder_of_ogg(tmp_path, monkeypatch, same_bytes):
    monkeypatch.setattr(standin, "CHUNK", 6)  # several chunks, so that the worker count could matter
    info = standin.synthesize_standin(tmp_path / "a", seed=2, minutes=0.6, workers=2, progress=False, log=None)
    standin.synthesize_standin(tmp_path / "b", seed=2, minutes=0.6, workers=1, progress=False, log=None)
    same_bytes(tmp_path / "a", tmp_path / "b")
    root = tmp_path / "a"
    assert detect_format(root) == "audiofolder" and list_splits(root) == ["train", "test"] and dev_split(root) is None
    assert sorted(os.listdir(root)) == ["conditions", "corpus.json", "test", "train"]
    rates, texts = Counter(), []
    for split in ("train", "test"):
        corpus = read_corpus(root, split)
        assert len(corpus) == info["splits"][split]["utterances"] >= 2
        ids = [u.id for u in corpus]
        rows = (root / "conditions" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]
        assert [r.split("\t")[0] for r in rows] == ids
        with open(root / split / "metadata.csv", encoding="utf-8", newline="") as f:
            speakers = {row["file_name"]: row["speaker_id"] for row in csv.DictReader(f)}
        for utt in corpus:
            meta = sf.info(utt.path)
            assert (meta.format, meta.subtype, meta.channels) == ("OGG", "VORBIS", 1)
            assert speakers[os.path.basename(utt.path)] == utt.id.split("_")[0]
            rates[meta.samplerate] += 1
            texts.append(utt.transcript)
        wave, _ = load_audio(corpus.utterances[0].path)
        assert 0.3 < len(wave) / 16000 < 30 and np.abs(wave).max() > 0.01
    assert set(rates) == {22050, 44100}
    assert any(DIACRITICS & set(t) for t in texts) and all(t[0].isupper() for t in texts)
    assert all(t[-1] in ".?!" for t in texts) and any("," in t for t in texts)
    assert json.loads((root / "corpus.json").read_text(encoding="utf-8"))["language"] == "cs"


def test_full_size_plan_has_the_real_corpus_properties():
    items = standin.plan_standin(0)
    seconds = np.array([it.estimated_s for it in items])
    assert 1350 <= len(items) <= 1700 and abs(seconds.sum() / 60 - standin.DEFAULT_MINUTES) < 1
    assert 2.5 <= np.median(seconds) <= 3.5 and 20 <= seconds.max() <= standin.MAX_SECONDS
    assert seconds.max() / np.median(seconds) > 3
    splits = Counter(it.split for it in items)
    assert set(splits) == {"train", "test"} and 0.08 <= splits["test"] / len(items) <= 0.12
    by_speaker = Counter(it.speaker.name for it in items)
    assert len(by_speaker) == len(standin.SPEAKERS) >= 3 and max(by_speaker.values()) > 2 * min(by_speaker.values())
    assert {it.speaker.sample_rate for it in items} == {22050, 44100}
    assert len({it.speaker.voice.split("+")[0] for it in items}) == 1  # one language
    text = " ".join(it.text for it in items)
    assert sum(ch in DIACRITICS for ch in text.lower()) > 0.05 * len(text.replace(" ", ""))
    assert re.search(r"\w, \w", text) and "?" in text and "!" in text and re.search(r" [A-ZÁČĎÉĚÍŇÓŘŠŤÚŮÝŽ]", text)
    assert [it.text for it in standin.plan_standin(0, 2)] == [it.text for it in items[:len(standin.plan_standin(0, 2))]]
    assert [it.text for it in standin.plan_standin(1, 2)] != [it.text for it in standin.plan_standin(0, 2)]


def test_lexicon_is_zipfian_and_czech_looking():
    lexicon = standin.build_lexicon(0)
    assert len(lexicon) == len(set(lexicon)) == standin.LEXICON_SIZE and lexicon[0] == "a"
    assert sum(bool(DIACRITICS & set(w)) for w in lexicon) > 0.3 * len(lexicon)
    assert not any(re.search(r"chch|ďe|ťi|ňí|[čřšžcj]y|^ů", w) for w in lexicon)  # Czech spelling rules
    probs = standin.zipf_probabilities(len(lexicon))
    assert abs(probs.sum() - 1) < 1e-9 and probs[0] > 20 * probs[100] and probs[:50].sum() > 0.3


def test_ctc_vocabulary_folds_case_drops_punctuation_keeps_diacritics():
    texts = [it.text for it in standin.plan_standin(0, 5)]
    vocab = Vocabulary.build(texts)
    chars = set(vocab.tokens[len(SPECIALS):])
    assert DIACRITICS <= chars and not chars & set(",.?!") and not any(ch.isupper() for ch in chars)
    assert len(chars) <= 45  # a-z used by Czech plus 15 letters with diacritics
    for text in texts[:50]:
        assert vocab.decode(vocab.encode(text)) == normalize_text(text) and not vocab.unknown_chars(text)
    assert normalize_text("Ňo, ĎÁBEL? Úl!") == "ňo ďábel úl"


def test_write_ogg_gives_the_same_bytes_every_time(tmp_path):
    t = np.arange(22050) / 44100
    wave = (0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 1300 * t)).astype(np.float32)
    write_ogg(tmp_path / "a.ogg", wave, 44100)
    write_ogg(tmp_path / "b.ogg", wave, 44100)  # libsndfile alone gives a random stream serial each time
    assert (tmp_path / "a.ogg").read_bytes() == (tmp_path / "b.ogg").read_bytes()
    back, rate = sf.read(tmp_path / "a.ogg", dtype="float32")
    assert rate == 44100 and len(back) == len(wave) and np.corrcoef(back, wave)[0, 1] > 0.99


def test_standin_task_cache_cli_and_voices(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("SEW_CACHE", str(tmp_path / "cache"))
    assert tasks.task_dir("standin").name == f"standin-v{standin.VERSION}-m86-s0"
    assert tasks.task_dir("standin", 1, minutes=0.2).name == f"standin-v{standin.VERSION}-m0.2-s1"
    assert tasks.task_dir("kws").name == "kws-v2-s0"  # fixed-size tasks keep their names
    with pytest.raises(ValueError, match="the kws task has a fixed size"):
        tasks.task_dir("kws", minutes=3)
    made = []
    monkeypatch.setattr(standin, "synthesize_standin", lambda out, seed, **kw: made.append(kw["minutes"]) or (
        os.makedirs(out) or (out / "corpus.json").write_text("{}")))
    monkeypatch.setitem(tasks.TASKS, "standin", (standin.VERSION, standin.synthesize_standin))
    code, out, _ = cli("data", "synth", "--task", "standin", "--minutes", "0.2", "--no-progress")
    assert code == 0 and out.strip().endswith("standin-v1-m0.2-s0") and made == [0.2]
    code, _, err = cli("data", "synth", "--task", "standin", "--realistic")
    assert code == 2 and "per-speaker channels" in err
    code, _, err = cli("data", "synth", "--task", "standin", "--eval-minutes", "1")
    assert code == 2 and "--eval-minutes" in err
    synth = espeak.get_synthesizer()
    assert {s.voice.split("+")[0] for s in standin.SPEAKERS} == {standin.LANGUAGE}
    for speaker in standin.SPEAKERS:
        synth.set_voice(speaker.voice)  # raises ValueError for an unknown voice or variant
    assert len(synth.synthesize("Příliš žluťoučký kůň.", standin.SPEAKERS[0].voice, 160, 40)) > 10000
