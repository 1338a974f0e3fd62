"""Pretraining recipes: a YAML preset in ``configs/pretrain/`` -> ``PretrainRecipe``.

A recipe names the model (a preset of ``configs/model/`` plus overrides), the objective
(``ObjectiveConfig``), the data (splits, crops) and the run (``sew.train.loop.TrainConfig``).
The official batch is written as fairseq's: ``max_tokens`` samples per GPU times
``update_freq = emulate_gpus / batch_scale / processes`` micro-batches per update.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sew.config import preset_dir
from sew.pretrain.config import ObjectiveConfig
from sew.train.loop import TrainConfig


@dataclass
class DataConfig:
    """Which splits to read and how to cut them (samples at 16 kHz)."""

    train_splits: list[str] = field(default_factory=lambda: ["train"])  # concatenated
    valid_split: str | None = "dev"  # None: no validation
    max_sample_size: int | None = 250_000  # random crop of longer utterances
    min_sample_size: int = 32_000  # shorter utterances are skipped (reported as too short)
    crop_to_shortest: bool = True  # fairseq: no padding, each batch cropped to its shortest utterance
    valid_max_tokens: int = 1_400_000


@dataclass
class PretrainRecipe:
    """Everything one ``sew pretrain`` run needs besides the data path and the run directory."""

    model: str = "sew-d-micro"  # a model preset name or YAML path
    model_overrides: dict[str, Any] = field(default_factory=dict)
    init: str | None = None  # start from this model directory's encoder weights (ours or Hugging Face)
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
        return dataclasses.asdict(self)


def _section(cls, data: Any, source: str):
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping, found {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        hints = [f"{k} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(k, known, 1)) else k for k in unknown]
        raise ValueError(f"{source}: unknown fields {', '.join(hints)}")
    return cls(**data)


def recipe_from_dict(data: dict[str, Any], source: str = "recipe") -> PretrainRecipe:
    data = dict(data)
    top = {f.name for f in dataclasses.fields(PretrainRecipe)}
    unknown = sorted(set(data) - top - {"name"})
    if unknown:
        raise ValueError(f"{source}: unknown recipe sections {unknown}; known: {sorted(top)}")
    data.pop("name", None)
    train = {"best_metric": "loss", **(data.pop("train", None) or {})}
    return PretrainRecipe(
        objective=ObjectiveConfig.from_dict(data.pop("objective", None) or {}, f"{source}: objective"),
        data=_section(DataConfig, data.pop("data", None), f"{source}: data"),
        train=TrainConfig.from_dict(train, f"{source}: train"),
        **data,
    )


def recipe_names() -> list[str]:
    return sorted(p.stem for p in preset_dir("pretrain").glob("*.yaml"))


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=1e-3"`` -> (["train", "lr"], 0.001); the value is read as YAML."""
    if "=" not in text:
        raise ValueError(f"--set {text!r}: expected SECTION.FIELD=VALUE, e.g. train.lr=1e-3")
    key, value = text.split("=", 1)
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise ValueError(f"--set {text!r}: the value is not valid YAML ({err})") from err
    if isinstance(parsed, str):  # YAML 1.1 reads "2e-3" as a string
        try:
            parsed = float(parsed)
        except ValueError:
            pass
    return key.strip().split("."), parsed


def load_recipe(spec: str | Path = "quick", overrides: list[str] | None = None) -> PretrainRecipe:
    """A recipe from a preset name in ``configs/pretrain/`` or a YAML path, with ``--set`` style overrides."""
    path = Path(spec)
    if path.suffix not in (".yaml", ".yml"):
        path = preset_dir("pretrain") / f"{spec}.yaml"
        if not path.is_file():
            names = recipe_names()
            close = difflib.get_close_matches(str(spec), names, 3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"unknown pretraining preset {str(spec)!r}.{hint} Known presets: {', '.join(names)}")
    elif not path.is_file():
        raise ValueError(f"pretraining recipe file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of recipe sections, found {type(data).__name__}")
    for text in overrides or []:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {text!r}: {k} is not a section")
        node[keys[-1]] = value
    return recipe_from_dict(data, str(path))
