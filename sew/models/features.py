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

    ``nn.GroupNorm(C, C)`` whose mean and variance of each utterance and channel come from its valid
    frames alone, which is what makes padded batches give the single-utterance result; padding stays
    zero. In float32.
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # x: [batch, channels, frames]; lengths [batch]: valid frames.
        dtype, x = x.dtype, x.float()
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


class _OverlappingWindows(torch.autograd.Function):
    """Overlapping windows as one strided copy (the fastest copy measured); the backward adds each of
    the ``kernel`` frame offsets back in place (faster than the backward of unfold, as_strided or a
    concatenation of strided slices)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
        x = x.contiguous()
        frames, channels = (x.shape[0] - kernel) // stride + 1, x.shape[1]
        ctx.geometry = (x.shape[0], channels, kernel, stride, frames)
        return x.as_strided((frames, kernel * channels), (stride * channels, 1), x.storage_offset()).contiguous()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        samples, channels, kernel, stride, frames = ctx.geometry
        grad = grad.view(frames, kernel, channels)
        out = grad.new_zeros(samples, channels)
        for j in range(kernel):
            out[j: j + stride * (frames - 1) + 1: stride] += grad[:, j]
        return out, None, None


def window_matrix(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Channels-last frames ``[frames, in]`` -> conv windows ``[frames', kernel * in]``, row t holding frames
    ``stride * t .. stride * t + kernel - 1`` one after another: a view when windows do not overlap
    (``kernel == stride``, 1x1 convs included), else a copy."""
    if kernel == stride:
        frames = (x.shape[0] - kernel) // stride + 1
        return x[: frames * stride].reshape(frames, -1)
    return _OverlappingWindows.apply(x, kernel, stride)


def conv_matrix(weight: torch.Tensor) -> torch.Tensor:
    """Conv1d weight ``[out, in, kernel]`` as the ``[out, kernel * in]`` matrix that multiplies ``window_matrix``."""
    return weight.permute(0, 2, 1).reshape(weight.shape[0], -1)


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

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The batched kernel: ``[batch, in, frames]`` -> ``[batch, out, frames']``; ``lengths``: valid output frames."""
        x = self.conv(x)
        if self.norm_type == "group":
            x = self.norm(x, lengths)
        elif self.norm_type == "layer":
            x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        return F.gelu(x)

    def forward_frames(self, x: torch.Tensor, product=None, block_rows: int | None = None) -> torch.Tensor:
        """The same layer on one unpadded utterance, channels last: ``[frames, in]`` -> ``[frames', out]``.

        Each output frame is one row of the window matrix (``window_matrix``) times the weight as a
        ``[out, kernel * in]`` matrix (``conv_matrix``): ``product(windows)`` when given (the CPU
        inference variant's packed weight), else ``F.linear``. ``block_rows`` (inference only: it
        writes into one output) makes and multiplies that many rows of windows at a time, so the
        copy of overlapping windows stays small."""
        weight, (stride,) = self.conv.weight, self.conv.stride
        out_channels, _, kernel = weight.shape
        if product is None:
            def product(windows):
                return F.linear(windows, conv_matrix(weight), self.conv.bias)
        frames = (x.shape[0] - kernel) // stride + 1
        if block_rows is None or frames <= block_rows or kernel == stride:  # a view: nothing to bound
            return self.finish_frames(product(window_matrix(x, kernel, stride)))
        y = x.new_empty(frames, out_channels)
        for start in range(0, frames, block_rows):
            rows = min(block_rows, frames - start)
            y[start: start + rows] = product(window_matrix(x[start * stride: (start + rows - 1) * stride + kernel],
                                                           kernel, stride))
        return self.finish_frames(y)

    def finish_frames(self, y: torch.Tensor) -> torch.Tensor:
        """Norm and GELU of one utterance's conv output, channels last ``[frames, out]``."""
        if self.norm_type == "group":
            y = group_norm_channels_last(self.norm, y)
        elif self.norm_type == "layer":
            y = self.norm(y)
        return F.gelu(y)


def utterance_features(specs, layers, waveforms: torch.Tensor, lengths: torch.Tensor, run_layer=None):
    """The per-utterance CPU kernel of ``ConvFeatureExtractor``: each utterance's valid samples through
    the layers channels last (``run_layer(i, layer, x)``, default ``layer.forward_frames(x)``), written
    into a zero ``[batch, channels, frames]`` batch; returns it and the valid frame counts."""
    frame_lengths = conv_output_lengths(lengths, specs)
    frames = int(conv_output_lengths(torch.tensor(waveforms.shape[1]), specs))
    out = waveforms.new_zeros(len(frame_lengths), frames, specs[-1][0])  # channels last
    for i, (n, f) in enumerate(zip(lengths.tolist(), frame_lengths.tolist())):
        if f > 0:
            x = waveforms[i, :n, None]
            for index, layer in enumerate(layers):
                x = layer.forward_frames(x) if run_layer is None else run_layer(index, layer, x)
            out[i, :f] = x
    return out.transpose(1, 2), frame_lengths


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

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return conv_output_lengths(lengths, self.specs)

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor):
        """``waveforms [batch, samples]``, valid ``lengths [batch]`` -> ``[batch, channels, frames]``, frame lengths."""
        if per_utterance(waveforms):
            return self.forward_utterances(waveforms, lengths)
        return self.forward_batched(waveforms, lengths)

    def forward_utterances(self, waveforms: torch.Tensor, lengths: torch.Tensor):
        """The CPU kernel: each utterance's valid samples through ``ConvLayer.forward_frames``."""
        return utterance_features(self.specs, self.layers, waveforms, lengths)

    def forward_batched(self, waveforms: torch.Tensor, lengths: torch.Tensor):
        """The batched kernel (GPUs, tracers): ``nn.Conv1d`` over the padded batch. Valid frames only see
        valid samples, so only the first layer's GroupNorm (statistics over time) needs the lengths."""
        x = waveforms[:, None, :]  # [batch, 1, samples]
        first_lengths = conv_output_lengths(lengths, self.specs[:1])
        for layer in self.layers:
            x = layer(x, first_lengths)
        return x, self.output_lengths(lengths)
