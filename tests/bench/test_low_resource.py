"""The low-resource profile end to end on a tiny corpus (one model, one seed, a model that fails):
snapshots at P/4 and P/2, the equal-updates rule, the result files, failures, reuse on rerun; its
checks and --compare on made-up rows."""

from __future__ import annotations

import copy
import json

import pytest

from sew.bench.low_resource import add_reductions, check_claims, compare_low_resource
from sew.cli import main

# The default preset (quick: BEST-RQ) on a 1-layer model with 1 s crops: 8 pretraining updates take
# seconds. The 5-minute budget is never reached, so the snapshots fall at updates 2 and 4 of the 8.
PRETRAIN_SET = ["model_overrides={num_layers: 1, layerdrop: 0.0}", "data.max_sample_size=16000",
                "data.min_sample_size=16000", "train.max_update=8", "train.max_tokens=64000",
                "train.warmup_updates=2", "train.log_every=1", "train.save_every=0"]
FINETUNE_SET = ["model_overrides.num_layers=1", "train.log_every=1"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from sew.data.synth import synthesize_corpus

    root = tmp_path_factory.mktemp("low-resource") / "corpus"
    synthesize_corpus(root, minutes=0.3, eval_minutes=0.1, workers=1, progress=False, log=None)
    return root


def bench_args(corpus, out, *extra: str) -> list[str]:
    # The failing model first: the reference run falls to the next model's first from-scratch run.
    args = ["bench", "--profile", "low-resource", "--data", str(corpus), "--models", "no-such-model,sew-d-micro",
            "--seeds", "0", "--pretrain-minutes", "5", "--finetune-minutes", "1", "--max-update", "3", "--smoke",
            "--labeled-minutes", "0.15", "--out", str(out), "--no-progress", "--threads", "1"]
    for item in PRETRAIN_SET:
        args += ["--pretrain-set", item]
    for item in FINETUNE_SET:
        args += ["--finetune-set", item]
    return args + list(extra)


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    assert main(bench_args(corpus, out)) == 1  # no-such-model failed, recorded; the rest ran
    (directory,) = list(out.iterdir())
    return directory


def results_of(directory) -> dict:
    return json.loads((directory / "results.json").read_text())


def test_snapshots_and_equal_updates(run):
    results = results_of(run)
    (pre,) = results["pretraining"]
    assert pre["model"] == "sew-d-micro" and pre["updates"] == 8 and pre["objective"] == "bestrq"
    assert {k: v["update"] for k, v in pre["checkpoints"].items()} == {"P/4": 2, "P/2": 4, "P": 8}
    assert 0 < pre["checkpoints"]["P/4"]["audio_hours"] < pre["audio_hours"]
    for key in ("train_loss", "dev_loss", "train_accuracy", "dev_accuracy", "train_code_perplexity",
                "train_prob_perplexity", "dev_code_perplexity", "dev_prob_perplexity"):
        assert isinstance(pre[key], float), key
    assert pre["healthy"] is True and pre["health"] == []
    pretrain_dir = run / "runs" / "pretrain-sew-d-micro-quick-s0"
    for name in ("snapshot-0.25", "snapshot-0.5", "final"):
        assert (pretrain_dir / name / "model.safetensors").is_file()

    # The reference (from scratch, 1 min, at most 3 updates) set U = 3; every other run got U updates
    # and no time limit.
    assert results["reference"]["model"] == "sew-d-micro" and results["reference"]["updates"] == 3
    runs = {r["checkpoint"]: r for r in results["runs"]}
    assert set(runs) == {"scratch", "P/4", "P/2", "P"}
    assert runs["scratch"]["reference"] and runs["scratch"]["max_minutes"] == 1.0
    for label in ("P/4", "P/2", "P"):
        r = runs[label]
        assert not r["reference"] and r["max_minutes"] is None and r["max_update"] == 3
        assert r["pretrain_updates"] == pre["checkpoints"][label]["update"]
        recipe = json.loads((run / "runs" / r["run_dir"] / "recipe.json").read_text())
        assert recipe["train"]["max_minutes"] is None and recipe["train"]["max_update"] == 3
    assert json.loads((run / "runs" / runs["P/4"]["run_dir"] / "recipe.json").read_text())["model"].endswith(
        "pretrain-sew-d-micro-quick-s0/snapshot-0.25")
    for r in results["runs"]:
        assert r["updates"] == 3 and r["wall_seconds"] > 0 and 0 <= r["cer"] <= 100 and r["test_utterances"] > 0
        assert r["dev_cer"] is not None  # validated once, at the end
    assert all("cer_reduction" in runs[label] for label in ("P/4", "P/2", "P"))
    subset = json.loads((run / "labeled" / "subset.json").read_text())
    assert subset["seconds"] >= 0.15 * 60 and subset["seed"] == 1000


def test_result_files_failures_and_checks(run):
    results = results_of(run)
    failed = {(f["model"], f["phase"]) for f in results["failures"]}
    assert {("no-such-model", "fine-tuning from scratch, seed 0"), ("no-such-model", "pretraining with quick, seed 0"),
            ("no-such-model", "fine-tuning from quick P, seed 0")} <= failed
    assert [r["checkpoint"] for r in results["summary"]] == ["scratch", "P/4", "P/2", "P"]
    assert [r["pretrain_minutes"] for r in results["summary"]] == [0.0, 1.25, 2.5, 5.0]
    checks = {c["check"]: c for c in results["checks"]}
    assert "sew-d-micro seed 0, quick: pretrained test CER <= 0.75 x from scratch" in checks
    assert "sew-d-micro seed 0: from-scratch dev CER below 90% (off the plateau)" in checks
    assert checks["quick: SEW-D at P/4 <= wav2vec 2.0 at P"]["passed"] is None  # one family only
    text = (run / "results.md").read_text()
    for part in ("Smoke test", "U = 3 updates", "## Checks", "## Pretraining", "## Fine-tuning runs", "## Failures",
                 "| sew-d-micro | quick | P/4 | 1.25 |"):
        assert part in text, part
    rows = (run / "results.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("model,family,seed,preset,checkpoint")
    png = (run / "cer-vs-pretraining.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert compare_low_resource(results, results, 5.0) == []


def test_rerun_reuses_finished_runs(run, corpus, capsys):
    logs = {p: p.read_bytes() for p in (run / "runs").glob("*/log.jsonl")}
    assert len(logs) == 5
    capsys.readouterr()
    assert main(bench_args(corpus, run.parent, "--resume", str(run))) == 1
    out = capsys.readouterr().out
    assert out.count("reusing the finished run") == 5
    assert all(p.read_bytes() == text for p, text in logs.items())  # nothing trained again
    results = results_of(run)
    assert len(results["runs"]) == 4 and all(r.get("reused") for r in results["runs"] + results["pretraining"])
    assert len(list(run.parent.iterdir())) == 1  # no new results directory
    # Other budgets into the same directory are refused, before anything runs.
    assert main(bench_args(corpus, run.parent, "--resume", str(run), "--pretrain-minutes", "6")) == 2
    assert "made with other settings (pretrain_minutes: 5.0 then, 6.0 now)" in capsys.readouterr().err
    # A pretraining run made when its preset had another objective is not reused under the same name.
    done = run / "runs" / "pretrain-sew-d-micro-quick-s0" / "bench-run.json"
    record = json.loads(done.read_text())
    assert record["key"]["objective"] == "bestrq"
    done.write_text(json.dumps({**record, "key": {**record["key"], "objective": "contrastive"}}))
    assert main(bench_args(corpus, run.parent, "--resume", str(run))) == 1
    errors = [f["error"] for f in results_of(run)["failures"] if f["phase"] == "pretraining with quick, seed 0"
              and f["model"] == "sew-d-micro"]
    assert errors and "objective: 'contrastive' then, 'bestrq' now" in errors[0]


def test_options_refused_with_the_fix(corpus, tmp_path, capsys):
    args = bench_args(corpus, tmp_path)
    args.remove("--smoke")
    assert main(args) == 2
    assert "--finetune-minutes 1: under 10 minutes" in capsys.readouterr().err
    assert main(["bench", "--seeds", "0", "--out", str(tmp_path)]) == 2
    assert "--seeds: options of --profile low-resource only" in capsys.readouterr().err
    assert main(["bench", "--profile", "low-resource", "--max-minutes", "3", "--out", str(tmp_path)]) == 2
    assert "--max-minutes: not options of --profile low-resource" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before any results directory was made


def row(model: str, family: str, seed: int, checkpoint: str, cer: float, dev_cer: float = 60.0) -> dict:
    return {"model": model, "family": family, "seed": seed, "preset": None if checkpoint == "scratch" else "quick",
            "checkpoint": checkpoint, "fraction": {"scratch": 0.0, "P/4": 0.25, "P/2": 0.5, "P": 1.0}[checkpoint],
            "cer": cer, "wer": cer + 10, "dev_cer": dev_cer, "updates": 100, "wall_seconds": 60.0}


def test_checks_and_compare_on_made_up_rows():
    runs = []
    for seed in (0, 1):
        runs += [row("sew-d-micro", "sew-d", seed, "scratch", 40.0), row("sew-d-micro", "sew-d", seed, "P/4", 30.0),
                 row("sew-d-micro", "sew-d", seed, "P", 20.0),  # reduction 0.5
                 row("w2v2-micro", "wav2vec2", seed, "scratch", 50.0, dev_cer=95.0),
                 row("w2v2-micro", "wav2vec2", seed, "P/4", 45.0),
                 row("w2v2-micro", "wav2vec2", seed, "P", 40.0)]  # reduction 0.2, not <= 0.75 x scratch
    add_reductions(runs)
    checks = {c["check"]: c["passed"] for c in check_claims(runs)}
    assert checks["sew-d-micro seed 1, quick: pretrained test CER <= 0.75 x from scratch"] is True
    assert checks["w2v2-micro seed 0, quick: pretrained test CER <= 0.75 x from scratch"] is False
    assert checks["sew-d-micro seed 0: from-scratch dev CER below 90% (off the plateau)"] is True
    assert checks["w2v2-micro seed 0: from-scratch dev CER below 90% (off the plateau)"] is False
    assert checks["quick: sew-d-micro's relative CER reduction at P >= w2v2-micro's"] is True
    assert checks["quick: sew-d-micro at P/4 <= w2v2-micro at P (test CER)"] is True  # 30 <= 40

    from sew.bench.low_resource import mean_rows

    current = {"summary": mean_rows(runs, 30.0), "checks": check_claims(runs)}
    assert compare_low_resource(current, current, 5.0) == []
    better = copy.deepcopy(current)
    for r in better["summary"]:
        if r["model"] == "sew-d-micro" and r["checkpoint"] == "P":
            r["cer"], r["cer_reduction"] = 10.0, 0.75
    problems = compare_low_resource(current, better, 5.0)
    assert "sew-d-micro quick P: test CER rose from 10% to 20%" in problems
    assert "sew-d-micro quick P: relative CER reduction fell from 0.75 to 0.5" in problems
