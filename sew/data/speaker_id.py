"""The built-in speaker-identification task: ``SPEAKERS`` eSpeak NG speakers in canonical manifest form.

``synthesize_speaker_id(out_dir, seed)`` writes ``audio/{split}/*.flac`` (16 kHz, 16-bit),
``{train,dev,test}.tsv`` with ``.label`` (the speaker, ``spk00`` ...), ``.wrd`` / ``.ltr`` (the
sentence spoken) and ``corpus.json`` (classes, counts, every speaker's voice). A speaker is a
fixed accent + variant (``espeak.ACCENTS``, ``espeak.VARIANTS``; every speaker a different
variant while there are enough), base pitch (``BASE_PITCH``) and rate (``BASE_RATE``); each
utterance jitters the pitch by up to ``PITCH_JITTER`` units, the rate by up to ``RATE_JITTER``
and draws a peak level (``PEAK_DB``). ``PER_SPEAKER`` utterances per speaker and split, each a
different sentence of ``sew.data.sentences`` (so no sentence is in two splits), 1-3 s long.
Deterministic for a seed: chunks of ``CHUNK`` utterances, each in a fresh process.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sew.data.audio import SAMPLE_RATE
from sew.data.espeak import ACCENTS, VARIANTS
from sew.data.records import Utterance
from sew.data.manifest import write_split
from sew.data.sentences import generate_sentences
from sew.data.synth import synthesize_chunk, available_cores, run_chunks

VERSION = 1  # bump when the output for a given seed changes; part of the cache directory name
SPEAKERS = 40
PER_SPEAKER = {"train": 12, "dev": 3, "test": 6}  # utterances per speaker and split
BASE_PITCH = (25, 75)
BASE_RATE = (130, 190)
PITCH_JITTER = 3  # units of eSpeak's 0-100 pitch
RATE_JITTER = 0.04  # fraction of the speaker's rate
PEAK_DB = (-12.0, -1.0)
WORDS = (4, 8)  # words per sentence
CHUNK = 64  # utterances per fresh synthesizer process (fixed: it determines the output)


@dataclass(frozen=True)
class Speaker:
    name: str
    voice: str
    pitch: int
    rate: int


@dataclass(frozen=True)
class SpeakerUtterance:
    split: str
    id: str
    speaker: str
    text: str
    voice: str
    rate: int
    pitch: int
    peak_db: float


def plan_speakers(seed: int, count: int = SPEAKERS) -> list[Speaker]:
    """``count`` speakers, each a distinct voice (a distinct variant while ``VARIANTS`` lasts)."""
    rng = np.random.default_rng([seed, 4])
    variants = [VARIANTS[i] for i in rng.permutation(len(VARIANTS))]
    speakers, voices = [], set()
    for i in range(count):
        variant = variants[i % len(variants)]
        voice = next(v for v in (f"{ACCENTS[a]}+{variant}" for a in rng.permutation(len(ACCENTS))) if v not in voices)
        voices.add(voice)
        speakers.append(Speaker(f"spk{i:02d}", voice, int(rng.integers(BASE_PITCH[0], BASE_PITCH[1] + 1)),
                                int(rng.integers(BASE_RATE[0], BASE_RATE[1] + 1))))
    return speakers


def plan_speaker_id(seed: int, speakers: int = SPEAKERS,
                    per_speaker: dict[str, int] | None = None) -> tuple[list[Speaker], list[SpeakerUtterance]]:
    """The speakers and every utterance: test, dev, then train, each sentence used once."""
    per_speaker = dict(PER_SPEAKER if per_speaker is None else per_speaker)
    if set(per_speaker) != set(PER_SPEAKER) or min(per_speaker.values()) < 1:
        raise ValueError(f"per_speaker needs a positive count for each of {', '.join(PER_SPEAKER)}, got {per_speaker}")
    if not 2 <= speakers <= len(ACCENTS) * len(VARIANTS):
        raise ValueError(f"speakers must be 2 to {len(ACCENTS) * len(VARIANTS)}, got {speakers}")
    people = plan_speakers(seed, speakers)
    sentences = iter(generate_sentences(speakers * sum(per_speaker.values()), seed, *WORDS))
    rng = np.random.default_rng([seed, 5])
    items = []
    for split in ("test", "dev", "train"):
        for person in people:
            for n in range(per_speaker[split]):
                pitch = person.pitch + int(rng.integers(-PITCH_JITTER, PITCH_JITTER + 1))
                rate = int(round(person.rate * rng.uniform(1 - RATE_JITTER, 1 + RATE_JITTER)))
                items.append(SpeakerUtterance(split, f"{person.name}-{split}-{n:03d}", person.name, next(sentences),
                                              person.voice, rate, min(max(pitch, 0), 100),
                                              float(rng.uniform(*PEAK_DB))))
    return people, items


def synthesize_speaker_id(out_dir: str | Path, seed: int = 0, *, speakers: int = SPEAKERS,
                          per_speaker: dict[str, int] | None = None, workers: int | None = None,
                          progress: bool = True, log=print) -> dict:
    """Generate the task into ``out_dir`` (see the module docstring); return its ``corpus.json``.

    ``speakers`` and ``per_speaker`` (utterances per speaker for train / dev / test) make
    smaller versions; the defaults are ``SPEAKERS`` and ``PER_SPEAKER``.
    """
    out = Path(out_dir)
    workers = workers or available_cores()
    start = time.perf_counter()
    people, items = plan_speaker_id(seed, speakers, per_speaker)
    chunks = [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]
    lengths = run_chunks(synthesize_chunk, [(str(out), chunk) for chunk in chunks], workers, total=len(items),
                         progress=progress, desc="synthesize speaker-id")
    info = {"generator": "sew.data.speaker_id", "task": "speaker-id", "layout": "fairseq", "version": VERSION,
            "seed": seed, "sample_rate": SAMPLE_RATE, "classes": [p.name for p in people],
            "speakers": {p.name: {"voice": p.voice, "pitch": p.pitch, "rate_wpm": p.rate} for p in people},
            "pitch_jitter": PITCH_JITTER, "rate_jitter": RATE_JITTER, "peak_db": list(PEAK_DB), "splits": {}}
    for split in ("train", "dev", "test"):
        utts = [Utterance(it.id, str(out / "audio" / split / f"{it.id}.flac"), n, it.text, label=it.speaker)
                for it, n in zip(items, lengths) if it.split == split]
        write_split(out, split, utts, root=f"audio/{split}")
        info["splits"][split] = {"utterances": len(utts), "per_speaker": len(utts) // len(people),
                                 "seconds": round(sum(u.num_samples for u in utts) / SAMPLE_RATE, 2)}
    (out / "corpus.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    elapsed = time.perf_counter() - start
    if log is not None:
        audio_s = sum(lengths) / SAMPLE_RATE
        log(f"synthesized the speaker-id task: {len(items)} utterances of {len(people)} speakers "
            f"({audio_s / 60:.1f} min) in {elapsed:.1f} s with {min(workers, len(chunks))} worker(s)")
    return info
