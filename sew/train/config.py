"""The task-independent part of a training preset: budget, optimiser, schedule, bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sew.config import from_mapping


@dataclass
class TrainConfig:
    """Budget, optimisation and bookkeeping of a run: the task-independent part of a preset."""

    max_update: int = 1000
    max_minutes: float | None = None  # wall-clock training budget (validation and saving excluded)
    lr: float = 5e-5
    schedule: str = "tri_stage"  # or "polynomial_decay"
    phase_ratio: tuple[float, float, float] = (0.1, 0.4, 0.5)
    init_lr_scale: float = 0.01
    final_lr_scale: float = 0.05
    warmup_updates: int | None = None  # tri_stage: warm up over updates instead of phase_ratio[0]
    total_num_update: int | None = None  # polynomial_decay horizon (default max_update)
    end_lr: float = 0.0
    power: float = 1.0
    betas: tuple[float, float] = (0.9, 0.98)
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    clip_norm: float = 0.0  # 0: no clipping (the norm is still measured and logged)
    update_freq: int = 1  # micro-batches per update (gradient accumulation)
    max_tokens: int = 3_200_000  # padded samples per micro-batch and process
    mixed_precision: str = "no"  # "no", "bf16", "fp16"
    seed: int = 1
    num_workers: int = 0  # DataLoader worker processes
    log_every: int = 10  # updates between train log records
    save_every: int = 1000  # updates between checkpoints (0: only at the end)
    keep_last: int = 2  # checkpoints kept
    validate_every: int = 500  # updates between validations (0: only at the end)
    validate_every_minutes: float | None = None  # also validate after this much training time
    best_metric: str = "wer"  # validation entry to minimise for RUN/best
    patience: int = 0  # stop after this many validations without improvement (0: never)
    max_nonfinite: int = 3  # consecutive non-finite updates that stop the run
    max_overflows: int = 50  # consecutive fp16 overflow-skipped steps that stop the run
    min_loss_scale: float = 1e-4  # fp16 loss-scale floor: a scaler pushed under it stops the run
    stop_on_health: bool = False  # end the run at the health monitor's first finding (sew.train.health)
    # Also write the model as RUN/snapshot-F/ when the run passes these shares of its budget (0 < F < 1):
    # one run gives the models of shorter budgets trained on the whole budget's schedule.
    snapshot_fractions: tuple[float, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "train config") -> "TrainConfig":
        return from_mapping(cls, data, source)
