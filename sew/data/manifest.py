"""Scan a corpus once and write it in the canonical form: fairseq ``.tsv`` + ``.wrd`` + ``.ltr`` (+ ``.label``).

The scan decodes every file (in several processes when asked), so that training never
has to touch audio to learn lengths, and every bad item is found up front. Each split
``S`` becomes ``S.tsv`` (root line, then ``relative/path<TAB>num_samples`` at 16 kHz) and,
for transcribed corpora, ``S.wrd`` (normalised words) and ``S.ltr`` (letters, ``|`` after
each word); for labelled corpora, ``S.label`` (one class label per line). ``vocab.json`` is
built from the train split, ``rejected.tsv`` lists bad items.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import sys
from functools import partial
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from sew.data import rejects
from sew.data.audio import EDGE_DB, AudioError, load_audio, speech_span, write_flac
from sew.data.corpus import Corpus, Utterance, list_splits, read_corpus
from sew.data.records import clean_label
from sew.data.rejects import RejectLog
from sew.data.silence import EdgeSilence, save_silence
from sew.data.text import PLAUSIBLE_CHARS_PER_SECOND, Vocabulary, chars_per_second, normalize_text, to_letters

# Samples one output frame sees (400 = 25 ms, every preset's conv stack; tests/models/test_presets.py
# checks): anything shorter yields no frame.
RECEPTIVE_FIELD = 400


@dataclass
class SplitReport:
    """What happened to one split."""

    split: str
    kept: int = 0
    seconds: float = 0.0
    rejected: int = 0
    notes: dict[str, int] = field(default_factory=dict)
    silence: EdgeSilence | None = None
    too_fast: int = 0  # kept utterances whose transcript is implausibly long for their audio

    def line(self) -> str:
        notes = "".join(f", {n} {what}" for what, n in sorted(self.notes.items()))
        fast = (f"; {self.too_fast} with more than {PLAUSIBLE_CHARS_PER_SECOND:g} characters per second of audio "
                f"(a transcript longer than what the recording says? fine-tuning skips them: "
                f"data.max_chars_per_second)" if self.too_fast else "")
        return (f"{self.split}: {self.kept} utterances ({self.seconds / 60:.1f} min) kept, {self.rejected} "
                f"rejected{notes}{fast}")


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes; fork on Linux (no ``__main__`` guard needed), spawn elsewhere."""
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method))


def scan_corpus(corpus: Corpus, log: RejectLog, *, workers: int = 1, min_samples: int = RECEPTIVE_FIELD,
                max_samples: int | None = None, vocab: Vocabulary | None = None,
                require_transcripts: bool | None = None, require_labels: bool | None = None,
                copy_to: str | Path | None = None, trim_db: float | None = None,
                progress: bool = True, silence: EdgeSilence | None = None) -> list[Utterance]:
    """Decode every utterance; return the good ones with ``num_samples`` set, reject the rest.

    Checks, in order: label present (when ``require_labels``, default: the corpus has labels),
    transcript present (when ``require_transcripts``, default: the corpus has transcripts; an
    utterance with a label needs none), characters in ``vocab`` (when given), file present,
    audio decodable, length in ``[min_samples, max_samples]``. With ``copy_to`` each good file
    is rewritten there as 16 kHz mono FLAC and its path updated; with ``trim_db`` too, its leading and
    trailing audio quieter than that many dB under its loudest frame is cut first (``trim_edges``;
    the lengths checked and written are the trimmed ones). Items are reported in corpus order.
    ``silence`` adds up the edge silence of the good files (``sew.data.silence``).
    """
    if trim_db is not None and copy_to is None:
        raise ValueError("trimming silence rewrites the audio: give copy_to too")
    if require_transcripts is None:
        require_transcripts = corpus.has_transcripts
    if require_labels is None:
        require_labels = corpus.has_labels
    min_samples = max(min_samples, RECEPTIVE_FIELD)
    todo = []  # (utterance, FLAC to write or None, label / transcript problem or None), in corpus order
    for utt in corpus:
        problem = ((rejects.NO_LABEL, "no label") if require_labels and utt.label is None else None) \
            or check_transcript(utt, require_transcripts and utt.label is None, vocab)
        target = str(Path(copy_to) / f"{safe_name(utt.id)}.flac") if copy_to and not problem else None
        todo.append((utt, target, problem))
    good = []
    bar = tqdm(total=len(todo), desc=f"scan {corpus.split}", unit="file", disable=None if progress else True)
    with _mapper(workers) as run:
        scanned = run(partial(_scan_one, trim_db=trim_db), todo)
        for (utt, target, problem), (length, error, notes, edges) in zip(todo, scanned):
            bar.update()
            for note in notes:
                log.note(note)
            error = problem or error
            if error is None:
                if length < min_samples:
                    why = "the receptive field" if min_samples == RECEPTIVE_FIELD else "the minimum duration"
                    error = (rejects.TOO_SHORT, f"{length} samples < {min_samples} ({why})")
                elif max_samples is not None and length > max_samples:
                    error = (rejects.TOO_LONG, f"{length} samples > {max_samples}")
            if error is not None:
                log.reject(utt.path, error[0], utt.line, error[1])
                continue
            if silence is not None:
                silence.add(*edges)
            good.append(replace(utt, num_samples=length, path=target or utt.path,
                                audio_bytes=None if target else utt.audio_bytes))
    bar.close()
    return good


def check_transcript(utt: Utterance, required: bool, vocab: Vocabulary | None) -> tuple[str, str] | None:
    """(reason, detail) when the transcript is missing, empty, or has characters outside ``vocab``."""
    if utt.transcript is None or not normalize_text(utt.transcript):
        if required:
            return rejects.NO_TRANSCRIPT, "no transcript" if utt.transcript is None else "empty after normalisation"
        return None
    if vocab is not None:
        unknown = vocab.unknown_chars(utt.transcript)
        if unknown:
            return rejects.OUT_OF_VOCABULARY, "characters " + " ".join(sorted(unknown))
    return None


def _scan_one(item: tuple[Utterance, str | None, tuple | None], trim_db: float | None = None
              ) -> tuple[int, tuple[str, str] | None, list[str], tuple[int, int, int]]:
    """Worker: (length at 16 kHz, (reason, detail) or None, notes, (samples, leading and trailing edge
    silence before trimming)) for one utterance."""
    utt, target, problem = item
    if problem:  # already bad: do not decode
        return 0, None, [], (0, 0, 0)
    try:
        wave, info = load_audio(utt.audio, name=utt.path)
    except FileNotFoundError:
        return 0, (rejects.MISSING_FILE, "file not found"), [], (0, 0, 0)
    except AudioError as err:
        return 0, (err.reason, err.detail), [], (0, 0, 0)
    notes = [note for note, done in (("resampled", info.resampled), ("downmixed", info.downmixed)) if done]
    start, end = speech_span(wave, EDGE_DB)
    edges = (len(wave), start, len(wave) - end)
    if trim_db is not None:
        if trim_db != EDGE_DB:
            start, end = speech_span(wave, trim_db)
        if end - start < len(wave):
            notes.append("trimmed")
        wave = wave[start:end]
    if target is not None:
        write_flac(target, wave)
    return len(wave), None, notes, edges


class _mapper:
    """``with _mapper(n) as run: run(fn, items)``: an ordered map, in ``n`` processes when n > 1."""

    def __init__(self, workers: int) -> None:
        self.pool = process_pool(workers) if workers > 1 else None

    def __enter__(self):
        if self.pool is None:
            return map
        return lambda fn, items: self.pool.map(fn, items, chunksize=8)

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


def safe_name(uid: str) -> str:
    """A file name from an utterance id: anything but letters, digits, ``.``, ``-``, ``_`` becomes ``_``."""
    return re.sub(r"[^\w.\-]", "_", uid)


def write_split(out_dir: str | Path, split: str, utts: list[Utterance], root: str | None = None) -> Path:
    """Write ``split.tsv`` (and ``.wrd`` / ``.ltr`` when transcribed, ``.label`` when labelled); paths
    relative to ``root``.

    ``root`` defaults to the deepest directory holding every file. A relative root is
    written as given and read back relative to the manifest's directory.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if root is None:
        root = os.path.commonpath([os.path.dirname(os.path.abspath(u.path)) for u in utts]) if utts else str(out)
    base = (out / root) if not os.path.isabs(root) else Path(root)
    rows = [f"{os.path.relpath(u.path, base)}\t{u.num_samples}" for u in utts]
    (out / f"{split}.tsv").write_text("\n".join([root, *rows]) + "\n", encoding="utf-8")
    written = {".tsv"}
    if any(u.transcript is not None for u in utts):
        written |= {".wrd", ".ltr"}
        words = [normalize_text(u.transcript or "") for u in utts]
        (out / f"{split}.wrd").write_text("".join(w + "\n" for w in words), encoding="utf-8")
        (out / f"{split}.ltr").write_text("".join(to_letters(w) + "\n" for w in words), encoding="utf-8")
    if any(u.label is not None for u in utts):
        written.add(".label")
        labels = [clean_label(u.label) or "" for u in utts]
        (out / f"{split}.label").write_text("".join(label + "\n" for label in labels), encoding="utf-8")
    for suffix in {".wrd", ".ltr", ".label"} - written:  # stale ones from an earlier run would be read back
        (out / f"{split}{suffix}").unlink(missing_ok=True)
    return out / f"{split}.tsv"


def write_manifest(source: str | Path, out_dir: str | Path, log: RejectLog, *, splits: list[str] | None = None,
                   workers: int = 1, min_samples: int = RECEPTIVE_FIELD, max_samples: int | None = None,
                   vocab: Vocabulary | None = None, copy_audio: bool = False, trim_db: float | None = None,
                   progress: bool = True) -> list[SplitReport]:
    """Scan ``source`` and write its canonical form into ``out_dir``; see the module docstring.

    Embedded audio (datasets with bytes) is always copied out as FLAC under ``out_dir/audio``, and so is
    every file when ``trim_db`` trims leading and trailing silence (see ``scan_corpus``).
    Returns one report per split; ``rejected.tsv`` is written even when empty.
    """
    out = Path(out_dir)
    reports = []
    saved = vocab  # the given vocabulary checks every split; otherwise one is built from train
    names = splits or list_splits(source)
    for name in names:
        before, notes_before = len(log), dict(log.notes)
        corpus = read_corpus(source, name, log)
        copy = copy_audio or trim_db is not None or any(u.audio_bytes is not None for u in corpus)
        audio_dir = out / "audio" / corpus.split if copy else None
        silence = EdgeSilence(trimmed_db=trim_db)
        good = scan_corpus(corpus, log, workers=workers, min_samples=min_samples, max_samples=max_samples,
                           vocab=vocab, copy_to=audio_dir, trim_db=trim_db, progress=progress, silence=silence)
        write_split(out, corpus.split, good, root=str(audio_dir.resolve()) if copy else None)
        silence.transcribed = any(u.transcript for u in good)
        if saved is None and corpus.split.startswith("train") and silence.transcribed:
            saved = Vocabulary.build(u.transcript for u in good if u.transcript)
        notes = {k: v - notes_before.get(k, 0) for k, v in log.notes.items() if v > notes_before.get(k, 0)}
        fast = sum(1 for u in good if u.transcript
                   and chars_per_second(u.transcript, u.num_samples / 16000.0) > PLAUSIBLE_CHARS_PER_SECOND)
        reports.append(SplitReport(corpus.split, len(good), sum(u.num_samples for u in good) / 16000.0,
                                   len(log) - before, notes, silence, fast))
    if saved is not None:
        saved.save(out)
    save_silence(out, {r.split: r.silence for r in reports})
    log.write(out)
    return reports
