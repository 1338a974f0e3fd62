"""Lengths and masks: every place that needs a padding mask derives it here, from lengths."""

from __future__ import annotations

from typing import Sequence

import torch


def lengths_to_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """``[batch]`` valid lengths -> ``[batch, max_length]`` bool mask, True on valid positions."""
    positions = torch.arange(max_length, device=lengths.device)
    return positions[None, :] < lengths[:, None]


def conv_output_lengths(lengths: torch.Tensor, layers: Sequence[tuple[int, int, int]]) -> torch.Tensor:
    """Valid output frames after a stack of unpadded convs: floor((L - k) / s) + 1 per layer, never negative."""
    for _, kernel, stride in layers:
        lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
        lengths = lengths.clamp(min=0)
    return lengths


def squeezed_lengths(lengths: torch.Tensor, factor: int) -> torch.Tensor:
    """Valid frames after squeezing by ``factor``: only frames whose whole pooling window is valid."""
    return torch.div(lengths, factor, rounding_mode="floor")
