"""The corpus formats, one reader each, and ``FORMATS``, the ordered registry detection walks.

fairseq manifests, Hugging Face ``save_to_disk`` datasets, the Speech Commands layout
(``sew.data.speech_commands``), audiofolders and the LibriSpeech layout.
Each reader returns a list of ``Utterance`` (without lengths unless the format stores them: the
audio is not decoded here) and reports structural problems to a ``RejectLog``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from dataclasses import dataclass
from typing import Callable

from sew.data import rejects
from sew.data.records import Utterance, clean_label
from sew.data.rejects import REJECTED_FILE, RejectLog
from sew.data.speech_commands import is_speech_commands, read_speech_commands, speech_commands_splits
from sew.data.text import from_letters

AUDIO_SUFFIXES = (".flac", ".wav", ".ogg")
TRANSCRIPT_COLUMNS = ("transcription", "text", "sentence")
METADATA_FILES = ("metadata.csv", "metadata.jsonl")
LABEL_COLUMN = "label"  # the class label column of audiofolders and datasets; ``SPLIT.label`` in manifests


# -- text files -----------------------------------------------------------------------------------
def read_text(path: Path) -> str:
    """A corpus text file as UTF-8. Bytes that are not UTF-8 are kept as surrogates, so that ``bad_line``
    rejects the lines that hold them, with their numbers, instead of the whole file failing to decode.
    A file that cannot be read is an error naming it."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise
    except OSError as err:
        raise ValueError(f"{path}: cannot be read ({err.strerror or err}); check its permissions and the disk") from err
    return data.decode("utf-8", errors="surrogateescape")


def bad_line(path: Path, lineno: int, line: str, log: RejectLog) -> bool:
    """Whether ``line`` holds bytes that are not UTF-8 (rejected with file, line and the first byte)."""
    at = next((i for i, ch in enumerate(line) if "\udc80" <= ch <= "\udcff"), None)
    if at is None:
        return False
    log.reject(path, rejects.UNDECODABLE_TEXT, lineno, f"byte 0x{ord(line[at]) - 0xDC00:02X} at column {at + 1}")
    return True


# -- LibriSpeech: SPLIT/speaker/chapter/{speaker}-{chapter}-{n}.flac + {speaker}-{chapter}.trans.txt --
def librispeech_splits(root: Path) -> dict[str, Path]:
    """Split name -> directory: ``root`` itself (named after it) or each subdirectory holding speakers."""
    root = Path(root)
    if next(root.glob("*/*/*.trans.txt"), None) is not None:
        return {root.name: root}
    return {sub.name: sub for sub in sorted(root.iterdir())
            if sub.is_dir() and next(sub.glob("*/*/*.trans.txt"), None) is not None}


def read_librispeech(split_dir: Path, log: RejectLog) -> list[Utterance]:
    """Every line of every ``*.trans.txt`` (``ID TRANSCRIPT``), plus audio files no line lists."""
    utts = []
    for trans in sorted(Path(split_dir).glob("*/*/*.trans.txt")):
        listed = set()
        for lineno, row in enumerate(read_text(trans).splitlines(), start=1):
            if not row.strip() or bad_line(trans, lineno, row, log):
                continue
            uid, _, text = row.strip().partition(" ")
            listed.add(uid)
            audio = _find_audio(trans.parent, uid)
            utts.append(Utterance(uid, str(audio), None, text.strip(), lineno))
        for audio in sorted(p for p in trans.parent.iterdir() if p.suffix in AUDIO_SUFFIXES):
            if audio.stem not in listed:
                log.reject(audio, rejects.NO_TRANSCRIPT, None, f"not listed in {trans.name}")
    return utts


def _find_audio(directory: Path, stem: str) -> Path:
    """``directory/stem.flac`` (or .wav / .ogg when that exists instead)."""
    for suffix in AUDIO_SUFFIXES:
        if (directory / (stem + suffix)).is_file():
            return directory / (stem + suffix)
    return directory / (stem + AUDIO_SUFFIXES[0])


# -- audiofolder: metadata.csv / metadata.jsonl with file_name, a transcript and/or a label column --
def audiofolder_splits(root: Path) -> dict[str, Path]:
    """Split name -> metadata file: ``root/metadata.*`` ("train") or ``root/SPLIT/metadata.*``."""
    root = Path(root)
    for name in METADATA_FILES:
        if (root / name).is_file():
            return {"train": root / name}
    found = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        for name in METADATA_FILES:
            if (sub / name).is_file():
                found[sub.name] = sub / name
                break
    return found


def read_audiofolder(metadata: Path, log: RejectLog) -> list[Utterance]:
    """Rows of ``metadata.csv`` / ``metadata.jsonl``; ``file_name`` is relative to its directory.

    A ``label`` column gives each row its class label (an empty cell: no label).
    """
    metadata = Path(metadata)
    rows = _jsonl_rows(metadata, log) if metadata.suffix == ".jsonl" else _csv_rows(metadata, log)
    utts = []
    column = None
    for lineno, row in rows:
        if column is None:
            column = next((c for c in TRANSCRIPT_COLUMNS if c in row), "")
        name = row.get("file_name")
        if not isinstance(name, str) or not name.strip():
            log.reject(metadata, rejects.MALFORMED_LINE, lineno, "no file_name")
            continue
        text = row.get(column) if column else None
        text = None if text is None else str(text)
        uid = name.rsplit(".", 1)[0]
        label = clean_label(row.get(LABEL_COLUMN))
        utts.append(Utterance(uid, str(metadata.parent / name), None, text, lineno, label=label))
    return utts


def _csv_rows(path: Path, log: RejectLog):
    """(line number, dict) per CSV row; rows with the wrong number of fields are rejected."""
    with io.StringIO(read_text(path), newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or "file_name" not in header:
            raise ValueError(f"{path}: the first row must name the columns, including file_name")
        while True:
            lineno = reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                log.reject(path, rejects.MALFORMED_LINE, lineno, str(err))
                continue
            if not fields:
                continue
            if len(fields) != len(header):
                log.reject(path, rejects.MALFORMED_LINE, lineno, f"{len(fields)} fields, header has {len(header)}")
                continue
            if bad_line(path, lineno, ",".join(fields), log):
                continue
            yield lineno, dict(zip(header, fields))


def _jsonl_rows(path: Path, log: RejectLog):
    """(line number, dict) per JSON line; lines that are not JSON objects are rejected."""
    with io.StringIO(read_text(path)) as f:
        for lineno, row in enumerate(f, start=1):
            if not row.strip() or bad_line(path, lineno, row, log):
                continue
            try:
                obj = json.loads(row)
            except json.JSONDecodeError as err:
                log.reject(path, rejects.MALFORMED_LINE, lineno, f"not JSON: {err.msg}")
                continue
            if not isinstance(obj, dict):
                log.reject(path, rejects.MALFORMED_LINE, lineno, "not a JSON object")
                continue
            yield lineno, obj


# -- Hugging Face datasets written by save_to_disk ------------------------------------------------
def is_hf_dataset(path: Path) -> bool:
    """A ``save_to_disk`` directory: a ``DatasetDict`` or a single ``Dataset``."""
    path = Path(path)
    return (path / "dataset_dict.json").is_file() or (
        (path / "state.json").is_file() and (path / "dataset_info.json").is_file())


def hf_splits(path: Path) -> list[str]:
    """Split names of a saved ``DatasetDict`` (a single ``Dataset`` is "train")."""
    path = Path(path)
    if (path / "dataset_dict.json").is_file():
        return list(json.loads((path / "dataset_dict.json").read_text())["splits"])
    return ["train"]


def read_hf_dataset(path: Path, split: str, log: RejectLog) -> list[Utterance]:
    """Rows of one split, audio read with ``Audio(decode=False)`` (bytes or a path, decoded later).

    A ``label`` column gives the class labels; a ``ClassLabel`` column's ints become its names.
    """
    import datasets

    data = datasets.load_from_disk(str(path))
    if isinstance(data, datasets.DatasetDict):
        data = data[split]
    column = next((name for name, feat in data.features.items() if isinstance(feat, datasets.Audio)), None)
    if column is None:
        raise ValueError(f"{path}: split {split!r} has no Audio column (columns: {', '.join(data.column_names)})")
    data = data.cast_column(column, datasets.Audio(decode=False))
    text_column = next((c for c in TRANSCRIPT_COLUMNS if c in data.column_names), None)
    id_column = "id" if "id" in data.column_names else None
    to_name = None
    if LABEL_COLUMN in data.column_names and isinstance(data.features[LABEL_COLUMN], datasets.ClassLabel):
        to_name = data.features[LABEL_COLUMN].int2str
    utts = []
    for i, row in enumerate(data):
        audio = row[column] or {}
        name = audio.get("path") or f"{column}[{i}]"
        label = f"{path}/{split}[{i}]:{name}"
        uid = str(row[id_column]) if id_column else f"{split}-{i:06d}"
        text = row[text_column] if text_column else None
        cls = row.get(LABEL_COLUMN)
        if to_name is not None and cls is not None:
            cls = to_name(cls) if cls >= 0 else None  # -1: a ClassLabel row without a label
        cls = clean_label(cls)
        if audio.get("bytes") is not None:
            utts.append(Utterance(uid, label, None, text, i + 1, audio["bytes"], label=cls))
        elif audio.get("path"):
            file = Path(audio["path"])
            utts.append(Utterance(uid, str(file if file.is_absolute() else Path(path) / file), None, text, i + 1,
                                  label=cls))
        else:
            log.reject(label, rejects.MISSING_FILE, i + 1, "row has neither audio bytes nor a path")
    return utts


# -- fairseq manifests: SPLIT.tsv (root line, then path<TAB>samples) + SPLIT.wrd / .ltr / .label ----
def manifest_files(directory: Path) -> list[Path]:
    """The fairseq manifests of a directory, one per split (``rejected.tsv`` lists bad items: not a split)."""
    return [p for p in sorted(directory.glob("*.tsv")) if p.name != REJECTED_FILE]


def read_fairseq(tsv: str | Path, rejects_log: RejectLog | None = None) -> list[Utterance]:
    """Read a fairseq manifest, its parallel ``.wrd`` (or else ``.ltr``) transcripts and ``.label`` labels.

    A relative root (first line) is resolved against the manifest's own directory.
    """
    log = rejects_log if rejects_log is not None else RejectLog()
    tsv = Path(tsv)
    lines = read_text(tsv).splitlines()
    if not lines:
        raise ValueError(f"{tsv}: empty manifest; the first line must be the root directory")
    root = Path(lines[0].strip())
    if not root.is_absolute():
        root = (tsv.parent / root).resolve()
    transcripts = _parallel_transcripts(tsv, len(lines) - 1, log)
    labels = _parallel_lines(tsv.with_suffix(".label"), tsv, len(lines) - 1, log)
    utts = []
    for lineno, row in enumerate(lines[1:], start=2):
        if not row.strip() or bad_line(tsv, lineno, row, log):
            continue
        if (transcripts is not None and transcripts[lineno - 2] is None) or (labels is not None
                                                                             and labels[lineno - 2] is None):
            continue  # its transcript or label line is not UTF-8: rejected there
        fields = row.split("\t")
        if len(fields) != 2 or not fields[1].strip().isdigit() or int(fields[1]) <= 0:
            log.reject(tsv, rejects.MALFORMED_LINE, lineno, f"expected 'path<TAB>num_samples', got {row[:80]!r}")
            continue
        rel = fields[0].strip()
        text = transcripts[lineno - 2] if transcripts is not None else None
        label = clean_label(labels[lineno - 2]) if labels is not None else None
        utts.append(Utterance(_utterance_id(rel), str(root / rel), int(fields[1]), text, lineno, label=label))
    return utts


def _parallel_transcripts(tsv: Path, count: int, log: RejectLog) -> list[str | None] | None:
    """Lines of ``x.wrd`` (or ``x.ltr`` turned into words) next to ``x.tsv``, one per entry."""
    for suffix, convert in ((".wrd", str.strip), (".ltr", from_letters)):
        lines = _parallel_lines(tsv.with_suffix(suffix), tsv, count, log)
        if lines is not None:
            return [None if line is None else convert(line) for line in lines]
    return None


def _parallel_lines(path: Path, tsv: Path, count: int, log: RejectLog) -> list[str | None] | None:
    """The lines of ``path`` (None when it does not exist; a line that is not UTF-8 is None, and rejected); an
    error unless there is one per manifest entry."""
    if not path.is_file():
        return None
    lines = read_text(path).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != count:
        raise ValueError(
            f"{path}: {len(lines)} lines but {tsv} lists {count} entries; "
            "parallel files need one line per manifest entry"
        )
    return [None if bad_line(path, number, line, log) else line for number, line in enumerate(lines, start=1)]


def _utterance_id(rel_path: str) -> str:
    """An id from a relative audio path: ``a/b/c.flac`` -> ``a/b/c``."""
    return rel_path.rsplit(".", 1)[0] if "." in Path(rel_path).name else rel_path


# -- the registry ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CorpusFormat:
    """One corpus layout: whether a path holds it, its split names, and the reader of one split."""

    name: str
    detect: Callable[[Path], bool]
    splits: Callable[[Path], list[str]]
    read: Callable[[Path, str, RejectLog], list[Utterance]]


def _fairseq_tsv(path: Path, split: str) -> Path:
    return path if path.is_file() else path / f"{split}.tsv"


# Detection takes the first format that recognises a path; a file can only be a fairseq manifest.
FORMATS = (
    CorpusFormat("fairseq", lambda p: p.suffix == ".tsv" if p.is_file() else bool(manifest_files(p)),
                 lambda p: [p.stem] if p.is_file() else [m.stem for m in manifest_files(p)],
                 lambda p, split, log: read_fairseq(_fairseq_tsv(p, split), log)),
    CorpusFormat("hf-datasets", lambda p: p.is_dir() and is_hf_dataset(p), hf_splits, read_hf_dataset),
    CorpusFormat("speech-commands", is_speech_commands, speech_commands_splits, read_speech_commands),
    CorpusFormat("audiofolder", lambda p: p.is_dir() and bool(audiofolder_splits(p)),
                 lambda p: list(audiofolder_splits(p)), lambda p, split, log: read_audiofolder(audiofolder_splits(p)[split], log)),
    CorpusFormat("librispeech", lambda p: p.is_dir() and bool(librispeech_splits(p)),
                 lambda p: list(librispeech_splits(p)),
                 lambda p, split, log: read_librispeech(librispeech_splits(p)[split], log)),
)
