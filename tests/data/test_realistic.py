"""Realistic mode of the built-in corpus: each degradation measured, and the corpus generated tiny."""

import filecmp
import json
import math

import numpy as np
import pytest

from sew.data import realistic, synth
from sew.data.corpus import read_corpus
from sew.data.realistic import Conditions, RealisticConfig

RATE = 16000
EVERYTHING = RealisticConfig(speed_prob=1, reverb_prob=1, highpass_prob=1, lowpass_prob=1, noise_prob=1)


def _speechlike(seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """Syllable-rate modulated harmonics: quiet gaps and loud parts, like speech, without eSpeak."""
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(seed)
    voiced = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2
    return (0.3 * voiced * envelope + 0.001 * rng.standard_normal(len(t))).astype(np.float32)


def test_same_seed_same_output_different_seed_different():
    wave, others = _speechlike(seed=0), [_speechlike(1.0, seed=s) for s in (1, 2, 3)]
    for config in (RealisticConfig(), EVERYTHING):
        a, ca = realistic.degrade(wave, np.random.default_rng([5, 1]), config, others=others)
        b, cb = realistic.degrade(wave, np.random.default_rng([5, 1]), config, others=others)
        c, _ = realistic.degrade(wave, np.random.default_rng([6, 1]), config, others=others)
        assert a.dtype == np.float32 and np.array_equal(a, b) and ca == cb
        assert len(a) != len(c) or not np.array_equal(a, c)
    _, every = realistic.degrade(wave, np.random.default_rng(0), EVERYTHING, others=others)
    assert None not in (every.speed, every.rt60_s, every.highpass_hz, every.lowpass_hz, every.noise, every.snr_db)
    # The draws are made up front: a step switched off leaves every other value unchanged.
    no_room = RealisticConfig(speed_prob=1, reverb_prob=0, highpass_prob=1, lowpass_prob=1)
    _, fewer = realistic.degrade(wave, np.random.default_rng(0), no_room, others=others)
    assert fewer.rt60_s is None and (fewer.speed, fewer.snr_db, fewer.peak_db) == (every.speed, every.snr_db, every.peak_db)
    # Babble without other utterances falls back to pink noise.
    babble_only = RealisticConfig(noise_kinds=("babble",))
    assert realistic.degrade(wave, np.random.default_rng(0), babble_only)[1].noise == "pink"
    assert realistic.degrade(wave, np.random.default_rng(0), babble_only, others=others)[1].noise == "babble"


@pytest.mark.parametrize("kind", realistic.NOISE_KINDS)
def test_added_noise_has_the_drawn_snr(kind):
    speech = _speechlike().astype(np.float64)
    rng = np.random.default_rng(3)
    others = [_speechlike(0.7, seed=s) for s in (4, 5, 6, 7)]
    for snr in (5.0, 17.3, 30.0):
        noise = realistic.babble(others, len(speech), rng) if kind == "babble" else \
            realistic.make_noise(kind, len(speech), rng)
        mixed = realistic.add_noise(speech, noise, snr)
        measured = 10 * math.log10(np.mean(speech ** 2) / np.mean((mixed - speech) ** 2))
        assert abs(measured - snr) < 0.5, (kind, snr, measured)
    with pytest.raises(ValueError, match="as long as the speech"):
        realistic.add_noise(speech, noise[:-1], 10.0)


@pytest.mark.parametrize("rt60", [0.15, 0.4, 0.7])
def test_reverberated_impulse_decays_60_db_in_about_rt60(rt60):
    impulse = np.zeros(int(2 * rt60 * RATE))
    impulse[0] = 1.0
    rir = realistic.room_impulse_response(rt60, 6.0, np.random.default_rng(0), RATE)
    out = realistic.reverberate(impulse, rir)
    assert len(out) == len(impulse) and abs(out[0] - 1.0) < 1e-9
    tail = out[1:] ** 2
    assert abs(10 * math.log10(1.0 / tail.sum()) - 6.0) < 0.01  # the direct-to-reverberant ratio drawn
    decay = np.cumsum(tail[::-1])[::-1]  # Schroeder's backward integral of the reverberant energy
    decay_db = 10 * np.log10(np.maximum(decay / decay[0], 1e-30))
    reaches_60 = (np.argmax(decay_db <= -60) + 1) / RATE
    assert abs(reaches_60 - rt60) <= 0.3 * rt60, (rt60, reaches_60)


def test_band_limits_remove_energy_outside_the_band():
    white = np.random.default_rng(0).standard_normal(2 * RATE)
    freqs = np.fft.rfftfreq(len(white), 1 / RATE)

    def energy(x, band):
        spectrum = np.abs(np.fft.rfft(x)) ** 2
        return spectrum[(freqs >= band[0]) & (freqs < band[1])].sum()

    low = realistic.band_limit(white, RATE, lowpass_hz=4000)
    assert energy(low, (5000, 8001)) < 0.1 * energy(white, (5000, 8001))
    assert energy(low, (500, 3000)) > 0.9 * energy(white, (500, 3000))
    high = realistic.band_limit(white, RATE, highpass_hz=300)
    assert energy(high, (0, 150)) < 0.1 * energy(white, (0, 150))
    with pytest.raises(ValueError, match="lowpass_hz = 9000 Hz must be between 0 and the Nyquist"):
        realistic.band_limit(white, RATE, lowpass_hz=9000)


def test_speed_changes_tempo_and_pitch_together():
    t = np.arange(RATE) / RATE
    tone = np.sin(2 * np.pi * 440 * t)
    faster = realistic.change_speed(tone, 1.1)
    assert abs(len(faster) - RATE / 1.1) <= 1
    peak_hz = np.argmax(np.abs(np.fft.rfft(faster * np.hanning(len(faster))))) * RATE / len(faster)
    assert abs(peak_hz - 484) < 3


def test_levels_stay_in_range_and_never_clip_beyond_full_scale():
    config = RealisticConfig()
    wave, others = _speechlike(), [_speechlike(1.0, seed=s) for s in (1, 2)]
    peaks = []
    for seed in range(40):
        out, c = realistic.degrade(wave, np.random.default_rng(seed), config, others=others)
        peak_db = 20 * math.log10(np.abs(out).max())
        assert config.peak_db[0] - 0.01 <= peak_db <= config.peak_db[1] + 0.01 and abs(peak_db - c.peak_db) < 0.01
        peaks.append(peak_db)
    assert max(peaks) - min(peaks) > 15  # recordings differ in level
    loud = realistic.apply_conditions(wave * 50, Conditions(None, None, None, None, None, "white", 5.0, 0.0),
                                      np.random.default_rng(0))
    assert np.abs(loud).max() <= 1.0
    assert realistic.set_peak(np.zeros(10), -3.0).max() == 0.0  # silence stays silent


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="RealisticConfig.reverb_prob is a probability"):
        RealisticConfig(reverb_prob=1.5)
    with pytest.raises(ValueError, match=r"RealisticConfig.snr_db must be a \(low, high\) range"):
        RealisticConfig(snr_db=(30.0, 5.0))
    with pytest.raises(ValueError, match="RealisticConfig.noise_kinds .*choose from"):
        RealisticConfig(noise_kinds=("traffic",))
    with pytest.raises(ValueError, match="RealisticConfig.peak_db"):
        RealisticConfig(peak_db=(-10.0, 3.0))


def test_tiny_realistic_corpus_is_deterministic_and_differs_from_clean(tmp_path, monkeypatch, cli, same_bytes):
    monkeypatch.setattr(synth, "CHUNK", 5)  # several chunks, so that the worker count could matter
    code, out, _ = cli("data", "synth", "--realistic", "--out", tmp_path / "a", "--minutes", "0.3",
                       "--eval-minutes", "0.1", "--workers", "2", "--no-progress")
    assert code == 0 and "realistic audio" in out
    synth.synthesize_corpus(tmp_path / "b", 0.3, eval_minutes=0.1, workers=1, realistic=True, progress=False, log=None)
    same_bytes(tmp_path / "a", tmp_path / "b")
    synth.synthesize_corpus(tmp_path / "clean", 0.3, eval_minutes=0.1, workers=1, progress=False, log=None)
    real, clean = tmp_path / "a", tmp_path / "clean"
    info = json.loads((real / "corpus.json").read_text())
    assert info["realistic"] is True and info["realistic_config"]["snr_db"] == [5.0, 30.0]
    assert "realistic" not in json.loads((clean / "corpus.json").read_text())
    texts = {}
    for split in ("train", "dev", "test"):
        corpus = read_corpus(real, split)
        assert len(corpus) >= 3 and all(u.num_samples >= 400 for u in corpus)
        texts[split] = [u.transcript for u in corpus]
        rows = (real / "conditions" / f"{split}.tsv").read_text().splitlines()
        assert rows[0].split("\t") == list(realistic.CONDITION_COLUMNS)
        assert [r.split("\t")[0] for r in rows[1:]] == [u.id.rsplit("/", 1)[-1] for u in corpus]
    # The same sentences in the same order; only the split boundaries move with the (other) rates drawn.
    clean_dev = [u.transcript for u in read_corpus(clean, "dev")]
    assert texts["dev"][:2] == clean_dev[:2]
    everything = {t for split in texts.values() for t in split}
    assert len(everything & {u.transcript for s in ("train", "dev", "test") for u in read_corpus(clean, s)}) \
        >= 0.8 * len(everything)
    conditions = [r.split("\t") for r in (real / "conditions" / "train.tsv").read_text().splitlines()[1:]]
    assert all(5.0 <= float(c[7]) <= 30.0 for c in conditions) and len({c[6] for c in conditions}) >= 2
    assert not filecmp.cmp(real / "audio/train/train-00001.flac", clean / "audio/train/train-00001.flac", shallow=False)
    code, _, err = cli("data", "synth", "--task", "kws", "--realistic", "--out", tmp_path / "k")
    assert code == 2 and "--realistic degrades the ASR corpus only" in err


def test_realistic_corpus_has_its_own_cache_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("SEW_CACHE", str(tmp_path))
    clean, real = synth.corpus_dir(40, 0), synth.corpus_dir(40, 0, realistic=True)
    assert clean.name == f"synth-v{synth.VERSION}-m40-s0"
    assert real.name == f"synth-v{synth.VERSION}-m40-s0-realistic-v{realistic.VERSION}"
    made = []
    monkeypatch.setattr(synth, "synthesize_corpus", lambda out, *a, **kw: made.append(kw["realistic"])
                        or (out.mkdir(parents=True) or (out / "corpus.json").write_text("{}")))
    assert synth.default_corpus(0.2, realistic=True, progress=False).name.endswith("-realistic-v1")
    assert synth.default_corpus(0.2, progress=False).name == f"synth-v{synth.VERSION}-m0.2-s0" and made == [True, False]
