"""Model snapshots at shares of a run's budget: a mixin of ``sew.train.loop.Trainer``.

With ``snapshot_fractions`` (e.g. ``[0.25, 0.5]``) the model is also written to ``RUN/snapshot-0.25/``
... (atomically, as ``RUN/final``) the first time the run passes that share of its budget: the models
of shorter budgets trained on the full budget's schedule. Which snapshots are written is kept in
the training state, so a resumed run writes only the missing ones.
"""

from __future__ import annotations

import contextlib


class SnapshotHooks:
    """Methods of ``Trainer`` (which sets ``cfg``, ``state``, ``acc``, ``logger``, ``is_main``, ``_progress_seen``
    and provides ``progress``, ``paused_clock`` and ``_write_model``)."""

    def _snapshot_when_due(self) -> None:
        """``RUN/snapshot-F/`` for each fraction F of ``snapshot_fractions`` the run has just passed."""
        if not self.cfg.snapshot_fractions:
            return
        written = self.state.extra.setdefault("snapshots", {})
        before, self._progress_seen = self._progress_seen, self.progress()
        for fraction in self.cfg.snapshot_fractions:
            name = snapshot_name(fraction)
            if name in written or not before < fraction <= self._progress_seen:
                continue  # written, not reached, or passed before this run asked for it (never mislabelled)
            written[name] = self.state.update
            if not self.is_main:
                continue
            minutes = self.state.elapsed_seconds / 60.0
            # One process writes: its clock pauses only when it is alone, so several processes' clocks
            # (and their reading of a wall-clock budget) stay together.
            with self.paused_clock() if self.acc.num_processes == 1 else contextlib.nullcontext():
                self._write_model(name, {"snapshot_fraction": fraction, "minutes": minutes})
            self.logger.log("event", self.state.update, {"snapshot": name, "fraction": fraction, "minutes": minutes})



def snapshot_name(fraction: float) -> str:
    """The directory of the snapshot at ``fraction`` of the budget: ``snapshot-0.25``."""
    return f"snapshot-{fraction:g}"


def check_snapshot_fractions(fractions) -> None:
    """``train.snapshot_fractions``: each strictly between 0 and 1 (``RUN/final`` is the whole budget's)."""
    bad = [f for f in fractions if not 0.0 < float(f) < 1.0]
    if bad:
        raise ValueError(f"train.snapshot_fractions: {', '.join(f'{f:g}' for f in bad)} not strictly between 0 and 1; "
                         "give shares of the budget such as [0.25, 0.5] (RUN/final already holds the whole budget's "
                         "model)")
