"""Corpus records and format detection; the fairseq manifest reader.

``read_corpus(source, split=...)`` recognises:

* a fairseq manifest: a ``.tsv`` whose first line is the root directory and whose lines are
  ``relative/path<TAB>num_samples``, with optional parallel ``.wrd`` / ``.ltr`` files; or a
  directory of them (``train.tsv``, ``dev.tsv`` or ``valid.tsv``, ``test.tsv``);
* the LibriSpeech layout (``speaker/chapter/*.flac`` with ``*.trans.txt``);
* an audiofolder (``metadata.csv`` or ``metadata.jsonl`` with ``file_name`` and a transcript
  column ``transcription``, ``text`` or ``sentence``);
* a Hugging Face ``datasets`` directory written by ``save_to_disk``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sew.data import rejects
from sew.data.rejects import RejectLog
from sew.data.text import from_letters

# Split names accepted for the development set, in the order they are looked for.
DEV_ALIASES = ("dev", "valid", "validation")


@dataclass(frozen=True)
class Utterance:
    """One item: id, audio (a path, or the file's bytes), 16 kHz length, transcript or None."""

    id: str
    path: str  # the audio file; for embedded audio, a name used in reports
    num_samples: int | None = None  # at 16 kHz; None until scanned
    transcript: str | None = None
    line: int | None = None  # where the item is listed in its manifest (1-based), for reports
    audio_bytes: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def audio(self) -> str | bytes:
        """What ``load_audio`` takes: the bytes when embedded, else the path."""
        return self.audio_bytes if self.audio_bytes is not None else self.path


@dataclass
class Corpus:
    """The utterances of one split of a corpus, and where they came from."""

    utterances: list[Utterance]
    split: str
    source: str  # the file or directory read
    format: str  # "fairseq", "librispeech", "audiofolder" or "hf-datasets"

    def __len__(self) -> int:
        return len(self.utterances)

    def __iter__(self):
        return iter(self.utterances)

    @property
    def has_lengths(self) -> bool:
        return all(u.num_samples is not None for u in self.utterances)

    @property
    def has_transcripts(self) -> bool:
        return any(u.transcript is not None for u in self.utterances)

    def total_seconds(self) -> float:
        return sum(u.num_samples or 0 for u in self.utterances) / 16000.0


def detect_format(source: str | Path) -> str:
    """Name the format of ``source``; raise ``ValueError`` saying what was expected."""
    from sew.data import readers

    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_file():
        if path.suffix == ".tsv":
            return "fairseq"
        raise ValueError(f"{path}: a corpus file must be a fairseq .tsv manifest; pass a directory for other formats")
    if manifest_files(path):
        return "fairseq"
    if readers.is_hf_dataset(path):
        return "hf-datasets"
    if readers.audiofolder_splits(path):
        return "audiofolder"
    if readers.librispeech_splits(path):
        return "librispeech"
    raise ValueError(
        f"{path}: not a corpus. Expected fairseq manifests (*.tsv), a LibriSpeech tree (speaker/chapter/*.trans.txt), "
        "an audiofolder (metadata.csv / metadata.jsonl) or a datasets save_to_disk directory"
    )


def manifest_files(directory: Path) -> list[Path]:
    """The fairseq manifests of a directory, one per split (``rejected.tsv`` lists bad items: not a split)."""
    return [p for p in sorted(directory.glob("*.tsv")) if p.name != rejects.REJECTED_FILE]


def list_splits(source: str | Path) -> list[str]:
    """The split names found in ``source``, train first."""
    from sew.data import readers

    path, fmt = Path(source), detect_format(source)
    if fmt == "fairseq":
        names = [path.stem] if path.is_file() else [p.stem for p in manifest_files(path)]
    elif fmt == "hf-datasets":
        names = readers.hf_splits(path)
    elif fmt == "audiofolder":
        names = list(readers.audiofolder_splits(path))
    else:
        names = list(readers.librispeech_splits(path))
    return sorted(names, key=lambda n: (not n.startswith("train"), n))


def resolve_split(source: str | Path, split: str | None) -> str:
    """The split to read: ``split`` itself, its dev alias, a unique prefix match, or the default."""
    names = list_splits(source)
    if split is None:
        if "train" in names or len(names) == 1:
            return "train" if "train" in names else names[0]
        raise ValueError(f"{source}: several splits ({', '.join(names)}); choose one with split=")
    if split in names:
        return split
    if split in DEV_ALIASES:
        for alias in DEV_ALIASES:
            if alias in names:
                return alias
    matches = [n for n in names if n.startswith(split)]
    if len(matches) == 1:
        return matches[0]
    raise ValueError(f"{source}: no split {split!r}; found {', '.join(names) or 'none'}")


def dev_split(source: str | Path) -> str | None:
    """The corpus's development split (``dev``, ``valid`` or ``validation``), or None when it has none."""
    names = list_splits(source)
    return next((alias for alias in DEV_ALIASES if alias in names), None)


def hold_out(corpus: Corpus, fraction: float, seed: int) -> tuple[Corpus, Corpus]:
    """Split ``corpus`` into (kept, held out): a seeded ``fraction`` of its utterances (at least one,
    never all) held out, chosen from the ids, so the same corpus and seed always hold out the same
    utterances, and no utterance is in both."""
    import random

    ids = sorted({u.id for u in corpus})
    if len(ids) < 2:
        raise ValueError(f"{corpus.source} ({corpus.split}): {len(ids)} utterance(s), too few to hold any out "
                         "for validation; add a dev split or validate on nothing (--valid-split none)")
    count = min(len(ids) - 1, max(1, round(fraction * len(ids))))
    held = set(random.Random(seed).sample(ids, count))
    kept = [u for u in corpus if u.id not in held]
    out = [u for u in corpus if u.id in held]
    return (Corpus(kept, corpus.split, corpus.source, corpus.format),
            Corpus(out, f"{corpus.split} (held out)", corpus.source, corpus.format))


def read_corpus(source: str | Path, split: str | None = None, rejects_log: RejectLog | None = None) -> Corpus:
    """Read one split of ``source`` in any supported format (see the module docstring).

    Structural problems (malformed lines, listed files without transcripts) go to
    ``rejects_log``; audio is not decoded here (``sew.data.manifest.scan_corpus`` does that).
    """
    from sew.data import readers

    log = rejects_log if rejects_log is not None else RejectLog()
    fmt = detect_format(source)
    name = resolve_split(source, split)
    path = Path(source)
    if fmt == "fairseq":
        tsv = path if path.is_file() else path / f"{name}.tsv"
        utts = read_fairseq(tsv, log)
    elif fmt == "hf-datasets":
        utts = readers.read_hf_dataset(path, name, log)
    elif fmt == "audiofolder":
        utts = readers.read_audiofolder(readers.audiofolder_splits(path)[name], log)
    else:
        utts = readers.read_librispeech(readers.librispeech_splits(path)[name], log)
    return Corpus(utts, name, str(source), fmt)


def read_fairseq(tsv: str | Path, rejects_log: RejectLog | None = None) -> list[Utterance]:
    """Read a fairseq manifest and its parallel ``.wrd`` (or else ``.ltr``) transcripts.

    A relative root (first line) is resolved against the manifest's own directory.
    """
    log = rejects_log if rejects_log is not None else RejectLog()
    tsv = Path(tsv)
    lines = tsv.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise ValueError(f"{tsv}: empty manifest; the first line must be the root directory")
    root = Path(lines[0].strip())
    if not root.is_absolute():
        root = (tsv.parent / root).resolve()
    transcripts = _parallel_transcripts(tsv, len(lines) - 1)
    utts = []
    for lineno, row in enumerate(lines[1:], start=2):
        if not row.strip():
            continue
        fields = row.split("\t")
        if len(fields) != 2 or not fields[1].strip().isdigit() or int(fields[1]) <= 0:
            log.reject(tsv, rejects.MALFORMED_LINE, lineno, f"expected 'path<TAB>num_samples', got {row[:80]!r}")
            continue
        rel = fields[0].strip()
        text = transcripts[lineno - 2] if transcripts is not None else None
        utts.append(Utterance(_utterance_id(rel), str(root / rel), int(fields[1]), text, lineno))
    return utts


def _parallel_transcripts(tsv: Path, count: int) -> list[str] | None:
    """Lines of ``x.wrd`` (or ``x.ltr`` turned into words) next to ``x.tsv``, one per entry."""
    for suffix, convert in ((".wrd", str.strip), (".ltr", from_letters)):
        path = tsv.with_suffix(suffix)
        if path.is_file():
            lines = path.read_text(encoding="utf-8").split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            if len(lines) != count:
                raise ValueError(
                    f"{path}: {len(lines)} lines but {tsv} lists {count} entries; "
                    "parallel files need one line per manifest entry"
                )
            return [convert(line) for line in lines]
    return None


def _utterance_id(rel_path: str) -> str:
    """An id from a relative audio path: ``a/b/c.flac`` -> ``a/b/c``."""
    return rel_path.rsplit(".", 1)[0] if "." in Path(rel_path).name else rel_path
