"""sew: SEW, SEW-D and wav2vec 2.0 speech encoders in plain PyTorch."""

from sew.config import EncoderConfig, load_config, preset_names

__version__ = "0.1.0"

__all__ = ["EncoderConfig", "load_config", "preset_names", "__version__"]
