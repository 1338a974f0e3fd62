"""``sew bench train-speed``: rows for every step and implementation, consistent ratios and FLOPs, a
failing model recorded while the others run, and the result files."""

from __future__ import annotations

import json

import pytest

from sew.bench.train_speed import TrainSpeedSetup, run_train_speed

pytest.importorskip("transformers")

SECONDS = (0.8, 0.5)


def test_rows_ratios_and_failures():
    setup = TrainSpeedSetup(repeats=1, warmup=1, seconds=SECONDS)
    run = run_train_speed(["w2v2-micro", "no-such-preset"], setup, log=lambda line: None)
    rows = {(r.step, r.implementation): r for r in run.rows}
    assert set(rows) == {(step, impl) for step in ("finetune", "frozen", "pretrain")
                         for impl in ("sew", "sew-plain", "transformers")}
    ours, theirs = rows["finetune", "sew"], rows["finetune", "transformers"]
    assert theirs.sew_speedup_vs_transformers == pytest.approx(theirs.ms_per_update / ours.ms_per_update, rel=1e-2)
    plain = rows["finetune", "sew-plain"]
    assert plain.fast_speedup_vs_plain == pytest.approx(plain.ms_per_update / ours.ms_per_update, rel=1e-2)
    # the frozen extractor runs forward only: fewer FLOPs per update than training it
    assert 0 < rows["frozen", "sew"].train_gflop < ours.train_gflop
    assert ours.audio_s_per_s == pytest.approx(sum(SECONDS) / (ours.ms_per_update / 1000), rel=2e-2)
    assert ours.batch.startswith("2 x 0.8-0.5 s") and ours.precision == "float32"
    assert sum(ours.breakdown.values()) == pytest.approx(1.0, abs=0.01) and ours.breakdown["matrix products"] > 0
    assert all(0 < r.peak_fraction for r in run.rows)
    assert [(f["model"], f["phase"]) for f in run.failures] == [("no-such-preset", "train-speed")]


def test_cli_writes_results(tmp_path, capsys):
    from sew.cli import main

    code = main(["bench", "train-speed", "--models", "sew-d-micro", "--steps", "finetune", "--seconds", "0.6",
                 "--repeats", "1", "--no-reference", "--no-breakdown", "--out", str(tmp_path)])
    assert code == 0
    (results,) = tmp_path.glob("*/results.json")
    data = json.loads(results.read_text())
    assert [(r["implementation"], r["step"]) for r in data["train_speed"]] == [("sew", "finetune"),
                                                                               ("sew-plain", "finetune")]
    assert data["machine"]["threads"] >= 1 and (results.parent / "results.md").is_file()
