"""The Speech Commands v2 layout: one folder of ``.wav`` clips per label, split by two list files.

``ROOT/LABEL/*.wav``; ``validation_list.txt`` and ``testing_list.txt`` list the clips of the
``validation`` and ``test`` splits (``yes/0a7c2a8d_nohash_0.wav``, relative to ``ROOT``); every
clip listed in neither is ``train``. The label is the folder name. ``_background_noise_`` holds
long noise recordings meant for making silence clips, not utterances: its files are left out of
every split and counted in the summary (a note, not a rejection) when the train split is read.
A list line naming a missing file, or not of the form ``LABEL/FILE.wav``, is reported to the
``RejectLog``.
"""

from __future__ import annotations

from pathlib import Path

from sew.data import rejects
from sew.data.records import Utterance
from sew.data.rejects import RejectLog

LIST_FILES = {"validation": "validation_list.txt", "test": "testing_list.txt"}
SPLITS = ["train", "validation", "test"]
BACKGROUND_NOISE = "_background_noise_"
BACKGROUND_NOTE = f"{BACKGROUND_NOISE} file(s) left out (noise for silence clips, not utterances)"


def label_folders(root: Path) -> list[Path]:
    """The label folders of ``root``: every subdirectory but ``_background_noise_`` and hidden ones."""
    return [d for d in sorted(Path(root).iterdir())
            if d.is_dir() and d.name != BACKGROUND_NOISE and not d.name.startswith(".")]


def is_speech_commands(root: Path) -> bool:
    """Both list files at ``root`` and at least one label folder holding ``.wav`` files."""
    root = Path(root)
    if not root.is_dir() or not all((root / name).is_file() for name in LIST_FILES.values()):
        return False
    return any(next(d.glob("*.wav"), None) is not None for d in label_folders(root))


def speech_commands_splits(root: Path) -> list[str]:
    return list(SPLITS)


def read_speech_commands(root: Path, split: str, log: RejectLog) -> list[Utterance]:
    """The clips of one split (``train``, ``validation`` or ``test``) with their folder as label."""
    root = Path(root)
    if split == "train":
        return _read_train(root, log)
    if split not in LIST_FILES:
        raise ValueError(f"{root}: Speech Commands splits are {', '.join(SPLITS)}, not {split!r}")
    utts = []
    list_file = root / LIST_FILES[split]
    for lineno, rel in _list_lines(list_file):
        parts = rel.split("/")
        if len(parts) != 2 or parts[0] == BACKGROUND_NOISE or not parts[1].endswith(".wav"):
            log.reject(list_file, rejects.MALFORMED_LINE, lineno,
                       f"expected LABEL/FILE.wav (a clip in a label folder), got {rel[:80]!r}")
            continue
        path = root / rel
        if not path.is_file():
            log.reject(path, rejects.MISSING_FILE, lineno, f"listed in {list_file.name}")
            continue
        utts.append(Utterance(rel[: -len(".wav")], str(path), None, None, lineno, label=parts[0]))
    return utts


def _read_train(root: Path, log: RejectLog) -> list[Utterance]:
    """Every clip of every label folder that neither list names."""
    listed = {rel for name in LIST_FILES.values() for _, rel in _list_lines(root / name)}
    utts = []
    for folder in label_folders(root):
        for path in sorted(folder.glob("*.wav")):
            rel = f"{folder.name}/{path.name}"
            if rel not in listed:
                utts.append(Utterance(rel[: -len(".wav")], str(path), None, None, None, label=folder.name))
    noise = root / BACKGROUND_NOISE
    if noise.is_dir():
        count = sum(1 for p in noise.iterdir() if p.suffix == ".wav")
        if count:
            log.note(BACKGROUND_NOTE, count)
    return utts


def _list_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, relative path with ``/`` separators) for each non-empty line of a list file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [(n, line.strip().replace("\\", "/")) for n, line in enumerate(lines, start=1) if line.strip()]
