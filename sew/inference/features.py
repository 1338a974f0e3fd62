"""Conv features for CPU inference: one utterance at a time, channels last, each conv one matrix product.

Each utterance runs on its valid samples only (a padded batch does no work on padding) and each
conv is one product of a ``[frames, kernel * channels]`` window matrix with the weight, on oneDNN
where ``sew.cpu`` prefers it: faster than the batched convs on both CPU generations measured
(docs/cpu-paths.md), and buffers small enough to stay in cache.
"""

from __future__ import annotations

import torch
from torch import nn

from sew.inference.packed import InferenceOnly, PackedWeight, linear_product
from sew.models.features import ConvFeatureExtractor, ConvLayer, utterance_frames
from sew.models.lengths import conv_output_lengths

WINDOW_BYTES = 16 * 2**20  # the most copied conv windows held at once


def conv_matrix(weight: torch.Tensor) -> torch.Tensor:
    """Conv1d weight ``[out, in, k]`` as the matrix ``[out, k * in]`` that multiplies windows of k
    channels-last frames."""
    return weight.permute(0, 2, 1).reshape(weight.shape[0], -1)


def conv_channels_last(layer: ConvLayer, x: torch.Tensor, packed: PackedWeight) -> torch.Tensor:
    """``layer`` on one unpadded utterance, channels last: ``[frames, in]`` -> ``[frames', out]``.

    Window t is frames s*t .. s*t+k-1, i.e. k*in consecutive numbers of the contiguous input (a
    strided view, copied when windows overlap, a block of rows at a time so the copy stays small).
    """
    weight, (stride,) = layer.conv.weight, layer.conv.stride
    out_channels, in_channels, kernel = weight.shape
    x = x.contiguous()
    frames = (x.shape[0] - kernel) // stride + 1
    windows = x.as_strided((frames, kernel * in_channels), (stride * in_channels, 1), x.storage_offset())
    rows = frames if windows.is_contiguous() else max(1, WINDOW_BYTES // (windows.shape[1] * windows.element_size()))
    if frames <= rows:
        y = linear_product(windows.contiguous(), weight, layer.conv.bias, packed, conv_matrix)
    else:
        y = windows.new_empty(frames, out_channels)
        for start in range(0, frames, rows):
            block = windows[start: start + rows].contiguous()
            y[start: start + rows] = linear_product(block, weight, layer.conv.bias, packed, conv_matrix)
    return layer.finish_frames(y)


class ChannelsLastFeatureExtractor(InferenceOnly, nn.Module):
    """A ``ConvFeatureExtractor``'s layers (shared, same state-dict keys) run utterance by utterance, channels last."""

    def __init__(self, extractor: ConvFeatureExtractor):
        super().__init__()
        self.specs = extractor.specs
        self.layers = extractor.layers
        self.packed = [PackedWeight() for _ in self.layers]

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return conv_output_lengths(lengths, self.specs)

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None):
        """As ``ConvFeatureExtractor.forward``: ``[batch, channels, frames]`` (zero past each length), frame lengths."""
        lengths, frame_lengths, frames = utterance_frames(self.specs, waveforms, lengths)
        out = waveforms.new_zeros(len(lengths), frames, self.specs[-1][0])  # channels last
        for i, (n, f) in enumerate(zip(lengths.tolist(), frame_lengths.tolist())):
            if f > 0:
                x = waveforms[i, :n, None]
                for layer, packed in zip(self.layers, self.packed):
                    x = conv_channels_last(layer, x, packed)
                out[i, :f] = x
        return out.transpose(1, 2), frame_lengths

    def train(self, mode: bool = True):
        for packed in self.packed:
            packed.clear()
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs):
        for packed in self.packed:
            packed.clear()
        return super()._load_from_state_dict(*args, **kwargs)
