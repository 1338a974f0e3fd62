"""Distractor sampling for the contrastive loss: other masked frames of the same utterance.

Masked frames are flattened in row-major order (``time_mask.nonzero()``) into ``N`` rows; a
negative is a row index. Never padding (padding is never masked), never the row itself.
"""

from __future__ import annotations

import torch


def sample_negatives(time_mask: torch.Tensor, num_negatives: int,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """``time_mask [B, T] bool`` -> ``[N, num_negatives]`` int64 row indices, uniform over the other masked rows.

    An utterance with a single masked frame has no other frame to draw from: its row points to
    itself and the loss gives that negative -inf (it equals the positive), as fairseq would.
    """
    counts = time_mask.sum(1)  # [B] masked frames per utterance
    starts = torch.cumsum(counts, 0) - counts  # first row of each utterance
    utt = torch.repeat_interleave(torch.arange(time_mask.shape[0], device=time_mask.device), counts)  # [N]
    n = counts[utt]  # [N] masked frames of the row's utterance
    local = torch.arange(utt.numel(), device=time_mask.device) - starts[utt]  # [N] position inside it
    u = torch.rand((utt.numel(), num_negatives), generator=generator, dtype=torch.float64,
                   device="cpu" if generator is None else generator.device).to(time_mask.device)
    others = (n - 1).clamp(min=1)[:, None]
    draw = (u * others).floor().long().clamp(max=others - 1)  # uniform in [0, n - 2]
    draw = draw + (draw >= local[:, None]).long()  # skip the row itself
    draw = torch.where((n > 1)[:, None], draw, local[:, None])
    return starts[utt][:, None] + draw
