"""Run logging: a tqdm bar on the terminal, ``log.jsonl`` and TensorBoard in the run directory, plots.

``RunLogger(run_dir)`` is the one sink of a training loop. ``log(kind, update, values)``
appends ``{"kind", "update", "time", **values}`` to ``RUN/log.jsonl`` (one JSON object per line,
``kind`` is ``train``, ``valid`` or ``event``), writes the numbers to TensorBoard under
``kind/name`` and, for ``train``, shows them on the progress bar. ``plot()`` draws every
``valid`` metric, the train loss and the health monitor's statistics (accuracy, perplexities,
time-varying share, empty hypotheses, gradient norm) against updates into ``RUN/curves.png``,
with the monitor's findings marked.
Only the main process logs (``enabled=False`` elsewhere); the run directory's lock
(``sew.files.DirectoryLock``) is the trainer's, taken before anything in the directory is written.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from sew.files import atomic_write

LOG_FILE = "log.jsonl"
# Train statistics drawn besides the loss when a run logs them: the health monitor's inputs.
TRAIN_PANELS = ("accuracy", "prob_perplexity", "code_perplexity", "time_share", "empty", "gnorm")


def _clean(value: Any) -> Any:
    """JSON-safe numbers: tensors to floats, non-finite floats to strings."""
    if hasattr(value, "item") and getattr(value, "numel", lambda: 1)() == 1:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def read_log(run_dir: str | Path, kind: str | None = None) -> list[dict]:
    """The records of ``RUN/log.jsonl`` (of one ``kind`` when given).

    A torn last line (the process was killed while writing it) is dropped with a warning naming the
    file; a broken line anywhere else is an error naming the file and line."""
    path = Path(run_dir) / LOG_FILE
    if not path.is_file():
        return []
    records = _parse_log(path, path.read_text(encoding="utf-8", errors="replace"))
    return [r for r in records if kind is None or r.get("kind") == kind]


def _parse_log(path: Path, text: str) -> list[dict]:
    """The records of a log's ``text`` (see ``read_log``)."""
    lines = text.splitlines()
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if i != last:
                raise ValueError(f"{path}:{i + 1}: not a JSON record ({err}); the log is damaged before its "
                                 "end: remove that line, or the file to start the log afresh") from err
            print(f"warning: {path}:{i + 1}: dropped a torn last record (the run was killed while writing it): "
                  f"{line[:60]!r}", file=sys.stderr)
    return records


def rewind_log(run_dir: str | Path, update: int) -> int:
    """Make ``RUN/log.jsonl`` end at ``update`` (where a resumed run goes on): records of later updates, which
    a killed run wrote after its last checkpoint and the resumed run writes again, and a torn last line are
    removed (the file is rewritten atomically), so the log holds one record per update. Returns how many
    records were removed."""
    path = Path(run_dir) / LOG_FILE
    if not path.is_file():
        return 0
    raw = path.read_text(encoding="utf-8", errors="replace")
    records = _parse_log(path, raw)
    keep = [r for r in records if int(r.get("update", 0)) <= update]
    text = "".join(json.dumps(r) + "\n" for r in keep)
    if text != raw:
        atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return len(records) - len(keep)


def budget_fraction(update: int, minutes: float, max_update: int, max_minutes: float | None) -> float:
    """Share of a run's budget spent: updates, or training minutes when there is a wall-clock budget."""
    done = update / max_update if max_update else 0.0
    if max_minutes:
        done = max(done, minutes / max_minutes)
    return min(done, 1.0)


def budget_line(update: int, minutes: float, max_update: int, max_minutes: float | None) -> str:
    """What the progress bar says of the budget: ``update 120 of 400`` or ``update 120, 2.1 of 7.5 min``."""
    if max_minutes and (not max_update or minutes / max_minutes >= update / max_update or update == 0):
        return f"update {update}, {minutes:.1f} of {max_minutes:g} min"
    return f"update {update} of {max_update}"


class RunLogger:
    """JSONL + TensorBoard + progress bar for one run; see the module docstring.

    The bar shows the share of the run's budget that is spent (training time against a wall-clock
    budget, or updates) and the time left at the rate so far."""

    def __init__(self, run_dir: str | Path, *, enabled: bool = True, tensorboard: bool = True, progress: bool = True,
                 max_update: int = 0, max_minutes: float | None = None, update: int = 0, minutes: float = 0.0) -> None:
        self.run_dir, self.enabled = Path(run_dir), enabled
        self.max_update, self.max_minutes = max_update, max_minutes
        self.bar = self.writer = None
        if not enabled:
            return
        removed = rewind_log(self.run_dir, update)
        if removed:
            print(f"{self.run_dir / LOG_FILE}: removed {removed} record(s) past update {update}, the work since the "
                  "last checkpoint, which this run does again", file=sys.stderr)
        self.file = open(self.run_dir / LOG_FILE, "a", encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))
            except ImportError:  # tensorboard is a dependency, but a log must never stop a run
                print("warning: tensorboard is not installed; logging to log.jsonl only", file=sys.stderr)
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=1000, unit="", dynamic_ncols=True, file=sys.stderr,
                            bar_format="{percentage:3.0f}%|{bar}| {desc} [{elapsed}<{remaining}{postfix}]")
            self.advance(update, minutes)

    def log(self, kind: str, update: int, values: dict[str, Any]) -> None:
        """Record ``values`` of ``kind`` at ``update`` (see the module docstring)."""
        if not self.enabled:
            return
        record = {"kind": kind, "update": int(update), "time": round(time.time(), 3),
                  **{k: _clean(v) for k, v in values.items()}}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.writer is not None:
            for name, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and name not in ("update", "time"):
                    self.writer.add_scalar(f"{kind}/{name}", value, update)
        if kind == "train" and self.bar is not None:
            shown = {k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in values.items()
                     if k in ("loss", "lr", "gnorm", "wer", "cer")}
            self.bar.set_postfix(shown, refresh=False)
        if kind in ("valid", "event"):
            self.message(f"[{kind} @ {update}] " + " ".join(f"{k}={_fmt(v)}" for k, v in values.items()))
        elif kind == "health":
            self.message(f"[health @ {update}] {values.get('message', '')}")

    def advance(self, update: int, minutes: float) -> None:
        """The run is at ``update`` after ``minutes`` of training: move the bar."""
        if self.bar is not None:
            self.bar.set_description_str(budget_line(update, minutes, self.max_update, self.max_minutes), refresh=False)
            self.bar.update(round(1000 * budget_fraction(update, minutes, self.max_update, self.max_minutes)) - self.bar.n)

    def message(self, text: str) -> None:
        """A line on stderr that does not break the progress bar."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def plot(self, name: str = "curves.png") -> Path | None:
        """Train loss and every valid metric against updates and training minutes; None without data."""
        if not self.enabled:
            return None
        return plot_run(self.run_dir, self.run_dir / name)

    def close(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
        self.file.close()


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def plot_run(run_dir: str | Path, out: str | Path) -> Path | None:
    """Draw ``RUN/log.jsonl`` into ``out`` (PNG): one panel per metric, x = updates and minutes."""
    train, valid = read_log(run_dir, "train"), read_log(run_dir, "valid")
    if not train and not valid:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("train", "loss")] + [("train", k) for k in TRAIN_PANELS if train and k in train[-1]]
    metrics += [("valid", k) for k in (valid[0] if valid else {})
                if k not in ("kind", "update", "time", "minutes") and isinstance(valid[0][k], (int, float))]
    columns = min(len(metrics), 4)
    rows_ = -(-len(metrics) // columns)
    fig, axes = plt.subplots(rows_, columns, figsize=(4.5 * columns, 3.5 * rows_), squeeze=False)
    for ax in axes.flat[len(metrics):]:
        ax.axis("off")
    health = read_log(run_dir, "health")
    for ax, (kind, key) in zip(axes.flat, metrics):
        for h in health:  # the health monitor's findings where they were said, and their recoveries
            color = "tab:green" if h.get("symptom") == "recovered" else "tab:red"
            label = f"recovered: {h.get('from', '')}" if h.get("symptom") == "recovered" else h.get("symptom", "")
            ax.axvline(h["update"], color=color, linestyle="--", linewidth=0.8)
            ax.text(h["update"], 0.02, label, transform=ax.get_xaxis_transform(), rotation=90,
                    color=color, fontsize=7, va="bottom", ha="right")
        rows = [r for r in (train if kind == "train" else valid) if isinstance(r.get(key), (int, float))]
        ax.plot([r["update"] for r in rows], [r[key] for r in rows], marker="." if kind == "valid" else None)
        ax.set_xlabel("updates")
        ax.set_title(f"{kind} {key}")
        ax.grid(alpha=0.3)
        if rows and "minutes" in rows[-1]:
            ax.text(0.98, 0.95, f"{rows[-1]['minutes']:.1f} min", transform=ax.transAxes, ha="right", va="top")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return Path(out)
