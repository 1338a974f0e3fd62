"""Transcribe audio files of any length: overlapping chunks, logits stitched at frame level.

A file longer than ``chunk_seconds`` is cut into windows of at most ``chunk_seconds``; each
window keeps ``context_seconds`` of audio on both sides of the part it is responsible for (its
core), and only the core's frames are kept. Window starts are multiples of the model's frame
stride (times the squeeze factor for SEW / SEW-D), so every kept frame is the same frame the
whole file would give, seen with ``context_seconds`` of context on each side. Model memory
is bounded by the window, whatever the file length; the stitched logits take
``frames x vocab`` floats (30,000 x 32 for 10 minutes, under 4 MB).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from sew.data.audio import load_input



@torch.no_grad()
def chunked_logits(model, waveform: torch.Tensor, *, chunk_seconds: float = 30.0, context_seconds: float = 5.0,
                   device: str | torch.device = "cpu") -> torch.Tensor:
    """Logits ``[frames, vocab]`` of one waveform ``[samples]`` (float32, 16 kHz), in chunks when long."""
    cfg = model.config
    samples = int(waveform.shape[-1])
    unit = cfg.frame_stride * (cfg.squeeze_factor if cfg.squeezes else 1)
    chunk = int(chunk_seconds * 16000) // unit * unit
    context = int(round(context_seconds * 16000 / unit)) * unit
    core = chunk - 2 * context
    if core < unit:
        raise ValueError(f"chunk_seconds={chunk_seconds} leaves no audio between the {context_seconds} s "
                         "contexts; use chunk_seconds > 2 * context_seconds")

    def run(piece: torch.Tensor) -> torch.Tensor:
        return model(piece[None].to(device)).logits[0].float().cpu()

    if samples <= chunk:
        return run(waveform)
    total = int(model.output_lengths(torch.tensor([samples]))[0])
    pieces, start = [], 0
    while start < samples:
        end = min(start + core, samples)
        lo, hi = max(start - context, 0), min(end + context, samples)
        logits = run(waveform[lo:hi])
        first = (start - lo) // cfg.frame_stride  # frame index of the core's start inside the window
        last = total - lo // cfg.frame_stride if end == samples else (end - lo) // cfg.frame_stride
        pieces.append(logits[first:last])
        start = end
    out = torch.cat(pieces)
    if out.shape[0] != total:  # never expected; a wrong length would misalign the transcript
        raise RuntimeError(f"stitched {out.shape[0]} frames but the file has {total}")
    return out


@dataclass
class Transcript:
    """The result for one file: ``text`` (None when it failed), a ``message`` for the user when any."""

    path: str
    text: str | None
    seconds: float = 0.0
    message: str | None = None


def transcribe_files(model, decoder, paths: Iterable[str], *, chunk_seconds: float = 30.0,
                     context_seconds: float = 5.0, device: str | torch.device = "cpu") -> Iterator[Transcript]:
    """Transcribe each file; a bad file yields a ``Transcript`` with ``text=None`` and the reason, never raises."""
    for path in paths:
        wave, seconds, message = load_input(path, model.config.receptive_field)
        if wave is None:
            yield Transcript(path, None, seconds, message)
            continue
        if message:
            message += "; the transcript is empty"
        logits = chunked_logits(model, torch.from_numpy(np.ascontiguousarray(wave)), chunk_seconds=chunk_seconds,
                                context_seconds=context_seconds, device=device)
        text = decoder(logits[None])[0]
        yield Transcript(path, "" if message else text, seconds, message)
