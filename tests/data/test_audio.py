import numpy as np
import pytest
import soundfile as sf

from sew.data import rejects
from sew.data.audio import (TRIM_MARGIN_S, AudioError, header_num_samples, load_audio, normalize_waveform,
                            trim_edges, write_flac)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg"])
def test_formats_decode_to_16k_mono_float(tmp_path, audio, suffix):
    path = audio.write(tmp_path / f"a{suffix}", seconds=0.5)
    wave, info = load_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1 and len(wave) == 8000
    assert not info.resampled and not info.downmixed and info.sample_rate == 16000
    ref = audio.tone(0.5)
    tol = 1e-4 if suffix != ".ogg" else 0.1  # ogg is lossy
    assert np.abs(wave - ref).max() < tol


def test_resample_and_downmix_are_done_and_recorded(tmp_path, audio):
    path = audio.write(tmp_path / "s.flac", seconds=1.0, rate=44100, channels=2)
    wave, info = load_audio(path)
    assert info.resampled and info.downmixed and (info.sample_rate, info.channels) == (44100, 2)
    assert len(wave) == 16000 == header_num_samples(path)
    mono = audio.tone(1.0, 16000) * 0.25  # the mean of x and -x/2
    assert np.corrcoef(wave[100:-100], mono[100:-100])[0, 1] > 0.99


def test_bytes_source(tmp_path, audio):
    path = audio.write(tmp_path / "a.flac", seconds=0.25)
    wave, info = load_audio(path.read_bytes(), name="embedded")
    assert len(wave) == 4000 and info.path == "embedded"


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _make_bad(kind, d, audio):
    """One bad file of each kind; returns its path."""
    if kind == "truncated-wav":
        _truncate(audio.write(d / "t.wav"))
        return d / "t.wav"
    if kind == "truncated-flac":
        _truncate(audio.write(d / "t.flac", seconds=2.0))
        return d / "t.flac"
    if kind == "zero-bytes":
        (d / "e.wav").write_bytes(b"")
        return d / "e.wav"
    if kind == "no-samples":
        sf.write(str(d / "z.wav"), np.zeros(0, np.float32), 16000)
        return d / "z.wav"
    if kind == "garbage":
        (d / "g.wav").write_bytes(b"this is not audio at all" * 10)
        return d / "g.wav"
    sf.write(str(d / "n.wav"), np.array([0.1, np.nan, np.inf] * 200, np.float32), 16000, subtype="FLOAT")
    return d / "n.wav"


@pytest.mark.parametrize("kind, reason", [
    ("truncated-wav", rejects.TRUNCATED), ("truncated-flac", rejects.TRUNCATED), ("zero-bytes", rejects.EMPTY),
    ("no-samples", rejects.EMPTY), ("garbage", rejects.UNREADABLE), ("nan-inf", rejects.NON_FINITE),
])
def test_bad_audio_raises_audio_error_with_reason(tmp_path, audio, kind, reason):
    path = _make_bad(kind, tmp_path, audio)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    assert info.value.reason == reason and info.value.path == str(path)
    assert isinstance(info.value, ValueError) and str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        load_audio(tmp_path / "nope.wav")


def test_normalize_waveform_zero_mean_unit_variance():
    x = np.random.default_rng(0).normal(3.0, 5.0, size=(2, 1000)).astype(np.float32)
    y = normalize_waveform(x)
    assert np.allclose(y.mean(-1), 0, atol=1e-5) and np.allclose(y.std(-1), 1, atol=1e-3)


def test_write_flac_is_deterministic_and_round_trips(tmp_path, audio):
    x = audio.tone(0.3)
    write_flac(tmp_path / "a.flac", x)
    write_flac(tmp_path / "b.flac", x)
    assert (tmp_path / "a.flac").read_bytes() == (tmp_path / "b.flac").read_bytes()
    y, _ = load_audio(tmp_path / "a.flac")
    assert np.abs(y - x).max() < 1 / 32767 + 1e-6


def _padded(audio, gain: float) -> np.ndarray:
    """1 s of noise 50 dB under a 0.5 s tone, the tone, then 0.6 s of the same noise; all times ``gain``."""
    rng = np.random.default_rng(0)
    quiet = lambda seconds: 0.3 * 10 ** (-50 / 20) * rng.standard_normal(int(seconds * 16000))
    return (gain * np.concatenate([quiet(1.0), audio.tone(0.5), quiet(0.6)])).astype(np.float32)


@pytest.mark.parametrize("gain", [1.0, 1e-3])
def test_trim_edges_cuts_quiet_edges_at_any_level(audio, gain):
    wave = _padded(audio, gain)
    out = trim_edges(wave, 25)
    margin = int(TRIM_MARGIN_S * 16000)
    assert abs(len(out) - (8000 + 2 * margin)) <= 400  # the tone, a margin each side, within one 25 ms frame
    start = next(i for i in np.flatnonzero(wave == out[0]) if np.array_equal(wave[i:i + len(out)], out))
    assert abs(start - (16000 - margin)) <= 400  # taken from where the tone starts, not the file's start
    assert len(trim_edges(wave, 70)) == len(wave)  # the noise is within 70 dB: nothing is cut


def test_trim_edges_leaves_loud_edges_and_refuses_a_nonpositive_threshold(audio):
    wave = audio.tone(0.5)
    assert np.array_equal(trim_edges(wave, 25), wave)
    with pytest.raises(ValueError, match="positive"):
        trim_edges(wave, 0)
