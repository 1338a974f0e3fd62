"""DeBERTa-style disentangled self-attention for SEW-D.

The score of query i and key j is content-to-content plus, optionally, content-to-position (c2p)
and position-to-content (p2c) terms over log-bucketed relative positions:

    s_ij = [q_i . k_j + q_i . Pk[r(i, j)] + k_j . Pq[r(i, j)]] / sqrt(d * (1 + n_terms))

where ``Pk``/``Pq`` are the shared relative-embedding table projected by the key/query projections
(``share_att_key``) or by their own ones, and ``r(i, j)`` is the table row of the bucketed offset
``i - j``. Both position terms are gathered into one additive bias and the whole attention runs
through ``scaled_dot_product_attention``; packed utterances (``segments``, CPU inference) add the
q.k scores into that bias and finish with softmax and a GEMM (``attend_segments``).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from sew.models.lengths import compiling
from sew.models.linear import Linear
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


def table_rows(length, buckets: int, max_position: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Table row of every offset (``[2T-1]``, for j - i = -(T-1) .. T-1) and of every pair (``[T, T]``)."""
    span = buckets if buckets > 0 else max_position
    offsets = torch.arange(length - 1, -length, -1, device=device)  # i - j
    if buckets > 0 and max_position > 0:
        offsets = log_bucket_positions(offsets, buckets, max_position)
    rows = (offsets + span).clamp(0, 2 * span - 1)
    positions = torch.arange(length, device=device)
    # pairs[i, j]: the row for i - j, i.e. rows[(j - i) + T - 1].
    return rows, rows[positions[None, :] - positions[:, None] + length - 1]


@functools.lru_cache(maxsize=64)
def relative_index(length: int, buckets: int, max_position: int) -> "RelativeIndex":
    """Which rows of the relative-embedding table each (query, key) pair uses, on CPU.

    Only rows ``lo:hi`` of the table are ever used for this length, so only those are projected.
    """
    # Cached across calls: build normal tensors even when the first call comes under inference_mode,
    # or a later training step could not save them for backward.
    with torch.inference_mode(False):
        rows, pairs = table_rows(length, buckets, max_position)
        lo, hi = int(rows.min()), int(rows.max()) + 1
        return RelativeIndex(length, lo, hi, rows - lo, pairs - lo)


def traced_relative_index(length, buckets: int, max_position: int, device) -> "RelativeIndex":
    """The same, computed inside a traced graph: no host reads, the whole table is used (lo = 0)."""
    span = buckets if buckets > 0 else max_position
    rows, pairs = table_rows(length, buckets, max_position, device)
    return RelativeIndex(length, 0, 2 * span, rows, pairs)


class RelativeIndex(NamedTuple):
    """Rows ``lo:hi`` of the table are used; ``by_offset[k]`` is the row for offset j - i = k - (T-1)
    (shape ``[2T-1]``), ``pairs[i, j]`` the row for query i and key j (``[T, T]``), both relative to ``lo``."""

    length: int
    lo: int
    hi: int
    by_offset: torch.Tensor
    pairs: torch.Tensor

    def to(self, device) -> "RelativeIndex":
        return self._replace(by_offset=self.by_offset.to(device), pairs=self.pairs.to(device))


def toeplitz_view(scores: torch.Tensor) -> torch.Tensor:
    """``[..., R, R+C-1]`` scores of R rows against consecutive offsets -> ``[..., R, C]``, (r, c) = column c - r + R - 1.

    Row r of the result is row r of the input shifted left by R-1-r: flatten, drop R-1 leading
    entries and re-read rows of length R+C-2. A view (no gather, no copy) whose backward is padding.
    """
    rows, width = scores.shape[-2:]
    cols = width - rows + 1
    if compiling():  # one zero column makes the reading valid for any row count, without a branch
        scores, width = F.pad(scores, (0, 1)), width + 1
    elif rows == 1:
        return scores
    lead = scores.shape[:-2]
    flat = scores.reshape(*lead, rows * width)
    return flat[..., rows - 1: rows - 1 + rows * (width - 1)].reshape(*lead, rows, width - 1)[..., :cols]


def middle_offsets(pos: torch.Tensor | None, length: int) -> torch.Tensor | None:
    """Rows of ``[heads, 2T-1, d]`` per-offset keys for a shorter length ``t``: the middle ``2t-1``
    (a row's table entry depends on its offset only, not on T)."""
    if pos is None:
        return None
    full = (pos.shape[1] + 1) // 2
    return pos[:, full - length: full + length - 1]


def row_blocks(length: int, min_block: int = 48, max_blocks: int = 4) -> list[tuple[int, int]]:
    """Split ``range(length)`` into a few near-equal blocks (one when short)."""
    n = max(1, min(max_blocks, length // min_block))
    bounds = [round(i * length / n) for i in range(n + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


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
                self.pos_k_proj = Linear(dim, inner)
            if self.p2c:
                self.pos_q_proj = Linear(dim, inner)
        self.position_dropout = position_dropout

    def _position_keys(self, table: torch.Tensor, which: str) -> torch.Tensor:
        """Project the used table rows: ``[rows, dim]`` -> ``[heads, rows, d]``, already scaled."""
        table = F.dropout(table, self.position_dropout, self.training)
        if which == "k":
            proj = self.k_proj if self.share_att_key else self.pos_k_proj
        else:
            proj = self.q_proj if self.share_att_key else self.pos_q_proj
        return (proj(table) * self.scale).view(table.shape[0], self.heads, -1).transpose(0, 1)

    def _offset_scores(self, x: torch.Tensor, pos: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """Rows ``start:end`` of ``x`` ``[batch, T, heads * d]`` against the offsets they meet.

        ``pos`` ``[heads, 2T-1, d]`` holds one row per offset; rows start..end-1 only meet
        offsets T-end .. 2T-2-start, so the GEMM covers (end-start) x (T+end-start-1) pairs
        instead of (end-start) x (2T-1). Returns ``[batch, heads, end-start, T]`` (a view).
        """
        b, t, _ = x.shape
        rows = end - start
        x_h = x.view(b, t, self.heads, -1)[:, start:end].reshape(b * rows, self.heads, -1).transpose(0, 1)
        window = pos[:, t - end: 2 * t - 1 - start]  # [heads, T + rows - 1, d]
        scores = torch.bmm(x_h, window.transpose(1, 2)).view(self.heads, b, rows, t + rows - 1)
        return toeplitz_view(scores).permute(1, 0, 2, 3)

    def _traced_position_bias(self, q: torch.Tensor, k: torch.Tensor, pos_k: torch.Tensor | None,
                              pos_q: torch.Tensor | None) -> torch.Tensor:
        """``position_bias`` while traced (compile, export): one block of rows and a plain sum, no host
        arithmetic on T and no slice writes.

        With gradients the Toeplitz reading is the view (its backward is a pad). Without, it is a
        gather by an index built from ``arange``: with a dynamic T, inductor turns the view's
        flatten-and-reshape reading into scalar C++ with modular index arithmetic, 78 ms per
        SEW-D-mid layer at 4 x 10 s on 2 cores against 22 ms for the gather.
        """
        b, t, _ = q.shape
        if torch.is_grad_enabled():
            c2p = self._offset_scores(q, pos_k, 0, t) if self.c2p else None
            p2c = self._offset_scores(k, pos_q, 0, t).transpose(-1, -2) if self.p2c else None
        else:
            positions = torch.arange(t, device=q.device)
            column = (positions[None, :] - positions[:, None] + (t - 1)).expand(b, self.heads, t, t)

            def read(x, pos):  # [batch, heads, T, 2T-1] scores against every offset, then (i, j) at j - i + T - 1
                return torch.gather(torch.matmul(split_heads(x, self.heads), pos.transpose(1, 2)[None]), -1, column)

            c2p = read(q, pos_k) if self.c2p else None
            p2c = read(k, pos_q).transpose(-1, -2) if self.p2c else None
        if c2p is None or p2c is None:
            return c2p if p2c is None else p2c
        return c2p + p2c

    def offset_keys(self, table: torch.Tensor, index: RelativeIndex) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Projected table rows, one per offset ``[heads, 2T-1, d]``: for c2p by offset j - i, for p2c
        reversed (by i - j); ``None`` for a term the layer does not have. A segment of ``t <= T``
        frames uses the middle ``2t-1`` rows of either (``middle_offsets``)."""
        pos_k = self._position_keys(table, "k")[:, index.by_offset] if self.c2p else None
        pos_q = self._position_keys(table, "q")[:, index.by_offset.flip(0)] if self.p2c else None
        return pos_k, pos_q

    def position_bias(self, q: torch.Tensor, k: torch.Tensor, pos_k: torch.Tensor | None, pos_q: torch.Tensor | None):
        """Scaled c2p + p2c scores ``[batch, heads, T, T]``; ``q``, ``k`` are ``[batch, T, heads * d]``,
        ``pos_k``, ``pos_q`` the ``offset_keys`` for length T.

        Position scores are GEMMs (one per head, batch folded into rows) against the relative
        offsets, read out as Toeplitz views and written into one [batch, heads, T, T] tensor, by
        blocks of rows so that each block meets only the offsets it uses.
        """
        b, t, _ = q.shape
        if compiling():
            return self._traced_position_bias(q, k, pos_k, pos_q)
        blocks = row_blocks(t)
        if self.c2p:
            bias = q.new_empty(b, self.heads, t, t)
            for start, end in blocks:
                bias[:, :, start:end] = self._offset_scores(q, pos_k, start, end)
        if self.p2c:
            # Offsets reversed, so key j meets query i at column i - j + T - 1: the same views give
            # the term keys-by-queries. It is written that way and added transposed in one pass
            # (column blocks read transposed cost about three times as much).
            by_key = q.new_empty(b, self.heads, t, t)
            for start, end in blocks:
                by_key[:, :, start:end] = self._offset_scores(k, pos_q, start, end)
            if not self.c2p:
                return by_key.transpose(-1, -2).contiguous()
            bias.add_(by_key.transpose(-1, -2))
        return bias

    def position_bias_reference(self, q: torch.Tensor, k: torch.Tensor, table: torch.Tensor,
                                index: RelativeIndex) -> torch.Tensor:
        """The same scores by explicit gathers, as DeBERTa computes them: the exact reference for tests."""
        qh, kh = split_heads(q, self.heads), split_heads(k, self.heads)
        b, h, t, _ = qh.shape
        pairs = index.pairs.expand(b, h, t, t)
        bias = 0
        if self.c2p:
            pos_k = self._position_keys(table, "k")[None]
            bias = bias + torch.gather(torch.matmul(qh, pos_k.transpose(-1, -2)), -1, pairs)
        if self.p2c:
            pos_q = self._position_keys(table, "q")[None]
            p2c = torch.matmul(kh, pos_q.transpose(-1, -2))  # [batch, heads, T (keys), rows]
            bias = bias + torch.gather(p2c, -1, pairs.transpose(-1, -2)).transpose(-1, -2)
        return bias

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None, table: torch.Tensor | None = None,
                index: RelativeIndex | None = None, reference: bool = False,
                segments: list[tuple[int, int]] | None = None, **_) -> torch.Tensor:
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        if segments is not None:  # packed utterances (TransformerStack's inference path)
            bias_fn = None
            if self.c2p or self.p2c:
                pos_k, pos_q = self.offset_keys(table, index)

                def bias_fn(qs, ks):
                    t = qs.shape[1]
                    return self.position_bias(qs, ks, middle_offsets(pos_k, t), middle_offsets(pos_q, t))
            return self.out_proj(attend_segments(q, k, v, self.heads, segments, self.scale, bias_fn))
        attn_mask = None
        if self.c2p or self.p2c:
            if reference:
                attn_mask = self.position_bias_reference(q, k, table, index)
            else:
                attn_mask = self.position_bias(q, k, *self.offset_keys(table, index))
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
        if compiling():
            index = traced_relative_index(x.shape[1], self.position_buckets, self.max_relative_positions, x.device)
        else:
            index = relative_index(x.shape[1], self.position_buckets, self.max_relative_positions).to(x.device)
        table = self.rel_embeddings.weight[index.lo:index.hi]  # LayerNorm is per row: slice first
        if self.rel_norm is not None:
            table = self.rel_norm(table)
        return {"key_mask": key_mask, "table": table, "index": index}
