"""The encoder configuration: one dataclass for the three families, presets in ``configs/model/``.

``load_config`` turns a preset name, a YAML / JSON path, a mapping or a config into a validated
``EncoderConfig`` through the project's one loader (``sew.config.from_mapping``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sew.config import from_mapping, load_preset, preset_names as _preset_names, to_mapping

FAMILIES = ("sew", "sew-d", "wav2vec2")
POS_ATT_TYPES = ("c2p", "p2c")


@dataclass
class EncoderConfig:
    """Every hyper-parameter of a SEW, SEW-D or wav2vec 2.0 encoder (and its CTC head).

    Names follow the paper and the official recipe; ``sew.interop`` maps them to and
    from the Hugging Face config fields.
    """

    family: str = "sew-d"
    # Waveform feature extractor: (channels, kernel, stride) per conv layer.
    conv_layers: list[tuple[int, int, int]] = field(
        default_factory=lambda: [(64, 10, 5), (128, 3, 2), (128, 1, 1), (128, 3, 2), (128, 1, 1),
                                 (256, 3, 2), (256, 1, 1), (256, 3, 2), (256, 1, 1),
                                 (512, 2, 2), (512, 1, 1), (512, 2, 2), (512, 1, 1)]
    )
    conv_norm: str = "group"  # "group": GroupNorm on layer 0 only; "layer": LayerNorm on every layer
    conv_bias: bool = False
    feature_layer_norm_eps: float = 1e-5
    # Transformer.
    hidden_size: int = 512
    num_layers: int = 12
    num_heads: int = 8
    intermediate_size: int = 2048
    layer_norm_eps: float = 1e-5
    layer_norm_first: bool = False  # pre-LN ("stable layer norm", wav2vec 2.0 large)
    # Convolutional positional embedding (the squeeze downsampler in SEW / SEW-D).
    pos_conv_kernel: int = 31
    pos_conv_groups: int = 16
    squeeze_factor: int = 2  # SEW / SEW-D only
    # Disentangled attention (SEW-D only).
    head_size: int | None = None  # defaults to hidden_size // num_heads
    position_buckets: int = 256
    max_relative_positions: int = 512
    share_att_key: bool = True
    pos_att_type: list[str] = field(default_factory=lambda: ["p2c", "c2p"])
    norm_rel_embeddings: bool = True
    # Dropout and LayerDrop (training only).
    feature_dropout: float = 0.0  # on the projected features ("dropout_input")
    hidden_dropout: float = 0.1  # residual-branch dropout (SEW-D uses activation_dropout here, as the official code)
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    layerdrop: float = 0.0
    final_dropout: float = 0.0  # before the CTC head
    # Head and input.
    vocab_size: int | None = None  # a CTC head when set
    normalize_waveform: bool = False  # zero mean, unit variance per utterance before the model

    def __post_init__(self) -> None:
        self.conv_layers = [tuple(int(v) for v in layer) for layer in self.conv_layers]
        self.pos_att_type = list(self.pos_att_type)
        self.validate()

    # -- derived quantities -------------------------------------------------------------
    @property
    def conv_dim(self) -> int:
        return self.conv_layers[-1][0]

    @property
    def frame_stride(self) -> int:
        """Samples between two output frames of the feature extractor (320 = 20 ms)."""
        stride = 1
        for _, _, s in self.conv_layers:
            stride *= s
        return stride

    @property
    def receptive_field(self) -> int:
        """Samples seen by one output frame of the feature extractor (400 = 25 ms)."""
        rf, jump = 1, 1
        for _, k, s in self.conv_layers:
            rf += (k - 1) * jump
            jump *= s
        return rf

    @property
    def attention_head_size(self) -> int:
        return self.head_size or self.hidden_size // self.num_heads

    @property
    def squeezes(self) -> bool:
        return self.family in ("sew", "sew-d")

    # -- validation and (de)serialisation -----------------------------------------------
    def validate(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"model config field '{name}': {why}")

        if self.family not in FAMILIES:
            raise bad("family", f"got {self.family!r}, expected one of {', '.join(FAMILIES)}")
        if not self.conv_layers or any(len(layer) != 3 or min(layer) < 1 for layer in self.conv_layers):
            raise bad("conv_layers", "expected a non-empty list of positive [channels, kernel, stride] triples")
        if self.conv_norm not in ("group", "layer"):
            raise bad("conv_norm", f"got {self.conv_norm!r}, expected 'group' or 'layer'")
        if self.head_size is None and self.hidden_size % self.num_heads:
            raise bad("num_heads", f"hidden_size {self.hidden_size} is not divisible by {self.num_heads} heads")
        if self.hidden_size % self.pos_conv_groups:
            raise bad("pos_conv_groups", f"hidden_size {self.hidden_size} is not divisible by {self.pos_conv_groups}")
        if self.squeeze_factor < 1:
            raise bad("squeeze_factor", "must be at least 1")
        unknown = set(self.pos_att_type) - set(POS_ATT_TYPES)
        if unknown:
            raise bad("pos_att_type", f"unknown terms {sorted(unknown)}; use a subset of {list(POS_ATT_TYPES)}")
        if self.family == "sew-d" and self.layer_norm_first:
            raise bad("layer_norm_first", "SEW-D layers are post-LN only")
        if self.family == "sew" and self.layer_norm_first:
            raise bad("layer_norm_first", "SEW layers are post-LN only")
        for name in ("feature_dropout", "hidden_dropout", "attention_dropout", "activation_dropout",
                     "layerdrop", "final_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise bad(name, f"got {value}, expected a probability in [0, 1)")
        if self.vocab_size is not None and self.vocab_size < 2:
            raise bad("vocab_size", f"got {self.vocab_size}, a CTC head needs at least 2 symbols")

    def to_dict(self) -> dict[str, Any]:
        return to_mapping(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "model config") -> "EncoderConfig":
        return from_mapping(cls, data, source)

    def replace(self, **changes: Any) -> "EncoderConfig":
        """A copy with ``changes`` (converted by type, as from a preset: ``replace(layerdrop="0.1")``)."""
        return _check_changes(from_mapping(EncoderConfig, {**self.to_dict(), **changes}, "model config"), changes)


def preset_names() -> list[str]:
    """The model presets of ``configs/model/``."""
    return _preset_names("model")


def load_config(spec: "str | Path | dict | EncoderConfig", **overrides: Any) -> EncoderConfig:
    """A config from a preset name, a YAML/JSON path, a mapping or a config (copied), with overrides."""
    if isinstance(spec, EncoderConfig):
        spec = spec.to_dict()
    return _check_changes(load_preset("model", EncoderConfig, spec, values=overrides), overrides)


def _check_changes(config: EncoderConfig, changes: dict[str, Any]) -> EncoderConfig:
    """Refuse an explicit change the family would ignore. A stored wav2vec 2.0 config carries the
    default squeeze_factor of 2 (the field is SEW's) and must still load, so only changes are checked."""
    if config.family == "wav2vec2" and "squeeze_factor" in changes and config.squeeze_factor != 1:
        raise ValueError(f"model config field 'squeeze_factor': wav2vec 2.0 has no squeeze context network, so "
                         f"{config.squeeze_factor} would be ignored; use a SEW or SEW-D model (e.g. sew-micro) to "
                         "squeeze, or leave the field out")
    return config
