"""Mel filterbanks: the log-mel baseline classifier and BEST-RQ's targets both use them."""

from __future__ import annotations

import numpy as np
import torch


def mel_filters(n_mels: int, n_fft: int, sample_rate: int = 16000) -> torch.Tensor:
    """HTK-mel triangular filters ``[n_fft // 2 + 1, n_mels]`` from 0 Hz to Nyquist."""
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    edges = 700.0 * (10 ** (np.linspace(0.0, mel(sample_rate / 2), n_mels + 2) / 2595.0) - 1.0)
    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None] - lower) / (centre - lower)
    falling = (upper - freqs[None]) / (upper - centre)
    return torch.tensor(np.maximum(0.0, np.minimum(rising, falling)).T, dtype=torch.float32)
