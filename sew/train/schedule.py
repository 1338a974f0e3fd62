"""Learning-rate schedules as pure functions of the training position.

A schedule is called as ``schedule(update, progress) -> lr``:

* ``update``: optimizer updates done so far (warm-up given in updates counts these);
* ``progress``: the share of the run's budget done, in [0, 1]. The loop computes it as
  ``max(update / max_update, elapsed / max_seconds)``, so the same schedule serves a budget
  in updates (exact and resumable) and a wall-clock budget (the quick presets on a CPU).

Being pure functions of the position, schedules have no state to checkpoint beyond the
update count and elapsed time that ``TrainingState`` already saves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def set_lr(optimizer, lr: float) -> None:
    """Write ``lr`` into every parameter group (groups may scale it by their ``lr_scale``)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


@dataclass
class TriStageSchedule:
    """fairseq's ``tri_stage``: linear warm-up, hold at ``peak_lr``, exponential decay to ``final_lr_scale``.

    Phases take ``phase_ratio`` (warm-up, hold, decay) of the budget. With ``warmup_updates``
    the warm-up lasts that many updates instead and the hold phase starts there.
    Warm-up starts at ``init_lr_scale * peak_lr``; after the decay phase the lr stays at
    ``final_lr_scale * peak_lr``.
    """

    peak_lr: float
    phase_ratio: tuple[float, float, float] = (0.1, 0.4, 0.5)
    init_lr_scale: float = 0.01
    final_lr_scale: float = 0.05
    warmup_updates: int | None = None

    def __post_init__(self) -> None:
        self.phase_ratio = tuple(float(r) for r in self.phase_ratio)
        if len(self.phase_ratio) != 3 or min(self.phase_ratio) < 0 or abs(sum(self.phase_ratio) - 1.0) > 1e-6:
            raise ValueError(f"tri-stage phase_ratio must be three non-negative shares summing to 1, "
                             f"got {list(self.phase_ratio)}")
        if not 0 < self.final_lr_scale <= 1 or not 0 <= self.init_lr_scale <= 1:
            raise ValueError("tri-stage init_lr_scale and final_lr_scale must be in (0, 1]")

    def __call__(self, update: int, progress: float) -> float:
        warm, hold, _ = self.phase_ratio
        init = self.init_lr_scale * self.peak_lr
        if self.warmup_updates is not None:
            if update < self.warmup_updates:
                return init + (self.peak_lr - init) * update / max(self.warmup_updates, 1)
        elif progress < warm:
            return init + (self.peak_lr - init) * progress / warm
        if progress < warm + hold:
            return self.peak_lr
        decay = 1.0 - warm - hold
        if decay <= 0 or progress >= 1.0:
            return self.final_lr_scale * self.peak_lr
        t = (progress - warm - hold) / decay
        return self.peak_lr * math.exp(math.log(self.final_lr_scale) * t)


@dataclass
class PolynomialDecaySchedule:
    """fairseq's ``polynomial_decay``: linear warm-up over ``warmup_updates``, then
    ``end_lr + (peak_lr - end_lr) * (1 - (u - warmup) / (total - warmup)) ** power``.

    ``total_num_update`` may exceed ``max_update`` (the run stops before the lr reaches
    ``end_lr``, as in the wav2vec 2.0 / SEW pretraining recipes). ``u`` is the position in
    updates, ``progress * max_update``, so a wall-clock budget moves along the same curve.
    """

    peak_lr: float
    max_update: int
    warmup_updates: int = 0
    total_num_update: int | None = None
    end_lr: float = 0.0
    power: float = 1.0

    def __post_init__(self) -> None:
        if self.total_num_update is None:
            self.total_num_update = self.max_update
        if self.total_num_update <= self.warmup_updates:
            raise ValueError(f"polynomial schedule: total_num_update ({self.total_num_update}) must exceed "
                             f"warmup_updates ({self.warmup_updates})")

    def __call__(self, update: int, progress: float) -> float:
        if update < self.warmup_updates:
            return self.peak_lr * (update + 1) / (self.warmup_updates + 1)
        u = max(float(update), progress * self.max_update)
        t = min((u - self.warmup_updates) / (self.total_num_update - self.warmup_updates), 1.0)
        return self.end_lr + (self.peak_lr - self.end_lr) * (1.0 - max(t, 0.0)) ** self.power


def build_schedule(name: str, peak_lr: float, max_update: int, **kwargs):
    """A schedule by name: ``tri_stage`` (kwargs: phase_ratio, init_lr_scale, final_lr_scale,
    warmup_updates) or ``polynomial_decay`` (warmup_updates, total_num_update, end_lr, power)."""
    if name == "tri_stage":
        return TriStageSchedule(peak_lr, **kwargs)
    if name == "polynomial_decay":
        return PolynomialDecaySchedule(peak_lr, max_update, **kwargs)
    raise ValueError(f"unknown lr schedule {name!r}; use 'tri_stage' or 'polynomial_decay'")
