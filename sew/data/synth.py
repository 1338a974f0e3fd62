"""The built-in corpus: multi-speaker synthetic English speech from eSpeak NG, in canonical form.

``synthesize_corpus(out_dir, minutes, seed)`` writes ``audio/{split}/{id}.flac`` (16 kHz,
16-bit), ``{train,dev,test}.tsv/.wrd/.ltr``, ``vocab.json`` and ``corpus.json``. Sentences come
from ``sew.data.sentences`` (dev and test first, so none of them appears in train); each
utterance gets one of ``VOICES`` and a random rate and pitch.

``realistic=True`` degrades every utterance (``sew.data.realistic``: speed, room, band limits,
noise, level), draws eSpeak NG's rate and pitch from wider ranges, records the configuration in
``corpus.json`` and each utterance's conditions in ``conditions/{split}.tsv``. Sentences and voices
follow the clean corpus's sequence for the same seed (a split boundary can move by an utterance or
two: other rates, other duration estimates). Its random numbers come from ``[seed,
realistic.STREAM, index]`` (the utterance's position in the plan), so it too is the same whatever
the number of workers.

Determinism: eSpeak NG keeps state across utterances inside the library that no call
resets, so utterances are synthesized in fixed chunks of ``CHUNK`` and each chunk runs in a
fresh process (``run_chunks``, also used by ``sew.data.tasks``). The output is then the same
byte for byte whatever the number of workers.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soxr
from tqdm import tqdm

from sew.data import realistic as realistic_mode
from sew.data.audio import SAMPLE_RATE, write_flac
from sew.data.corpus import Utterance
from sew.data.manifest import write_split
from sew.data.realistic import Conditions, RealisticConfig, degrade, utterance_rng, write_conditions
from sew.data.sentences import generate_sentences
from sew.data.text import Vocabulary

VERSION = 1  # bump when the output for a given seed changes; part of the cache directory name
VOICES = ["en-us", "en", "en-gb-scotland", "en-029", "en-us+f2", "en-us+f3", "en+m3", "en-us+klatt",
          "en-gb-x-rp", "en-gb-x-gbclan+f4"]
RATE_WPM = (140, 200)
PITCH = (30, 70)
CHUNK = 32  # utterances per fresh synthesizer process (fixed: it determines the output)
DEFAULT_MINUTES = 40.0
EVAL_FRACTION = 0.075  # dev and test each get this share of the train minutes (3 min for 40)
TRIM_THRESHOLD, TRIM_MARGIN_S = 0.01, 0.1


@dataclass(frozen=True)
class SynthItem:
    """One utterance to synthesize."""

    split: str
    id: str
    text: str
    voice: str
    rate: int
    pitch: int


def plan_corpus(minutes: float, seed: int, eval_minutes: float | None = None,
                realistic: RealisticConfig | None = None) -> list[SynthItem]:
    """Every utterance of the corpus: dev, test, then train, sized by an estimate of their duration.

    ``realistic``: draw rate and pitch from its (wider) ranges; the same draws in the same order,
    so the sentences and voices follow the clean corpus's sequence (the split sizes, estimated from
    the rates, can differ by an utterance or two)."""
    rate_wpm, pitch_range = (RATE_WPM, PITCH) if realistic is None else (realistic.rate_wpm, realistic.pitch)
    eval_minutes = max(EVAL_FRACTION * minutes, 0.1) if eval_minutes is None else eval_minutes
    rng = np.random.default_rng([seed, 1])
    targets = {"dev": eval_minutes * 60, "test": eval_minutes * 60, "train": minutes * 60}
    # Draw more sentences than needed, then take them in order; dev and test come first.
    mean_seconds = 2.45  # measured mean utterance length after trimming
    pool = generate_sentences(int(sum(targets.values()) / mean_seconds * 1.5) + 30, seed)
    items, next_sentence = [], 0
    for split, seconds in targets.items():
        total, count = 0.0, 0
        while total < seconds or count < 3:
            text = pool[next_sentence]
            next_sentence += 1
            voice = VOICES[int(rng.integers(len(VOICES)))]
            rate = int(rng.integers(rate_wpm[0], rate_wpm[1] + 1))
            pitch = int(rng.integers(pitch_range[0], pitch_range[1] + 1))
            total += len(text.split()) * 60.0 / rate * 0.78 + 0.15  # trimmed duration, fitted on seed 0
            count += 1
            items.append(SynthItem(split, f"{split}-{count:05d}", text, voice, rate, pitch))
    return items


def render(wave_int16: np.ndarray, rate: int) -> np.ndarray:
    """eSpeak output to float32 at 16 kHz, leading and trailing silence trimmed (0.1 s kept)."""
    return trim_silence(soxr.resample(wave_int16.astype(np.float32) / 32768.0, rate, SAMPLE_RATE), SAMPLE_RATE)


def trim_silence(wave: np.ndarray, rate: int) -> np.ndarray:
    """``wave`` without its leading and trailing silence (below ``TRIM_THRESHOLD``), ``TRIM_MARGIN_S`` kept."""
    loud = np.flatnonzero(np.abs(wave) > TRIM_THRESHOLD)
    if len(loud) == 0:
        return wave
    margin = int(TRIM_MARGIN_S * rate)
    return wave[max(loud[0] - margin, 0): loud[-1] + margin + 1]


def synthesize_chunk(job: tuple[str, list[SynthItem]]) -> list[int]:
    """Worker (a fresh process per chunk): write each item's FLAC, return their lengths. An item with a
    ``peak_db`` (the speaker-identification task's) is scaled to that peak level."""
    from sew.data.espeak import get_synthesizer

    out_dir, items = job
    synth = get_synthesizer()
    synth.reset_random(0)
    lengths = []
    for item in items:
        wave = render(synth.synthesize(item.text, item.voice, item.rate, item.pitch), synth.sample_rate)
        peak_db = getattr(item, "peak_db", None)
        if peak_db is not None:
            wave = wave * (10 ** (peak_db / 20) / max(float(np.abs(wave).max()), 1e-6))
        write_flac(Path(out_dir) / "audio" / item.split / f"{item.id}.flac", wave)
        lengths.append(len(wave))
    return lengths


def synthesize_realistic_chunk(job: tuple[str, int, RealisticConfig, int, list[SynthItem]]
                                ) -> list[tuple[int, Conditions]]:
    """Worker (a fresh process per chunk): synthesize the chunk, degrade each utterance (babble from the
    chunk's other utterances), write its FLAC; return (length, conditions) per item."""
    from sew.data.espeak import get_synthesizer

    out_dir, seed, config, first_index, items = job
    synth = get_synthesizer()
    synth.reset_random(0)
    clean = [render(synth.synthesize(it.text, it.voice, it.rate, it.pitch), synth.sample_rate) for it in items]
    results = []
    for k, (item, wave) in enumerate(zip(items, clean)):
        others = clean[:k] + clean[k + 1:]
        wave, conditions = degrade(wave, utterance_rng(seed, first_index + k), config, others=others)
        write_flac(Path(out_dir) / "audio" / item.split / f"{item.id}.flac", wave)
        results.append((len(wave), conditions))
    return results


def synthesize_corpus(out_dir: str | Path, minutes: float = DEFAULT_MINUTES, seed: int = 0, *,
                      workers: int | None = None, eval_minutes: float | None = None,
                      progress: bool = True, log=print, realistic: bool | RealisticConfig = False) -> dict:
    """Generate the corpus into ``out_dir`` (see the module docstring); return its ``corpus.json``.

    ``minutes`` of train audio, plus ``eval_minutes`` each of dev and test (default 7.5 %
    of ``minutes``). ``workers`` defaults to the available cores. Prints the speed via ``log``.
    ``realistic``: True (the default ``RealisticConfig``) or a config degrades every utterance.
    """
    if minutes <= 0:
        raise ValueError(f"--minutes must be positive, got {minutes}")
    config = RealisticConfig() if realistic is True else realistic or None
    out = Path(out_dir)
    workers = workers or available_cores()
    start = time.perf_counter()
    items = plan_corpus(minutes, seed, eval_minutes, config)
    chunks = [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]
    conditions = None
    if config is None:
        lengths = run_chunks(synthesize_chunk, [(str(out), chunk) for chunk in chunks], workers, total=len(items),
                             progress=progress)
    else:
        jobs = [(str(out), seed, config, i * CHUNK, chunk) for i, chunk in enumerate(chunks)]
        results = run_chunks(synthesize_realistic_chunk, jobs, workers, total=len(items), progress=progress,
                             desc="synthesize realistic", preload=realistic_mode.PRELOAD)
        lengths, conditions = [n for n, _ in results], [c for _, c in results]
    info = {"generator": "sew.data.synth", "version": VERSION, "seed": seed, "minutes": minutes,
            "sample_rate": SAMPLE_RATE, "voices": VOICES, "rate_wpm": list(RATE_WPM), "pitch": list(PITCH),
            "splits": {}}
    if config is not None:  # only here: the clean corpus.json stays as it always was
        info.update(rate_wpm=list(config.rate_wpm), pitch=list(config.pitch), realistic=True,
                    realistic_version=realistic_mode.VERSION, realistic_config=config.to_dict(),
                    conditions="conditions/{split}.tsv", splits=info.pop("splits"))
    for split in ("train", "dev", "test"):
        utts = [Utterance(it.id, str(out / "audio" / split / f"{it.id}.flac"), n, it.text)
                for it, n in zip(items, lengths) if it.split == split]
        write_split(out, split, utts, root=f"audio/{split}")
        info["splits"][split] = {"utterances": len(utts), "seconds": round(sum(u.num_samples for u in utts) / SAMPLE_RATE, 2)}
        if split == "train":
            Vocabulary.build(u.transcript for u in utts).save(out)
        if conditions is not None:
            write_conditions(out / "conditions" / f"{split}.tsv",
                             [(it.id, c) for it, c in zip(items, conditions) if it.split == split])
    (out / "corpus.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    elapsed = time.perf_counter() - start
    audio_s = sum(lengths) / SAMPLE_RATE
    if log is not None:
        kind = "" if config is None else "realistic "
        log(f"synthesized {audio_s / 60:.1f} min of {kind}audio ({len(items)} utterances) in {elapsed:.1f} s: "
            f"{audio_s / elapsed:.0f}x real time with {min(workers, len(chunks))} worker(s)")
    return info


def run_chunks(worker: Callable[[tuple], list], jobs: list[tuple], workers: int, *, total: int | None = None,
               progress: bool = True, desc: str = "synthesize", preload: tuple[str, ...] = ()) -> list:
    """``worker(job)`` for every job, each job in a fresh process that never ran eSpeak NG before;
    the lists the jobs return, concatenated in job order (the progress bar counts their items).
    ``preload``: modules imported once before the processes start (else every chunk imports them again)."""
    import importlib

    from sew.data import espeak

    if not jobs:
        return []
    for module in preload:
        importlib.import_module(module)
    if not sys.platform.startswith("linux"):
        context = multiprocessing.get_context("spawn")
    elif espeak.in_use():  # a fork would inherit this process's eSpeak NG state: fork from a clean server
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([worker.__module__, *preload])
    else:
        context = multiprocessing.get_context("fork")
    results: list = []
    bar = tqdm(total=total, desc=desc, unit="utt", disable=None if progress else True)
    # maxtasksperchild=1: every chunk starts from a pristine eSpeak NG (see the module docstring).
    with context.Pool(min(workers, len(jobs)), maxtasksperchild=1) as pool:
        for part in pool.imap(worker, jobs):
            results += part
            bar.update(len(part))
    bar.close()
    return results


def cached(final: Path, make: Callable[[Path], object], what: str, done: str = "corpus.json") -> Path:
    """``final``, made first when it has no ``done`` entry yet: ``make(tmp)`` writes into a temporary
    directory beside it (``done`` last), renamed into place once complete."""
    if (final / done).exists():
        return final
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"generating {what} into {final} (once)", file=sys.stderr)
    make(tmp)
    try:
        tmp.rename(final)  # atomic: a concurrent run either wins or finds ours complete
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (final / done).exists():
            raise
    return final


def cache_dir() -> Path:
    """``$SEW_CACHE`` or ``~/.cache/sew``."""
    return Path(os.environ.get("SEW_CACHE") or Path.home() / ".cache" / "sew")


def corpus_dir(minutes: float = DEFAULT_MINUTES, seed: int = 0, realistic: bool = False,
               eval_minutes: float | None = None) -> Path:
    """Where ``default_corpus`` keeps a corpus: ``cache_dir()/corpus/synth-vV-mM-sS``, with ``-eE``
    for dev and test sizes of their own and ``-realistic-vR`` for a realistic one (R:
    ``sew.data.realistic.VERSION``)."""
    name = f"synth-v{VERSION}-m{minutes:g}-s{seed}" + (f"-e{eval_minutes:g}" if eval_minutes is not None else "")
    return cache_dir() / "corpus" / (f"{name}-realistic-v{realistic_mode.VERSION}" if realistic else name)


def default_corpus(minutes: float = DEFAULT_MINUTES, seed: int = 0, progress: bool = True,
                   realistic: bool = False, eval_minutes: float | None = None) -> Path:
    """The built-in corpus directory, generated into the cache on first use and reused after
    (``realistic``: the degraded version, in its own directory; ``eval_minutes``: dev and test of this
    size each instead of 7.5 % of ``minutes``, for a small train split that still needs a test set
    worth measuring on; see ``corpus_dir``)."""
    what = "the built-in realistic corpus" if realistic else "the built-in corpus"
    return cached(corpus_dir(minutes, seed, realistic, eval_minutes),
                  lambda tmp: synthesize_corpus(tmp, minutes, seed, progress=progress, realistic=realistic,
                                                eval_minutes=eval_minutes, log=lambda s: print(s, file=sys.stderr)),
                  what)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
