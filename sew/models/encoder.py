"""The whole encoder: waveform -> features -> context network -> (CTC logits).

``SpeechEncoder`` is the one model class for SEW, SEW-D and wav2vec 2.0; the family only decides
which context network and attention are built from the ``EncoderConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sew.models.config import EncoderConfig
from sew.models.context import SqueezeContextNetwork, Wav2Vec2ContextNetwork, fit_frames
from sew.models.disentangled import DisentangledAttention, DisentangledTransformer
from sew.models.features import ConvFeatureExtractor
from sew.models.kernels import compiling
from sew.models.lengths import lengths_to_mask
from sew.models.transformer import MultiHeadAttention, TransformerLayer, TransformerStack


@dataclass
class EncoderOutput:
    """``last_hidden_state`` ``[batch, frames, dim]``, valid ``lengths`` ``[batch]``, optional extras."""

    last_hidden_state: torch.Tensor
    lengths: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    logits: torch.Tensor | None = None  # [batch, frames, vocab] when the model has a CTC head


class CTCHead(nn.Module):
    """Dropout + Linear(dim, vocab)."""

    def __init__(self, dim: int, vocab_size: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(dim, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.dropout(x))


def build_transformer(cfg: EncoderConfig) -> TransformerStack:
    """The layer stack of the family: standard attention, or disentangled attention for SEW-D."""
    d, eps = cfg.hidden_size, cfg.layer_norm_eps
    layers = []
    for _ in range(cfg.num_layers):
        if cfg.family == "sew-d":
            attention = DisentangledAttention(
                d, cfg.num_heads, cfg.attention_dropout, cfg.attention_head_size,
                pos_att_type=cfg.pos_att_type, share_att_key=cfg.share_att_key,
                position_dropout=cfg.activation_dropout,
            )
            # The official SEW-D maps activation_dropout to DeBERTa's hidden dropout (residual
            # branches) and has no dropout inside the feed-forward block.
            layer = TransformerLayer(attention, d, cfg.intermediate_size, norm_first=False, eps=eps,
                                     dropout=cfg.activation_dropout, activation_dropout=0.0)
        else:
            attention = MultiHeadAttention(d, cfg.num_heads, cfg.attention_dropout, cfg.head_size)
            layer = TransformerLayer(attention, d, cfg.intermediate_size, norm_first=cfg.layer_norm_first,
                                     eps=eps, dropout=cfg.hidden_dropout, activation_dropout=cfg.activation_dropout)
        layers.append(layer)
    if cfg.family == "sew-d":
        return DisentangledTransformer(
            layers, d, position_buckets=cfg.position_buckets, max_relative_positions=cfg.max_relative_positions,
            norm_rel_embeddings=cfg.norm_rel_embeddings, eps=eps, layerdrop=cfg.layerdrop,
        )
    return TransformerStack(layers, cfg.layerdrop)


def _init_weights(module: nn.Module) -> None:
    """BERT-style init for linear layers and norms (convs keep their own Kaiming init)."""
    for m in module.modules():
        if isinstance(m, nn.Linear) and not getattr(m, "_keep_init", False):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm) and m.elementwise_affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class SpeechEncoder(nn.Module):
    """SEW / SEW-D / wav2vec 2.0 encoder with an optional CTC head.

    ``forward(waveforms [batch, samples] float, lengths [batch] or None)`` returns an
    ``EncoderOutput``. Padded utterances give the same valid frames as alone.
    """

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = cfg = config
        d = cfg.hidden_size
        self.feature_extractor = ConvFeatureExtractor(cfg.conv_layers, cfg.conv_norm, cfg.conv_bias)
        self.feature_norm = nn.LayerNorm(cfg.conv_dim, eps=cfg.feature_layer_norm_eps)
        has_projection = cfg.conv_dim != d or cfg.family == "wav2vec2"
        self.feature_projection = nn.Linear(cfg.conv_dim, d) if has_projection else None
        self.feature_dropout = nn.Dropout(cfg.feature_dropout)
        self.mask_embedding = nn.Parameter(torch.empty(d).uniform_())
        transformer = build_transformer(cfg)
        if cfg.squeezes:
            self.context = SqueezeContextNetwork(
                d, transformer, factor=cfg.squeeze_factor, pos_conv_kernel=cfg.pos_conv_kernel,
                pos_conv_groups=cfg.pos_conv_groups, norm_eps=cfg.layer_norm_eps if cfg.family == "sew" else None,
                dropout=cfg.hidden_dropout if cfg.family == "sew" else 0.0,
            )
        else:
            self.context = Wav2Vec2ContextNetwork(
                d, transformer, pos_conv_kernel=cfg.pos_conv_kernel, pos_conv_groups=cfg.pos_conv_groups,
                norm_eps=cfg.layer_norm_eps, norm_first=cfg.layer_norm_first, dropout=cfg.hidden_dropout,
            )
        self.ctc_head = CTCHead(d, cfg.vocab_size, cfg.final_dropout) if cfg.vocab_size else None
        if cfg.squeezes:
            self.context.upsample.proj._keep_init = True  # Kaiming fan-out, as the official upsampler
        _init_weights(self)

    # -- pieces, for the training objectives ----------------------------------------------
    def check_inputs(self, waveforms: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """Validate ``waveforms``/``lengths`` and return lengths as int64 (full length when None)."""
        if not isinstance(waveforms, torch.Tensor) or waveforms.dim() != 2:
            shape = tuple(waveforms.shape) if isinstance(waveforms, torch.Tensor) else type(waveforms).__name__
            hint = " (use waveforms.unsqueeze(0) for a single utterance)" if getattr(waveforms, "ndim", 0) == 1 else ""
            raise ValueError(f"waveforms must be a [batch, samples] tensor, found shape {shape}{hint}")
        if not waveforms.is_floating_point():
            raise ValueError(f"waveforms must be floating point (float32 in [-1, 1]), found dtype {waveforms.dtype}")
        batch, samples = waveforms.shape
        if lengths is None:
            lengths = torch.full((batch,), samples, dtype=torch.long, device=waveforms.device)
        else:
            lengths = torch.as_tensor(lengths, device=waveforms.device)
            if lengths.shape != (batch,) or lengths.is_floating_point():
                raise ValueError(f"lengths must be an integer tensor of shape [{batch}], found "
                                 f"{lengths.dtype} {tuple(lengths.shape)}")
            lengths = lengths.long()
        if samples < self.config.receptive_field:
            raise ValueError(f"utterance 0 has {samples} samples, shorter than the model's receptive field of "
                             f"{self.config.receptive_field} samples ({self.config.receptive_field / 16:.0f} ms "
                             "at 16 kHz); drop or pad it")
        if compiling():  # the value checks below read tensors on the host: eager mode only
            return lengths
        if bool((lengths > samples).any()):
            i = int(torch.argmax(lengths))
            raise ValueError(f"lengths[{i}] = {int(lengths[i])} is larger than the waveform tensor ({samples} samples)")
        rf = self.config.receptive_field
        if bool((lengths < rf).any()):
            i = int(torch.argmin(lengths))
            raise ValueError(f"utterance {i} has {int(lengths[i])} samples, shorter than the model's receptive "
                             f"field of {rf} samples ({rf / 16:.0f} ms at 16 kHz); drop or pad it")
        return lengths

    def normalize(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Zero mean, unit variance per utterance over its valid samples; padding stays zero."""
        mask = lengths_to_mask(lengths, waveforms.shape[1]).to(waveforms.dtype)
        count = lengths[:, None].to(waveforms.dtype)
        mean = (waveforms * mask).sum(1, keepdim=True) / count
        var = (((waveforms - mean) * mask) ** 2).sum(1, keepdim=True) / count
        return (waveforms - mean) / torch.sqrt(var + 1e-7) * mask

    def extract_features(self, waveforms: torch.Tensor, lengths: torch.Tensor):
        """Conv features before the feature LayerNorm: ``[batch, frames, conv_dim]`` and frame lengths."""
        if self.config.normalize_waveform:  # statistics in float32 whatever the model's dtype
            waveforms = self.normalize(waveforms.float(), lengths)
        # A float32 waveform into a bfloat16 / float16 model: cast here rather than fail in the first conv.
        waveforms = waveforms.to(self.feature_extractor.layers[0].conv.weight.dtype)
        features, frame_lengths = self.feature_extractor(waveforms, lengths)
        return features.transpose(1, 2), frame_lengths

    def project_features(self, features: torch.Tensor) -> torch.Tensor:
        """Feature LayerNorm and projection to the model width: ``[batch, frames, dim]``."""
        x = self.feature_norm(features)
        if self.feature_projection is not None:
            x = self.feature_projection(x)
        return x

    def apply_masks(self, x: torch.Tensor, time_mask: torch.Tensor | None, channel_mask: torch.Tensor | None):
        """Replace masked frames ``[batch, frames]`` by the mask embedding; zero masked channels ``[batch, dim]``."""
        if time_mask is not None:
            x = torch.where(time_mask[..., None], self.mask_embedding.to(x.dtype), x)
        if channel_mask is not None:
            x = x.masked_fill(channel_mask[:, None, :], 0.0)
        return x

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None, *,
                time_mask: torch.Tensor | None = None, channel_mask: torch.Tensor | None = None,
                output_hidden_states: bool = False, upsample_hidden_states: bool = False) -> EncoderOutput:
        lengths = self.check_inputs(waveforms, lengths)
        features, frame_lengths = self.extract_features(waveforms, lengths)
        x = self.feature_dropout(self.project_features(features))
        x = self.apply_masks(x, time_mask, channel_mask)
        y, states = self.context(x, frame_lengths, output_hidden_states)
        if states is not None:
            states = tuple(self._upsample_state(s, y.shape[1]) if upsample_hidden_states else s for s in states)
        logits = self.ctc_head(y) if self.ctc_head is not None else None
        return EncoderOutput(last_hidden_state=y, lengths=frame_lengths, hidden_states=states, logits=logits)

    def _upsample_state(self, state: torch.Tensor, frames: int) -> torch.Tensor:
        """An intermediate layer at the squeezed rate, repeated to the output frame rate."""
        if not self.config.squeezes or state.shape[1] == frames:
            return state
        return fit_frames(state.repeat_interleave(self.config.squeeze_factor, dim=1), frames)

    # -- conveniences --------------------------------------------------------------------
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid output frames for waveform lengths in samples."""
        return self.feature_extractor.output_lengths(torch.as_tensor(lengths))
