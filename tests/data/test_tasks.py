"""The built-in classification tasks, generated tiny: keyword spotting and speaker identification."""

import functools
import json
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from sew.data import espeak, kws, speaker_id, tasks
from sew.data.corpus import detect_format, list_splits, read_corpus

TINY_KWS = {"per_class": {"train": 2, "validation": 1, "test": 2}, "commands": ("yes", "no")}
TINY_SPEAKERS = {"speakers": 3, "per_speaker": {"train": 2, "dev": 1, "test": 2}}


def test_kws_is_deterministic_one_second_and_balanced(tmp_path, monkeypatch, same_bytes):
    monkeypatch.setattr(kws, "CHUNK", 5)  # several chunks, so that the worker count could matter
    kws.synthesize_kws(tmp_path / "a", seed=1, workers=2, progress=False, log=None, **TINY_KWS)
    # Leave eSpeak NG used in this process: forked workers must not inherit its state.
    espeak.get_synthesizer().synthesize("something else entirely", "en+f3", 200, 30)
    kws.synthesize_kws(tmp_path / "b", seed=1, workers=1, progress=False, log=None, **TINY_KWS)
    same_bytes(tmp_path / "a", tmp_path / "b")
    root = tmp_path / "a"
    assert detect_format(root) == "speech-commands"
    classes = ["_silence_", "_unknown_", "no", "yes"]
    for split, count in TINY_KWS["per_class"].items():
        corpus = read_corpus(root, split)
        assert corpus.labels() == classes and Counter(u.label for u in corpus) == {c: count for c in classes}
        for utt in corpus:
            wave, rate = sf.read(utt.path, dtype="float32")
            assert rate == 16000 and wave.shape == (16000,)
            if utt.label == "_silence_":  # noise only, at most -25 dB RMS
                assert np.sqrt(np.mean(wave ** 2)) < 10 ** (-25 / 20) * 1.05
            else:  # a word, peaking at -24 dB or more, over a floor far below it
                assert np.abs(wave).max() > 10 ** (-24 / 20) * 0.9
                assert np.sqrt(np.mean(wave[:400] ** 2)) < 0.3 * np.abs(wave).max()
    info = json.loads((root / "corpus.json").read_text())
    assert info["classes"] == ["yes", "no", "_unknown_", "_silence_"] and info["splits"]["test"]["yes"] == 2
    kws.synthesize_kws(tmp_path / "c", seed=2, progress=False, log=None, **TINY_KWS)
    assert (tmp_path / "c" / "testing_list.txt").read_text() != (root / "testing_list.txt").read_text()


def test_kws_plan_sizes_and_variation():
    clips = kws.plan_kws(0)
    counts = Counter((c.split, c.label) for c in clips)
    assert len(kws.kws_classes()) == 12 and set(counts.values()) == set(kws.PER_CLASS.values())
    for split, count in kws.PER_CLASS.items():
        assert all(counts[split, label] == count for label in kws.kws_classes())
    assert kws.PER_CLASS["test"] >= 50 and len({c.path for c in clips}) == len(clips)
    spoken = [c for c in clips if c.word is not None]
    assert len({c.word for c in spoken if c.label == kws.UNKNOWN}) >= 20
    assert not {c.word for c in spoken if c.label == kws.UNKNOWN} & set(kws.COMMANDS)
    assert len({c.voice for c in spoken}) > 200 and min(c.rate for c in spoken) < 130 < 210 < max(c.rate for c in spoken)
    assert {c.noise for c in clips} == set(kws.NOISE_KINDS)
    assert min(c.noise_db for c in clips if c.word is None) < -60  # near-silence among the silence clips
    for kind in kws.NOISE_KINDS:
        noise = kws.make_noise(kind, 16000, np.random.default_rng(0))
        assert noise.shape == (16000,) and abs(float(np.sqrt(np.mean(noise ** 2))) - 1) < 1e-3
    long_word = np.ones(20000, np.float32)
    assert len(kws.place_word(long_word, 0.2)) == 16000 and len(kws.place_word(long_word[:3000], -0.25)) == 16000


def test_speaker_id_is_deterministic_with_disjoint_sentences(tmp_path, same_bytes):
    speaker_id.synthesize_speaker_id(tmp_path / "a", seed=3, progress=False, log=None, **TINY_SPEAKERS)
    speaker_id.synthesize_speaker_id(tmp_path / "b", seed=3, workers=1, progress=False, log=None, **TINY_SPEAKERS)
    same_bytes(tmp_path / "a", tmp_path / "b")
    root = tmp_path / "a"
    assert detect_format(root) == "fairseq" and list_splits(root) == ["train", "dev", "test"]
    splits = {s: read_corpus(root, s) for s in ("train", "dev", "test")}
    for split, corpus in splits.items():
        count = TINY_SPEAKERS["per_speaker"][split]
        assert Counter(u.label for u in corpus) == {"spk00": count, "spk01": count, "spk02": count}
        assert all(16000 <= u.num_samples <= 4.5 * 16000 for u in corpus)
    texts = {s: {u.transcript for u in c} for s, c in splits.items()}
    assert not texts["train"] & (texts["dev"] | texts["test"]) and not texts["dev"] & texts["test"]
    info = json.loads((root / "corpus.json").read_text())
    assert info["classes"] == ["spk00", "spk01", "spk02"] and info["splits"]["test"]["per_speaker"] == 2
    assert len({s["voice"] for s in info["speakers"].values()}) == 3


def test_full_speaker_plan_and_voices_exist():
    people, items = speaker_id.plan_speaker_id(0)
    assert len(people) == speaker_id.SPEAKERS >= 40 and len({p.voice for p in people}) == len(people)
    assert len({p.voice.split("+")[1] for p in people}) == len(people)  # every speaker its own variant
    per = Counter((it.split, it.speaker) for it in items)
    assert {split: {n for (s, _), n in per.items() if s == split} for split in speaker_id.PER_SPEAKER} == {
        split: {n} for split, n in speaker_id.PER_SPEAKER.items()}
    assert len({it.text for it in items}) == len(items)  # every sentence once: splits are disjoint
    assert set(espeak.VARIANTS) <= espeak.variant_names()
    synth = espeak.get_synthesizer()
    for accent in espeak.ACCENTS:
        synth.set_voice(accent)
    with pytest.raises(ValueError, match="no voice variant 'nobody'"):
        synth.set_voice("en-us+nobody")  # eSpeak NG alone would ignore the unknown variant


def test_default_task_is_cached_and_cli(tmp_path, monkeypatch, cli, same_bytes):
    monkeypatch.setenv("SEW_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(tasks.TASKS, "kws", (kws.VERSION, functools.partial(kws.synthesize_kws, **TINY_KWS)))
    first = tasks.default_task("kws", seed=0, progress=False)
    assert first == tmp_path / "cache" / "tasks" / f"kws-v{kws.VERSION}-s0" and (first / "corpus.json").is_file()
    stamp = (first / "corpus.json").stat().st_mtime_ns
    assert tasks.default_task("kws", seed=0) == first and (first / "corpus.json").stat().st_mtime_ns == stamp
    assert not list(first.parent.glob("*.tmp-*"))
    code, out, _ = cli("data", "synth", "--task", "kws", "--no-progress")
    assert code == 0 and out.strip() == f"built-in kws task: {first}"
    code, out, _ = cli("data", "synth", "--task", "kws", "--out", tmp_path / "k", "--seed", "0", "--no-progress")
    assert code == 0 and "test: 8 utterances, 4 classes" in out
    same_bytes(first, tmp_path / "k")
    code, _, err = cli("data", "synth", "--task", "speaker-id", "--minutes", "3")
    assert code == 2 and "--minutes sizes the ASR corpus only" in err
    with pytest.raises(ValueError, match="no built-in task 'asr'"):
        tasks.default_task("asr")
