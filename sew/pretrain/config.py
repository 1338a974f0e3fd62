"""The pretraining objective's hyper-parameters (one dataclass), named as in the official recipe.

Defaults are the SEW / wav2vec 2.0 base recipe (sew-official.md sections 1.7, 1.8 and 2):
G=2 groups of V=320 code entries, 100 negatives, logit temperature 0.1, loss weights
[0.1, 10], time masks of 10 frames with probability 0.65, dropout_features 0.1 and a
conv-extractor gradient scaled by 0.1.

``kind`` picks the objective: ``"contrastive"`` (the above, every official preset) or
``"bestrq"`` (fixed targets from a frozen random-projection quantiser of log-mel frames,
``sew.pretrain.bestrq``), which reads the ``bestrq_*`` fields, the masks, ``feature_grad_mult``
and ``feature_penalty_weight``, and ignores the quantiser, head and negative settings above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sew.config import from_mapping, to_mapping

OBJECTIVE_KINDS = ("contrastive", "bestrq")
MAX_MEL_BINS = 201  # n_fft // 2 + 1 for 400-sample (25 ms) windows


@dataclass
class ObjectiveConfig:
    """Everything the pretraining objective needs beyond the encoder's own ``EncoderConfig``."""

    kind: str = "contrastive"  # "contrastive" (wav2vec 2.0 / SEW) or "bestrq" (sew.pretrain.bestrq)
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
    # A masking curriculum: the first ``single_frame_updates`` updates mask single frames at
    # ``single_frame_prob``, a task the model learns within ~100 updates from a frame's neighbours;
    # the spans above follow, which small runs leave chance on only from such a start
    # (docs/pretraining.md). 0: the spans from the first update (the official recipe).
    single_frame_updates: int = 0
    single_frame_prob: float = 0.3
    # BEST-RQ (kind "bestrq"): targets = nearest entry of a frozen random codebook to a frozen random
    # projection of normalised, stacked log-mel frames; one softmax head per codebook on the context.
    bestrq_codebooks: int = 1  # independent projection/codebook pairs, one head each, CE averaged
    bestrq_entries: int = 1024  # per codebook (the paper: 8192; fewer suit small corpora, docs/pretraining.md)
    bestrq_code_dim: int = 16  # projection / code vector size
    bestrq_mel_bins: int = 80  # log-mel filterbanks, 25 ms windows every 10 ms
    bestrq_seed: int = 0  # draws the frozen projections and codebooks (independent of the global RNG)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"objective config field '{name}': {why}")

        if self.kind not in OBJECTIVE_KINDS:
            raise bad("kind", f"got {self.kind!r}, expected one of {', '.join(map(repr, OBJECTIVE_KINDS))}")
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
        for name in ("dropout_features", "mask_prob", "single_frame_prob"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise bad(name, f"got {getattr(self, name)}, expected a probability in [0, 1)")
        for name in ("diversity_weight", "feature_penalty_weight", "feature_grad_mult", "min_masks",
                     "single_frame_updates"):
            if getattr(self, name) < 0:
                raise bad(name, "must not be negative")
        for name in ("bestrq_codebooks", "bestrq_code_dim", "bestrq_mel_bins"):
            if int(getattr(self, name)) < 1:
                raise bad(name, f"got {getattr(self, name)}, expected a positive integer")
        if self.bestrq_entries < 2:
            raise bad("bestrq_entries", f"got {self.bestrq_entries}, expected at least 2 code entries")
        if self.bestrq_mel_bins > MAX_MEL_BINS:
            raise bad("bestrq_mel_bins", f"got {self.bestrq_mel_bins}, expected at most {MAX_MEL_BINS} "
                                         "(the frequency bins of a 25 ms window)")
        if not 0 <= self.bestrq_seed < 2 ** 63:
            raise bad("bestrq_seed", f"got {self.bestrq_seed}, expected an integer in [0, 2**63)")

    def masks_at(self, update: int) -> tuple[float, int]:
        """(mask_prob, mask_length) of the time masks at ``update`` (the curriculum above)."""
        if update < self.single_frame_updates:
            return self.single_frame_prob, 1
        return self.mask_prob, self.mask_length

    @property
    def num_codevectors(self) -> int:
        return self.codebook_groups * self.codebook_entries

    def to_dict(self) -> dict[str, Any]:
        return to_mapping(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "objective config") -> "ObjectiveConfig":
        return from_mapping(cls, data, source)
