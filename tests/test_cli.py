"""The sew command line: models and convert."""

from __future__ import annotations

import json

import torch

import sew
from sew.checkpoint import save_model
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
    save_model(model, tmp_path / "ours")
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


def subcommand_options(name: str) -> dict[str, str]:
    """``--option`` -> help text of one subcommand (and its nested ones)."""
    import argparse

    from sew.cli import build_parser

    found = {}

    def walk(parser):
        for action in parser._actions:
            for flag in action.option_strings:
                found[flag] = action.help
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)

    root = build_parser()
    walk(next(a for a in root._actions if isinstance(a, argparse._SubParsersAction)).choices[name])
    return found


def test_shared_options_have_one_spelling_and_a_help_line():
    training = {"--data", "--run-dir", "--resume", "--set", "--threads", "--device", "--strict", "--no-progress",
                "--max-update", "--max-minutes", "--lr", "--mixed-precision", "--seed", "--preset"}
    for name in ("finetune", "pretrain"):
        options = subcommand_options(name)
        assert training <= set(options), (name, training - set(options))
        assert not {"--out", "--config", "-c", "--max-updates", "--budget-minutes", "--recipe"} & set(options)
    for name in ("eval", "transcribe", "bench"):
        assert {"--device"} <= set(subcommand_options(name))
    bench = subcommand_options("bench")
    assert {"--max-update", "--max-minutes", "--preset", "--data", "--threads"} <= set(bench)
    for name in ("models", "convert", "data", "pretrain", "finetune", "eval", "transcribe", "bench", "export"):
        for flag, text in subcommand_options(name).items():
            assert flag in ("-h", "--help") or (text and text.strip()), f"sew {name} {flag} has no help line"


def test_user_errors_are_one_line_on_stderr_with_exit_code_2(tmp_path, capsys):
    for argv in (["finetune", "--preset", "quik", "--run-dir", str(tmp_path / "a")],
                 ["pretrain", "--preset", "quick", "--set", "train.lrr=1", "--run-dir", str(tmp_path / "b")],
                 ["eval", "--model", str(tmp_path / "none")],
                 ["bench", "speed", "--models", "sew-d-micro", "--device", "cuda"] if not torch.cuda.is_available()
                 else ["eval", "--model", str(tmp_path / "none2")]):
        assert main(argv) == 2, argv
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"sew {argv[0]}: error:"), captured.err
