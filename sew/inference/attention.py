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
from torch.nn import functional as F

from sew.inference.packed import InferenceOnly
from sew.models.disentangled import (DisentangledAttention, DisentangledTransformer, middle_offsets, offset_scores,
                                     project_positions, relative_index)
from sew.models.transformer import MultiHeadAttention, TransformerStack, pack_valid, split_heads


def attend_segments_in_place(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int,
                    segments: list[tuple[int, int]], scale: float | None = None, bias_fn=None) -> torch.Tensor:
    """Attention within each ``(start, end)`` segment of packed ``[1, N, heads * d]`` queries, keys and
    values (no mask: a segment is one utterance's valid frames). ``bias_fn(q_seg, k_seg)`` gives an
    additive ``[1, heads, t, t]`` bias. Returns ``[1, N, heads * d]``."""
    y = torch.empty_like(v)
    for start, end in segments:
        bias = None if bias_fn is None else bias_fn(q[:, start:end], k[:, start:end])
        qs, ks, vs = (split_heads(z[:, start:end], heads) for z in (q, k, v))
        if bias is None:
            out = F.scaled_dot_product_attention(qs, ks, vs, scale=scale)
        else:
            # The bias is a fresh tensor: add the scaled q.k scores into it in place and finish with
            # softmax and one more GEMM (on one utterance faster than SDPA with a bias).
            scores = bias[0].baddbmm_(qs[0], ks[0].transpose(1, 2),
                                      alpha=qs.shape[-1] ** -0.5 if scale is None else scale)
            out = torch.bmm(torch.softmax(scores, -1), vs[0])[None]
        y[:, start:end].view(1, end - start, heads, -1).copy_(out.transpose(1, 2))
    return y


def row_blocks(length: int, min_block: int = 48, max_blocks: int = 4) -> list[tuple[int, int]]:
    """Split ``range(length)`` into a few near-equal blocks (one when short)."""
    n = max(1, min(max_blocks, length // min_block))
    bounds = [round(i * length / n) for i in range(n + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


class SegmentAttention(InferenceOnly, nn.Module):
    """A ``MultiHeadAttention``'s projections (shared) attending within segments of packed frames."""

    def __init__(self, attention: MultiHeadAttention, linear):
        super().__init__()
        self.heads = attention.heads
        self.q_proj, self.k_proj = linear(attention.q_proj), linear(attention.k_proj)
        self.v_proj, self.out_proj = linear(attention.v_proj), linear(attention.out_proj)

    def forward(self, x: torch.Tensor, segments: list[tuple[int, int]], **_) -> torch.Tensor:
        y = attend_segments_in_place(self.q_proj(x), self.k_proj(x), self.v_proj(x), self.heads, segments)
        return self.out_proj(y)


class SegmentDisentangledAttention(SegmentAttention):
    """A ``DisentangledAttention`` (shared parameters) within segments, its position bias built by blocks."""

    def __init__(self, attention: DisentangledAttention, linear):
        super().__init__(attention, linear)
        self.c2p, self.p2c, self.scale = attention.c2p, attention.p2c, attention.scale
        self.share_att_key = attention.share_att_key
        for name in ("pos_k_proj", "pos_q_proj"):
            if hasattr(attention, name):
                setattr(self, name, linear(getattr(attention, name)))

    def position_keys(self, table: torch.Tensor, which: str) -> torch.Tensor:
        """The reference's projection of the table rows (no position dropout in inference)."""
        if which == "k":
            proj = self.k_proj if self.share_att_key else self.pos_k_proj
        else:
            proj = self.q_proj if self.share_att_key else self.pos_q_proj
        return project_positions(proj, table, self.heads, self.scale)

    def position_bias(self, q: torch.Tensor, k: torch.Tensor, pos_k, pos_q) -> torch.Tensor:
        """The reference's c2p + p2c ``[batch, heads, T, T]``, written block by block of rows (each block
        meets only the offsets it uses); p2c is written keys-by-queries and added transposed in one pass."""
        b, t, _ = q.shape
        blocks = row_blocks(t)
        if self.c2p:
            bias = q.new_empty(b, self.heads, t, t)
            for start, end in blocks:
                bias[:, :, start:end] = offset_scores(q, pos_k, self.heads, start, end)
        if self.p2c:
            by_key = q.new_empty(b, self.heads, t, t)
            for start, end in blocks:
                by_key[:, :, start:end] = offset_scores(k, pos_q, self.heads, start, end)
            if not self.c2p:
                return by_key.transpose(-1, -2).contiguous()
            bias.add_(by_key.transpose(-1, -2))
        return bias

    def forward(self, x: torch.Tensor, segments: list[tuple[int, int]], table: torch.Tensor | None = None,
                by_offset: torch.Tensor | None = None, **_) -> torch.Tensor:
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        bias_fn = None
        if self.c2p or self.p2c:
            pos_k = self.position_keys(table, "k")[:, by_offset] if self.c2p else None
            pos_q = self.position_keys(table, "q")[:, by_offset.flip(0)] if self.p2c else None

            def bias_fn(qs, ks):
                t = qs.shape[1]
                return self.position_bias(qs, ks, middle_offsets(pos_k, t), middle_offsets(pos_q, t))
        return self.out_proj(attend_segments_in_place(q, k, v, self.heads, segments, self.scale, bias_fn))


class PackedTransformerStack(InferenceOnly, nn.Module):
    """A ``TransformerStack``'s layers (shared, attention swapped for the segment versions) run on the
    valid frames only; padded positions of the outputs are zero."""

    def __init__(self, stack: TransformerStack, layers: nn.ModuleList):
        super().__init__()
        self.layers = layers
        if isinstance(stack, DisentangledTransformer):  # the same modules and state-dict keys
            self.rel_embeddings, self.rel_norm = stack.rel_embeddings, stack.rel_norm
            self.buckets, self.max_relative_positions = stack.position_buckets, stack.max_relative_positions
        self.disentangled = isinstance(stack, DisentangledTransformer)

    def attention_inputs(self, length: int) -> dict:
        """SEW-D's position table rows for the padded length (on the host, cached per length)."""
        if not self.disentangled:
            return {}
        index = relative_index(length, self.buckets, self.max_relative_positions)
        table = self.rel_embeddings.weight[index.lo:index.hi]  # LayerNorm is per row: slice first
        table = self.rel_norm(table) if self.rel_norm is not None else table
        return {"table": table, "by_offset": index.by_offset.to(table.device)}

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None, return_states: bool = False):
        """As ``TransformerStack.forward`` (``key_mask`` a prefix mask from lengths, or None: all valid)."""
        if key_mask is None:
            key_mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        packed, segments, unpack = pack_valid(x, key_mask)
        inputs = {**self.attention_inputs(x.shape[1]), "segments": segments}
        states = [x] if return_states else None
        for layer in self.layers:
            packed = layer(packed, **inputs)
            if return_states:
                states.append(unpack(packed))
        return unpack(packed), states
