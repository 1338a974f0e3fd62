"""The downstream profile end to end on a tiny task: every run kind, timing, targets, files, failures."""

from __future__ import annotations

import json

import pytest

import sew
from tests.classify.conftest import make_tone_corpus


@pytest.fixture
def tiny_task(tmp_path, monkeypatch):
    root = make_tone_corpus(tmp_path / "tones", counts=(("train", 6), ("dev", 2), ("test", 3)))
    monkeypatch.setattr("sew.data.tasks.default_task", lambda name, seed=0, **kw: root)
    encoder = tmp_path / "pretrained"
    sew.save_model(sew.build_model("sew-d-micro"), encoder)
    presets = []
    monkeypatch.setattr("sew.bench.pretrained.pretrained_encoder",
                        lambda model, *a, recipe="quick", **kw: presets.append(recipe) or encoder)
    return root, presets


@pytest.mark.slow
def test_downstream_profile_writes_every_run_and_records_a_failure(tiny_task, tmp_path):
    from sew.bench.downstream import DownstreamProfile, compare_downstream, run_downstream

    profile = DownstreamProfile(models=["sew-d-micro", "w2v2-micro", "no-such-model"], tasks=["kws"],
                                budget_minutes=0.02, speed_utterances=6, speed_repeats=1)
    out, results = run_downstream(profile, tmp_path / "results", progress=False)
    assert set(tiny_task[1]) == {"quick-contrastive"}  # the preset the results page's table was measured with
    done = {(r["model"], r["mode"]) for r in results["runs"]}
    for model in ("sew-d-micro", "w2v2-micro"):
        assert {(model, "finetune"), (model, "probe-random")} <= done
    assert ("logmel", "logmel") in done and ("sew-d-micro", "probe") in done
    assert all(0 <= r["accuracy"] <= 100 and r["updates"] > 0 and r["test_utterances"] == 9 for r in results["runs"])
    speed = {r["model"]: r for r in results["speed"]}
    assert set(speed) == {"sew-d-micro", "w2v2-micro"}
    assert speed["w2v2-micro"]["speedup_vs_baseline"] == 1.0 and speed["sew-d-micro"]["batch1_ms"] > 0
    failed = {(f["model"], f["phase"]) for f in results["failures"]}
    assert ("no-such-model", "kws speed") in failed and ("no-such-model", "kws finetune") in failed
    assert any("fine-tuned accuracy" in t["target"] for t in results["targets"])
    for name in ("results.json", "results.md", "accuracy.png"):
        assert (out / name).stat().st_size > 100
    assert "| kws | sew-d-micro | finetune |" in (out / "results.md").read_text()
    assert compare_downstream(results, results, 5.0) == []
    worse = json.loads(json.dumps(results))
    worse["runs"][0]["accuracy"] = results["runs"][0]["accuracy"] * 0.5 - 1
    assert any("accuracy fell" in p for p in compare_downstream(worse, results, 5.0))


def test_the_encoder_cache_names_the_objective(tmp_path, monkeypatch):
    from sew.bench.pretrained import pretrained_dir

    monkeypatch.setenv("SEW_CACHE", str(tmp_path))
    assert pretrained_dir("sew-d-micro", 10, 0).name == "sew-d-micro-quick-bestrq-m10-s0"
    assert pretrained_dir("sew-d-micro", 10, 1, "quick-contrastive").name == \
        "sew-d-micro-quick-contrastive-contrastive-m10-s1"
