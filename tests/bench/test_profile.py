"""sew bench end to end on two micro models with a tiny budget, and the --compare regression check."""

from __future__ import annotations

import copy
import json

import pytest

from sew.bench.profile import compare
from sew.cli import main


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from sew.data.synth import synthesize_corpus

    root = tmp_path_factory.mktemp("bench") / "corpus"
    synthesize_corpus(root, minutes=0.3, seed=0)
    return root


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    code = main(["bench", "--models", "sew-d-micro", "w2v2-micro", "--max-update", "2", "--max-minutes", "60",
                 "--speed-utterances", "2", "--data", str(corpus), "--out", str(out), "--no-reference",
                 "--no-progress", "--threads", "1", "--variants", "bf16", "int8", "onnx"])
    assert code == 0
    (directory,) = list(out.iterdir())
    return directory


@pytest.mark.slow
def test_result_files(run):
    data = json.loads((run / "results.json").read_text())
    assert [r["model"] for r in data["speed"]] == ["sew-d-micro", "w2v2-micro"]
    assert [r["model"] for r in data["wer"]] == ["sew-d-micro", "w2v2-micro"]
    assert data["baseline"] == "w2v2-micro" and data["machine"]["threads"] == 1
    for r in data["wer"]:
        assert r["updates"] == 2 and 0 <= r["cer"] <= 100 and r["test_utterances"] > 0
        assert 0 <= r["cer_int8"] <= 100 and 0 <= r["cer_bf16"] <= 100  # deployment backends, on the same split
        assert abs(r["cer_onnx"] - r["cer"]) < 0.5  # ONNX Runtime gives PyTorch's logits to 1e-5
    for r in data["speed"]:
        assert r["ms_per_utterance"] > 0 and r["speedup_vs_baseline"] > 0
    table = (run / "results.md").read_text()
    assert "| sew-d-micro | sew-d |" in table and "WER %" in table and "CER %" in table and "CER int8 %" in table
    assert (run / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "pareto.png").stat().st_size > 10_000


@pytest.mark.slow
def test_compare_passes_on_itself_and_fails_on_a_doctored_baseline(run, tmp_path, capsys):
    data = json.loads((run / "results.json").read_text())
    assert compare(data, data, 1.0) == []
    better = copy.deepcopy(data)
    better["wer"][0]["wer"] = max(0.0, data["wer"][0]["wer"] - 30) / 2  # the baseline claims a much lower WER
    better["speed"][0]["speedup_vs_baseline"] = data["speed"][0]["speedup_vs_baseline"] * 2
    problems = compare(data, better, 10.0)
    assert any("sew-d-micro: WER rose" in p for p in problems)
    assert any("sew-d-micro (sew): speed ratio" in p for p in problems)
    missing = copy.deepcopy(data)
    missing["wer"].append(dict(data["wer"][0], model="sew-mid"))
    assert any("sew-mid" in p for p in compare(data, missing, 10.0))


@pytest.mark.slow
def test_cli_compare_exits_nonzero_and_says_why(run, corpus, tmp_path, capsys):
    data = json.loads((run / "results.json").read_text())
    doctored = copy.deepcopy(data)
    for r in doctored["wer"]:
        r["wer"], r["cer"] = 1.0, 1.0  # a baseline no 2-update model can match
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(doctored))
    code = main(["bench", "--models", "sew-d-micro", "w2v2-micro", "--max-update", "1", "--speed-utterances", "1",
                 "--data", str(corpus), "--out", str(tmp_path / "r"), "--no-reference", "--no-progress",
                 "--threads", "1", "--compare", str(path), "--tolerance", "5"])
    assert code == 1
    out = capsys.readouterr().out
    assert "worse than" in out and "w2v2-micro: WER rose from 1.00%" in out


def test_wer_with_pretraining_first(corpus, tmp_path):
    code = main(["bench", "wer", "--models", "sew-d-micro", "--pretrain-minutes", "0.02", "--max-update", "2",
                 "--max-minutes", "60", "--data", str(corpus), "--out", str(tmp_path), "--no-progress",
                 "--threads", "1"])
    assert code == 0
    (run,) = list(tmp_path.iterdir())
    (row,) = json.loads((run / "results.json").read_text())["wer"]
    assert row["pretrain_updates"] >= 1 and row["updates"] == 2 and row["pretrain_minutes"] == 0.02
    pretrained = run / "runs" / "sew-d-micro-seed0" / "pretrain" / "final"
    assert (pretrained / "model.safetensors").is_file()
    recipe = json.loads((run / "runs" / "sew-d-micro-seed0" / "recipe.json").read_text())
    assert recipe["model"] == str(pretrained)  # fine-tuning started from the pretrained encoder


def test_a_failing_model_or_variant_is_recorded_and_the_run_still_writes_its_files(corpus, tmp_path, capsys):
    """A model that cannot load and an int8 variant on a CPU without an int8 engine (played) cost only
    their own rows: the others are measured, the files written, and the exit code says something failed."""
    from contextlib import nullcontext

    from sew.cpu import capabilities, limit

    x86 = capabilities().arch == "x86_64"
    with limit("baseline") if x86 else nullcontext():  # no AVX2: no int8 engine, no oneDNN
        code = main(["bench", "--models", "sew-d-micro", "no-such-model", "--max-update", "1",
                     "--speed-utterances", "1", "--data", str(corpus), "--out", str(tmp_path), "--no-reference",
                     "--no-progress", "--threads", "1", "--variants", "bf16", "int8",
                     "--results-page", str(tmp_path / "page.md")])
    assert code == 1
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    data = json.loads((run / "results.json").read_text())
    assert [r["model"] for r in data["speed"]] == [r["model"] for r in data["wer"]] == ["sew-d-micro"]
    (row,) = data["wer"]
    assert row["bf16"] == "emulated" if x86 else row["bf16"] in ("native", "emulated")
    assert row["cer_bf16"] is not None and 0 <= row["cer"] <= 100
    failed = {(r["model"], r["phase"].split(",")[0]) for r in data["failures"]}
    assert {("no-such-model", "speed"), ("no-such-model", "fine-tuning and scoring")} <= failed
    if x86:
        assert ("sew-d-micro", "int8 scoring") in failed and row["cer_int8"] is None
        assert any("int8 needs a quantised linear engine" in r["error"] for r in data["failures"])
    assert "## Failures" in (run / "results.md").read_text() and (run / "pareto.png").is_file()
    assert "no-such-model speed" in capsys.readouterr().err
    page = (tmp_path / "page.md").read_text()  # the results page got this run's table and where it ran
    assert page.count("<!-- sew bench quick: begin -->") == 1 and "| sew-d-micro | sew-d |" in page
    assert "commit " in page and "no-such-model" in page and "threads" in page


def test_results_page_keeps_its_text_and_replaces_the_profiles_last_run(tmp_path):
    from sew.bench.report import update_results_page

    page = tmp_path / "results.md"
    page.write_text("# Results\n\nKept by hand.\n")
    results = {"profile_name": "quick", "table": "| a |\n|---|\n| 1 |",
               "machine": {"cpu": "CPU X", "cpu_isa": "avx2", "threads": 2, "torch": "2.13.0"}}
    update_results_page(page, results, "sew bench")
    update_results_page(page, dict(results, table="| a |\n|---|\n| 2 |"), "sew bench --seed 1")
    text = page.read_text()
    assert text.startswith("# Results\n\nKept by hand.") and text.count("sew bench quick: begin") == 1
    assert "| 2 |" in text and "| 1 |" not in text and "`sew bench --seed 1` on CPU X (avx2), 2 threads" in text


def test_a_bench_killed_after_its_first_model_keeps_it_and_resume_runs_the_rest(corpus, tmp_path, monkeypatch):
    import sew.bench.wer as wer
    from sew.bench.report import PhaseStore

    real, trained, kill = wer.train_and_score, [], [True]

    def train(name, *args, **kw):
        if trained and kill[0]:
            raise KeyboardInterrupt  # Ctrl-C, or a job's end, during the second model
        trained.append(name)
        return real(name, *args, **kw)

    monkeypatch.setattr(wer, "train_and_score", train)
    args = ["bench", "wer", "--models", "sew-d-micro", "w2v2-micro", "--max-update", "1", "--max-minutes", "60",
            "--data", str(corpus), "--out", str(tmp_path), "--no-progress", "--threads", "1"]
    with pytest.raises(KeyboardInterrupt):
        main(args)
    (run,) = list(tmp_path.iterdir())
    kept = json.loads((run / "partial.json").read_text())["phases"]
    assert list(kept) == ["sew-d-micro seed 0"] and kept["sew-d-micro seed 0"]["updates"] == 1
    # Resumed: the finished model is not trained again, the other is, and the results hold both.
    trained.clear()
    kill[0] = False
    assert main(args + ["--resume", str(run)]) == 0
    assert trained == ["w2v2-micro"]
    assert [r["model"] for r in json.loads((run / "results.json").read_text())["wer"]] == ["sew-d-micro", "w2v2-micro"]
    with pytest.raises(ValueError, match="made with other settings"):
        PhaseStore(run, {"models": ["other"]})


def test_runs_started_in_the_same_second_get_their_own_directories(tmp_path):
    from sew.bench.report import results_dir

    first, second = results_dir(tmp_path), results_dir(tmp_path)
    assert first != second and first.is_dir() and second.is_dir()


def test_a_resumed_phase_brings_back_the_failures_recorded_inside_it(tmp_path):
    from sew.bench.failures import FailureLog
    from sew.bench.report import PhaseStore

    first = FailureLog()

    def timing():  # one model of the phase failed, the phase finished
        first.add("no-such-model", "speed", "not a preset")
        return {"speed": [1]}

    assert PhaseStore(tmp_path, {"a": 1}, first).run("speed", timing) == {"speed": [1]}
    again = FailureLog()
    assert PhaseStore(tmp_path, {"a": 1}, again).run("speed", lambda: pytest.fail("ran again")) == {"speed": [1]}
    assert [(r["model"], r["error"]) for r in again.records] == [("no-such-model", "not a preset")]


def test_a_timing_process_that_dies_costs_the_speed_rows_only(corpus, tmp_path, monkeypatch):
    """The models are timed in a child process; if it is killed (out of memory), the run records that,
    trains and scores every model, writes its files and exits 1."""
    import sew.bench.timing as timing

    def killed(fn, *args, **kwargs):
        raise timing.TimingProcessDied("the timing process for run_speed_suite was killed by SIGKILL")

    monkeypatch.setattr(timing, "in_fresh_process", killed)
    code = main(["bench", "--models", "sew-d-micro", "--max-update", "1", "--max-minutes", "60",
                 "--speed-utterances", "1", "--data", str(corpus), "--out", str(tmp_path), "--no-reference",
                 "--no-progress", "--threads", "1"])
    assert code == 1
    (run,) = list(tmp_path.iterdir())
    data = json.loads((run / "results.json").read_text())
    assert data["speed"] == [] and [r["model"] for r in data["wer"]] == ["sew-d-micro"]
    assert [(r["model"], r["phase"]) for r in data["failures"]] == [("every model", "speed")]
    assert "SIGKILL" in data["failures"][0]["error"] and "| sew-d-micro |" in (run / "results.md").read_text()
