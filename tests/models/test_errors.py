"""Bad input raises a ValueError that says what was found."""

from __future__ import annotations

import json

import pytest
import torch

import sew
from sew.checkpoint import save_model


@pytest.fixture(scope="module")
def model():
    return sew.build_model("sew-d-micro").eval()


def test_wrong_rank(model):
    with pytest.raises(ValueError, match=r"\[batch, samples\].*\(16000,\).*unsqueeze"):
        model(torch.randn(16000))
    with pytest.raises(ValueError, match=r"found shape \(1, 1, 16000\)"):
        model(torch.randn(1, 1, 16000))


def test_wrong_dtype(model):
    with pytest.raises(ValueError, match="floating point.*torch.int16"):
        model(torch.zeros(1, 16000, dtype=torch.int16))


def test_length_larger_than_tensor(model):
    with pytest.raises(ValueError, match=r"lengths\[1\] = 9000 is larger than the waveform tensor \(8000 samples\)"):
        model(torch.randn(2, 8000), torch.tensor([8000, 9000]))


def test_lengths_shape(model):
    with pytest.raises(ValueError, match=r"shape \[2\]"):
        model(torch.randn(2, 8000), torch.tensor([8000]))


def test_shorter_than_receptive_field(model):
    with pytest.raises(ValueError, match="utterance 1 has 399 samples, shorter than the model's receptive field of 400"):
        model(torch.randn(2, 8000), torch.tensor([8000, 399]))
    with pytest.raises(ValueError, match="utterance 0 has 300 samples"):
        model(torch.randn(1, 300))


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown model preset 'sew-d-tinny'.*Did you mean sew-d-tiny.*Known presets:.*w2v2-base"):
        sew.build_model("sew-d-tinny")


def test_bad_config_field(tmp_path):
    with pytest.raises(ValueError, match=r"unknown fields hiden_size \(did you mean hidden_size\?\)"):
        sew.build_model({"family": "sew", "hiden_size": 3})
    with pytest.raises(ValueError, match="field 'family'.*'sewd'"):
        sew.build_model({"family": "sewd"})
    with pytest.raises(ValueError, match="field 'pos_att_type'.*c2c"):
        sew.build_model("sew-d-micro", pos_att_type=["c2c"])


def test_directory_without_config(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ValueError, match=r"no recognised model config.*found \['weights.bin'\]"):
        sew.load_model(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        sew.load_model(tmp_path / "nope")


def test_unsupported_hf_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "hubert"}))
    with pytest.raises(ValueError, match="model_type 'hubert' is not supported"):
        sew.load_model(tmp_path)


def test_weights_that_do_not_fit(tmp_path):
    save_model(sew.build_model("sew-d-micro"), tmp_path)
    meta = json.loads((tmp_path / "sew_config.json").read_text())
    meta["model"]["num_layers"] = 5
    (tmp_path / "sew_config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"missing \d+ weights: context.transformer.layers.4"):
        sew.load_model(tmp_path)


def test_a_squeeze_on_wav2vec2_is_refused_not_ignored():
    with pytest.raises(ValueError, match="squeeze_factor.*wav2vec 2.0 has no squeeze.*sew-micro"):
        sew.build_model("w2v2-micro", squeeze_factor=2)
    with pytest.raises(ValueError, match="squeeze_factor"):
        sew.load_config("w2v2-micro").replace(squeeze_factor="4")
    # A stored config keeps the field's default (it is SEW's) and loads; so do 1 and other families' squeezes.
    stored = {**sew.load_config("w2v2-micro").to_dict(), "squeeze_factor": 2}  # as converted from transformers
    assert sew.load_config(stored).squeeze_factor == 2 and sew.SpeechEncoder(sew.load_config(stored)) is not None
    assert sew.build_model("w2v2-micro", squeeze_factor=1).config.family == "wav2vec2"
    assert sew.load_config("sew-micro").replace(squeeze_factor=4).squeeze_factor == 4
