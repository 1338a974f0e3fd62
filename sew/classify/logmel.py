"""The log-mel baseline: the classification head of ``SequenceClassifier`` on 80 log-mel filterbanks.

The reference point of the downstream benchmark's frozen probes (SUPERB's FBANK row): 25 ms windows
every 10 ms, a per-frame LayerNorm (keeps the spectral shape, drops the level), then the same
projector, pooling over valid frames (``pooling``) and linear classifier as the encoders' probes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from sew.data.mel import mel_filters
from sew.files import save_tensors, write_json
from sew.models.classifier import POOLINGS, ClassifierOutput, pool_frames, pooled_size

CONFIG_NAME = "logmel_config.json"


@dataclass
class LogMelConfig:
    labels: list[str] = field(default_factory=list)
    n_mels: int = 80
    proj_size: int = 256
    n_fft: int = 400
    hop: int = 160
    pooling: str = "mean"  # or "mean_std", as ClassifierConfig.pooling

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"log-mel config field 'pooling': got {self.pooling!r}, expected one of {', '.join(POOLINGS)}")

    def to_dict(self) -> dict:  # what the trainer's checkpoints store as the model's config
        return dict(vars(self))


class LogMelClassifier(nn.Module):
    """``forward(waveforms, lengths)`` -> an object with ``logits [batch, labels]`` (as ``SequenceClassifier``)."""

    def __init__(self, config: LogMelConfig):
        super().__init__()
        self.config = config
        self.register_buffer("filters", mel_filters(config.n_mels, config.n_fft), persistent=False)
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)
        self.norm = nn.LayerNorm(config.n_mels)
        self.projector = nn.Linear(config.n_mels, config.proj_size)
        self.classifier = nn.Linear(pooled_size(config.proj_size, config.pooling), len(config.labels))

    @property
    def labels(self) -> list[str]:
        return list(self.config.labels)

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        c = self.config
        return (torch.div(lengths - c.n_fft, c.hop, rounding_mode="floor") + 1).clamp(min=0)

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None, **_):
        c = self.config
        if lengths is None:
            lengths = torch.full((waveforms.shape[0],), waveforms.shape[1], device=waveforms.device)
        frames = waveforms.unfold(1, c.n_fft, c.hop) * self.window  # [batch, frames, n_fft], no centre padding
        power = torch.fft.rfft(frames, dim=-1).abs() ** 2
        x = self.norm(torch.log(power @ self.filters + 1e-6))
        frame_lengths = self.frame_lengths(lengths.to(waveforms.device))
        pooled = pool_frames(self.projector(x), frame_lengths, self.config.pooling)
        return ClassifierOutput(logits=self.classifier(pooled), pooled=pooled, lengths=frame_lengths)


def save_logmel(model: LogMelClassifier, directory: str | Path, **meta) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_tensors(directory / "model.safetensors", model.state_dict(), metadata={"format": "sew-logmel"})
    write_json(directory / CONFIG_NAME, {"logmel": vars(model.config), **meta})


def load_logmel(directory: str | Path) -> LogMelClassifier:
    """A baseline written by ``save_logmel``."""
    from sew.checkpoint import read_model_json
    from sew.config import from_mapping
    from sew.files import load_checked, read_state_dict

    directory = Path(directory)
    meta = read_model_json(directory, CONFIG_NAME)
    model = LogMelClassifier(from_mapping(LogMelConfig, meta["logmel"], str(directory / CONFIG_NAME)))
    load_checked(model, read_state_dict(directory / "model.safetensors"), str(directory / "model.safetensors"))
    return model
