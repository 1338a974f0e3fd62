"""CTC loss and the prior initialisation of the CTC head.

``ctc_loss`` always runs in float32 (under autocast too) with ``zero_infinity``, so an
utterance whose transcript cannot fit its frames contributes nothing instead of inf.

``prior_bias`` is the initialisation that keeps post-LN encoders (SEW, SEW-D, wav2vec 2.0
base) from collapsing to a constant output when CTC is trained from scratch: the head's bias
is set to the log of the distribution the model would otherwise learn first (the "blank
plateau"): per output frame, the share of each character in the training transcripts and,
for the blank, the share of frames that emit no character. The model then starts on the
plateau and has no reason to make its output constant over time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch.nn import functional as F

from sew.data.text import Vocabulary


def ctc_loss(logits: torch.Tensor, frame_lengths: torch.Tensor, targets: torch.Tensor,
             target_lengths: torch.Tensor, *, blank: int = 0, reduction: str = "mean") -> torch.Tensor:
    """CTC loss in float32 with ``zero_infinity``.

    ``logits [B, T, V]``, ``frame_lengths [B]``, ``targets [B, S]`` (padded with any negative
    id, e.g. -100), ``target_lengths [B]``. ``reduction``: ``"mean"`` (per utterance, each
    utterance's loss divided by its target length, then averaged: fairseq's ``sentence_avg``
    with torch's normalisation), ``"sum"`` or ``"none"`` (``[B]``).
    """
    with torch.autocast(device_type=logits.device.type, enabled=False):
        log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # [T, B, V]
        flat = targets[targets >= 0] if targets.dim() == 2 else targets
        losses = F.ctc_loss(log_probs, flat.long(), frame_lengths.long(), target_lengths.long(), blank=blank,
                            reduction="none", zero_infinity=True)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    if reduction == "mean":
        return (losses / target_lengths.clamp(min=1).to(losses.dtype)).mean()
    raise ValueError(f"ctc_loss reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def prior_bias(vocab: Vocabulary, transcripts: Iterable[str], total_frames: int, floor: float = 1e-4) -> torch.Tensor:
    """Log plateau distribution ``[V]``: log(per-frame share) of each symbol, blank = frames without a symbol.

    ``total_frames``: output frames of all training utterances (``model.output_lengths(...).sum()``).
    Symbols never seen (and ``<s>``, ``</s>``, ``<unk>``) get ``log(floor)``.
    """
    counts = torch.tensor(vocab.character_counts(transcripts), dtype=torch.float64)
    emitted = float(counts.sum())
    if total_frames <= emitted:
        raise ValueError(f"the training transcripts have {int(emitted)} characters but the audio only "
                         f"{total_frames} output frames; CTC cannot align them (check the transcripts)")
    counts[vocab.blank_id] = total_frames - emitted
    return torch.log((counts / total_frames).clamp(min=floor)).float()


def init_prior_bias(model, vocab: Vocabulary, transcripts: Sequence[str], sample_lengths: Sequence[int]) -> torch.Tensor:
    """Set ``model.ctc_head.proj.bias`` to ``prior_bias`` for this training set; returns the bias."""
    if model.ctc_head is None:
        raise ValueError("the model has no CTC head (vocab_size is not set)")
    frames = int(model.output_lengths(torch.tensor(list(sample_lengths), dtype=torch.long)).sum())
    bias = prior_bias(vocab, transcripts, frames)
    if bias.numel() != model.ctc_head.proj.out_features:
        raise ValueError(f"vocabulary of {bias.numel()} symbols but the CTC head has {model.ctc_head.proj.out_features}")
    with torch.no_grad():
        model.ctc_head.proj.bias.copy_(bias)
    return bias

