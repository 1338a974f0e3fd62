"""The pretraining objective's hyper-parameters (one dataclass), named as in the official recipe.

Defaults are the SEW / wav2vec 2.0 base recipe (sew-official.md sections 1.7, 1.8 and 2):
G=2 groups of V=320 code entries, 100 negatives, logit temperature 0.1, loss weights
[0.1, 10], time masks of 10 frames with probability 0.65, dropout_features 0.1 and a
conv-extractor gradient scaled by 0.1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sew.config import from_mapping, to_mapping


@dataclass
class ObjectiveConfig:
    """Everything the contrastive objective needs beyond the encoder's own ``EncoderConfig``."""

    # Quantiser (fairseq GumbelVectorQuantizer): groups x entries, codevector_dim = vq_dim.
    codebook_groups: int = 2
    codebook_entries: int = 320
    codevector_dim: int = 256
    gumbel_temperature_start: float = 2.0
    gumbel_temperature_end: float = 0.5
    gumbel_temperature_decay: float = 0.999995  # per update
    # Prediction heads: SEW's MLP (Linear -> fp32 BatchNorm -> ReLU -> Linear) or wav2vec 2.0's Linear.
    mlp_heads: bool = True
    mlp_hidden_size: int = 4096
    final_dim: int = 256
    # Contrastive loss.
    num_negatives: int = 100
    logit_temperature: float = 0.1
    diversity_weight: float = 0.1
    feature_penalty_weight: float = 10.0
    # Inputs to the objective.
    dropout_features: float = 0.1  # on the unmasked, normalised features fed to the quantiser
    feature_grad_mult: float = 0.1  # scales the conv extractor's gradient; 0 freezes it
    # Time masks at the feature (50 Hz, pre-squeeze) frame rate.
    mask_prob: float = 0.65
    mask_length: int = 10
    min_masks: int = 2

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"objective config field '{name}': {why}")

        for name in ("codebook_groups", "codebook_entries", "codevector_dim", "mlp_hidden_size", "final_dim",
                     "num_negatives", "mask_length"):
            if int(getattr(self, name)) < 1:
                raise bad(name, f"got {getattr(self, name)}, expected a positive integer")
        if self.codevector_dim % self.codebook_groups:
            raise bad("codevector_dim", f"{self.codevector_dim} is not divisible by {self.codebook_groups} groups")
        if not 0 < self.gumbel_temperature_end <= self.gumbel_temperature_start:
            raise bad("gumbel_temperature_end", "expected 0 < end <= start")
        if not 0 < self.gumbel_temperature_decay <= 1:
            raise bad("gumbel_temperature_decay", "expected a factor in (0, 1]")
        if self.logit_temperature <= 0:
            raise bad("logit_temperature", "must be positive")
        for name in ("dropout_features", "mask_prob"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise bad(name, f"got {getattr(self, name)}, expected a probability in [0, 1)")
        for name in ("diversity_weight", "feature_penalty_weight", "feature_grad_mult", "min_masks"):
            if getattr(self, name) < 0:
                raise bad(name, "must not be negative")

    @property
    def num_codevectors(self) -> int:
        return self.codebook_groups * self.codebook_entries

    def to_dict(self) -> dict[str, Any]:
        return to_mapping(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "objective config") -> "ObjectiveConfig":
        return from_mapping(cls, data, source)
