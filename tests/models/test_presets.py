"""Every preset builds, with the parameter counts of the reference table (32-symbol CTC head)."""

from __future__ import annotations

import pytest
import torch

import sew

REFERENCE_M = {
    "sew-tiny": 40.7, "sew-small": 89.6, "sew-mid": 174.7, "sew-d-tiny": 24.1, "sew-d-small": 41.0,
    "sew-d-mid": 78.8, "sew-d-mid-k127": 80.4, "sew-d-base": 175.1, "sew-d-base-plus": 177.0, "w2v2-base": 94.4,
}


def count(name: str) -> float:
    with torch.device("meta"):  # no memory, no init cost
        return sew.build_model(name, vocab_size=32).num_parameters() / 1e6


@pytest.mark.parametrize("name", sorted(REFERENCE_M))
def test_reference_parameter_counts(name):
    assert abs(count(name) - REFERENCE_M[name]) <= 0.1


def test_every_required_preset_exists():
    names = set(sew.preset_names())
    assert set(REFERENCE_M) | {"w2v2-large", "sew-micro", "sew-d-micro", "w2v2-micro"} <= names
    assert 310 <= count("w2v2-large") <= 320  # the LV-60 layout, about 315 M


@pytest.mark.parametrize("micro,full", [("sew-micro", "sew-tiny"), ("sew-d-micro", "sew-d-tiny"),
                                        ("w2v2-micro", "w2v2-base")])
def test_micro_presets_same_wiring(micro, full):
    small, big = sew.load_config(micro), sew.load_config(full)
    assert count(micro) < 5.0
    assert small.family == big.family and small.layer_norm_first == big.layer_norm_first
    assert small.conv_norm == big.conv_norm and small.squeeze_factor == big.squeeze_factor
    assert [k for _, k, _ in small.conv_layers] == [k for _, k, _ in big.conv_layers]
    assert small.frame_stride == big.frame_stride == 320
    assert small.receptive_field == big.receptive_field == 400


def test_sew_presets_match_the_official_layout():
    cfg = sew.load_config("sew-d-base-plus")
    assert cfg.conv_dim == 768 and cfg.conv_layers[0] == (96, 10, 5) and len(cfg.conv_layers) == 13
    assert sew.load_config("sew-d-mid-k127").pos_conv_kernel == 127
    assert sew.load_config("sew-d-mid").layer_norm_eps == 1e-7
    assert sew.load_config("w2v2-large").layer_norm_first


def test_build_model_overrides_and_yaml(tmp_path):
    model = sew.build_model("sew-d-micro", vocab_size=7, num_layers=2)
    assert model.config.num_layers == 2 and model.ctc_head.proj.out_features == 7
    path = tmp_path / "mine.yaml"
    path.write_text("family: sew\nhidden_size: 64\nnum_heads: 2\nintermediate_size: 128\nnum_layers: 1\n"
                    "pos_conv_groups: 4\n")
    assert sew.build_model(path).config.hidden_size == 64
    assert sew.build_model(sew.load_config("sew-micro")).config.family == "sew"


def test_every_preset_sees_the_receptive_field_the_data_tools_assume():
    from sew.data.manifest import RECEPTIVE_FIELD

    assert {sew.load_config(name).receptive_field for name in sew.preset_names()} == {RECEPTIVE_FIELD}
