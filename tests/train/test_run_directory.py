"""A run directory is locked before anything is written in it, and a resume under another recipe is refused."""

from __future__ import annotations

import json

from sew.cli import main
from sew.files import DirectoryLock


def args(run, data, *extra):
    return ["finetune", "--data", str(data), "--run-dir", str(run), "--max-update", "2", "--no-progress",
            "--valid-split", "none", "--test-split", "", "--set", "model_overrides.num_layers=1",
            "--set", "train.max_minutes=null", "--set", "train.save_every=1", "--set", "train.max_tokens=48000",
            "--set", "train.validate_every_minutes=null", *extra]


def test_a_busy_run_directory_is_refused_before_anything_is_written(tmp_path, tiny_corpus, capsys):
    run = tmp_path / "run"
    held = DirectoryLock(run)  # another command is training here
    assert main(args(run, tiny_corpus)) == 2
    assert "in use by another process" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == [".lock"]  # no recipe.json, vocab.json, log or checkpoint
    held.release()


def test_resuming_under_another_recipe_is_refused_unless_asked_for(tmp_path, tiny_corpus, capsys):
    run = tmp_path / "run"
    assert main(args(run, tiny_corpus)) == 0
    recipe, log = (run / "recipe.json").read_text(), (run / "log.jsonl").read_text()
    capsys.readouterr()
    # A repeated command with a typo: refused, the fields named, nothing changed in the run directory.
    assert main(args(run, tiny_corpus, "--lr", "0.5", "--seed", "7")) == 2
    err = capsys.readouterr().err
    assert "made under another recipe" in err and "train.lr: 0.001 -> 0.5" in err and "train.seed: 1 -> 7" in err
    assert "--change-recipe" in err
    assert (run / "recipe.json").read_text() == recipe and (run / "log.jsonl").read_text() == log
    # A longer budget continues the run (said), and cadence fields may differ freely.
    assert main(args(run, tiny_corpus, "--max-update", "3", "--set", "train.log_every=1")) == 0
    assert "train.max_update changed from 2 to 3" in capsys.readouterr().out
    # Asked for explicitly, the run goes on under the new recipe, which recipe.json then holds.
    assert main(args(run, tiny_corpus, "--max-update", "4", "--lr", "0.5", "--change-recipe")) == 0
    assert json.loads((run / "recipe.json").read_text())["train"]["lr"] == 0.5
    assert "train.lr changed from 0.001 to 0.5" in capsys.readouterr().out
