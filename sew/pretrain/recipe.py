"""Pretraining recipes: a YAML preset in ``configs/pretrain/`` -> ``PretrainRecipe``.

A recipe names the model (a preset of ``configs/model/`` plus overrides), the objective
(``ObjectiveConfig``), the data (splits, crops) and the run (``sew.train.loop.TrainConfig``).
The official batch is written as fairseq's: ``max_tokens`` samples per GPU times
``update_freq = emulate_gpus / batch_scale / processes`` micro-batches per update.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sew.pretrain.config import ObjectiveConfig
from sew.train.config import TrainConfig
from sew.config import load_preset, preset_names, to_mapping


@dataclass
class DataConfig:
    """Which splits to read and how to cut them (samples at 16 kHz)."""

    train_splits: list[str] = field(default_factory=lambda: ["train"])  # concatenated
    valid_split: str | None = "dev"  # None: no validation
    holdout_fraction: float = 0.05  # a corpus without a dev split: this seeded share of train validates
    max_sample_size: int | None = 250_000  # random crop of longer utterances
    min_sample_size: int = 32_000  # shorter utterances are skipped (reported as too short)
    crop_to_shortest: bool = True  # fairseq: no padding, each batch cropped to its shortest utterance
    valid_max_tokens: int = 1_400_000


@dataclass
class PretrainRecipe:
    """Everything one ``sew pretrain`` run needs besides the data path and the run directory."""

    model: str = "sew-d-micro"  # a model preset name or YAML path
    model_overrides: dict[str, Any] = field(default_factory=dict)
    init: str | None = None  # start from this model's encoder weights: a directory (ours or Hugging Face) or Hub id
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(best_metric="loss"))
    emulate_gpus: int | None = None  # fairseq's 64-GPU batch through accumulation (None: train.update_freq)
    batch_scale: int = 1  # tiny models: twice the tokens per micro-batch, half the micro-batches
    description: str = ""

    def update_freq(self, num_processes: int) -> int:
        """Micro-batches per update for ``num_processes`` processes."""
        if self.emulate_gpus is None:
            return self.train.update_freq
        per_process = self.emulate_gpus / self.batch_scale / num_processes
        if per_process < 1 or per_process != int(per_process):
            raise ValueError(f"emulate_gpus={self.emulate_gpus} / batch_scale={self.batch_scale} is not a multiple of "
                             f"{num_processes} processes; use a process count that divides it, or set emulate_gpus: null "
                             "and train.update_freq")
        return int(per_process)

    def to_dict(self) -> dict[str, Any]:
        return to_mapping(self)


def recipe_names() -> list[str]:
    return preset_names("pretrain")


def load_recipe(spec: str | Path = "quick", overrides: list[str] | None = None,
                values: dict[str, Any] | None = None) -> PretrainRecipe:
    """A recipe from a preset name in ``configs/pretrain/`` or a YAML path.

    ``overrides``: ``--set`` strings (``"train.lr=1e-3"``, read as YAML); ``values``: already typed
    values by dotted name (``{"train.lr": 1e-3}``), applied after them.
    """
    return load_preset("pretrain", PretrainRecipe, spec, overrides, values)
