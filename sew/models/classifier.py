"""Utterance classification: an encoder, a projection, pooling over valid frames, a linear classifier.

The head of ``transformers``' ``SEWForSequenceClassification`` / ``SEWDForSequenceClassification`` /
``Wav2Vec2ForSequenceClassification`` (same parameter names: ``layer_weights``, ``projector``,
``classifier``), with padding handled from lengths, so a padded batch gives each utterance's logits
alone:

* without the weighted sum, the 50 Hz ``last_hidden_state`` is pooled over the encoder's valid
  frames (``EncoderOutput.lengths``);
* with ``use_weighted_layer_sum``, the ``num_layers + 1`` hidden states as the encoder returns them
  (at 25 Hz for SEW / SEW-D, as transformers weights them; 50 Hz for wav2vec 2.0) are summed with
  ``softmax(layer_weights)`` and pooled over the squeezed valid frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sew.config import from_mapping, to_mapping
from sew.models.config import EncoderConfig
from sew.models.encoder import SpeechEncoder, _init_weights
from sew.models.lengths import lengths_to_mask, squeezed_lengths


POOLINGS = ("mean", "mean_std")
STD_EPS = 1e-5  # keeps the standard deviation differentiable on a constant stretch


def pooled_size(proj_size: int, pooling: str) -> int:
    """Width of ``pool_frames``' output for ``proj_size``-wide frames: the classifier's inputs."""
    return proj_size * (2 if pooling == "mean_std" else 1)


def pool_frames(x: torch.Tensor, lengths: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """``x`` ``[batch, frames, dim]`` pooled over each row's first ``lengths`` frames: ``[batch, dim]`` for
    ``mean``, ``[batch, 2 * dim]`` (mean, then standard deviation) for ``mean_std``; padding never counts."""
    mask = lengths_to_mask(lengths, x.shape[1])[..., None]
    count = lengths.clamp(min=1)[:, None].to(x.dtype)
    mean = x.masked_fill(~mask, 0.0).sum(1) / count
    if pooling == "mean":
        return mean
    centred = (x - mean[:, None]).masked_fill(~mask, 0.0)
    std = (centred.square().sum(1) / count + STD_EPS).sqrt()
    return torch.cat([mean, std], dim=-1)


def merge_pooled(parts: list[tuple[torch.Tensor, int]], pooling: str = "mean") -> torch.Tensor:
    """The pooled vector of a whole file from its windows' ``(pool_frames output [dim], frames)``: as if
    every frame had been pooled at once (the windows' means and variances combined by frame count)."""
    frames = sum(n for _, n in parts)
    if pooling == "mean":
        return sum(p * n for p, n in parts) / max(frames, 1)
    d = parts[0][0].shape[-1] // 2
    mean = sum(p[:d] * n for p, n in parts) / max(frames, 1)
    square = sum((p[d:].square() - STD_EPS + p[:d].square()) * n for p, n in parts) / max(frames, 1)
    return torch.cat([mean, ((square - mean.square()).clamp(min=0) + STD_EPS).sqrt()])


@dataclass
class ClassifierConfig:
    """The classification head: label names (index = class id), weighted layer sum, projection width."""

    labels: list[str]
    use_weighted_layer_sum: bool = False
    proj_size: int = 256  # transformers' classifier_proj_size
    # "mean": transformers' head. "mean_std": the mean and the standard deviation of the projected
    # frames (x-vector statistics pooling), twice the classifier's inputs; not exportable to transformers.
    pooling: str = "mean"

    def __post_init__(self) -> None:
        if isinstance(self.labels, (list, tuple)):
            self.labels = list(self.labels)
        self.validate()

    def validate(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"classifier config field '{name}': {why}")

        if isinstance(self.labels, str) or not isinstance(self.labels, list):
            raise bad("labels", f"expected a list of label names, found {type(self.labels).__name__}")
        if any(not isinstance(label, str) for label in self.labels):
            raise bad("labels", f"every label must be text, found {self.labels!r}")
        if len(self.labels) < 2:
            raise bad("labels", f"got {len(self.labels)} label(s), a classifier needs at least 2")
        seen: set[str] = set()
        duplicates = sorted({label for label in self.labels if label in seen or seen.add(label)})
        if duplicates:
            raise bad("labels", f"label names must be unique; repeated: {', '.join(map(repr, duplicates))}")
        if not isinstance(self.use_weighted_layer_sum, bool):
            raise bad("use_weighted_layer_sum", f"expected true or false, found {self.use_weighted_layer_sum!r}")
        if isinstance(self.proj_size, bool) or not isinstance(self.proj_size, int) or self.proj_size < 1:
            raise bad("proj_size", f"got {self.proj_size!r}, expected a positive integer")
        if self.pooling not in POOLINGS:
            raise bad("pooling", f"got {self.pooling!r}, expected one of {', '.join(POOLINGS)}")

    def to_dict(self) -> dict[str, Any]:
        return to_mapping(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "classifier config") -> "ClassifierConfig":
        return from_mapping(cls, data, source)


@dataclass
class ClassifierOutput:
    """``logits`` ``[batch, num_labels]``, ``pooled`` ``[batch, proj_size]`` (twice that for ``mean_std``), pooled frame counts ``lengths``."""

    logits: torch.Tensor
    pooled: torch.Tensor
    lengths: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None


class SequenceClassifier(nn.Module):
    """A ``SpeechEncoder`` (no CTC head) with an utterance-level classification head.

    ``forward(waveforms [batch, samples], lengths [batch] or None)`` returns a ``ClassifierOutput``.
    """

    def __init__(self, encoder_config: EncoderConfig, head: ClassifierConfig):
        super().__init__()
        if not isinstance(head, ClassifierConfig):
            raise TypeError(f"head must be a ClassifierConfig, found {type(head).__name__}")
        if encoder_config.vocab_size is not None:
            encoder_config = encoder_config.replace(vocab_size=None)
        self.encoder = SpeechEncoder(encoder_config)
        self.config = self.encoder.config
        self.head_config = head
        d = self.config.hidden_size
        if head.use_weighted_layer_sum:
            n = self.config.num_layers + 1
            self.layer_weights = nn.Parameter(torch.ones(n) / n)
        self.projector = nn.Linear(d, head.proj_size)
        self.classifier = nn.Linear(pooled_size(head.proj_size, head.pooling), len(head.labels))
        _init_weights(self.projector)
        _init_weights(self.classifier)

    @classmethod
    def from_encoder(cls, encoder: SpeechEncoder, head: ClassifierConfig) -> "SequenceClassifier":
        """A classifier over ``encoder``'s weights (copied; its CTC head is dropped) with a new head."""
        model = cls(encoder.config, head)
        state = {k: v for k, v in encoder.state_dict().items() if not k.startswith("ctc_head.")}
        model.encoder.load_state_dict(state)
        first = next(encoder.parameters())
        return model.to(device=first.device, dtype=first.dtype).train(encoder.training)

    @property
    def labels(self) -> list[str]:
        return list(self.head_config.labels)

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None, *,
                time_mask: torch.Tensor | None = None, channel_mask: torch.Tensor | None = None,
                output_hidden_states: bool = False) -> ClassifierOutput:
        weighted = self.head_config.use_weighted_layer_sum
        out = self.encoder(waveforms, lengths, time_mask=time_mask, channel_mask=channel_mask,
                           output_hidden_states=output_hidden_states or weighted)
        if weighted:
            states = torch.stack(out.hidden_states, dim=0)  # [layers + 1, batch, frames, dim]
            weights = torch.softmax(self.layer_weights, dim=-1).to(states.dtype)
            x = (states * weights[:, None, None, None]).sum(0)
            valid = out.lengths
            if self.config.squeezes:  # the states are at the squeezed rate
                valid = squeezed_lengths(valid, self.config.squeeze_factor)
        else:
            x, valid = out.last_hidden_state, out.lengths
        pooled = pool_frames(self.projector(x), valid, self.head_config.pooling)
        logits = self.classifier(pooled)
        return ClassifierOutput(logits=logits, pooled=pooled, lengths=valid,
                                hidden_states=out.hidden_states if output_hidden_states else None)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid 50 Hz frames for waveform lengths in samples."""
        return self.encoder.output_lengths(lengths)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


__all__ = ["ClassifierConfig", "ClassifierOutput", "POOLINGS", "SequenceClassifier", "merge_pooled", "pool_frames", "pooled_size"]
