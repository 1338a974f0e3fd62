"""The one config loader: mappings -> nested dataclasses, values converted by their annotations."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

import sew
from sew.asr.finetune import load_recipe
from sew.config import ConfigError, from_mapping, load_preset
from sew.pretrain.recipe import load_recipe as load_pretrain_recipe


@dataclass
class Inner:
    rate: float = 0.5
    sizes: tuple[int, ...] = (1, 2)
    name: str | None = None


@dataclass
class Outer:
    steps: int = 10
    flag: bool = False
    inner: Inner = field(default_factory=lambda: Inner(rate=0.25))
    extra: dict = field(default_factory=dict)


def test_values_are_converted_by_type():
    cfg = from_mapping(Outer, {"steps": "1_000", "flag": "yes", "inner": {"sizes": [3, "4"], "name": "x"}})
    assert cfg == Outer(steps=1000, flag=True, inner=Inner(rate=0.25, sizes=(3, 4), name="x"))
    assert from_mapping(Inner, {"rate": "1e-4"}).rate == 1e-4 and from_mapping(Inner, {"rate": 2}).rate == 2.0
    assert from_mapping(Outer, {"inner": None}).inner == Inner()  # an explicit null section: the type's defaults


def test_bad_values_and_unknown_fields_are_named():
    with pytest.raises(ConfigError, match=r"steps: expected an integer, found '3.5'"):
        from_mapping(Outer, {"steps": "3.5"})
    with pytest.raises(ConfigError, match=r"unknown fields stpes \(did you mean steps\?\)"):
        from_mapping(Outer, {"stpes": 3})
    with pytest.raises(ConfigError, match=r"inner: unknown fields rat \(did you mean rate\?\)"):
        from_mapping(Outer, {"inner": {"rat": 1}})
    with pytest.raises(ConfigError, match="quote it"):
        from_mapping(Inner, {"name": False})  # YAML's `name: no`


def test_set_overrides_of_the_recipes_are_typed():
    recipe = load_recipe("quick", ["train.lr=1e-4", "train.betas=[0.9, 0.99]", "train.mixed_precision=no",
                                   "data.valid_split=null", "model_overrides.layerdrop=0.1", "train.max_minutes=2"])
    assert recipe.train.lr == 0.0001 and isinstance(recipe.train.lr, float)
    assert recipe.train.betas == (0.9, 0.99) and recipe.train.mixed_precision == "no"
    assert recipe.data.valid_split is None and recipe.train.max_minutes == 2.0
    assert sew.load_config("sew-d-micro", **recipe.model_overrides).layerdrop == 0.1
    with pytest.raises(ConfigError, match=r"train: unknown fields lrr \(did you mean lr\?\)"):
        load_recipe("quick", ["train.lrr=1"])
    assert load_recipe("quick", values={"train.seed": 7}).train.seed == 7


def test_a_partial_section_keeps_the_recipes_own_defaults():
    """Pretraining keeps best_metric 'loss' (its own default for the train section) when a YAML or
    --set gives only some train fields; fine-tuning keeps 'wer'."""
    assert load_pretrain_recipe("quick", ["train.lr=1e-3"]).train.best_metric == "loss"
    assert load_recipe({"train": {"lr": 1e-3}}).train.best_metric == "wer"


def test_model_configs_share_the_loader(tmp_path):
    (tmp_path / "m.yaml").write_text("family: sew-d\nnum_layers: '2'\nconv_layers: [[32, 10, 5]]\nhidden_size: 64\n"
                                     "num_heads: 4\npos_conv_groups: 4\n")
    cfg = sew.load_config(tmp_path / "m.yaml")
    assert cfg.num_layers == 2 and cfg.conv_layers == [(32, 10, 5)]
    assert sew.load_config("sew-d-micro").replace(layerdrop="0.2").layerdrop == 0.2
    with pytest.raises(ValueError, match=r"num_layer \(did you mean num_layers\?\)"):
        sew.build_model("sew-d-micro", num_layer=3)
    with pytest.raises(ValueError, match="unknown model preset 'sew-d-mdi'. Did you mean sew-d-mid"):
        load_preset("model", sew.EncoderConfig, "sew-d-mdi")
