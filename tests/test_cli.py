"""The sew command line: models and convert."""

from __future__ import annotations

import json

import torch

import sew
from sew.cli import main


def test_models_lists_every_preset(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in sew.preset_names():
        assert name in out
    assert "78.82M" in out and "25Hz" in out  # sew-d-mid and the squeezed rate
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rows}
    assert by_name["w2v2-base"]["transformer_rate_hz"] == 50
    assert by_name["sew-d-tiny"]["params_m"] == 24.13


def test_convert_round_trip(tmp_path, capsys):
    from sew.data.text import Vocabulary

    words = Vocabulary.build(["a ba b"])
    model = sew.build_model("sew-micro", vocab_size=len(words)).eval()
    model.save_pretrained(tmp_path / "ours")
    words.save(tmp_path / "ours")
    vocab = json.loads((tmp_path / "ours" / "vocab.json").read_text())
    assert main(["convert", str(tmp_path / "ours"), str(tmp_path / "hf")]) == 0
    assert (tmp_path / "hf" / "config.json").is_file()
    assert json.loads((tmp_path / "hf" / "vocab.json").read_text()) == vocab  # the vocabulary travels
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "back")]) == 0
    assert "sew format" in capsys.readouterr().out
    assert json.loads((tmp_path / "back" / "vocab.json").read_text()) == vocab
    back = sew.load_model(tmp_path / "back").eval()
    x = torch.randn(1, 6000)
    with torch.no_grad():
        assert torch.equal(back(x).logits, model(x).logits)


def test_convert_bad_source_is_one_line_error(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "missing"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "sew convert: error:" in err and "does not exist" in err
