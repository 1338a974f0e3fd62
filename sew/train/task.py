"""What a training run optimises: the task protocol of ``sew.train.loop.Trainer``.

A task turns a micro-batch into a loss and, optionally, validates and saves models; the trainer
does everything else. Losses are sums over the micro-batch's samples with their count, so the
trainer can normalise the whole update exactly, across micro-batches and processes:
``sum(loss) / sum(count)`` (fairseq's ``sample_size`` normalisation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from sew.checkpoint import save_model

if TYPE_CHECKING:
    from sew.train.health import HealthMonitor


@dataclass
class LossSums:
    """One micro-batch's loss as a sum over ``count`` samples (utterances for CTC, masked frames for
    pretraining), and numbers to log: ``sums`` over the same samples (logged divided by the update's
    count) and ``values`` logged as they are (the last micro-batch's)."""

    loss: torch.Tensor
    count: float
    sums: dict[str, float] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)


class TrainingTask:
    """The base of the training tasks (``sew.asr.task.CTCTask``, ``sew.pretrain.task.PretrainTask``)."""

    def loss(self, model: torch.nn.Module, batch, update: int, micro: int, generator: torch.Generator) -> LossSums:
        """The loss of one micro-batch. ``model`` is the prepared (possibly DDP-wrapped) model, ``batch``
        a ``sew.data.dataset.Batch`` on the device, ``update`` the updates done, ``micro`` the micro-batch's
        index in this update, ``generator`` a CPU generator seeded from (seed, update, process) for masks."""
        raise NotImplementedError

    def validate(self, model: torch.nn.Module) -> dict[str, float] | None:
        """Metrics on the validation data (the unwrapped model, eval mode, main process), or None
        when the task has no validation data; ``TrainConfig.best_metric`` names the one to minimise."""
        return None

    def health_monitor(self, cfg) -> HealthMonitor | None:
        """The ``sew.train.health.HealthMonitor`` watching this task's records under ``cfg`` (a
        ``TrainConfig``), or None when the task has no known failure to watch for."""
        return None

    def save_model(self, model: torch.nn.Module, directory: str | Path, **meta) -> None:
        """Write ``RUN/best`` and ``RUN/final``."""
        save_model(model, directory, **meta)

    def checkpoint_files(self) -> dict:
        """Extra JSON files stored in every checkpoint (name -> data)."""
        return {}
