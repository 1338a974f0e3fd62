"""transformers' ``Wav2Vec2ForPreTraining`` <-> our ``PretrainingModel`` (wav2vec 2.0 heads only).

The encoder goes through ``sew.load_model`` (which maps every encoder key); this module adds the
pretraining keys and the objective fields of the HF config:

    quantizer.codevectors [1, G*V, d]   <-> quantizer.codevectors [G*V, d]
    quantizer.weight_proj.{weight,bias} <-> quantizer.weight_proj.{weight,bias}
    project_hid.{weight,bias}           <-> final_proj.{weight,bias}
    project_q.{weight,bias}             <-> project_q.{weight,bias}

HF has no MLP heads and no feature penalty: a model loaded here has ``mlp_heads=False``; its
``feature_penalty_weight`` is ours (10) unless overridden.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from sew.files import find_weights, load_checked, read_state_dict
from sew.pretrain.config import ObjectiveConfig
from sew.pretrain.objective import PretrainingModel

_HEAD_KEYS = {
    "quantizer.codevectors": "quantizer.codevectors",
    "quantizer.weight_proj.weight": "quantizer.weight_proj.weight",
    "quantizer.weight_proj.bias": "quantizer.weight_proj.bias",
    "project_hid.weight": "final_proj.weight",
    "project_hid.bias": "final_proj.bias",
    "project_q.weight": "project_q.weight",
    "project_q.bias": "project_q.bias",
}


def objective_config_from_hf(hf: dict, **overrides) -> ObjectiveConfig:
    """The objective fields of a ``Wav2Vec2Config`` dict (defaults as transformers') plus ``overrides``."""
    fields = dict(
        codebook_groups=hf.get("num_codevector_groups", 2), codebook_entries=hf.get("num_codevectors_per_group", 320),
        codevector_dim=hf.get("codevector_dim", 256), final_dim=hf.get("proj_codevector_dim", 256),
        num_negatives=hf.get("num_negatives", 100), logit_temperature=hf.get("contrastive_logits_temperature", 0.1),
        diversity_weight=hf.get("diversity_loss_weight", 0.1), dropout_features=hf.get("feat_quantizer_dropout", 0.0),
        mask_prob=hf.get("mask_time_prob", 0.05), mask_length=hf.get("mask_time_length", 10),
        min_masks=hf.get("mask_time_min_masks", 2), mlp_heads=False, feature_grad_mult=1.0,
    )
    fields.update(overrides)
    return ObjectiveConfig(**fields)


def heads_from_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The pretraining-head weights of an HF state dict, renamed to ours (encoder keys are left out)."""
    out = {}
    for key, value in state.items():
        if key in _HEAD_KEYS:
            ours = _HEAD_KEYS[key]
            out[ours] = value.reshape(value.shape[-2:]) if key == "quantizer.codevectors" else value
    missing = sorted(set(_HEAD_KEYS.values()) - set(out))
    if missing:
        raise ValueError(f"not a Wav2Vec2ForPreTraining checkpoint: missing {', '.join(missing)}")
    return out


def load_hf_pretraining(path: str | Path, **objective_overrides) -> PretrainingModel:
    """A ``PretrainingModel`` from a transformers ``Wav2Vec2ForPreTraining`` directory (no network)."""
    from sew.checkpoint import load_model

    directory = Path(path)
    hf = json.loads((directory / "config.json").read_text())
    if "Wav2Vec2ForPreTraining" not in hf.get("architectures", ["Wav2Vec2ForPreTraining"]):
        raise ValueError(f"{directory}: architectures {hf.get('architectures')} is not Wav2Vec2ForPreTraining")
    encoder = load_model(directory)
    model = PretrainingModel(encoder, objective_config_from_hf(hf, **objective_overrides))
    weights = find_weights(directory)
    heads = heads_from_hf(read_state_dict(weights))
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    state.update(heads)
    load_checked(model, state, str(weights))
    return model
