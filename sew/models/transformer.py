"""Transformer pieces shared by the three families: attention, feed-forward, layers, stack, positional conv."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from sew.models.kernels import exporting_onnx, per_utterance


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``[batch, time, heads * d]`` -> ``[batch, heads, time, d]``."""
    b, t, _ = x.shape
    return x.view(b, t, heads, -1).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``[batch, heads, time, d]`` -> ``[batch, time, heads * d]``."""
    b, h, t, d = x.shape
    # contiguous() + view is the copy reshape would make; spelled out, ONNX decomposition accepts it.
    return x.transpose(1, 2).contiguous().view(b, t, h * d)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None,
           dropout: float, scale: float | None = None) -> torch.Tensor:
    """``[batch, heads, T, d]`` attention: ``scaled_dot_product_attention``, or while exporting to ONNX
    the same math written out (what ONNX runs anyway; SDPA's decomposition trips the exporter)."""
    if not exporting_onnx():
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout, scale=scale)
    scores = torch.matmul(q, k.transpose(-1, -2)) * (scale if scale is not None else q.shape[-1] ** -0.5)
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else scores + attn_mask
    return torch.matmul(scores.softmax(-1), v)


def attend_segments(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, segments: list[tuple[int, int]],
                    dropout: float, scale: float | None = None, bias_fn=None, in_place: bool = False) -> torch.Tensor:
    """Attention within each ``(start, end)`` segment of packed ``[1, N, heads * d]`` queries, keys and
    values (a segment is one utterance's valid frames, so no mask); ``bias_fn(q_seg, k_seg)`` gives
    an additive ``[1, heads, t, t]`` bias. Returns ``[1, N, heads * d]``.

    ``in_place`` (inference only, no autograd): each bias, a fresh tensor, takes the scaled q.k scores
    in place before softmax and one more product (on one utterance faster than SDPA with a bias), and
    the segments are written into one preallocated output."""
    y = torch.empty_like(v) if in_place else None
    outputs = []
    for start, end in segments:
        qs, ks, vs = (split_heads(z[:, start:end], heads) for z in (q, k, v))
        bias = None if bias_fn is None else bias_fn(q[:, start:end], k[:, start:end])
        if in_place and bias is not None:
            scores = bias[0].baddbmm_(qs[0], ks[0].transpose(1, 2), alpha=qs.shape[-1] ** -0.5 if scale is None else scale)
            out = torch.bmm(torch.softmax(scores, -1), vs[0])[None]
        else:
            out = attend(qs, ks, vs, bias, dropout, scale)
        if in_place:
            y[:, start:end].view(1, end - start, heads, -1).copy_(out.transpose(1, 2))
        else:
            outputs.append(merge_heads(out))
    return y if in_place else torch.cat(outputs, 1)


def packing(x: torch.Tensor, key_mask: torch.Tensor):
    """How the valid frames of ``[batch, time, dim]`` (``x[key_mask][None]``) sit in one ``[1, N, dim]``
    sequence: each utterance's ``(start, end)`` segment of it, and the inverse (``[1, N, dim]`` ->
    ``[batch, time, dim]``, padding zero)."""
    ends = key_mask.sum(1).cumsum(0).tolist()
    segments = [(start, end) for start, end in zip([0] + ends[:-1], ends) if end > start]

    def unpack(packed: torch.Tensor) -> torch.Tensor:
        return packed.new_zeros(x.shape).index_put((key_mask,), packed[0])
    return segments, unpack


class MultiHeadAttention(nn.Module):
    """Self-attention through ``scaled_dot_product_attention``; ``key_mask`` ``[batch, time]`` marks valid keys."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, head_size: int | None = None):
        super().__init__()
        self.heads = heads
        self.head_size = head_size or dim // heads
        inner = heads * self.head_size
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None,
                segments: list[tuple[int, int]] | None = None) -> torch.Tensor:
        """``x`` ``[batch, time, dim]`` with ``key_mask``, or packed ``[1, N, dim]`` with its ``segments``."""
        dropout = self.dropout if self.training else 0.0
        if segments is not None:
            y = attend_segments(self.q_proj(x), self.k_proj(x), self.v_proj(x), self.heads, segments, dropout)
            return self.out_proj(y)
        q = split_heads(self.q_proj(x), self.heads)
        k = split_heads(self.k_proj(x), self.heads)
        v = split_heads(self.v_proj(x), self.heads)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        return self.out_proj(merge_heads(attend(q, k, v, attn_mask, dropout)))


class FeedForward(nn.Module):
    """Linear -> GELU -> dropout -> Linear -> dropout."""

    def __init__(self, dim: int, hidden: int, activation_dropout: float = 0.0, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.activation_dropout = nn.Dropout(activation_dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(self.activation_dropout(F.gelu(self.fc1(x)))))


class TransformerLayer(nn.Module):
    """One encoder layer, post-LN (SEW, SEW-D, wav2vec 2.0 base) or pre-LN (wav2vec 2.0 large)."""

    def __init__(self, attention: nn.Module, dim: int, ffn_dim: int, *, norm_first: bool, eps: float,
                 dropout: float = 0.0, activation_dropout: float = 0.0):
        super().__init__()
        self.attention = attention
        self.attention_norm = nn.LayerNorm(dim, eps=eps)
        self.ffn = FeedForward(dim, ffn_dim, activation_dropout, dropout)
        self.ffn_norm = nn.LayerNorm(dim, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x: torch.Tensor, **attention_inputs) -> torch.Tensor:
        if self.norm_first:
            x = x + self.dropout(self.attention(self.attention_norm(x), **attention_inputs))
            return x + self.ffn(self.ffn_norm(x))
        x = self.attention_norm(x + self.dropout(self.attention(x, **attention_inputs)))
        return self.ffn_norm(x + self.ffn(x))


class TransformerStack(nn.Module):
    """Layers applied in turn; while training each is skipped with probability ``layerdrop``.

    LayerDrop keeps a layer's input where the coin says drop (``torch.where``): one formula, the
    same eagerly and traced, with no host read of the coin (the dropped layer is still computed).

    A padded batch on a CPU in eager mode (``sew.models.kernels.per_utterance``) runs packed: the
    valid frames of all utterances as one ``[1, N, dim]`` sequence through the layers (products,
    norms and feed-forward blocks do no work on padding and keep their matrices tall), attention
    within each utterance's segment without a mask; padding comes back zero. Elsewhere batched
    with the key mask.
    """

    def __init__(self, layers: list[TransformerLayer], layerdrop: float = 0.0):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.layerdrop = layerdrop

    def attention_inputs(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> dict:
        """What every layer's attention takes besides its input (the key mask; SEW-D adds positions)."""
        return {"key_mask": key_mask}

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None, return_states: bool = False):
        """``x`` ``[batch, time, dim]`` -> (output, the input and every layer's output when asked)."""
        layerdrop = self.layerdrop if self.training else 0.0
        if key_mask is None or not per_utterance(x):
            return run_layers(self.layers, x, self.attention_inputs(x, key_mask), return_states, layerdrop)
        inputs = self.attention_inputs(x, None)  # SEW-D's positions for the padded length
        return run_packed(self.layers, x, key_mask, inputs, return_states, layerdrop)


def run_layers(layers, x: torch.Tensor, inputs: dict, return_states: bool, layerdrop: float = 0.0):
    """``layers`` in turn on ``x`` (each skipped with probability ``layerdrop``): (output, states or None)."""
    states = [x] if return_states else None
    for layer in layers:
        if layerdrop > 0:
            drop = torch.rand((), device=x.device) < layerdrop
            x = torch.where(drop, x, layer(x, **inputs))
        else:
            x = layer(x, **inputs)
        if return_states:
            states.append(x)
    return x, states


def run_packed(layers, x: torch.Tensor, key_mask: torch.Tensor, inputs: dict, return_states: bool,
               layerdrop: float = 0.0):
    """``run_layers`` on the valid frames of a padded batch packed into one ``[1, N, dim]`` sequence, attention
    within each utterance's segment; outputs (and states) unpacked, padding zero. The packed stack of
    training and of the CPU inference variant."""
    segments, unpack = packing(x, key_mask)
    # The packed input is not bound here: the layers' loop frees each activation once the next exists.
    y, states = run_layers(layers, x[key_mask][None], {**inputs, "segments": segments}, return_states, layerdrop)
    return unpack(y), None if states is None else [x] + [unpack(s) for s in states[1:]]


class PositionalConv(nn.Module):
    """Weight-normed grouped Conv1d + GELU: wav2vec 2.0's relative position signal, SEW's downsampler.

    Weight norm is over the kernel dimension (``dim=2``), stored as ``weight_g`` ``[1, 1, k]`` and
    ``weight_v`` ``[out, in / groups, k]``. An even kernel drops its last output frame ("same" padding).
    Input and output are ``[batch, channels, time]``.
    """

    def __init__(self, dim: int, kernel: int, groups: int, stride: int = 1):
        super().__init__()
        self.kernel, self.groups, self.stride = kernel, groups, stride
        std = (4.0 / (kernel * dim)) ** 0.5
        v = torch.randn(dim, dim // groups, kernel) * std
        self.weight_v = nn.Parameter(v)
        self.weight_g = nn.Parameter(v.norm(dim=(0, 1), keepdim=True))
        self.bias = nn.Parameter(torch.zeros(dim))

    def weight(self) -> torch.Tensor:
        v = self.weight_v
        return v * (self.weight_g / v.norm(dim=(0, 1), keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv1d(x, self.weight(), self.bias, stride=self.stride, padding=self.kernel // 2, groups=self.groups)
        if self.kernel % 2 == 0:
            y = y[..., :-1]
        return F.gelu(y)
