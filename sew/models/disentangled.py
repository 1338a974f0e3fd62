"""DeBERTa-style disentangled self-attention for SEW-D.

The score of query i and key j is content-to-content plus, optionally, content-to-position (c2p)
and position-to-content (p2c) terms over log-bucketed relative positions:

    s_ij = [q_i . k_j + q_i . Pk[r(i, j)] + k_j . Pq[r(i, j)]] / sqrt(d * (1 + n_terms))

where ``Pk``/``Pq`` are the shared relative-embedding table projected by the key/query projections
(``share_att_key``) or by their own ones, and ``r(i, j)`` is the table row of the bucketed offset
``i - j``. Each position term is one GEMM of the queries (keys) against the 2T-1 offsets they can
meet, read out as a Toeplitz view (no gather), and both go into one additive bias for
``scaled_dot_product_attention``. The CPU inference variant (``sew.inference``) computes the same
bias by blocks of rows, utterance by utterance.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from sew.models.transformer import (MultiHeadAttention, TransformerLayer, TransformerStack, attend, attend_segments,
                                   merge_heads, split_heads)


def log_bucket_positions(relative: torch.Tensor, buckets: int, max_position: int) -> torch.Tensor:
    """Map signed offsets to buckets: exact up to ``buckets // 2``, log-spaced beyond, up to ``max_position``."""
    mid = buckets // 2
    sign = torch.sign(relative)
    inside = (relative < mid) & (relative > -mid)
    magnitude = torch.where(inside, torch.full_like(relative, mid - 1), relative.abs())
    # Float32 arithmetic, as DeBERTa does, so bucket boundaries land on the same offsets.
    log_pos = torch.ceil(
        torch.log(magnitude / mid) / torch.log(torch.tensor((max_position - 1) / mid)) * (mid - 1)
    ) + mid
    return torch.where(magnitude <= mid, relative.to(log_pos.dtype), log_pos * sign).long()


def offset_rows(length, buckets: int, max_position: int, device=None) -> torch.Tensor:
    """Table row of every offset j - i = -(T-1) .. T-1, ``[2T-1]`` (rows of the whole ``2 * span`` table)."""
    span = buckets if buckets > 0 else max_position
    offsets = torch.arange(length - 1, -length, -1, device=device)  # i - j
    if buckets > 0 and max_position > 0:
        offsets = log_bucket_positions(offsets, buckets, max_position)
    return (offsets + span).clamp(0, 2 * span - 1)


class RelativeIndex(NamedTuple):
    """Rows ``lo:hi`` of the table are the ones length T uses; ``by_offset[k]`` is the row (relative
    to ``lo``) for offset j - i = k - (T-1), ``pairs[i, j]`` the row for query i and key j."""

    length: int
    lo: int
    hi: int
    by_offset: torch.Tensor
    pairs: torch.Tensor


@functools.lru_cache(maxsize=64)
def relative_index(length: int, buckets: int, max_position: int) -> RelativeIndex:
    """The rows a concrete length uses, on the host (eager inference and FLOP counts project only those)."""
    # Cached across calls: normal tensors even when the first call comes under inference_mode.
    with torch.inference_mode(False):
        rows = offset_rows(length, buckets, max_position)
        lo, hi = int(rows.min()), int(rows.max()) + 1
        positions = torch.arange(length)
        pairs = rows[positions[None, :] - positions[:, None] + length - 1]
        return RelativeIndex(length, lo, hi, rows - lo, pairs - lo)


def toeplitz_view(scores: torch.Tensor) -> torch.Tensor:
    """``[..., R, R+C-1]`` scores of R rows against consecutive offsets -> ``[..., R, C]``, (r, c) = column c - r + R - 1.

    Row r of the result is row r of the input shifted left by R-1-r: flatten, drop R-1 leading
    entries and re-read rows of length R+C-2. A view (no gather, no copy) whose backward is padding.
    """
    rows, width = scores.shape[-2:]
    if rows == 1:  # one row meets exactly its C offsets (the flat reading below needs two)
        return scores
    cols = width - rows + 1
    lead = scores.shape[:-2]
    flat = scores.reshape(*lead, rows * width)
    return flat[..., rows - 1: rows - 1 + rows * (width - 1)].reshape(*lead, rows, width - 1)[..., :cols]


def offset_scores(x: torch.Tensor, pos: torch.Tensor, heads: int, start: int = 0, end: int | None = None) -> torch.Tensor:
    """Rows ``start:end`` of ``x`` ``[batch, T, heads * d]`` against the offsets they meet.

    ``pos`` ``[heads, 2T-1, d]`` holds one row per offset; rows start..end-1 only meet offsets
    T-end .. 2T-2-start, so the GEMM (one per head, batch folded into rows) covers
    (end-start) x (T+end-start-1) pairs instead of (end-start) x (2T-1). Returns
    ``[batch, heads, end-start, T]`` (a view).
    """
    b, t, _ = x.shape
    end = t if end is None else end
    rows = end - start
    x_h = x.view(b, t, heads, -1)[:, start:end].reshape(b * rows, heads, -1).transpose(0, 1)
    window = pos[:, t - end: 2 * t - 1 - start]  # [heads, T + rows - 1, d]
    scores = torch.bmm(x_h, window.transpose(1, 2)).view(heads, b, rows, t + rows - 1)
    return toeplitz_view(scores).permute(1, 0, 2, 3)


def middle_offsets(pos: torch.Tensor | None, length: int) -> torch.Tensor | None:
    """Rows of ``[heads, 2T-1, d]`` per-offset keys for a shorter length ``t``: the middle ``2t-1``
    (a row's table entry depends on its offset only, not on T)."""
    if pos is None:
        return None
    full = (pos.shape[1] + 1) // 2
    return pos[:, full - length: full + length - 1]


def project_positions(proj: nn.Module, table: torch.Tensor, heads: int, scale: float) -> torch.Tensor:
    """Table rows through a projection: ``[rows, dim]`` -> ``[heads, rows, d]``, already scaled."""
    return (proj(table) * scale).view(table.shape[0], heads, -1).transpose(0, 1)


def row_blocks(length: int, min_block: int = 48, max_blocks: int = 4) -> list[tuple[int, int]]:
    """Split ``range(length)`` into a few near-equal blocks (one when short)."""
    n = max(1, min(max_blocks, length // min_block))
    bounds = [round(i * length / n) for i in range(n + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


# SEW-D's position terms, written once for the reference attention and its CPU inference variant: ``attn`` is
# either (anything with ``heads``, ``scale``, ``c2p``, ``p2c``, ``share_att_key``, ``position_dropout``,
# ``training`` and the projections ``q_proj``, ``k_proj``, ``pos_q_proj``, ``pos_k_proj`` it uses).
def position_keys(attn, table: torch.Tensor, which: str) -> torch.Tensor:
    """Table rows through the projection of c2p (``which="k"``) or p2c (``"q"``): ``[heads, rows, d]``, scaled."""
    table = F.dropout(table, attn.position_dropout, attn.training)
    if which == "k":
        proj = attn.k_proj if attn.share_att_key else attn.pos_k_proj
    else:
        proj = attn.q_proj if attn.share_att_key else attn.pos_q_proj
    return project_positions(proj, table, attn.heads, attn.scale)


def offset_keys(attn, table: torch.Tensor, by_offset: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Projected table rows, one per offset ``[heads, 2T-1, d]``: for c2p by offset j - i, for p2c reversed
    (by i - j); ``None`` for a term the layer does not have."""
    pos_k = position_keys(attn, table, "k")[:, by_offset] if attn.c2p else None
    pos_q = position_keys(attn, table, "q")[:, by_offset.flip(0)] if attn.p2c else None
    return pos_k, pos_q


def position_bias(attn, q: torch.Tensor, k: torch.Tensor, pos_k: torch.Tensor | None, pos_q: torch.Tensor | None,
                  by_blocks: bool = False) -> torch.Tensor:
    """Scaled c2p + p2c scores ``[batch, heads, T, T]``; ``q``, ``k`` are ``[batch, T, heads * d]``, ``pos_k``,
    ``pos_q`` the ``offset_keys`` for length T. With the offsets reversed, key j meets query i at column
    i - j + T - 1, so the same views give p2c keys-by-queries, transposed. ``by_blocks`` (inference, no
    autograd): written into fresh tensors by blocks of rows, each meeting only the offsets it uses."""
    if not by_blocks:
        c2p = offset_scores(q, pos_k, attn.heads) if attn.c2p else None
        p2c = offset_scores(k, pos_q, attn.heads).transpose(-1, -2) if attn.p2c else None
        if c2p is None or p2c is None:
            return c2p if p2c is None else p2c
        return c2p + p2c
    b, t, _ = q.shape
    blocks = row_blocks(t)
    if attn.c2p:
        bias = q.new_empty(b, attn.heads, t, t)
        for start, end in blocks:
            bias[:, :, start:end] = offset_scores(q, pos_k, attn.heads, start, end)
    if attn.p2c:
        by_key = q.new_empty(b, attn.heads, t, t)
        for start, end in blocks:
            by_key[:, :, start:end] = offset_scores(k, pos_q, attn.heads, start, end)
        if not attn.c2p:
            return by_key.transpose(-1, -2).contiguous()
        bias.add_(by_key.transpose(-1, -2))
    return bias


def segment_bias(attn, table: torch.Tensor, by_offset: torch.Tensor, by_blocks: bool = False):
    """The ``bias_fn`` of ``attend_segments`` (None without position terms): keys projected once for the
    padded length, a segment of t frames meeting their middle 2t-1 offsets."""
    if not (attn.c2p or attn.p2c):
        return None
    pos_k, pos_q = offset_keys(attn, table, by_offset)

    def bias_fn(qs: torch.Tensor, ks: torch.Tensor) -> torch.Tensor:
        t = qs.shape[1]
        return position_bias(attn, qs, ks, middle_offsets(pos_k, t), middle_offsets(pos_q, t), by_blocks)
    return bias_fn


class DisentangledAttention(MultiHeadAttention):
    """Multi-head attention with c2p / p2c relative-position terms (``pos_att_type``)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, head_size: int | None = None, *,
                 pos_att_type=("p2c", "c2p"), share_att_key: bool = True, position_dropout: float = 0.0):
        super().__init__(dim, heads, dropout, head_size)
        self.c2p = "c2p" in pos_att_type
        self.p2c = "p2c" in pos_att_type
        self.scale = (self.head_size * (1 + self.c2p + self.p2c)) ** -0.5
        self.share_att_key = share_att_key
        inner = heads * self.head_size
        if not share_att_key:
            if self.c2p:
                self.pos_k_proj = nn.Linear(dim, inner)
            if self.p2c:
                self.pos_q_proj = nn.Linear(dim, inner)
        self.position_dropout = position_dropout

    # The position terms (module functions, shared with the CPU inference variant) as methods.
    position_keys = position_keys
    offset_keys = offset_keys
    position_bias = position_bias

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None, table: torch.Tensor | None = None,
                by_offset: torch.Tensor | None = None, segments: list[tuple[int, int]] | None = None) -> torch.Tensor:
        """``x`` ``[batch, T, dim]`` with ``key_mask``, or packed ``[1, N, dim]`` with its ``segments``;
        ``table`` / ``by_offset`` from ``DisentangledTransformer.attention_inputs`` for the padded T."""
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        if segments is not None:
            y = attend_segments(q, k, v, self.heads, segments, self.dropout if self.training else 0.0, self.scale,
                                segment_bias(self, table, by_offset))
            return self.out_proj(y)
        attn_mask = None
        if self.c2p or self.p2c:
            attn_mask = self.position_bias(q, k, *self.offset_keys(table, by_offset))
            if key_mask is not None:
                attn_mask = attn_mask.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        elif key_mask is not None:
            attn_mask = key_mask[:, None, None, :]
        y = attend(split_heads(q, self.heads), split_heads(k, self.heads), split_heads(v, self.heads),
                   attn_mask, self.dropout if self.training else 0.0, self.scale)
        return self.out_proj(merge_heads(y))


class DisentangledTransformer(TransformerStack):
    """SEW-D's DeBERTa encoder: post-LN layers sharing one (LayerNorm-ed) relative-position table."""

    def __init__(self, layers: list[TransformerLayer], dim: int, *, position_buckets: int,
                 max_relative_positions: int, norm_rel_embeddings: bool, eps: float, layerdrop: float = 0.0):
        super().__init__(layers, layerdrop)
        self.position_buckets = position_buckets
        self.max_relative_positions = max_relative_positions
        span = position_buckets if position_buckets > 0 else max_relative_positions
        self.rel_embeddings = nn.Embedding(2 * span, dim)
        nn.init.normal_(self.rel_embeddings.weight, std=0.02)
        self.rel_norm = nn.LayerNorm(dim, eps=eps) if norm_rel_embeddings else None

    def attention_inputs(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> dict:
        return {"key_mask": key_mask, **position_inputs(self, x.shape[1], x.device)}


def position_inputs(stack, length, device, used_rows: bool = False) -> dict:
    """What every SEW-D layer's attention takes for the padded length T of ``stack`` (a
    ``DisentangledTransformer`` or its CPU inference variant, which share the table): the normalised
    table and each offset's row of it. ``used_rows`` (eager inference): only the rows T uses, found on
    the host and cached per length; the LayerNorm is per row, so slicing first is exact."""
    if used_rows:
        index = relative_index(length, stack.position_buckets, stack.max_relative_positions)
        table, by_offset = stack.rel_embeddings.weight[index.lo:index.hi], index.by_offset.to(device)
    else:
        table = stack.rel_embeddings.weight
        by_offset = offset_rows(length, stack.position_buckets, stack.max_relative_positions, device)
    return {"table": stack.rel_norm(table) if stack.rel_norm is not None else table, "by_offset": by_offset}
