"""``sew bench train-speed``: rows for every step and implementation, consistent ratios and FLOPs, a
failing model recorded while the others run, and the result files."""

from __future__ import annotations

import json

import pytest


def test_rows_ratios_failures_and_result_files(tmp_path):
    from sew.cli import main

    code = main(["bench", "train-speed", "--models", "w2v2-micro", "no-such-preset", "--seconds", "0.8", "0.5",
                 "--repeats", "1", "--threads", "2", "--out", str(tmp_path)])
    assert code == 1  # a model failed: recorded, and the others still measured and written
    (results,) = tmp_path.glob("*/results.json")
    data = json.loads(results.read_text())
    assert [(f["model"], f["phase"]) for f in data["failures"]] == [("no-such-preset", "train-speed")]
    rows = {(r["step"], r["implementation"]): r for r in data["train_speed"]}
    assert set(rows) == {(step, impl) for step in ("finetune", "frozen", "pretrain")
                         for impl in ("sew", "sew-plain", "transformers")} - {("frozen", "sew-plain")}
    ours, theirs = rows["finetune", "sew"], rows["finetune", "transformers"]
    assert theirs["sew_speedup_vs_transformers"] == pytest.approx(theirs["ms_per_update"] / ours["ms_per_update"],
                                                                  rel=1e-2)
    plain = rows["finetune", "sew-plain"]
    assert plain["fast_speedup_vs_plain"] == pytest.approx(plain["ms_per_update"] / ours["ms_per_update"], rel=1e-2)
    # the frozen extractor runs forward only: fewer FLOPs per update than training it
    assert 0 < rows["frozen", "sew"]["train_gflop"] < ours["train_gflop"]
    assert ours["audio_s_per_s"] == pytest.approx(1.3 / (ours["ms_per_update"] / 1000), rel=2e-2)
    assert ours["batch"].startswith("2 x 0.8-0.5 s") and ours["precision"] == "float32"
    assert sum(ours["breakdown"].values()) == pytest.approx(1.0, abs=0.01) and ours["breakdown"]["matrix products"] > 0
    assert all(0 < r["peak_fraction"] for r in data["train_speed"]) and data["machine"]["threads"] == 2
    assert "Where the time goes" in (results.parent / "results.md").read_text()
