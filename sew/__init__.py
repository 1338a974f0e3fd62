"""sew: SEW, SEW-D and wav2vec 2.0 speech encoders in plain PyTorch.

    model = sew.build_model("sew-d-tiny", vocab_size=32)
    out = model(waveforms, lengths)          # out.last_hidden_state, out.lengths, out.logits
    sew.save_model(model, "my-model")        # safetensors + JSON, written atomically
    model = sew.load_model("my-model")       # ours, or a Hugging Face SEW / SEW-D / wav2vec2 directory
    sew.export_hf(model, "my-model-hf")      # loads with transformers' AutoModel / AutoModelForCTC

    clf = sew.build_classifier("sew-d-tiny", ["yes", "no"])  # utterance classification
    out = clf(waveforms, lengths)            # out.logits [batch, labels]; save_model / load_model / export_hf too
"""

from __future__ import annotations

from sew import cpu
from sew.checkpoint import load_model, save_model
from sew.models.classifier import ClassifierConfig, ClassifierOutput, SequenceClassifier
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


def build_classifier(name_or_config, labels, *, use_weighted_layer_sum: bool = False, proj_size: int = 256,
                     pooling: str = "mean", **overrides) -> SequenceClassifier:
    """A randomly initialised utterance classifier over ``labels`` (names, index = class id) on the
    encoder of a preset name, a YAML path, a dict or an ``EncoderConfig``; ``overrides`` replace
    encoder config fields. To start from a trained encoder use ``SequenceClassifier.from_encoder``.
    """
    labels = labels if isinstance(labels, str) else list(labels)  # a string is refused by the config
    head = ClassifierConfig(labels=labels, use_weighted_layer_sum=use_weighted_layer_sum, proj_size=proj_size,
                            pooling=pooling)
    return SequenceClassifier(load_config(name_or_config, **overrides), head)


__all__ = [
    "ClassifierConfig", "ClassifierOutput", "EncoderConfig", "EncoderOutput", "SequenceClassifier", "SpeechEncoder",
    "build_classifier", "build_model", "cpu", "export_hf", "load_config", "load_model", "optimize_for_cpu",
    "preset_names", "save_model", "__version__",
]
