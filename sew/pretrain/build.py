"""The pretraining model of a config's ``objective.kind``, built or loaded from a checkpoint."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from sew.checkpoint import CONFIG_NAME, WEIGHTS_NAME, read_model_json
from sew.files import load_checked, read_state_dict
from sew.models.encoder import SpeechEncoder
from sew.pretrain.bestrq import BestRQModel
from sew.pretrain.config import ObjectiveConfig
from sew.pretrain.objective import PretrainingConfig, PretrainingModel


def make_pretraining_model(encoder: SpeechEncoder, config: ObjectiveConfig | None = None) -> nn.Module:
    """The model of ``config.kind``: ``PretrainingModel`` (contrastive) or ``BestRQModel`` (bestrq)."""
    cfg = config or ObjectiveConfig()
    if cfg.kind == "bestrq":
        return BestRQModel(encoder, cfg)
    return PretrainingModel(encoder, cfg)


def load_pretraining_model(path: str | Path) -> nn.Module:
    """The whole pretraining model (heads, and BEST-RQ's frozen quantiser, included) from a training
    checkpoint directory: a ``PretrainingModel`` or a ``BestRQModel`` as its ``objective.kind`` says."""
    directory = Path(path)
    config = PretrainingConfig.from_dict(read_model_json(directory).get("model", {}), str(directory / CONFIG_NAME))
    model = make_pretraining_model(SpeechEncoder(config.encoder), config.objective)
    load_checked(model, read_state_dict(directory / WEIGHTS_NAME), str(directory / WEIGHTS_NAME))
    return model
