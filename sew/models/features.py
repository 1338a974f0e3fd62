"""Waveform feature extractor: a stack of strided 1-D convolutions, 16 kHz samples -> 50 Hz frames.

Two kernels compute the same math, chosen by ``sew.models.kernels`` (device and tracing state,
never grad mode):

* eager on a CPU, one utterance at a time over its valid samples, channels last, each conv one
  matrix product of a ``[frames, kernel * channels]`` window matrix with the weight, and the first
  layer's GroupNorm a plain one over the utterance. No work on padding and no masks; on CPUs the
  window products (forward and backward) are much faster than the batched convolutions
  (docs/results.md, "training speed");
* batched and channels first (``nn.Conv1d``, GroupNorm statistics over valid frames from the
  lengths) on GPUs and whenever a tracer records the model (compile, ONNX export): one graph for
  any lengths.

Valid frames agree to float32 rounding; frames past an utterance's length are zero on the first
kernel and unspecified on the second (everything downstream masks them).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from sew.models.kernels import per_utterance
from sew.models.lengths import conv_output_lengths, lengths_to_mask

# The two stacks of the paper, as (channels, kernel, stride).
WAV2VEC2_CONV_LAYERS = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2


def compact_conv_layers(width: int = 64, extra_1x1: int = 1) -> list[tuple[int, int, int]]:
    """SEW's compact stack WFE-C: widths c, 2c, 2c, 4c, 4c, 8c, 8c with 1x1 convs after each strided conv."""
    c = width
    layers = [(c, 10, 5)]
    for channels, kernel in [(2 * c, 3), (2 * c, 3), (4 * c, 3), (4 * c, 3), (8 * c, 2), (8 * c, 2)]:
        layers.append((channels, kernel, 2))
        layers.extend([(channels, 1, 1)] * extra_1x1)
    return layers


class MaskedGroupNorm(nn.Module):
    """GroupNorm with one group per channel, statistics over each utterance's valid frames only.

    On an unpadded batch (``lengths`` None) this is ``nn.GroupNorm(C, C)``; on a padded one the
    mean and variance of each utterance and channel come from its valid frames alone, which is
    what makes padded batches give the single-utterance result; padding stays zero. In float32.
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        # x: [batch, channels, frames]; lengths [batch]: valid frames, or None when nothing is padded.
        dtype, x = x.dtype, x.float()
        if lengths is None:
            return F.group_norm(x, x.shape[1], self.weight.float(), self.bias.float(), self.eps).to(dtype)
        m = lengths_to_mask(lengths, x.shape[-1])[:, None, :].float()
        count = m.sum(-1, keepdim=True).clamp(min=1.0)
        mean = (x * m).sum(-1, keepdim=True) / count
        var = (((x - mean) * m) ** 2).sum(-1, keepdim=True) / count
        y = (x - mean) * torch.rsqrt(var + self.eps) * self.weight.float()[:, None] + self.bias.float()[:, None]
        return (y * m).to(dtype)


def group_norm_channels_last(norm: MaskedGroupNorm, x: torch.Tensor) -> torch.Tensor:
    """One unpadded utterance ``[frames, channels]``: per-channel statistics over time, then one fused
    scale-and-shift pass. (``F.batch_norm`` computes the same statistics but loses precision over
    long inputs: 2-4e-5 at 80k frames against 7e-7 for this.)"""
    xf = x.float()
    var, mean = torch.var_mean(xf, 0, correction=0)
    scale = norm.weight.float() * torch.rsqrt(var + norm.eps)
    return torch.addcmul(norm.bias.float() - mean * scale, xf, scale).to(x.dtype)


class ConvLayer(nn.Module):
    """Conv1d -> optional norm (GroupNorm or channel LayerNorm) -> GELU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, norm: str | None, bias: bool):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, stride=stride, bias=bias)
        nn.init.kaiming_normal_(self.conv.weight)
        self.norm_type = norm
        if norm == "group":
            self.norm = MaskedGroupNorm(out_channels)
        elif norm == "layer":
            self.norm = nn.LayerNorm(out_channels)
        else:
            self.norm = None

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        x = self.conv(x)
        if self.norm_type == "group":
            x = self.norm(x, lengths)
        elif self.norm_type == "layer":
            x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        return F.gelu(x)

    def forward_frames(self, x: torch.Tensor) -> torch.Tensor:
        """The same layer on one unpadded utterance, channels last: ``[frames, in]`` -> ``[frames', out]``."""
        weight, (stride,) = self.conv.weight, self.conv.stride
        out_channels, in_channels, kernel = weight.shape
        # unfold: [frames', in, kernel] windows, flattened in the weight's own (in, kernel) order
        windows = x if kernel == 1 and stride == 1 else x.unfold(0, kernel, stride).reshape(-1, in_channels * kernel)
        return self.finish_frames(F.linear(windows, weight.reshape(out_channels, -1), self.conv.bias))

    def finish_frames(self, y: torch.Tensor) -> torch.Tensor:
        """Norm and GELU of one utterance's conv output, channels last ``[frames, out]``."""
        if self.norm_type == "group":
            y = group_norm_channels_last(self.norm, y)
        elif self.norm_type == "layer":
            y = self.norm(y)
        return F.gelu(y)


def utterance_frames(specs, waveforms: torch.Tensor, lengths: torch.Tensor | None):
    """Sample lengths (full when None), valid frame lengths and the padded frame count of a batch."""
    batch, samples = waveforms.shape
    if lengths is None:
        lengths = torch.full((batch,), samples, dtype=torch.long, device=waveforms.device)
    return lengths, conv_output_lengths(lengths, specs), int(conv_output_lengths(torch.tensor(samples), specs))


class ConvFeatureExtractor(nn.Module):
    """Raw waveform ``[batch, samples]`` -> features ``[batch, channels, frames]`` with valid frame counts.

    ``norm="group"`` puts a (masked) GroupNorm on the first layer only, ``"layer"`` a LayerNorm on every layer.
    Valid output frames only ever see valid input samples, so padding never leaks into them.
    """

    def __init__(self, layers: Sequence[tuple[int, int, int]], norm: str = "group", bias: bool = False):
        super().__init__()
        self.specs = [tuple(layer) for layer in layers]
        blocks, in_channels = [], 1
        for i, (channels, kernel, stride) in enumerate(self.specs):
            layer_norm = norm if (norm == "layer" or i == 0) else None
            blocks.append(ConvLayer(in_channels, channels, kernel, stride, layer_norm, bias))
            in_channels = channels
        self.layers = nn.ModuleList(blocks)
        self.needs_mask = norm == "group"

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return conv_output_lengths(lengths, self.specs)

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None):
        """``waveforms [batch, samples]``, ``lengths [batch]`` or None -> ``[batch, channels, frames]``, frame lengths."""
        if per_utterance(waveforms):
            return self.forward_utterances(waveforms, lengths)
        return self.forward_batched(waveforms, lengths)

    def forward_utterances(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None):
        """The CPU kernel: each utterance's valid samples through ``ConvLayer.forward_frames``."""
        lengths, frame_lengths, frames = utterance_frames(self.specs, waveforms, lengths)
        outputs = []
        for i, n in enumerate(lengths.tolist()):
            x = waveforms[i, :n, None]
            for layer in self.layers:
                x = layer.forward_frames(x)
            outputs.append(F.pad(x, (0, 0, 0, frames - x.shape[0])))
        return torch.stack(outputs).transpose(1, 2), frame_lengths

    def forward_batched(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None):
        """The batched kernel (GPUs, tracers): ``nn.Conv1d`` over the padded batch."""
        x = waveforms[:, None, :]  # [batch, 1, samples]
        # lengths=None: nothing is padded. Valid frames only see valid samples, so only the
        # first layer's GroupNorm (statistics over time) needs to know the lengths.
        first_lengths = None
        if lengths is not None and self.needs_mask:
            first_lengths = conv_output_lengths(lengths, self.specs[:1])
        for i, layer in enumerate(self.layers):
            x = layer(x, first_lengths if i == 0 else None)
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[-1], dtype=torch.long, device=x.device)
        else:
            lengths = self.output_lengths(lengths)
        return x, lengths
