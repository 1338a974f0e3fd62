"""The transformer stack for CPU inference: valid frames only, attention utterance by utterance.

The valid frames of a padded batch are stacked into one ``[1, N, dim]`` sequence, so the linear
layers, norms and feed-forward blocks do no work on padding, and attention runs over each
utterance's ``(start, end)`` segment with no mask. SEW-D's position keys are projected once per
layer for the batch's padded length (only the table rows that length uses); a shorter segment
uses their middle rows, and its bias is built by blocks of rows that each meet only the offsets
they use. The paper's protocol pads a third of its batches, all of it work saved (docs/cpu-paths.md).
"""

from __future__ import annotations

import torch
from torch import nn

from sew.inference.packed import InferenceOnly
from sew.models.disentangled import DisentangledAttention, DisentangledTransformer, position_inputs, segment_bias
from sew.models.transformer import MultiHeadAttention, TransformerStack, attend_segments, run_packed


class SegmentAttention(InferenceOnly, nn.Module):
    """A ``MultiHeadAttention``'s projections (shared) attending within segments of packed frames."""

    def __init__(self, attention: MultiHeadAttention, linear):
        super().__init__()
        self.heads = attention.heads
        self.q_proj, self.k_proj = linear(attention.q_proj), linear(attention.k_proj)
        self.v_proj, self.out_proj = linear(attention.v_proj), linear(attention.out_proj)

    def forward(self, x: torch.Tensor, segments: list[tuple[int, int]], **_) -> torch.Tensor:
        y = attend_segments(self.q_proj(x), self.k_proj(x), self.v_proj(x), self.heads, segments, 0.0, in_place=True)
        return self.out_proj(y)


class SegmentDisentangledAttention(SegmentAttention):
    """A ``DisentangledAttention`` (shared parameters) within segments: the reference's position terms
    (``sew.models.disentangled``), its bias built by blocks of rows in place."""

    position_dropout = 0.0  # inference: no position dropout

    def __init__(self, attention: DisentangledAttention, linear):
        super().__init__(attention, linear)
        self.c2p, self.p2c, self.scale = attention.c2p, attention.p2c, attention.scale
        self.share_att_key = attention.share_att_key
        for name in ("pos_k_proj", "pos_q_proj"):
            if hasattr(attention, name):
                setattr(self, name, linear(getattr(attention, name)))

    def forward(self, x: torch.Tensor, segments: list[tuple[int, int]], table: torch.Tensor | None = None,
                by_offset: torch.Tensor | None = None, **_) -> torch.Tensor:
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        bias_fn = segment_bias(self, table, by_offset, by_blocks=True)
        return self.out_proj(attend_segments(q, k, v, self.heads, segments, 0.0, self.scale, bias_fn, in_place=True))


class PackedTransformerStack(InferenceOnly, nn.Module):
    """A ``TransformerStack``'s layers (shared, attention swapped for the segment versions) run on the
    valid frames only; padded positions of the outputs are zero."""

    def __init__(self, stack: TransformerStack, layers: nn.ModuleList):
        super().__init__()
        self.layers = layers
        self.disentangled = isinstance(stack, DisentangledTransformer)
        if self.disentangled:  # the same modules and state-dict keys
            self.rel_embeddings, self.rel_norm = stack.rel_embeddings, stack.rel_norm
            self.position_buckets, self.max_relative_positions = stack.position_buckets, stack.max_relative_positions

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor, return_states: bool = False):
        """As ``TransformerStack.forward``, ``key_mask`` a prefix mask from lengths; SEW-D's table rows
        only those the padded length uses."""
        inputs = position_inputs(self, x.shape[1], x.device, used_rows=True) if self.disentangled else {}
        return run_packed(self.layers, x, key_mask, inputs, return_states)
