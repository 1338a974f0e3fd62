"""Realistic degradations for synthetic speech: speed, room, channel, noise and level.

Clean eSpeak NG speech is far easier than any recording: a model trained and tested on it says
little about how it copes with rooms, microphones, noise and levels. ``degrade(wave, rng, config)``
turns one float32 waveform into a plausible "recording", applying in this fixed order:

1. speed perturbation (with probability ``speed_prob``): resampled by a factor in ``speed``, which
   changes tempo and pitch together like Kaldi's speed perturbation;
2. reverberation (``reverb_prob``): convolution with a synthetic room impulse response, a direct
   path plus an exponentially decaying noise tail of reverberation time ``rt60_s`` and
   direct-to-reverberant ratio ``drr_db``, cut to the input length;
3. band limits: a Butterworth high-pass (``highpass_prob``, ``highpass_hz``) and / or low-pass
   (``lowpass_prob``, ``lowpass_hz``), as cheap microphones and telephone channels have;
4. additive noise (``noise_prob``) at an SNR in ``snr_db`` measured against the speech power over
   the whole utterance: white, pink (1/f), brown (1/f^2), mains hum or babble (other utterances
   of the same chunk, time-shifted and level-scaled; pink when there are none);
5. level: scaled to a peak in ``peak_db`` dBFS, so recordings differ in level, then clipped to [-1, 1].

Every random number comes from the ``numpy.random.Generator`` passed in; the draws of one
utterance are made up front in a fixed order and count (``draw_conditions``), so a change of one
probability does not shift the others' values. ``Conditions`` records what was applied (written
per utterance to ``conditions/{split}.tsv`` by the generators).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Sequence

import numpy as np
import soxr

from sew.data.audio import SAMPLE_RATE

VERSION = 1  # bump when the output for a given seed changes; part of the realistic cache directory name
STREAM = 7  # the constant in every realistic utterance's seed: [corpus seed, STREAM, utterance index]
NOISE_KINDS = ("white", "pink", "brown", "hum", "babble")
PREDELAY_S = 0.0025  # first reflection after the direct path (a few metres of extra path)
BABBLE_GAIN_DB = (-6.0, 0.0)  # level of each babble talker relative to the others
FILTER_ORDER = 6  # Butterworth order of the band limits (36 dB per octave: clearly audible edges)
PRELOAD = ("scipy.signal",)  # imported lazily here (a second), once per generator run (``synth.run_chunks``)
CONDITION_COLUMNS = ("id", "speed", "rt60_s", "drr_db", "highpass_hz", "lowpass_hz", "noise", "snr_db", "peak_db")


@dataclass(frozen=True)
class RealisticConfig:
    """Ranges and probabilities of the degradations (see the module docstring); every range is (low, high).

    ``rate_wpm`` and ``pitch`` are the eSpeak NG rate (words per minute) and pitch (0-100) drawn per
    utterance in realistic mode: wider than the clean corpus's, for more speaker variation.
    """

    speed_prob: float = 0.5
    speed: tuple[float, float] = (0.9, 1.1)
    reverb_prob: float = 0.5
    rt60_s: tuple[float, float] = (0.15, 0.7)
    drr_db: tuple[float, float] = (0.0, 12.0)
    highpass_prob: float = 0.3
    highpass_hz: tuple[float, float] = (80.0, 300.0)
    lowpass_prob: float = 0.3
    lowpass_hz: tuple[float, float] = (3400.0, 7500.0)
    noise_prob: float = 1.0
    snr_db: tuple[float, float] = (5.0, 30.0)
    noise_kinds: tuple[str, ...] = NOISE_KINDS
    babble_talkers: tuple[int, int] = (3, 6)
    peak_db: tuple[float, float] = (-30.0, -1.0)
    rate_wpm: tuple[int, int] = (110, 240)
    pitch: tuple[int, int] = (5, 95)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_prob") and not 0.0 <= value <= 1.0:
                raise ValueError(f"RealisticConfig.{f.name} is a probability in [0, 1], got {value}")
            if f.name != "noise_kinds" and isinstance(value, tuple) and (len(value) != 2 or value[0] > value[1]):
                raise ValueError(f"RealisticConfig.{f.name} must be a (low, high) range with low <= high, got {value}")
        checks = [("speed", self.speed[0] > 0, "factors must be positive"),
                  ("rt60_s", self.rt60_s[0] > 0, "reverberation times must be positive"),
                  ("highpass_hz", self.highpass_hz[0] > 0, "cut-offs must be positive"),
                  ("lowpass_hz", self.lowpass_hz[0] > 0, "cut-offs must be positive"),
                  ("peak_db", self.peak_db[1] <= 0, "peaks are dB below full scale (at most 0)"),
                  ("babble_talkers", self.babble_talkers[0] >= 1, "babble needs at least one talker"),
                  ("pitch", 0 <= self.pitch[0] and self.pitch[1] <= 100, "eSpeak NG pitch is 0-100"),
                  ("rate_wpm", self.rate_wpm[0] >= 80, "eSpeak NG speaks at least 80 words per minute"),
                  ("noise_kinds", bool(self.noise_kinds) and set(self.noise_kinds) <= set(NOISE_KINDS),
                   f"choose from {', '.join(NOISE_KINDS)}")]
        for name, ok, why in checks:
            if not ok:
                raise ValueError(f"RealisticConfig.{name} = {getattr(self, name)}: {why}")

    def to_dict(self) -> dict:
        """The values as JSON-ready lists and numbers (for ``corpus.json``)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Conditions:
    """What was applied to one utterance; None: that step was skipped."""

    speed: float | None
    rt60_s: float | None
    drr_db: float | None
    highpass_hz: float | None
    lowpass_hz: float | None
    noise: str | None
    snr_db: float | None
    peak_db: float

    def row(self, uid: str) -> str:
        """One line of ``conditions/{split}.tsv`` (``none`` for a skipped step)."""
        def cell(name: str) -> str:
            value = getattr(self, name)
            if value is None or isinstance(value, str):
                return "none" if value is None else value
            return f"{value:.4f}" if name == "speed" else f"{value:.2f}"

        return "\t".join([uid, *(cell(name) for name in CONDITION_COLUMNS[1:])])


def draw_conditions(rng: np.random.Generator, config: RealisticConfig, babble_ok: bool = True) -> Conditions:
    """One utterance's conditions: always the same number of draws, in the same order, whatever is used."""
    use_speed = rng.random() < config.speed_prob
    speed = float(rng.uniform(*config.speed))
    use_reverb = rng.random() < config.reverb_prob
    rt60, drr = float(rng.uniform(*config.rt60_s)), float(rng.uniform(*config.drr_db))
    use_hp = rng.random() < config.highpass_prob
    hp = float(rng.uniform(*config.highpass_hz))
    use_lp = rng.random() < config.lowpass_prob
    lp = float(rng.uniform(*config.lowpass_hz))
    use_noise = rng.random() < config.noise_prob
    kind = config.noise_kinds[int(rng.integers(len(config.noise_kinds)))]
    snr = float(rng.uniform(*config.snr_db))
    peak = float(rng.uniform(*config.peak_db))
    if kind == "babble" and not babble_ok:
        kind = "pink"  # no other utterances to mix: the closest stationary stand-in
    return Conditions(speed if use_speed else None, rt60 if use_reverb else None, drr if use_reverb else None,
                      hp if use_hp else None, lp if use_lp else None, kind if use_noise else None,
                      snr if use_noise else None, peak)


def degrade(wave: np.ndarray, rng: np.random.Generator, config: RealisticConfig | None = None, *,
            rate: int = SAMPLE_RATE, others: Sequence[np.ndarray] = (),
            babble_talkers: tuple[int, int] | None = None) -> tuple[np.ndarray, Conditions]:
    """``wave`` (float, mono, at ``rate``) as a degraded recording, and the conditions drawn from ``rng``.

    ``others``: other utterances at the same rate, for babble noise (without them babble falls back to pink).
    """
    config = config or RealisticConfig()
    conditions = draw_conditions(rng, config, babble_ok=len(others) > 0)
    return apply_conditions(wave, conditions, rng, rate=rate, others=others,
                            babble_talkers=babble_talkers or config.babble_talkers), conditions


def apply_conditions(wave: np.ndarray, c: Conditions, rng: np.random.Generator, *, rate: int = SAMPLE_RATE,
                     others: Sequence[np.ndarray] = (), babble_talkers: tuple[int, int] = (3, 6)) -> np.ndarray:
    """Apply ``c`` in the fixed order (speed, room, band limits, noise, level); ``rng`` draws the room's
    tail and the noise. float32 in [-1, 1]."""
    x = np.asarray(wave, dtype=np.float64)
    if c.speed is not None:
        x = change_speed(x, c.speed, rate)
    if c.rt60_s is not None:
        x = reverberate(x, room_impulse_response(c.rt60_s, c.drr_db if c.drr_db is not None else 6.0, rng, rate))
    if c.highpass_hz is not None or c.lowpass_hz is not None:
        x = band_limit(x, rate, c.highpass_hz, c.lowpass_hz)
    if c.noise is not None:
        noise = (babble(others, len(x), rng, babble_talkers, rate) if c.noise == "babble"
                 else make_noise(c.noise, len(x), rng, rate))
        x = add_noise(x, noise, c.snr_db)
    return set_peak(x, c.peak_db)


def change_speed(wave: np.ndarray, factor: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Play ``wave`` ``factor`` times faster (tempo and pitch): resampled as if recorded at ``rate * factor``."""
    if factor <= 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    return soxr.resample(np.asarray(wave, dtype=np.float64), rate * factor, rate)


def room_impulse_response(rt60_s: float, drr_db: float, rng: np.random.Generator,
                          rate: int = SAMPLE_RATE) -> np.ndarray:
    """A synthetic room: a unit direct path, then Gaussian noise whose energy falls 60 dB in ``rt60_s``
    (Sabine's definition), scaled so the direct-to-reverberant energy ratio is ``drr_db``. It lasts
    1.2 x RT60 (down to -72 dB), long enough that its decay reads as the drawn RT60."""
    if rt60_s <= 0:
        raise ValueError(f"rt60_s must be positive, got {rt60_s}")
    n = max(int(1.2 * rt60_s * rate), 2)
    t = np.arange(n) / rate
    tail = rng.standard_normal(n) * np.exp(-3.0 * math.log(10.0) * t / rt60_s)  # amplitude: -60 dB energy at RT60
    tail[:max(int(PREDELAY_S * rate), 1)] = 0.0
    tail *= math.sqrt(10 ** (-drr_db / 10) / max(float(np.sum(tail ** 2)), 1e-30))
    tail[0] = 1.0  # the direct path, energy 1
    return tail


def reverberate(wave: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``wave`` convolved with ``rir``, cut to the input length (the reverberant tail past the end is dropped)."""
    from scipy import signal  # here: scipy.signal takes a second to import, and most users of synth never need it

    return signal.fftconvolve(np.asarray(wave, dtype=np.float64), rir)[:len(wave)]


def band_limit(wave: np.ndarray, rate: int, highpass_hz: float | None = None, lowpass_hz: float | None = None,
               order: int = FILTER_ORDER) -> np.ndarray:
    """Butterworth high-pass and / or low-pass filtering (causal, like a real channel)."""
    from scipy import signal

    x = np.asarray(wave, dtype=np.float64)
    nyquist = rate / 2
    for name, hz, kind in (("highpass_hz", highpass_hz, "highpass"), ("lowpass_hz", lowpass_hz, "lowpass")):
        if hz is None:
            continue
        if not 0 < hz < nyquist:
            raise ValueError(f"{name} = {hz} Hz must be between 0 and the Nyquist frequency {nyquist:g} Hz "
                             f"of {rate} Hz audio; lower it")
        x = signal.sosfilt(signal.butter(order, hz, btype=kind, fs=rate, output="sos"), x)
    return x


def add_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech + noise``, the noise scaled so that speech power / noise power (mean squares over the
    whole utterance) is ``snr_db``. Silent speech is returned unchanged (no SNR can be defined)."""
    speech = np.asarray(speech, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)
    if noise.shape != speech.shape:
        raise ValueError(f"noise has shape {noise.shape}, speech {speech.shape}: make the noise as long as the speech")
    p_speech, p_noise = float(np.mean(speech ** 2)), float(np.mean(noise ** 2))
    if p_speech <= 0 or p_noise <= 0:
        return speech.copy()
    return speech + noise * math.sqrt(p_speech / (p_noise * 10 ** (snr_db / 10)))


def make_noise(kind: str, length: int, rng: np.random.Generator, rate: int = SAMPLE_RATE) -> np.ndarray:
    """``length`` samples of unit-RMS noise: white, pink (1/f power), brown (1/f^2) or mains hum
    (50 or 60 Hz with four harmonics and a little white noise)."""
    if kind == "hum":
        t = np.arange(length) / rate
        base = 50.0 if rng.random() < 0.5 else 60.0
        x = sum(rng.uniform(0.1, 1.0) / k * np.sin(2 * np.pi * base * k * t + rng.uniform(0, 2 * np.pi))
                for k in range(1, 6))
        x = x + 0.05 * rng.standard_normal(length)
    elif kind == "white":
        x = rng.standard_normal(length)
    elif kind in ("pink", "brown"):
        size = fast_fft_length(length)  # an FFT of a large prime length would take seconds
        spectrum = np.fft.rfft(rng.standard_normal(size))
        freqs = np.maximum(np.fft.rfftfreq(size, 1.0 / rate), 20.0)  # flat below 20 Hz: no DC drift
        spectrum /= np.sqrt(freqs) if kind == "pink" else freqs
        x = np.fft.irfft(spectrum, n=size)[:length]
    else:
        raise ValueError(f"unknown noise kind {kind!r}; one of white, pink, brown, hum (babble: see babble())")
    x = x - x.mean()
    return (x / max(float(np.sqrt(np.mean(x ** 2))), 1e-12)).astype(np.float32)


def fast_fft_length(n: int) -> int:
    """The smallest length >= ``n`` with no prime factor above 5 (fast for numpy's FFT)."""
    m = max(int(n), 1)
    while True:
        rest = m
        for p in (2, 3, 5):
            while rest % p == 0:
                rest //= p
        if rest == 1:
            return m
        m += 1


def babble(others: Sequence[np.ndarray], length: int, rng: np.random.Generator,
           talkers: tuple[int, int] = (3, 6), rate: int = SAMPLE_RATE) -> np.ndarray:
    """Unit-RMS babble: a few of ``others`` (drawn without replacement), each looped from a random
    offset to ``length``, at a level in ``BABBLE_GAIN_DB``, summed. Pink noise when ``others`` is empty."""
    if len(others) == 0:
        return make_noise("pink", length, rng, rate)
    count = min(int(rng.integers(talkers[0], talkers[1] + 1)), len(others))
    mix = np.zeros(length)
    for index in sorted(rng.choice(len(others), size=count, replace=False).tolist()):
        talker = np.asarray(others[index], dtype=np.float64)
        if len(talker) == 0:
            continue
        talker = talker / max(float(np.sqrt(np.mean(talker ** 2))), 1e-12)
        start = int(rng.integers(len(talker)))
        looped = np.tile(talker, (start + length) // len(talker) + 1)[start:start + length]
        mix += looped * 10 ** (rng.uniform(*BABBLE_GAIN_DB) / 20)
    mix -= mix.mean()
    return (mix / max(float(np.sqrt(np.mean(mix ** 2))), 1e-12)).astype(np.float32)


def set_peak(wave: np.ndarray, peak_db: float) -> np.ndarray:
    """``wave`` scaled to peak at ``peak_db`` dBFS, clipped to [-1, 1], float32 (silence stays silent)."""
    x = np.asarray(wave, dtype=np.float64)
    peak = float(np.abs(x).max()) if len(x) else 0.0
    if peak > 0:
        x = x * (10 ** (peak_db / 20) / peak)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def write_conditions(path: str | Path, rows: Sequence[tuple[str, Conditions]]) -> None:
    """``conditions/{split}.tsv``: a header (``CONDITION_COLUMNS``), then one line per utterance."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(CONDITION_COLUMNS), *(c.row(uid) for uid, c in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def utterance_rng(seed: int, index: int, stream: int = STREAM) -> np.random.Generator:
    """The generator of one utterance's degradations: independent of chunking and worker count."""
    return np.random.default_rng([seed, stream, index])
