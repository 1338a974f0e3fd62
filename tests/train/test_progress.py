"""Progress that tells the truth: a run with a wall-clock budget shows progress against that budget."""

from __future__ import annotations

import json

import pytest

from sew.cli import main
from sew.train.logs import budget_fraction, budget_line


def test_the_budget_that_ends_the_run_drives_the_bar():
    # The quick preset: 100000 updates or 17 minutes, whichever comes first.
    assert budget_fraction(120, 2.0, 100_000, 17.0) == pytest.approx(2 / 17)
    assert budget_line(120, 2.0, 100_000, 17.0) == "update 120, 2.0 of 17 min"
    assert budget_fraction(50, 9.0, 100, None) == 0.5 and budget_line(50, 9.0, 100, None) == "update 50 of 100"
    assert budget_line(90, 1.0, 100, 60.0) == "update 90 of 100"  # the updates end this run first
    assert budget_fraction(10, 99.0, 100, 60.0) == 1.0


def test_a_timed_fine_tune_shows_minutes_not_a_day_of_updates(tmp_path, tiny_corpus, capsys, monkeypatch):
    # A clock that says each update took 0.3 s, whatever this CPU takes: the 0.03-minute (1.8 s) budget
    # ends the run after exactly 6 updates on every machine.
    from sew.train.loop import Trainer

    monkeypatch.setattr(Trainer, "_elapsed", lambda self: 0.3 * self.state.update)
    assert main(["finetune", "--data", str(tiny_corpus), "--run-dir", str(tmp_path), "--max-minutes", "0.03",
                 "--valid-split", "none", "--test-split", "", "--set", "model_overrides.num_layers=1",
                 "--set", "train.validate_every_minutes=null", "--set", "train.log_every=1"]) == 0
    err = capsys.readouterr().err
    assert "of 0.03 min" in err and "100000" not in err and "100%" in err
    updates = [r["update"] for r in map(json.loads, (tmp_path / "log.jsonl").read_text().splitlines())
               if r["kind"] == "train"]
    assert updates[-1] == 6
