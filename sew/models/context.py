"""Context networks: SEW's squeeze (downsample, transformer at half rate, upsample) and wav2vec 2.0's.

Both take projected features ``[batch, frames, dim]`` with valid ``lengths`` and return the
context ``[batch, frames, dim]`` at the input frame rate, zero beyond each valid length. The
lengths always come with the features (full lengths when nothing is padded); every mask here is
built from them by ``sew.models.lengths``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from sew.models.lengths import lengths_to_mask, squeezed_lengths
from sew.models.transformer import PositionalConv, TransformerStack


def attention_key_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """Valid keys ``[batch, frames]``; an utterance with no valid frame keeps its first key so softmax stays finite."""
    return lengths_to_mask(lengths.clamp(min=1), frames)


class Upsample(nn.Module):
    """Linear(D, s*D) + GELU, then each squeezed frame becomes s frames: ``[b, t, s*D] -> [b, t*s, D]``."""

    def __init__(self, dim: int, factor: int):
        super().__init__()
        self.factor = factor
        self.proj = nn.Linear(dim, dim * factor)
        nn.init.kaiming_normal_(self.proj.weight, mode="fan_out")
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        return F.gelu(self.proj(x)).reshape(b, t * self.factor, d)


def fit_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Zero-pad (or crop) ``[batch, time, dim]`` to ``frames`` time steps."""
    if x.shape[1] < frames:
        return F.pad(x, (0, 0, 0, frames - x.shape[1]))
    return x[:, :frames]


class SqueezeContextNetwork(nn.Module):
    """SEW / SEW-D context network.

    squeeze: ``x = AvgPool(s)(x) + PositionalConv(stride=s)(x)`` (frames -> floor(frames / s)),
    [SEW only] LayerNorm + dropout, the transformer at the reduced rate, then ``Upsample`` back
    to the input rate. Output frames from ``s * floor(L / s)`` on are zero, as in the official code
    (an odd frame count leaves its last frame empty).
    """

    def __init__(self, dim: int, transformer: TransformerStack, *, factor: int, pos_conv_kernel: int,
                 pos_conv_groups: int, norm_eps: float | None, dropout: float = 0.0):
        super().__init__()
        self.factor = factor
        self.pool = nn.AvgPool1d(factor, factor)
        self.pos_conv = PositionalConv(dim, pos_conv_kernel, pos_conv_groups, stride=factor)
        self.norm = nn.LayerNorm(dim, eps=norm_eps) if norm_eps is not None else None
        self.dropout = nn.Dropout(dropout)
        self.transformer = transformer
        self.upsample = Upsample(dim, factor)

    def squeeze(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, frames, dim]`` (padding already zero) -> ``[batch, frames // s, dim]``."""
        x = x.transpose(1, 2)
        pooled = self.pool(x)
        x = pooled + self.pos_conv(x)[..., : pooled.shape[-1]]
        return x.transpose(1, 2)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, return_states: bool = False):
        frames = x.shape[1]
        x = x.masked_fill(~lengths_to_mask(lengths, frames)[..., None], 0.0)
        if frames < self.factor:  # less than one squeeze window: pad to one (fully masked) squeezed frame
            x = fit_frames(x, self.factor)
        x = self.squeeze(x)
        short = squeezed_lengths(lengths, self.factor)
        if self.norm is not None:
            x = self.norm(x)
        x = self.dropout(x)
        x, states = self.transformer(x, attention_key_mask(short, x.shape[1]), return_states)
        y = fit_frames(self.upsample(x), frames)  # an odd last frame stays zero
        return y.masked_fill(~lengths_to_mask(short * self.factor, frames)[..., None], 0.0), states


class Wav2Vec2ContextNetwork(nn.Module):
    """wav2vec 2.0 context network: add the positional conv, LayerNorm before (post-LN) or after (pre-LN) the layers."""

    def __init__(self, dim: int, transformer: TransformerStack, *, pos_conv_kernel: int, pos_conv_groups: int,
                 norm_eps: float, norm_first: bool, dropout: float = 0.0):
        super().__init__()
        self.pos_conv = PositionalConv(dim, pos_conv_kernel, pos_conv_groups)
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.norm_first = norm_first
        self.dropout = nn.Dropout(dropout)
        self.transformer = transformer

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, return_states: bool = False):
        mask = lengths_to_mask(lengths, x.shape[1])
        x = x.masked_fill(~mask[..., None], 0.0)
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not self.norm_first:
            x = self.norm(x)
        x = self.dropout(x)
        x, states = self.transformer(x, attention_key_mask(lengths, x.shape[1]), return_states)
        if self.norm_first:  # pre-LN: the final norm is the output's; states[-1] stays the last layer's own
            x = self.norm(x)   # output, as transformers 5 returns it (and weights it in its classifiers)
        return x.masked_fill(~mask[..., None], 0.0), states
