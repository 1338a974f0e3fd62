"""Conv features for CPU inference: the reference's per-utterance kernel with packed weights.

The math is ``ConvLayer.forward_frames`` (each utterance's valid samples, channels last, each conv
one window product), run by ``utterance_features``; what this variant adds is inference-only: each
product on oneDNN with the weight reordered once where ``sew.cpu`` prefers it (docs/cpu-paths.md),
and overlapping windows copied a block of rows at a time, so the copy stays in cache.
"""

from __future__ import annotations

import torch
from torch import nn

from sew.inference.packed import InferenceOnly, PackedWeight, linear_product
from sew.models.features import ConvFeatureExtractor, ConvLayer, conv_matrix, utterance_features
from sew.models.lengths import conv_output_lengths

WINDOW_BYTES = 16 * 2**20  # the most copied conv windows held at once


def packed_conv(layer: ConvLayer, x: torch.Tensor, packed: PackedWeight) -> torch.Tensor:
    """``layer`` on one unpadded utterance ``[frames, in]``, its product on the packed weight."""
    weight, bias = layer.conv.weight, layer.conv.bias
    rows = max(1, WINDOW_BYTES // (weight[0].numel() * x.element_size()))
    return layer.forward_frames(x, lambda windows: linear_product(windows, weight, bias, packed, conv_matrix), rows)


class ChannelsLastFeatureExtractor(InferenceOnly, nn.Module):
    """A ``ConvFeatureExtractor``'s layers (shared, same state-dict keys) with packed conv products."""

    def __init__(self, extractor: ConvFeatureExtractor):
        super().__init__()
        self.specs = extractor.specs
        self.layers = extractor.layers
        self.packed = [PackedWeight() for _ in self.layers]

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return conv_output_lengths(lengths, self.specs)

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor):
        """As ``ConvFeatureExtractor.forward``: ``[batch, channels, frames]`` (zero past each length), frame lengths."""
        return utterance_features(self.specs, self.layers, waveforms, lengths,
                                  lambda i, layer, x: packed_conv(layer, x, self.packed[i]))

    def train(self, mode: bool = True):
        for packed in self.packed:
            packed.clear()
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs):
        for packed in self.packed:
            packed.clear()
        return super()._load_from_state_dict(*args, **kwargs)
