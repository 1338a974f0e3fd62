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


def test_a_torn_last_log_line_is_dropped_and_a_resumed_log_has_one_record_per_update(tmp_path, capsys):
    from sew.train.logs import LOG_FILE, RunLogger, read_log

    lines = [json.dumps({"kind": "run", "update": 0})] + [json.dumps({"kind": "train", "update": u, "loss": 1.0})
                                                          for u in range(1, 8)]
    (tmp_path / LOG_FILE).write_text("\n".join(lines) + '\n{"kind": "train", "upd')  # killed mid-write
    assert [r["update"] for r in read_log(tmp_path, "train")] == list(range(1, 8))
    assert f"{tmp_path / LOG_FILE}:9: dropped a torn last record" in capsys.readouterr().err
    # Resumed from the checkpoint of update 5: updates 6 and 7 are done again, and logged once.
    logger = RunLogger(tmp_path, tensorboard=False, progress=False, update=5)
    for u in (6, 7):
        logger.log("train", u, {"loss": 0.5})
    logger.close()
    train = read_log(tmp_path, "train")
    assert [r["update"] for r in train] == list(range(1, 8)) and [r["loss"] for r in train[-2:]] == [0.5, 0.5]
    assert "removed 2 record(s) past update 5" in capsys.readouterr().err
    # A damaged line before the end is not guessed at: the error names the file and line.
    (tmp_path / LOG_FILE).write_text(lines[0] + "\n{oops\n" + lines[1] + "\n")
    with pytest.raises(ValueError, match=rf"{LOG_FILE}:2: not a JSON record"):
        read_log(tmp_path)
