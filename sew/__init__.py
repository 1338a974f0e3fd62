"""sew: SEW, SEW-D and wav2vec 2.0 speech encoders in plain PyTorch.

    model = sew.build_model("sew-d-tiny", vocab_size=32)
    out = model(waveforms, lengths)          # out.last_hidden_state, out.lengths, out.logits
    sew.save_model(model, "my-model")        # safetensors + JSON, written atomically
    model = sew.load_model("my-model")       # ours, or a Hugging Face SEW / SEW-D / wav2vec2 directory
    sew.export_hf(model, "my-model-hf")      # loads with transformers' AutoModel / AutoModelForCTC
"""

from __future__ import annotations

from sew import cpu
from sew.checkpoint import load_model, save_model
from sew.models.config import EncoderConfig, load_config, preset_names
from sew.inference import optimize_for_cpu
from sew.interop import export_hf
from sew.models.encoder import EncoderOutput, SpeechEncoder

__version__ = "0.1.0"


def build_model(name_or_config, vocab_size: int | None = None, **overrides) -> SpeechEncoder:
    """A randomly initialised model from a preset name, a YAML path, a dict or an ``EncoderConfig``.

    With ``vocab_size`` the model has a CTC head over that many symbols; ``overrides`` replace
    config fields (``build_model("sew-d-tiny", layerdrop=0.0)``).
    """
    if vocab_size is not None:
        overrides["vocab_size"] = vocab_size
    return SpeechEncoder(load_config(name_or_config, **overrides))


__all__ = [
    "EncoderConfig", "EncoderOutput", "SpeechEncoder", "build_model", "cpu", "export_hf", "load_config",
    "load_model", "optimize_for_cpu", "preset_names", "save_model", "__version__",
]
