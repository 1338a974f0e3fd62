"""Bad-item reporting: skip with one warning line, or stop at the first one (``strict``).

Every reader, scanner, dataset and sampler takes a ``RejectLog``. By default a bad item is
skipped, one warning line names the file and the reason, and ``write(dir)`` saves all of
them to ``rejected.tsv`` (path, line, reason, detail). With ``strict=True`` the first bad
item raises ``BadItemError`` naming the file, the line and the reason.

Resampling and downmixing are not errors: they are counted with ``note`` and shown in the
summary.
"""

from __future__ import annotations

import collections
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

# The reasons, one short fixed string each so that reports can be counted and grepped.
UNREADABLE = "unreadable audio"
TRUNCATED = "truncated audio"
EMPTY = "empty audio"
NON_FINITE = "NaN or infinite samples"
MISSING_FILE = "missing file"
TOO_SHORT = "too short"
TOO_LONG = "too long"
NO_TRANSCRIPT = "missing or empty transcript"
NO_LABEL = "missing or empty label"
UNKNOWN_LABEL = "unknown label"
OUT_OF_VOCABULARY = "characters outside the vocabulary"
TOO_FAST = "transcript too long for its audio"
MALFORMED_LINE = "malformed manifest line"
UNDECODABLE_TEXT = "text that is not UTF-8"

REASONS = (UNREADABLE, TRUNCATED, EMPTY, NON_FINITE, MISSING_FILE, TOO_SHORT, TOO_LONG,
           NO_TRANSCRIPT, NO_LABEL, UNKNOWN_LABEL, OUT_OF_VOCABULARY, TOO_FAST, MALFORMED_LINE, UNDECODABLE_TEXT)

# What to do about each reason, appended to the strict-mode error.
_FIXES = {
    UNREADABLE: "re-encode the file as WAV or FLAC, or remove it from the corpus",
    TRUNCATED: "re-copy or re-encode the file, or remove it from the corpus",
    EMPTY: "remove the file from the corpus",
    NON_FINITE: "re-encode the file from its source, or remove it from the corpus",
    MISSING_FILE: "fix the path (relative paths are resolved against the manifest's root) or remove the entry",
    TOO_SHORT: "remove the utterance or lower the minimum duration",
    TOO_LONG: "split the utterance or raise the maximum duration / max_tokens",
    NO_TRANSCRIPT: "add the transcript or remove the utterance",
    NO_LABEL: "add the utterance's class label (every utterance of a labelled corpus needs one) or remove it",
    UNKNOWN_LABEL: "train a model over this label too, or remove the utterance",
    OUT_OF_VOCABULARY: "rebuild the vocabulary from transcripts that contain these characters",
    TOO_FAST: ("check that the transcript is what the recording says (it may say only part of it), or raise "
               "data.max_chars_per_second"),
    MALFORMED_LINE: "fix the line (fairseq manifests hold 'relative/path<TAB>num_samples')",
    UNDECODABLE_TEXT: "re-save the file as UTF-8 (e.g. iconv -f LATIN1 -t UTF-8 FILE)",
}

REJECTED_FILE = "rejected.tsv"


class BadItemError(ValueError):
    """Raised in strict mode by the first bad item; the message names file, line and reason."""

    def __init__(self, item: "RejectedItem") -> None:
        self.item = item
        fix = _FIXES.get(item.reason, "fix or remove the item")
        super().__init__(f"{item.location()}: {item.describe()}. Fix: {fix} (or run without --strict to skip bad items)")


@dataclass(frozen=True)
class RejectedItem:
    """One skipped item: the file, its line in the manifest (1-based) and why."""

    path: str
    reason: str
    line: int | None = None
    detail: str = ""

    def location(self) -> str:
        return f"{self.path}:{self.line}" if self.line is not None else self.path

    def describe(self) -> str:
        return f"{self.reason} ({self.detail})" if self.detail else self.reason


class RejectLog:
    """Collects bad items (``reject``) and harmless conversions (``note``) for one command."""

    def __init__(self, strict: bool = False, stream: TextIO | None = None, warn: bool = True) -> None:
        """``stream``: where warnings go (default: ``sys.stderr`` at the time of the warning)."""
        self.strict = strict
        self.stream = stream
        self.warn = warn
        self.items: list[RejectedItem] = []
        self.notes: collections.Counter[str] = collections.Counter()
        self._seen: set[tuple[str, int | None, str]] = set()

    def reject(self, path: str | Path, reason: str, line: int | None = None, detail: str = "") -> None:
        """Record a bad item, print one warning line; raise ``BadItemError`` when strict."""
        item = RejectedItem(str(path), reason, line, detail)
        key = (item.path, item.line, item.reason)
        if key in self._seen:  # the same item seen twice (e.g. once per epoch) is reported once
            return
        self._seen.add(key)
        self.items.append(item)
        if self.strict:
            raise BadItemError(item)
        if self.warn:
            print(f"warning: skipped {item.location()}: {item.describe()}", file=self.stream or sys.stderr)

    def note(self, what: str, count: int = 1) -> None:
        """Count a harmless conversion (``resampled``, ``downmixed``) for the summary."""
        self.notes[what] += count

    def extend(self, other: "RejectLog") -> None:
        """Merge the items and notes of another log (e.g. one filled in a worker process)."""
        for item in other.items:
            self.reject(item.path, item.reason, item.line, item.detail)
        self.notes.update(other.notes)

    def count_by_reason(self) -> dict[str, int]:
        """Number of rejected items per reason, in the order of ``REASONS``."""
        counts = collections.Counter(item.reason for item in self.items)
        return {reason: counts[reason] for reason in sorted(counts, key=_reason_order)}

    def __len__(self) -> int:
        return len(self.items)

    def summary(self) -> str:
        """One line: how many items were skipped and why, plus the conversions done."""
        parts = [f"{len(self.items)} bad item(s) skipped"]
        if self.items:
            parts[0] += " (" + ", ".join(f"{reason}: {n}" for reason, n in self.count_by_reason().items()) + ")"
        parts += [f"{n} {what}" for what, n in sorted(self.notes.items())]
        return "; ".join(parts)

    def write(self, out_dir: str | Path) -> Path:
        """Write ``rejected.tsv`` (header ``path, line, reason, detail``) into ``out_dir``."""
        out = Path(out_dir) / REJECTED_FILE
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", encoding="utf-8") as f:
            f.write("path\tline\treason\tdetail\n")
            for item in self.items:
                line = "" if item.line is None else str(item.line)
                detail = item.detail.replace("\t", " ").replace("\n", " ")
                f.write(f"{item.path}\t{line}\t{item.reason}\t{detail}\n")
        return out


def read_rejected(path: str | Path) -> list[RejectedItem]:
    """Read a ``rejected.tsv`` written by ``RejectLog.write`` (a file or its directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / REJECTED_FILE
    items = []
    with open(path, encoding="utf-8") as f:
        next(f)  # header
        for row in f:
            p, line, reason, detail = row.rstrip("\n").split("\t")
            items.append(RejectedItem(p, reason, int(line) if line else None, detail))
    return items


def _reason_order(reason: str) -> int:
    return REASONS.index(reason) if reason in REASONS else len(REASONS)
