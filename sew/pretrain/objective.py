"""The wav2vec 2.0 contrastive objective with SEW's MLP heads, around a ``SpeechEncoder``.

Data flow for one batch (shapes: B utterances, T feature frames, N masked frames):

    waveforms [B, S] -> conv features [B, T, E]  (gradient scaled by feature_grad_mult;
                                                 feature penalty = mean(features^2) over valid frames)
      -> feature LayerNorm -> normed [B, T, E] --dropout_features--> [N, E] -> quantiser -> project_q -> targets [N, F]
      -> projection [B, T, D] -> dropout_input -> mask embedding at time_mask -> context [B, T, D]
      -> final_proj on the masked frames -> predictions [N, F]
    logits [N, 1 + K] = cosine(prediction, [target, K negatives]) / 0.1; a negative with the target's codes -> -inf
    loss = sum InfoNCE + 0.1 * N * (GV - prob_perplexity) / GV + 10 * N * feature_penalty

Everything is a SUM over the N targets (as fairseq's criterion); the trainer divides the gradient
by the number of targets of the whole update, gathered across processes (``sample_size``).
transformers' ``Wav2Vec2ForPreTraining`` returns the same sums without the feature penalty.

The fixed-target alternative (``objective.kind: bestrq``) is ``sew.pretrain.bestrq.BestRQModel``,
with the same interface and ``PretrainOutput``; ``make_pretraining_model`` picks the class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from sew.config import from_mapping
from sew.checkpoint import save_model
from sew.models.config import EncoderConfig
from sew.models.encoder import SpeechEncoder
from sew.models.lengths import lengths_to_mask
from sew.pretrain.config import ObjectiveConfig
from sew.pretrain.heads import build_head
from sew.pretrain.negatives import sample_negatives
from sew.pretrain.quantizer import GumbelVectorQuantizer, gumbel_temperature


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward (bitwise), gradient multiplied by ``scale``."""
    if scale == 1.0:
        return x
    return x.detach() + (x - x.detach()) * scale


def contrastive_logits(predictions: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor,
                       temperature: float, same: torch.Tensor | None = None) -> torch.Tensor:
    """``[N, F]``, ``[N, F]``, ``[N, K, F]`` -> logits ``[N, 1 + K]`` (column 0 is the positive).

    Cosine similarity in float32 over ``temperature``; a negative identical to its positive gets -inf.
    ``same [N, K]`` says which are identical when the caller knows (the quantiser's codes); without it
    the vectors are compared bit for bit, as fairseq and transformers do, which misses copies when a
    CPU's matrix product rounds identical rows differently (seen for a handful of rows on AMD Zen 5).
    """
    candidates = torch.cat([targets[:, None], negatives], dim=1)  # [N, 1 + K, F]
    logits = torch.cosine_similarity(predictions.float()[:, None], candidates.float(), dim=-1) / temperature
    if same is None:
        same = (negatives == targets[:, None]).all(-1)  # [N, K]
    if same.any():
        logits[:, 1:] = logits[:, 1:].masked_fill(same, float("-inf"))
    return logits


def time_varying_share(hidden: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """How much of ``hidden`` ``[B, T, D]`` changes over time: over the valid frames of every utterance,
    sum |h_t - mean_t(h)|^2 / sum |h_t|^2 (1 for zero-mean frames, 0 when every frame is the same
    vector: the representation collapse of ``sew.train.health``). float64 scalar."""
    h = hidden.double() * valid[..., None]
    count = valid.sum(1, keepdim=True).clamp(min=1)[..., None]  # [B, 1, 1]
    mean = h.sum(1, keepdim=True) / count
    varying = ((h - mean) * valid[..., None]).pow(2).sum()
    return varying / h.pow(2).sum().clamp(min=1e-30)


def check_time_mask(time_mask: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``time_mask`` as bool on ``valid``'s device, after checking its shape, that it avoids the
    padding and that it selects at least 2 frames."""
    if time_mask is None or time_mask.shape != valid.shape:
        found = None if time_mask is None else tuple(time_mask.shape)
        raise ValueError(f"time_mask must be a bool tensor of shape {tuple(valid.shape)} (batch, feature "
                         f"frames), found {found}; build it from model.frame_lengths(lengths, samples)")
    time_mask = time_mask.to(device=valid.device, dtype=torch.bool)
    if bool((time_mask & ~valid).any()):
        raise ValueError("time_mask marks padding frames; masks must lie within each utterance's valid frames")
    if int(time_mask.sum()) < 2:
        raise ValueError("time_mask selects fewer than 2 frames; the pretraining objectives need masked frames")
    return time_mask


@dataclass
class MaskedContext:
    """One masked pass of the encoder, what every pretraining objective starts from."""

    lengths: torch.Tensor  # [B] samples, int64
    frame_lengths: torch.Tensor  # [B] valid feature frames
    valid: torch.Tensor  # [B, T] bool
    time_mask: torch.Tensor  # [B, T] bool, checked (inside the valid frames)
    normed: torch.Tensor  # [B, T, E] conv features after the feature LayerNorm, unmasked
    context: torch.Tensor  # [B, T, D] context network output on the masked input
    penalty: torch.Tensor  # mean squared conv feature over the valid frames (unweighted)


def masked_context(encoder: SpeechEncoder, waveforms: torch.Tensor, lengths: torch.Tensor | None,
                   time_mask: torch.Tensor, feature_grad_mult: float) -> MaskedContext:
    """Conv features (gradient scaled by ``feature_grad_mult``, 0 freezes the extractor) -> feature
    penalty -> feature LayerNorm -> projection -> ``dropout_input`` -> the mask embedding at
    ``time_mask`` -> context network."""
    enc = encoder
    lengths = enc.check_inputs(waveforms, lengths)
    if feature_grad_mult > 0:
        features, frame_lengths = enc.extract_features(waveforms, lengths)
        features = scale_grad(features, feature_grad_mult)
    else:
        with torch.no_grad():
            features, frame_lengths = enc.extract_features(waveforms, lengths)
    valid = lengths_to_mask(frame_lengths, features.shape[1])  # [B, T]
    time_mask = check_time_mask(time_mask, valid)
    penalty = (features.float().pow(2).mean(-1) * valid).sum() / valid.sum().clamp(min=1)

    normed = enc.feature_norm(features)  # [B, T, E]: the quantiser's input (unmasked)
    x = enc.feature_projection(normed) if enc.feature_projection is not None else normed
    x = enc.apply_masks(enc.feature_dropout(x), time_mask, None)
    context, _ = enc.context(x, frame_lengths)  # [B, T, D]
    return MaskedContext(lengths, frame_lengths, valid, time_mask, normed, context, penalty)


@dataclass
class PretrainingConfig:
    """The encoder's config and the objective's: what ``sew_config.json`` of a pretraining checkpoint holds."""

    encoder: EncoderConfig
    objective: ObjectiveConfig

    def to_dict(self) -> dict[str, Any]:
        return {"encoder": self.encoder.to_dict(), "objective": self.objective.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "pretraining config") -> "PretrainingConfig":
        if set(data) != {"encoder", "objective"}:
            raise ValueError(f"{source}: expected 'encoder' and 'objective' sections, found {sorted(data)}")
        return from_mapping(cls, data, source)


@dataclass
class PretrainOutput:
    """Sums over the ``sample_size`` masked frames, and the per-batch statistics to log."""

    loss: torch.Tensor  # contrastive + diversity_weight * diversity * N + feature_penalty_weight * penalty * N
    contrastive: torch.Tensor  # sum of InfoNCE over the N targets (BEST-RQ: of the cross-entropy, the main loss)
    diversity: torch.Tensor  # (GV - prob_perplexity) / GV, per target (unweighted)
    feature_penalty: torch.Tensor  # mean squared conv feature over valid frames (unweighted)
    sample_size: torch.Tensor  # N, int64
    correct: torch.Tensor  # targets whose positive has the highest logit (and not all logits equal)
    code_perplexity: torch.Tensor
    prob_perplexity: torch.Tensor
    temperature: float
    logits: torch.Tensor  # [N, 1 + K]
    # For the health monitor (``sew.train.health``), no gradient:
    chance: torch.Tensor  # sum over the N targets of the loss of a guess: ln(1 + finite negatives)
    time_share: torch.Tensor  # time-varying share of the context output (``time_varying_share``)


class PretrainingModel(nn.Module):
    """A ``SpeechEncoder`` plus quantiser and prediction heads; ``encoder`` alone is what fine-tuning keeps.

    ``config`` is a ``PretrainingConfig`` (``config.encoder``, ``config.objective``).

    ``forward(waveforms [B, S], lengths [B], time_mask [B, T] bool, negatives [N, K] or None)``.
    """

    def __init__(self, encoder: SpeechEncoder, config: ObjectiveConfig | None = None):
        super().__init__()
        self.encoder = encoder
        cfg = config or ObjectiveConfig()
        if cfg.kind != "contrastive":
            raise ValueError(f"objective config field 'kind': PretrainingModel is the contrastive objective, got "
                             f"{cfg.kind!r}; build the model with sew.pretrain.make_pretraining_model")
        enc = encoder.config
        self.config = PretrainingConfig(enc, cfg)
        self.quantizer = GumbelVectorQuantizer(enc.conv_dim, cfg.codebook_groups, cfg.codebook_entries,
                                               cfg.codevector_dim)
        self.dropout_features = nn.Dropout(cfg.dropout_features)
        self.project_q = build_head(cfg.codevector_dim, cfg.final_dim, cfg.mlp_heads, cfg.mlp_hidden_size)
        self.final_proj = build_head(enc.hidden_size, cfg.final_dim, cfg.mlp_heads, cfg.mlp_hidden_size)
        self.set_num_updates(0)

    def set_num_updates(self, num_updates: int) -> None:
        """Anneal the Gumbel temperature to its value after ``num_updates`` updates."""
        c = self.config.objective
        self.quantizer.temperature = gumbel_temperature(num_updates, c.gumbel_temperature_start,
                                                        c.gumbel_temperature_end, c.gumbel_temperature_decay)

    def frame_lengths(self, lengths: torch.Tensor, samples: int) -> tuple[torch.Tensor, int]:
        """Valid feature frames per utterance ``[B]`` and the padded frame count, for building time masks."""
        frames = int(self.encoder.output_lengths(torch.tensor([samples]))[0])
        return self.encoder.output_lengths(lengths), frames

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor | None, time_mask: torch.Tensor,
                negatives: torch.Tensor | None = None, generator: torch.Generator | None = None) -> PretrainOutput:
        """``negatives`` (row indices into the masked frames) are drawn with ``generator`` when not given."""
        cfg = self.config.objective
        m = masked_context(self.encoder, waveforms, lengths, time_mask, cfg.feature_grad_mult)
        normed, context, time_mask, valid, penalty = m.normed, m.context, m.time_mask, m.valid, m.penalty

        q = self.quantizer(self.dropout_features(normed)[time_mask])  # on [N, E]
        targets = self.project_q(q.quantized)  # [N, F]
        predictions = self.final_proj(context[time_mask])  # [N, F]
        n = targets.shape[0]
        if negatives is None:
            negatives = sample_negatives(time_mask, cfg.num_negatives, generator)
        elif negatives.shape[0] != n:
            raise ValueError(f"negatives must have one row per masked frame ({n}), found shape {tuple(negatives.shape)}")
        # A negative with its positive's codes is the same target vector, however the heads round it.
        same = (q.codes[negatives] == q.codes[:, None]).all(-1)  # [N, K]
        logits = contrastive_logits(predictions, targets, targets[negatives], cfg.logit_temperature, same)

        contrastive = F.cross_entropy(logits, logits.new_zeros(n, dtype=torch.long), reduction="sum")
        gv = self.quantizer.num_codevectors
        diversity = (gv - q.prob_perplexity) / gv
        loss = contrastive + n * (cfg.diversity_weight * diversity + cfg.feature_penalty_weight * penalty)
        with torch.no_grad():
            best = logits.argmax(-1) == 0
            correct = (best & (logits.max(-1).values != logits.min(-1).values)).sum()
            chance = torch.log(torch.isfinite(logits).sum(-1).double()).sum()
            share = time_varying_share(context.detach(), valid)
        return PretrainOutput(
            loss=loss, contrastive=contrastive, diversity=diversity, feature_penalty=penalty,
            sample_size=torch.tensor(n, device=logits.device), correct=correct,
            code_perplexity=q.code_perplexity, prob_perplexity=q.prob_perplexity,
            temperature=self.quantizer.temperature, logits=logits, chance=chance, time_share=share,
        )

    def save_encoder(self, path: str | Path, **extra) -> None:
        """Write the encoder alone (quantiser and heads removed) for fine-tuning: ``sew.load_model(path)``."""
        save_model(self.encoder, path, objective=self.config.objective.to_dict(), **extra)
