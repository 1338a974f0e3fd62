"""Edge silence: how much of a split is quiet audio before and after the speech, measured where the data
is read (``sew data manifest``) and repeated where it matters (``sew finetune`` at start).

Recordings that open and close on room tone keep quick CTC fine-tuning from scratch on the blank
plateau (docs/results.md, "The blank plateau reproduced"; the held-back real corpus with 12.7% of
edge silence stayed there until it was trimmed). The measure is what ``--trim-silence 25`` would cut:
audio quieter than 25 dB under each file's loudest 25 ms frame, beyond 0.1 s of margin.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from sew.data.audio import EDGE_DB, SAMPLE_RATE

SILENCE_FILE = "silence.json"
ADVISE_SHARE = 0.10  # a split whose edges are this share of its audio gets the advice to trim


@dataclass
class EdgeSilence:
    """Edge silence of one split, summed over its good files (16 kHz samples, before any trimming)."""

    files: int = 0
    samples: int = 0
    leading: int = 0
    trailing: int = 0
    trimmed_db: float | None = None  # the --trim-silence the manifest cut at, if any
    transcribed: bool = True  # False for a split of class labels only: the CTC advice does not concern it

    def add(self, samples: int, leading: int, trailing: int) -> None:
        self.files += 1
        self.samples += samples
        self.leading += leading
        self.trailing += trailing

    @property
    def share(self) -> float:
        return (self.leading + self.trailing) / self.samples if self.samples else 0.0

    def line(self, split: str) -> str:
        """One line for the manifest report."""
        n = max(self.files, 1)
        said = (f"{split}: edge silence {self.share:.1%} of the audio ({self.leading / n / SAMPLE_RATE:.2f} s "
                f"leading, {self.trailing / n / SAMPLE_RATE:.2f} s trailing per file; quieter than {EDGE_DB:g} dB "
                "under each file's loudest frame)")
        if self.trimmed_db is not None:
            return said + f"; cut (--trim-silence {self.trimmed_db:g})"
        advice = self.advice()
        return said + (f"; {advice}" if advice else "")

    def advice(self) -> str | None:
        """What to do when the edges are large enough to matter and were not cut."""
        if self.trimmed_db is not None or not self.transcribed or self.share < ADVISE_SHARE:
            return None
        return (f"at {ADVISE_SHARE:.0%} or more, quick CTC fine-tuning from scratch tends to stay on the blank "
                f"plateau: write the manifest again with --trim-silence {EDGE_DB:g}")


def save_silence(out_dir: str | Path, by_split: dict[str, EdgeSilence]) -> None:
    """``silence.json`` beside the manifests, merged with the splits an earlier run wrote."""
    path = Path(out_dir) / SILENCE_FILE
    saved = read_silence_file(path)
    saved.update({split: asdict(s) for split, s in by_split.items()})
    path.write_text(json.dumps(saved, indent=1) + "\n", encoding="utf-8")


def read_silence_file(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def silence_advice(data: str | Path, split: str) -> str | None:
    """The manifest's line about ``split``'s edge silence when it advises trimming, else None (no
    ``silence.json``: a corpus not written by ``sew data manifest``, nothing is said)."""
    root = Path(data)
    entry = read_silence_file(root / SILENCE_FILE).get(split) if root.is_dir() else None
    if not isinstance(entry, dict):
        return None
    try:
        silence = EdgeSilence(**entry)
    except TypeError:
        return None
    return f"{root}: {silence.line(split)}" if silence.advice() else None
