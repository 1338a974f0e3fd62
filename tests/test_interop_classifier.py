"""Parity with transformers' *ForSequenceClassification: HF -> sew.load_model and sew.export_hf -> HF."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

import sew
from sew.models.classifier import SequenceClassifier

from .models.helpers import TINY_HF

TOL = 1e-4
SAMPLES = 3283  # 0.2 s, 41 frames: odd, so SEW's last 50 Hz frame is the upsampler's zero frame
HF_TINY = {**TINY_HF, "hidden_size": 32, "intermediate_size": 64}  # 3 convs, 2 layers, 4 heads
CONFIGS = {"sew": "SEWConfig", "sew-d": "SEWDConfig", "wav2vec2": "Wav2Vec2Config"}
PRE_LN = {"do_stable_layer_norm": True, "feat_extract_norm": "layer", "conv_bias": True}

CASES = [  # family, use_weighted_layer_sum, classifier_proj_size, other config fields
    ("sew", False, 8, {}),
    ("sew", True, 16, {"feat_extract_norm": "layer", "conv_bias": True}),
    ("sew-d", False, 8, {"share_att_key": False, "pos_att_type": ["c2p", "p2c"]}),
    ("sew-d", True, 8, {"pos_att_type": ["p2c", "c2p"]}),
    ("sew-d", True, 16, {"share_att_key": False, "pos_att_type": ["c2p", "p2c"]}),
    ("wav2vec2", False, 16, {}),
    ("wav2vec2", True, 8, {}),
    ("wav2vec2", False, 8, PRE_LN),
    ("wav2vec2", True, 16, PRE_LN),
]


def hf_classifier(family: str, weighted: bool, proj_size: int, labels=("a", "b", "c"), **overrides):
    torch.manual_seed(0)
    config = getattr(transformers, CONFIGS[family])(
        **{**HF_TINY, **overrides}, use_weighted_layer_sum=weighted, classifier_proj_size=proj_size,
        id2label=dict(enumerate(labels)), label2id={name: i for i, name in enumerate(labels)})
    model = transformers.AutoModelForAudioClassification.from_config(config)
    randomize_head(model)
    return model.eval()


def randomize_head(model) -> None:
    """A head far from its init and layer weights far from uniform, so a wrong state or frame shows."""
    with torch.no_grad():
        for p in (*model.projector.parameters(), *model.classifier.parameters()):
            p.normal_(std=0.5)
        if getattr(model, "layer_weights", None) is not None:
            model.layer_weights.normal_()


def hf_logits(model, x: torch.Tensor) -> torch.Tensor:
    """transformers' logits. For pre-LN wav2vec 2.0 with the weighted sum, transformers 5 weights the last
    layer's output before the final LayerNorm (its hidden_states[-1]; transformers 4 took it after), and
    so does sew: the installed transformers is the reference."""
    return model(x).logits


@pytest.mark.parametrize("family,weighted,proj_size,overrides", CASES,
                         ids=[f"{c[0]}-{'weighted' if c[1] else 'last'}-{c[2]}-{i}" for i, c in enumerate(CASES)])
def test_hf_to_ours(tmp_path, family, weighted, proj_size, overrides):
    theirs = hf_classifier(family, weighted, proj_size, **overrides)
    theirs.save_pretrained(tmp_path)
    ours = sew.load_model(tmp_path).eval()
    assert isinstance(ours, SequenceClassifier) and ours.config.family == family
    assert ours.labels == ["a", "b", "c"]
    assert ours.head_config.use_weighted_layer_sum == weighted and ours.head_config.proj_size == proj_size
    x = torch.randn(2, SAMPLES, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = hf_logits(theirs, x), ours(x).logits
    assert got.shape == expected.shape == (2, 3)
    assert expected.abs().max() > 0.1  # not a degenerate head
    assert (got - expected).abs().max() <= TOL


def test_labels_are_ordered_by_id_and_default_to_label_i(tmp_path):
    theirs = hf_classifier("sew-d", False, 8, labels=("zero", "one", "two", "three"))
    theirs.save_pretrained(tmp_path)
    config_path = tmp_path / "config.json"
    hf = json.loads(config_path.read_text())
    hf["id2label"] = {"3": "three", "1": "one", "0": "zero", "2": "two"}
    config_path.write_text(json.dumps(hf))
    assert sew.load_model(tmp_path).labels == ["zero", "one", "two", "three"]
    del hf["id2label"], hf["label2id"], hf["architectures"]  # detected by its classifier weights
    config_path.write_text(json.dumps(hf))
    assert sew.load_model(tmp_path).labels == ["LABEL_0", "LABEL_1", "LABEL_2", "LABEL_3"]
    hf["id2label"] = {"0": "zero", "1": "one"}
    config_path.write_text(json.dumps(hf))
    with pytest.raises(ValueError, match="id2label names 2 labels but the classifier weights have 4 outputs"):
        sew.load_model(tmp_path)


def test_a_non_classification_architecture_ignores_the_head(tmp_path):
    hf_classifier("wav2vec2", True, 8).save_pretrained(tmp_path)
    hf = json.loads((tmp_path / "config.json").read_text())
    hf["architectures"] = ["Wav2Vec2Model"]
    (tmp_path / "config.json").write_text(json.dumps(hf))
    model = sew.load_model(tmp_path)
    assert type(model) is sew.SpeechEncoder and model.ctc_head is None


@pytest.mark.parametrize("family,weighted,pre_ln", [("sew", True, False), ("sew-d", True, False),
                                                    ("wav2vec2", False, False), ("wav2vec2", True, True)])
def test_ours_to_hf(tmp_path, family, weighted, pre_ln):
    torch.manual_seed(0)
    labels = ["yes", "no", "maybe"]
    fields = dict(conv_layers=[(32, 10, 5), (32, 3, 4), (32, 3, 4)], hidden_size=32, num_layers=2, num_heads=4,
                  intermediate_size=64, pos_conv_kernel=15, pos_conv_groups=4)
    if pre_ln:
        fields.update(layer_norm_first=True, conv_norm="layer", conv_bias=True)
    ours = sew.build_classifier({"family": family, **fields}, labels, use_weighted_layer_sum=weighted, proj_size=8)
    randomize_head(ours)
    ours.eval()
    sew.export_hf(ours, tmp_path)
    assert (tmp_path / "preprocessor_config.json").is_file()
    theirs = transformers.AutoModelForAudioClassification.from_pretrained(tmp_path).eval()
    base = {"sew": "SEW", "sew-d": "SEWD", "wav2vec2": "Wav2Vec2"}[family]
    assert type(theirs).__name__ == f"{base}ForSequenceClassification"
    assert theirs.config.id2label == dict(enumerate(labels)) and theirs.config.num_labels == 3
    assert theirs.config.use_weighted_layer_sum == weighted and theirs.config.classifier_proj_size == 8
    x = torch.randn(2, SAMPLES, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, got = ours(x).logits, theirs(x).logits
    assert expected.abs().max() > 0.1
    assert (got - expected).abs().max() <= TOL
    back = sew.load_model(tmp_path).eval()
    assert back.labels == labels
    with torch.no_grad():
        assert torch.equal(back(x).logits, expected)
