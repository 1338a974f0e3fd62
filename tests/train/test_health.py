"""The health monitor: each symptom named from records and from real tiny runs, none on a healthy run."""

from __future__ import annotations

import json
import math

import pytest
import torch

from sew.cli import main
from sew.models.lengths import lengths_to_mask
from sew.pretrain.objective import time_varying_share
from sew.train.health import HealthMonitor, summary_line
from sew.train.health_report import check_report, final_line

from ..pretrain.helpers import read_log, tiny_args

CHANCE = math.log(21)


def records(n: int, every: int = 10, **values) -> list[dict]:
    """Train records at updates every, 2 every, ... n x every, values constant or f(update)."""
    out = []
    for u in range(every, n * every + 1, every):
        out.append({"kind": "train", "update": u, "skipped": 0,
                    **{k: (v(u) if callable(v) else v) for k, v in values.items()}})
    return out


HEALTHY = dict(loss=lambda u: 3.0 - u / 400, contrastive=lambda u: 3.0 - u / 400, chance=CHANCE, accuracy=0.5,
               prob_perplexity=60.0, code_perplexity=50.0, time_share=0.7, gnorm=3.0)


def pretrain_monitor(**kw) -> HealthMonitor:
    return HealthMonitor("pretrain", warmup_updates=kw.pop("warmup", 10), codebook_size=128, groups=2, **kw)


def symptoms(monitor: HealthMonitor) -> list[str]:
    return [f.symptom for f in monitor.findings]


def test_healthy_records_raise_nothing():
    monitor = pretrain_monitor()
    monitor.replay(records(60, **HEALTHY))
    assert monitor.healthy, [f.message for f in monitor.findings]


@pytest.mark.parametrize("change, symptom, first", [
    ({"contrastive": CHANCE * 0.99}, "not-learning", 300),
    ({"prob_perplexity": 12.0}, "codebook-collapse", 100),
    ({"code_perplexity": 4.0}, "codebook-collapse", 100),
    ({"accuracy": 0.99, "contrastive": 0.01}, "trivial-solution", 10),
    ({"accuracy": 1.0, "contrastive": 0.0, "chance": 0.0}, "trivial-solution", 10),
    ({"time_share": 0.1}, "representation-collapse", 100),
])
def test_each_symptom_is_named_once_with_its_numbers(change, symptom, first):
    monitor = pretrain_monitor()
    found = monitor.replay(records(60, **{**HEALTHY, **change}))
    assert [f.symptom for f in found] == [symptom]  # once, although every later record shows it too
    assert found[0].update == first
    key, value = list(change.items())[0]
    assert found[0].values[key.replace("contrastive", "loss")] == pytest.approx(value)
    # Before the symptom's start (warm-up, 300 updates for not-learning) nothing is said.
    late = pretrain_monitor(warmup=400)
    late.replay(records(39, **{**HEALTHY, **change}))
    assert late.healthy or symptom == "trivial-solution"


def test_divergence_from_loss_rise_gradient_spike_and_skipped_updates():
    rising = pretrain_monitor()
    rising.replay(records(40, **{**HEALTHY, "contrastive": lambda u: 1.2 if u < 200 else 2.5}))
    assert symptoms(rising) == ["divergence"] and "minimum 1.200" in rising.findings[0].message
    spike = pretrain_monitor()
    spike.replay(records(40, **{**HEALTHY, "gnorm": lambda u: 500.0 if u == 300 else 3.0}))
    assert symptoms(spike) == ["divergence"] and spike.findings[0].update == 300
    skipped = pretrain_monitor()
    skipped.replay([{**r, "skipped": int(r["update"] >= 150)} for r in records(40, **HEALTHY)])
    assert symptoms(skipped) == ["divergence"] and skipped.findings[0].update == 150


def test_blank_plateau_needs_a_flat_loss_and_empty_hypotheses():
    flat = dict(loss=3.3, empty=1.0, gnorm=1.0)
    stuck = HealthMonitor("ctc", warmup_updates=40)
    stuck.replay(records(40, **flat))
    assert symptoms(stuck) == ["blank-plateau"] and stuck.findings[0].update == 300
    assert "training batches" in stuck.findings[0].message
    learning = HealthMonitor("ctc", warmup_updates=40)
    learning.replay(records(40, **{**flat, "loss": lambda u: 3.3 - u / 200}))
    assert learning.healthy
    talking = HealthMonitor("ctc", warmup_updates=40)  # flat but the hypotheses are not empty
    talking.replay(records(40, **{**flat, "empty": 0.2}))
    assert talking.healthy
    on_dev = HealthMonitor("ctc")
    on_dev.replay(records(30, **{**flat, "empty": 0.0}) + [{"kind": "valid", "update": 300, "empty": 1.0, "cer": 1.0}])
    assert symptoms(on_dev) == ["blank-plateau"] and "on dev" in on_dev.findings[0].message



def test_a_symptom_that_clears_is_withdrawn_once_and_can_be_said_again():
    # The share dips below 0.2 (the finding at update 100), comes back (withdrawn when the window's
    # mean passes 0.4), then collapses for good (said again).
    dip = pretrain_monitor()
    share = lambda u: 0.1 if u <= 200 else (0.6 if u <= 400 else 0.05)  # noqa: E731
    events = dip.replay(records(60, **{**HEALTHY, "time_share": share}))
    said = [(f.symptom, f.update, f.recovered) for f in dip.findings]
    assert said == [("representation-collapse", 100, 230), ("representation-collapse", 440, None)]
    assert "recovered from representation-collapse (said at update 100): 40.0% of the context output" in \
        dip.findings[0].recovery
    assert len(events) == 3 and not dip.healthy  # two findings and one recovery; the second stands
    assert summary_line(dip.findings) == ("health: representation-collapse at update 100, recovered at update 230; "
                                          "representation-collapse at update 440")
    # A run that only dipped is healthy at the end; the line keeps what was said.
    learned = pretrain_monitor()
    learned.replay(records(60, **{**HEALTHY, "contrastive": lambda u: CHANCE if u <= 400 else 0.8 * CHANCE}))
    assert [(f.symptom, f.update, f.recovered) for f in learned.findings] == [("not-learning", 300, 420)]
    assert learned.healthy and summary_line(learned.findings).startswith("health: no problem left (not-learning")
    codes = pretrain_monitor()  # G x V = 128: collapsed under 12.8, recovered from 25.6
    codes.replay(records(60, **{**HEALTHY, "prob_perplexity": lambda u: 5.0 if u <= 200 else 60.0}))
    assert [(f.symptom, f.update, f.recovered) for f in codes.findings] == [("codebook-collapse", 100, 220)]
    assert "probability perplexity 27.0, code perplexity 50.0 at update 220" in codes.findings[0].recovery


def test_no_withdrawal_near_the_threshold_or_for_divergence():
    # Hysteresis: a share that wavers between 0.15 and 0.3 is one standing finding, not a flapping one.
    wavering = pretrain_monitor()
    wavering.replay(records(60, **{**HEALTHY, "time_share": lambda u: 0.15 if (u // 50) % 2 else 0.3}))
    assert [(f.symptom, f.recovered) for f in wavering.findings] == [("representation-collapse", None)]
    rising = pretrain_monitor()  # the loss comes back down after its rise: the divergence still stands
    rising.replay(records(60, **{**HEALTHY, "contrastive": lambda u: 2.5 if 200 <= u < 300 else 1.2}))
    assert symptoms(rising) == ["divergence"] and rising.findings[0].recovered is None and not rising.healthy
    plateau = HealthMonitor("ctc", warmup_updates=40)  # CTC: the plateau is left when hypotheses appear
    plateau.replay(records(50, loss=lambda u: 3.3 if u <= 400 else 3.3 - (u - 400) / 100,
                           empty=lambda u: 1.0 if u <= 400 else 0.0, gnorm=1.0))
    assert [(f.symptom, f.update, f.recovered) for f in plateau.findings] == [("blank-plateau", 300, 430)]


def test_the_trainer_logs_a_recovery_and_does_not_stop_for_it(tmp_path):
    from types import SimpleNamespace

    from sew.train.health_hooks import HealthHooks

    logged = []
    hooks = HealthHooks()
    hooks.monitor, hooks.is_main, hooks.stopped_by_health = pretrain_monitor(), True, False
    hooks.cfg, hooks.acc = SimpleNamespace(stop_on_health=False), SimpleNamespace(num_processes=1)
    hooks.logger = SimpleNamespace(log=lambda kind, update, values: logged.append((kind, update, values)),
                                   message=print)
    for r in records(30, **{**HEALTHY, "time_share": lambda u: 0.1 if u <= 150 else 0.7}):
        assert not hooks._health(r, broadcast=False)
    assert [(k, u, v["symptom"], v.get("from")) for k, u, v in logged] == [
        ("health", 100, "representation-collapse", None), ("health", 180, "recovered", "representation-collapse")]
    assert logged[1][2]["message"].startswith("recovered from representation-collapse (said at update 100)")

def test_time_varying_share():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(2, 50, 16, generator=g)
    valid = lengths_to_mask(torch.tensor([50, 30]), 50)
    assert 0.9 < float(time_varying_share(hidden, valid)) <= 1.0
    constant = torch.randn(2, 1, 16, generator=g).expand(2, 50, 16) + 0.01 * hidden
    assert float(time_varying_share(constant, valid)) < 0.01
    # Padding frames do not count.
    padded = hidden.clone()
    padded[1, 30:] = 1e3
    assert float(time_varying_share(padded, valid)) == pytest.approx(float(time_varying_share(hidden, valid)))


# -- real tiny runs ------------------------------------------------------------------------------
SMALL = ["--set", "model_overrides={num_layers: 1, hidden_size: 64, intermediate_size: 128, num_heads: 2, "
         "layerdrop: 0.0}", "--set", "objective.final_dim=32", "--set", "objective.codevector_dim=32",
         "--set", "objective.mlp_hidden_size=64", "--set", "train.max_tokens=16000", "--set", "train.log_every=10"]
FROZEN = ["--set", "objective.feature_grad_mult=0.0", "--set", "data.max_sample_size=8000",
          "--set", "data.min_sample_size=8000", "--set", "train.max_tokens=8000"]  # cheaper updates


def health_records(run) -> list[dict]:
    return read_log(run, "health")


def test_a_run_that_does_not_learn_is_named_stopped_checked_and_resumed(tmp_path, capsys):
    run = tmp_path / "run"
    rc = main(tiny_args(run, 400, *SMALL, *FROZEN, "--set", "train.lr=1e-12", "--stop-on-health"))
    out = capsys.readouterr().out
    assert rc == 1  # stopped by the monitor
    found = health_records(run)
    assert [r["symptom"] for r in found] == ["not-learning"] and found[0]["update"] == 300
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_by_health"] and summary["update"] == 300 and not summary["healthy"]
    assert (run / "final").is_dir() and "health: not-learning at update 300" in out
    assert "not-learning at update 300" in final_line(run)
    # --check replays the log to the same finding.
    report, healthy = check_report(run)
    assert not healthy and "not learning: the mean loss" in report
    assert main(["pretrain", "--check", str(run)]) == 1
    # Resumed, the monitor keeps what it said: the finding is not logged again.
    assert main(tiny_args(run, 320, *SMALL, *FROZEN, "--set", "train.lr=1e-12")) == 0
    assert len(health_records(run)) == 1 and read_log(run)[-1]["update"] == 320


def test_a_diverging_run_is_named(tmp_path):
    run = tmp_path / "run"
    assert main(tiny_args(run, 50, *SMALL, "--set", "train.lr=3.0")) == 1
    assert [r["symptom"] for r in health_records(run)] == ["divergence"]
    assert "non-finite" in health_records(run)[0]["message"]


def test_codebook_collapse_and_its_trivial_solution_are_named(tmp_path, monkeypatch):
    # The state users of fairseq and transformers report after too high a learning rate, built by hand
    # so that it does not hang on how 110 updates of SGD round on this CPU: every feature picks entry 0 of
    # each group (the projection ignores its input and favours that entry by 30 logits, far beyond the
    # Gumbel noise). Every quantised target is then the same vector, every negative equals its positive
    # and is masked: accuracy 1, loss 0, no usable negative left, one code per group.
    import sew.pretrain.run as run_module

    build = run_module.build_model

    def collapsed(recipe):
        model = build(recipe)
        q = model.quantizer
        with torch.no_grad():
            q.weight_proj.weight.zero_()
            q.weight_proj.bias.copy_(torch.tensor([30.0] + [0.0] * (q.entries - 1)).repeat(q.groups))
        return model

    monkeypatch.setattr(run_module, "build_model", collapsed)
    run = tmp_path / "run"
    assert main(tiny_args(run, 110, *SMALL, *FROZEN, "--set", "train.lr=1e-6")) == 0
    found = {r["symptom"]: r for r in health_records(run)}
    assert set(found) == {"codebook-collapse", "trivial-solution"}
    assert found["codebook-collapse"]["update"] == 100 and found["trivial-solution"]["update"] == 10
    assert found["trivial-solution"]["accuracy"] == 1.0 and found["trivial-solution"]["loss"] == 0.0
    assert read_log(run)[-1]["code_perplexity"] == pytest.approx(2.0)  # one code in each of the 2 groups
    summary = json.loads((run / "summary.json").read_text())
    assert [f["symptom"] for f in summary["health"]] == [r["symptom"] for r in health_records(run)]


def test_a_collapsed_representation_is_named(tmp_path):
    # BEST-RQ (the quick preset) far above its learning rate: the context output falls to nearly one
    # vector for every frame, the failure the realistic pool showed at lr 1e-3. The low-resource profile's
    # end-to-end test is the control: the preset's own rate raises nothing there.
    run = tmp_path / "run"
    args = ["pretrain", "--preset", "quick", "--run-dir", str(run), "--no-progress", "--max-update", "110"]
    for item in ["model_overrides={num_layers: 1, hidden_size: 64, intermediate_size: 128, num_heads: 2, "
                 "layerdrop: 0.0}", "data.max_sample_size=16000", "data.min_sample_size=16000",
                 "data.valid_split=null", "train.max_minutes=null", "train.max_tokens=32000",
                 "train.warmup_updates=2", "train.log_every=10", "train.validate_every=0", "train.save_every=0",
                 "train.lr=3e-2"]:
        args += ["--set", item]
    assert main(args) == 0
    # A real collapse: what holds on every CPU is asserted (the collapse, named at the first update it can
    # be), not the exact set of findings, which may gain a gradient spike where the rounding differs.
    found = [r for r in health_records(run) if r["symptom"] == "representation-collapse"]
    assert found and found[0]["update"] == 100
    assert found[0]["time_share"] < 0.15 and "every frame maps to nearly the same vector" in found[0]["message"]
    assert read_log(run)[0]["time_share"] > 0.3  # it started varied: the run collapsed, not the measure
    assert "representation-collapse at update 100" in final_line(run)


def test_a_ctc_run_on_the_blank_plateau_is_named(tmp_path, tiny_corpus, capsys):
    # A learning rate of ~0 keeps the model at its prior-bias start: blanks everywhere, a flat loss.
    run = tmp_path / "run"
    rc = main(["finetune", "--data", str(tiny_corpus), "--run-dir", str(run), "--max-update", "400", "--no-progress",
               "--lr", "1e-12", "--stop-on-health", "--test-split", "", "--set", "train.max_minutes=null",
               "--set", "train.validate_every_minutes=null", "--set", "train.validate_every=0",
               "--set", "train.max_tokens=48000", "--set", "train.save_every=0",
               "--set", "freeze_feature_extractor=true",
               "--set", "model_overrides={num_layers: 1, hidden_size: 64, intermediate_size: 128, num_heads: 2}"])
    out = capsys.readouterr().out
    assert rc == 1, out
    found = health_records(run)
    assert [r["symptom"] for r in found] == ["blank-plateau"] and found[0]["update"] == 300
    assert found[0]["empty"] == 1.0 and "blank-plateau at update 300" in out
    assert main(["finetune", "--check", str(run)]) == 1


def test_a_plateau_said_on_dev_is_said_once_while_the_training_batches_talk():
    # What a real corpus did: dev all empty at every validation, the training batches' hypotheses not
    # (30-70% empty, around the recovery threshold), the loss flat. Said once, on dev; never withdrawn
    # by the training batches (it flickered: said and withdrawn at every logged update).
    flat = dict(loss=3.3, gnorm=1.0, empty=lambda u: 0.7 if u % 20 else 0.3)
    train = records(60, **flat)
    valid = [{"kind": "valid", "update": u, "empty": 1.0, "cer": 1.0} for u in range(100, 601, 100)]
    stuck = HealthMonitor("ctc", warmup_updates=40)
    events = stuck.replay(sorted(train + valid, key=lambda r: (r["update"], r["kind"] == "valid")))
    assert [(f.symptom, f.update, f.recovered) for f in stuck.findings] == [("blank-plateau", 300, None)]
    assert len(events) == 1 and "on dev" in events[0].message
    # Dev clears on a later validation: withdrawn there, once; a statistic that then hovers at the
    # threshold does not bring it back within a window.
    cleared = valid[:3] + [{"kind": "valid", "update": 400, "empty": 0.2, "cer": 0.9},
                           {"kind": "valid", "update": 420, "empty": 1.0, "cer": 1.0}]
    monitor = HealthMonitor("ctc", warmup_updates=40)
    monitor.replay(sorted(records(44, **flat) + cleared, key=lambda r: (r["update"], r["kind"] == "valid")))
    said = [(f.symptom, f.update, f.recovered) for f in monitor.findings]
    assert said[0] == ("blank-plateau", 300, 400) and all(f.update >= 450 for f in monitor.findings[1:])
    assert summary_line(monitor.findings).count("blank-plateau") == len(monitor.findings) <= 2


def test_masks_starting_late_raise_the_ctc_loss_without_a_divergence_finding():
    """A CTC run whose masks start at update 500 (the quick preset): the loss jumps there by design."""
    from sew.train.health import ctc_monitor

    log = records(80, loss=lambda u: 0.73 if u < 500 else 1.8, empty=0.0, gnorm=3.0)
    late = ctc_monitor({"warmup_updates": 40}, {"start_update": 500})
    late.replay(log)
    assert symptoms(late) == []
    from_start = ctc_monitor({"warmup_updates": 40}, {"start_update": 0})
    from_start.replay(log)
    assert symptoms(from_start) == ["divergence"]
    real_rise = ctc_monitor({"warmup_updates": 40}, {"start_update": 500})  # a rise well after the start counts
    real_rise.replay(records(150, loss=lambda u: 0.73 if u < 500 else 1.8 if u < 1100 else 4.0, empty=0.0, gnorm=3.0))
    assert symptoms(real_rise) == ["divergence"] and real_rise.findings[0].update > 1100
