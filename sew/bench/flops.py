"""Analytical multiply-accumulate counts of an encoder forward pass, from its config alone.

Counts the model's math (convolutions, projections, attention scores and sums, SEW-D's position
terms), not a particular implementation: a c2p or p2c term is T x T dot products of width d per
head, and the relative-embedding table is projected once per layer for the rows an input uses.
Element-wise work (norms, activations, softmax) is left out, as usual. 1 MAC = 2 FLOPs.
"""

from __future__ import annotations

from sew.models.config import EncoderConfig
from sew.models.disentangled import relative_index
from sew.models.lengths import conv_output_lengths

SAMPLE_RATE = 16000


def encoder_macs(cfg: EncoderConfig, samples: int, batch: int = 1) -> dict[str, float]:
    """MACs of one utterance of ``samples`` samples, by component (a CTC head is counted if present).

    SEW-D projects its relative-position table once per layer for a whole batch: that share is
    divided by ``batch``.
    """
    import torch

    parts: dict[str, float] = {"features": 0.0}
    length, channels = samples, 1
    for out_channels, kernel, stride in cfg.conv_layers:
        length = int(conv_output_lengths(torch.tensor([length]), [(out_channels, kernel, stride)])[0])
        parts["features"] += length * out_channels * channels * kernel
        channels = out_channels
    frames, d = length, cfg.hidden_size
    has_projection = cfg.conv_dim != d or cfg.family == "wav2vec2"
    parts["projection"] = frames * cfg.conv_dim * d if has_projection else 0.0
    t = frames // cfg.squeeze_factor if cfg.squeezes else frames
    parts["positional_conv"] = t * d * (d // cfg.pos_conv_groups) * cfg.pos_conv_kernel
    inner = cfg.num_heads * cfg.attention_head_size
    per_layer = t * (3 * d * inner + inner * d + 2 * d * cfg.intermediate_size)  # q, k, v, out, FFN
    per_layer += 2 * t * t * inner  # scores and weighted sum
    if cfg.family == "sew-d":
        terms = len(cfg.pos_att_type)
        index = relative_index(max(t, 1), cfg.position_buckets, cfg.max_relative_positions)
        per_layer += terms * (t * t * inner + (index.hi - index.lo) * d * inner / batch)
    parts["transformer"] = cfg.num_layers * per_layer
    parts["upsample"] = t * d * d * cfg.squeeze_factor if cfg.squeezes else 0.0
    parts["ctc_head"] = frames * d * cfg.vocab_size if cfg.vocab_size else 0.0
    parts["total"] = sum(parts.values())
    return parts


def gmacs_per_second(cfg: EncoderConfig, seconds: float = 10.0, batch: int = 1) -> float:
    """GMACs per second of audio for utterances of ``seconds`` (attention grows with length)."""
    samples = int(seconds * SAMPLE_RATE)
    return encoder_macs(cfg, samples, batch)["total"] / seconds / 1e9
