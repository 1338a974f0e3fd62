"""SpecAugment-style masks for the encoder input, padding-aware and seeded.

Both fine-tuning (time and channel masks, replaced by the learned mask embedding / zeros in
``SpeechEncoder.apply_masks``) and pretraining (the masked frames are the prediction targets)
draw their masks here. Masks live at the rate of the projected features (50 Hz for every
preset), i.e. ``model.output_lengths(sample_lengths)`` frames per utterance.

The recipe is fairseq's ``compute_mask_indices`` with ``mask_type="static"`` and overlapping
spans allowed: an utterance of ``n`` valid frames gets ``int(mask_prob * n / mask_length + u)``
spans (``u`` uniform in [0, 1), at least ``min_masks``), each ``mask_length`` frames long, with
distinct start frames drawn uniformly from ``[0, n - mask_length]``. Spans never reach the padding.
Every random number comes from the ``torch.Generator`` passed in, so a mask is reproducible from
a seed (the training loop derives one per update, which keeps resumed runs exact).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class MaskingConfig:
    """Mask settings, named as in fairseq / the official SEW recipe (0 disables a kind)."""

    mask_prob: float = 0.0  # expected share of frames covered by time masks (before overlaps)
    mask_length: int = 10  # frames per time span
    min_masks: int = 0  # at least this many time spans per utterance (when it is long enough)
    mask_channel_prob: float = 0.0
    mask_channel_length: int = 64
    min_channel_masks: int = 0
    # No masks before this update: from random weights on real speech the masks hold back a run that is
    # still far from fitting its data (docs/results.md, issue 34); they regularise once it learns.
    start_update: int = 0

    def __post_init__(self) -> None:
        for name in ("mask_prob", "mask_channel_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"masking field '{name}': got {value}, expected a probability in [0, 1]")
        for name in ("mask_length", "mask_channel_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"masking field '{name}': must be at least 1, got {getattr(self, name)}")
        if self.start_update < 0:
            raise ValueError(f"masking field 'start_update': must not be negative, got {self.start_update}")


def _span_mask(n_valid: int, width: int, prob: float, span: int, min_spans: int,
               generator: torch.Generator) -> torch.Tensor:
    """One row ``[width]`` bool: spans of ``span`` positions inside ``[0, n_valid)``."""
    row = torch.zeros(width, dtype=torch.bool)
    if n_valid <= 0 or (prob <= 0.0 and min_spans <= 0):
        return row
    span = min(span, n_valid)  # an utterance shorter than one span gets one span over all of it, at most
    u = float(torch.rand((), generator=generator))
    count = max(int(prob * n_valid / span + u), min_spans)
    starts_available = n_valid - span + 1
    count = min(count, starts_available)
    if count <= 0:
        return row
    starts = torch.randperm(starts_available, generator=generator)[:count]
    index = (starts[:, None] + torch.arange(span)[None, :]).reshape(-1)
    row[index] = True
    return row


def compute_time_mask(frame_lengths: torch.Tensor, num_frames: int, mask_prob: float, mask_length: int,
                      min_masks: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Time mask ``[batch, num_frames]`` bool for utterances of ``frame_lengths`` ``[batch]`` valid frames.

    True marks a masked frame; frames at or beyond an utterance's length are never masked.
    """
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    lengths = frame_lengths.detach().cpu().long().tolist()
    if any(n > num_frames for n in lengths):
        raise ValueError(f"frame_lengths {lengths} exceed num_frames={num_frames}")
    rows = [_span_mask(n, num_frames, mask_prob, mask_length, min_masks, generator) for n in lengths]
    return torch.stack(rows).to(frame_lengths.device) if rows else torch.zeros(0, num_frames, dtype=torch.bool)


def compute_channel_mask(batch: int, dim: int, mask_channel_prob: float, mask_channel_length: int,
                         min_masks: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Channel mask ``[batch, dim]`` bool: spans of ``mask_channel_length`` channels per utterance."""
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    rows = [_span_mask(dim, dim, mask_channel_prob, mask_channel_length, min_masks, generator) for _ in range(batch)]
    return torch.stack(rows) if rows else torch.zeros(0, dim, dtype=torch.bool)


def compute_masks(cfg: MaskingConfig, frame_lengths: torch.Tensor, num_frames: int, dim: int,
                  generator: torch.Generator) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(time_mask [B, num_frames] | None, channel_mask [B, dim] | None)`` per ``cfg``; None when off."""
    time_mask = channel_mask = None
    device = frame_lengths.device
    if cfg.mask_prob > 0 or cfg.min_masks > 0:
        time_mask = compute_time_mask(frame_lengths, num_frames, cfg.mask_prob, cfg.mask_length,
                                      cfg.min_masks, generator)
    if cfg.mask_channel_prob > 0 or cfg.min_channel_masks > 0:
        channel_mask = compute_channel_mask(len(frame_lengths), dim, cfg.mask_channel_prob, cfg.mask_channel_length,
                                            cfg.min_channel_masks, generator).to(device)
    return time_mask, channel_mask


def update_generator(seed: int, update: int, rank: int = 0) -> torch.Generator:
    """A CPU generator for one update (and process): masks depend only on (seed, update, rank)."""
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(update)) * 131 + int(rank))


def batch_masks(cfg: MaskingConfig, model, batch, generator: torch.Generator, update: int):
    """``compute_masks`` for a padded training ``batch`` at ``model``'s frame rate (``model`` has
    ``output_lengths`` and ``config.hidden_size``: an encoder or a classifier); none before
    ``cfg.start_update``."""
    if update < cfg.start_update:
        return None, None
    frames = int(model.output_lengths(torch.tensor([batch.waveforms.shape[1]]))[0])
    return compute_masks(cfg, model.output_lengths(batch.lengths), frames, model.config.hidden_size, generator)
