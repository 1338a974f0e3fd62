"""Readers for the LibriSpeech layout, audiofolders and Hugging Face ``save_to_disk`` datasets.

Each returns a list of ``Utterance`` without lengths (the audio is not decoded here) and
reports structural problems to a ``RejectLog``. Format detection is in ``sew.data.corpus``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from sew.data import rejects
from sew.data.corpus import Utterance
from sew.data.rejects import RejectLog

AUDIO_SUFFIXES = (".flac", ".wav", ".ogg")
TRANSCRIPT_COLUMNS = ("transcription", "text", "sentence")
METADATA_FILES = ("metadata.csv", "metadata.jsonl")


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
        for lineno, row in enumerate(trans.read_text(encoding="utf-8").splitlines(), start=1):
            if not row.strip():
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


# -- audiofolder: metadata.csv / metadata.jsonl with file_name and a transcript column -------------
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
    """Rows of ``metadata.csv`` / ``metadata.jsonl``; ``file_name`` is relative to its directory."""
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
        utts.append(Utterance(uid, str(metadata.parent / name), None, text, lineno))
    return utts


def _csv_rows(path: Path, log: RejectLog):
    """(line number, dict) per CSV row; rows with the wrong number of fields are rejected."""
    with open(path, encoding="utf-8", newline="") as f:
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
            yield lineno, dict(zip(header, fields))


def _jsonl_rows(path: Path, log: RejectLog):
    """(line number, dict) per JSON line; lines that are not JSON objects are rejected."""
    with open(path, encoding="utf-8") as f:
        for lineno, row in enumerate(f, start=1):
            if not row.strip():
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
    """Rows of one split, audio read with ``Audio(decode=False)`` (bytes or a path, decoded later)."""
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
    utts = []
    for i, row in enumerate(data):
        audio = row[column] or {}
        name = audio.get("path") or f"{column}[{i}]"
        label = f"{path}/{split}[{i}]:{name}"
        uid = str(row[id_column]) if id_column else f"{split}-{i:06d}"
        text = row[text_column] if text_column else None
        if audio.get("bytes") is not None:
            utts.append(Utterance(uid, label, None, text, i + 1, audio["bytes"]))
        elif audio.get("path"):
            file = Path(audio["path"])
            utts.append(Utterance(uid, str(file if file.is_absolute() else Path(path) / file), None, text, i + 1))
        else:
            log.reject(label, rejects.MISSING_FILE, i + 1, "row has neither audio bytes nor a path")
    return utts
