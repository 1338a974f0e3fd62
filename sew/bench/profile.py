"""``sew bench``: the trade-off curve of the paper (WER against inference time), measured end to end.

A profile names the models, the training budget and the speed setup. ``quick`` runs the micro
presets of the three families on the built-in corpus in under 30 minutes on 2 CPU cores (the
``paper`` profile, from the released checkpoints, is ``sew.bench.paper``). Results go to
``results/<timestamp>/``: ``results.json``, ``results.md`` and ``pareto.png``.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sew.bench.failures import FailureLog


@dataclass
class Profile:
    name: str
    models: list[str]
    budget_minutes: float | None  # training wall clock per model (the same for every family)
    max_updates: int | None = None
    recipe: str = "quick"
    speed_utterances: int = 24
    speed_repeats: int = 3
    reference: bool = True  # time transformers' twin of each model too
    notes: str = ""
    extra: list[str] = field(default_factory=list)  # --set overrides of the fine-tuning recipe
    variants: list[str] = field(default_factory=list)  # also score the trained models as bf16 / int8 / onnx


PROFILES = {
    "quick": Profile("quick", ["sew-d-micro", "sew-micro", "w2v2-micro"], budget_minutes=7.5, variants=["bf16", "int8"],
                     notes="micro presets, built-in corpus, the quick fine-tuning recipe; < 30 min on 2 CPU cores"),
}


class Progress:
    """One line per phase: which model, which phase, time spent and an estimate of time left.

    ``expected`` holds each phase's expected seconds (a training budget; None where unknown, such
    as timing runs, which are then estimated from those already done)."""

    def __init__(self, expected: list[float | None]):
        self.expected, self.done, self.start = expected, 0, time.perf_counter()
        self.unknown_spent, self.unknown_done, self.phase_start = 0.0, 0, self.start

    def step(self, text: str) -> None:
        now = time.perf_counter()
        if self.done and self.expected[self.done - 1] is None:
            self.unknown_spent += now - self.phase_start
            self.unknown_done += 1
        self.phase_start = now
        rest = self.expected[self.done:]
        guess = self.unknown_spent / self.unknown_done if self.unknown_done else 30.0
        left = sum(e if e is not None else guess for e in rest)
        self.done += 1
        print(f"[{self.done}/{len(self.expected)}] {text} ({(now - self.start) / 60:.1f} min elapsed, "
              f"about {left / 60:.0f} min left)", flush=True)


def run_profile(profile: Profile, out_root: str | Path = "results", *, seed: int = 0, repeats: int = 1,
                data: str | Path | None = None, device: str = "cpu", progress: bool = True,
                resume: str | Path | None = None) -> tuple[Path, dict]:
    """Speed and WER of every model of ``profile``; writes the result files and returns (directory, results).
    Each finished phase is kept as it ends (``PhaseStore``); ``resume`` continues a results directory."""
    from sew.bench.plot import pareto_plot
    from sew.bench.report import PhaseStore, merged_table, results_dir, write_results
    from sew.bench.speed import SpeedSetup, run_speed_suite
    from sew.bench.timing import in_fresh_process, machine_info, utterance_lengths
    from sew.bench.wer import summarize_repeats, train_and_score

    out = results_dir(out_root, resume)
    train_s = profile.budget_minutes * 60 + 30 if profile.budget_minutes else None  # + the test-split decoding
    steps = Progress([None] + [train_s] * (len(profile.models) * repeats))
    setup = SpeedSetup(device=device, repeats=profile.speed_repeats, threads=torch.get_num_threads(),
                       lengths=utterance_lengths(profile.speed_utterances, seed))
    failures = FailureLog()
    store = PhaseStore(out, {"profile": vars(profile), "seed": seed, "repeats": repeats, "data": str(data),
                             "device": device}, failures)

    def time_models() -> dict:  # in a fresh process, as a deployed model runs (the training here comes after)
        steps.step(f"speed of {', '.join(profile.models)}")
        run = in_fresh_process(run_speed_suite, profile.models, setup, reference=profile.reference, failures=failures,
                               log=functools.partial(print, flush=True))
        return {"speed": run.row_dicts(), "machine": run.machine, "baseline": run.baseline}

    timed = (store.run("speed", lambda: failures.attempt("every model", "speed", time_models))
             or {"speed": [], "machine": machine_info(device), "baseline": None})  # the training rows still come
    speed, wer = timed["speed"], []
    for name in profile.models:
        runs = []
        for k in range(repeats):
            steps.step(f"{name}: fine-tuning, seed {seed + k}, budget "
                       f"{profile.budget_minutes or '-'} min / {profile.max_updates or '-'} updates")
            row = store.run(f"wer {name} seed {seed + k}", lambda: failures.attempt(
                name, f"fine-tuning and scoring, seed {seed + k}", lambda: train_and_score(
                    name, out / "runs" / f"{name}-seed{seed + k}", recipe=profile.recipe,
                    budget_minutes=profile.budget_minutes, max_updates=profile.max_updates, seed=seed + k, data=data,
                    progress=progress, extra=profile.extra, variants=profile.variants, device=device)))
            if row is not None:
                for variant, error in row.get("variant_errors", {}).items():
                    failures.add(name, f"{variant} scoring, seed {seed + k}", error)
                runs.append(row)
        if runs:
            wer.append(summarize_repeats(runs))
    table = merged_table(speed, wer)
    results = {"profile_name": profile.name, "profile": {k: v for k, v in vars(profile).items()},
               "machine": timed["machine"], "seed": seed, "repeats": repeats,
               "data": str(data) if data else "built-in corpus", "baseline": timed["baseline"],
               "speed": speed, "wer": wer, "failures": failures.records, "table": table}
    write_results(out, results, "sew bench", f"baseline: {timed['baseline']}\n\n{table}\n\n"
                                f"{failures.markdown()}")
    pareto_plot(speed, wer, out / "pareto.png")
    print("\n" + table + f"\n\nwrote {out}/results.json, results.md and pareto.png")
    failures.announce()
    return out, results


def compare(current: dict, baseline: dict, tolerance_pct: float) -> list[str]:
    """Regressions of ``current`` against ``baseline``: speed ratios (vs the run's wav2vec 2.0)
    and WER / CER, each worse by more than ``tolerance_pct`` percent. Absolute times are not
    compared, since machines differ."""
    problems = []
    tol = tolerance_pct / 100.0

    def index(rows, key):
        return {(r["model"], r.get("implementation", "sew")): r for r in rows if key in r}

    base_speed, cur_speed = index(baseline.get("speed", []), "speedup_vs_baseline"), index(current.get("speed", []), "speedup_vs_baseline")
    for key, old in base_speed.items():
        new = cur_speed.get(key)
        if new is None:
            problems.append(f"{key[0]} ({key[1]}): in the baseline but not measured now")
        elif new["speedup_vs_baseline"] < old["speedup_vs_baseline"] * (1 - tol):
            problems.append(f"{key[0]} ({key[1]}): speed ratio vs {current.get('baseline')} fell from "
                            f"{old['speedup_vs_baseline']:.3f} to {new['speedup_vs_baseline']:.3f}")
    base_wer = {r["model"]: r for r in baseline.get("wer", [])}
    cur_wer = {r["model"]: r for r in current.get("wer", [])}
    for model, old in base_wer.items():
        new = cur_wer.get(model)
        if new is None:
            problems.append(f"{model}: WER in the baseline but not measured now")
            continue
        for metric in error_rate_keys(old):
            if new.get(metric) is None:
                problems.append(f"{model}: {metric} in the baseline but not measured now")
            elif new[metric] > old[metric] * (1 + tol):
                name = metric.upper() if metric in ("wer", "cer") else metric
                problems.append(f"{model}: {name} rose from {old[metric]:.2f}% to {new[metric]:.2f}%")
    return problems


def error_rate_keys(row: dict) -> list[str]:
    """The measured error rates of a result row: ``wer``, ``cer`` and per split or backend
    (``wer_test-other``, ``cer_int8``), not spreads, repeats or model-card figures."""
    return [k for k, v in row.items() if k.split("_")[0] in ("wer", "cer") and isinstance(v, (int, float))
            and not k.endswith(("_std", "_runs"))]
