"""The built-in keyword-spotting task: one-second eSpeak NG clips in the Speech Commands v2 layout.

``synthesize_kws(out_dir, seed)`` writes ``LABEL/*.wav`` (16 kHz, 16-bit, exactly 1 s),
``validation_list.txt``, ``testing_list.txt`` and ``corpus.json``; ``sew.data.speech_commands``
reads it. Classes: the ten ``COMMANDS``, ``_unknown_`` (one of ``UNKNOWN_WORDS``) and
``_silence_`` (synthetic noise only). ``PER_CLASS`` clips per class and split.

Each spoken clip draws an accent (``espeak.ACCENTS``), a variant (``espeak.VARIANTS`` or none),
a rate (``RATE_WPM``), a pitch (``PITCH``) and a peak level (``PEAK_DB``); the trimmed word sits
near the centre with a random offset (cropped to its middle when longer than 1 s) over a low
noise floor (``FLOOR_DB``). Noise is white, pink, brown or mains hum (``NOISE_KINDS``); a
silence clip is noise alone at ``SILENCE_DB`` (down to near-silence). File names are
``{voice hash}_nohash_{n}.wav`` like Speech Commands, so the voice of a clip can be grouped on
(voices repeat across splits, as speakers do in Speech Commands). Deterministic for a seed:
chunks of ``CHUNK`` clips, each in a fresh process (``sew.data.synth.run_chunks``).
"""

from __future__ import annotations

import json
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sew.data.audio import SAMPLE_RATE, write_wav
from sew.data.espeak import ACCENTS, VARIANTS
from sew.data.realistic import make_noise
from sew.data.speech_commands import LIST_FILES
from sew.data.synth import available_cores, render, run_chunks

VERSION = 2  # bump when the output for a given seed changes; part of the cache directory name
COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN_WORDS = ("bed", "bird", "cat", "dog", "happy", "house", "tree", "wow", "zero", "one", "two", "three",
                 "four", "five", "six", "seven", "eight", "nine", "follow", "forward", "backward", "learn",
                 "visual", "sheila", "marvin")
UNKNOWN, SILENCE = "_unknown_", "_silence_"
PER_CLASS = {"train": 300, "validation": 20, "test": 50}  # clips per class and split (12 classes)
CLIP = SAMPLE_RATE  # every clip: exactly 1 s
RATE_WPM = (120, 220)
PITCH = (20, 80)
PEAK_DB = (-24.0, -1.0)  # peak level of the word, dB full scale
FLOOR_DB = (-75.0, -50.0)  # RMS of the noise under every spoken clip
SILENCE_DB = (-80.0, -25.0)  # RMS of a silence clip (below -60: near-silence)
NOISE_KINDS = ("white", "pink", "brown", "hum")
MAX_OFFSET = 0.25  # the word's shift from the centre, as a fraction of the free space
CHUNK = 128  # clips per fresh synthesizer process (fixed: it determines the output)


@dataclass(frozen=True)
class KwsClip:
    """One clip to make; ``word`` is None for silence."""

    index: int  # seeds the clip's own noise
    split: str
    label: str
    word: str | None
    voice: str
    rate: int
    pitch: int
    peak_db: float
    noise: str
    noise_db: float
    offset: float  # in [-MAX_OFFSET, MAX_OFFSET]
    path: str  # LABEL/NAME.wav


def kws_classes(commands: tuple[str, ...] = COMMANDS) -> list[str]:
    return [*commands, UNKNOWN, SILENCE]


def plan_kws(seed: int, per_class: dict[str, int] | None = None, commands: tuple[str, ...] = COMMANDS) -> list[KwsClip]:
    """Every clip: for each split (test, validation, train) and class, ``per_class[split]`` clips."""
    per_class = dict(PER_CLASS if per_class is None else per_class)
    if set(per_class) != set(PER_CLASS) or min(per_class.values()) < 1:
        raise ValueError(f"per_class needs a positive count for each of {', '.join(PER_CLASS)}, got {per_class}")
    unknown = [w for w in UNKNOWN_WORDS if w not in commands]
    rng = np.random.default_rng([seed, 2])
    clips, seen = [], Counter()
    for split in ("test", "validation", "train"):
        for label in kws_classes(commands):
            for _ in range(per_class[split]):
                word = {SILENCE: None, UNKNOWN: unknown[rng.integers(len(unknown))]}.get(label, label)
                variant = int(rng.integers(len(VARIANTS) + 1))  # one more: the accent's own voice
                voice = ACCENTS[rng.integers(len(ACCENTS))] + (f"+{VARIANTS[variant]}" if variant < len(VARIANTS) else "")
                rate = int(rng.integers(RATE_WPM[0], RATE_WPM[1] + 1))
                pitch = int(rng.integers(PITCH[0], PITCH[1] + 1))
                peak_db = float(rng.uniform(*PEAK_DB))
                noise = NOISE_KINDS[rng.integers(len(NOISE_KINDS))]
                noise_db = float(rng.uniform(*(SILENCE_DB if word is None else FLOOR_DB)))
                offset = float(rng.uniform(-MAX_OFFSET, MAX_OFFSET))
                stem = f"{zlib.crc32(voice.encode()):08x}" if word is not None else f"noise{noise}"
                if label == UNKNOWN:
                    stem = f"{word}_{stem}"
                n = seen[label, stem]
                seen[label, stem] += 1
                clips.append(KwsClip(len(clips), split, label, word, voice, rate, pitch, peak_db, noise, noise_db,
                                     offset, f"{label}/{stem}_nohash_{n}.wav"))
    return clips


def place_word(word: np.ndarray, offset: float) -> np.ndarray:
    """``word`` in a 1 s clip: centred, shifted by ``offset`` of the free space; its middle when longer."""
    if len(word) >= CLIP:
        start = (len(word) - CLIP) // 2
        return word[start:start + CLIP].copy()
    free = CLIP - len(word)
    start = min(max(free // 2 + int(round(offset * free)), 0), free)
    clip = np.zeros(CLIP, dtype=np.float32)
    clip[start:start + len(word)] = word
    return clip


def _kws_chunk(job: tuple[str, int, list[KwsClip]]) -> list[int]:
    """Worker (a fresh process per chunk): write each clip, return their lengths."""
    from sew.data.espeak import get_synthesizer

    out_dir, seed, clips = job
    synth = get_synthesizer()
    synth.reset_random(0)
    for clip in clips:
        rng = np.random.default_rng([seed, 3, clip.index])
        wave = np.zeros(CLIP, dtype=np.float32)
        if clip.word is not None:
            word = render(synth.synthesize(clip.word, clip.voice, clip.rate, clip.pitch), synth.sample_rate)
            word = word * (10 ** (clip.peak_db / 20) / max(float(np.abs(word).max()), 1e-6))
            wave = place_word(word.astype(np.float32), clip.offset)
        wave = wave + make_noise(clip.noise, CLIP, rng) * 10 ** (clip.noise_db / 20)
        write_wav(Path(out_dir) / clip.path, wave)
    return [CLIP] * len(clips)


def synthesize_kws(out_dir: str | Path, seed: int = 0, *, per_class: dict[str, int] | None = None,
                   commands: tuple[str, ...] = COMMANDS, workers: int | None = None, progress: bool = True,
                   log=print) -> dict:
    """Generate the task into ``out_dir`` (see the module docstring); return its ``corpus.json``.

    ``per_class`` (clips per class for train / validation / test) and ``commands`` make smaller
    versions; the defaults are ``PER_CLASS`` and ``COMMANDS``.
    """
    out = Path(out_dir)
    workers = workers or available_cores()
    start = time.perf_counter()
    clips = plan_kws(seed, per_class, commands)
    chunks = [clips[i:i + CHUNK] for i in range(0, len(clips), CHUNK)]
    run_chunks(_kws_chunk, [(str(out), seed, chunk) for chunk in chunks], workers, total=len(clips),
               progress=progress, desc="synthesize kws")
    for split, name in LIST_FILES.items():
        (out / name).write_text("".join(f"{c.path}\n" for c in clips if c.split == split), encoding="utf-8")
    counts = Counter((c.split, c.label) for c in clips)
    info = {"generator": "sew.data.kws", "task": "kws", "layout": "speech-commands", "version": VERSION,
            "seed": seed, "sample_rate": SAMPLE_RATE, "clip_samples": CLIP, "classes": kws_classes(commands),
            "unknown_words": [w for w in UNKNOWN_WORDS if w not in commands],
            "splits": {split: {label: counts[split, label] for label in kws_classes(commands)}
                       for split in ("train", "validation", "test")},
            "accents": list(ACCENTS), "variants": list(VARIANTS), "rate_wpm": list(RATE_WPM), "pitch": list(PITCH),
            "peak_db": list(PEAK_DB), "floor_db": list(FLOOR_DB), "silence_db": list(SILENCE_DB),
            "noise": list(NOISE_KINDS)}
    (out / "corpus.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    elapsed = time.perf_counter() - start
    if log is not None:
        log(f"synthesized the kws task: {len(clips)} one-second clips, {len(info['classes'])} classes, in "
            f"{elapsed:.1f} s with {min(workers, len(chunks))} worker(s)")
    return info
