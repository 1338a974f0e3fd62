"""``sew bench --profile downstream``: the speed-up carried to utterance classification.

SEW-D, SEW and wav2vec 2.0 micro on the built-in keyword-spotting and speaker-identification
tasks, every training run given the same ``budget_minutes`` of training (validation excluded):

* ``finetune``: the whole model from random initialisation (the ``quick`` classify preset);
* ``probe``: layer weights + head on the frozen encoder pretrained with the quick pretraining
  preset (``sew.bench.pretrained``: cached, its time outside the profile's);
* ``probe-random``: the same probe on a frozen random encoder, a control (labelled as such);
* ``logmel``: the same head on 80 log-mel filterbanks, the baseline a probe must beat.

Accuracy and macro-F1 on each task's class-balanced test split; inference time per utterance
timed as ``sew bench speed`` does (padded length-sorted batches of the test utterances, the
models taking turns, warm-up excluded, median of repeats) plus batch-1 latency; the speed ratio
against wav2vec 2.0; ``accuracy.png`` (accuracy against time per utterance).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sew.bench.failures import FailureLog

MODES = ("finetune", "probe", "probe-random", "logmel")
COLUMNS = [("task", "task"), ("model", "model"), ("mode", "run"), ("updates", "updates"),
           ("accuracy", "accuracy %"), ("macro_f1", "macro-F1 %"), ("ms_per_utterance", "ms / utt"),
           ("batch1_ms", "batch-1 ms"), ("speedup_vs_baseline", "speed vs w2v2")]


@dataclass
class DownstreamProfile:
    models: list[str] = field(default_factory=lambda: ["sew-d-micro", "sew-micro", "w2v2-micro"])
    tasks: list[str] = field(default_factory=lambda: ["kws", "speaker-id"])
    budget_minutes: float = 1.75  # every training run, fine-tuning and probes alike (20 runs fit 45 minutes)
    pretrain_minutes: float = 10.0  # the pretraining preset's budget (cached, outside the profile)
    # The probed encoders' preset: docs/results.md's downstream table was measured with the contrastive
    # one, the quick preset before it became BEST-RQ; kept until the profile is measured with quick.
    pretrain_preset: str = "quick-contrastive"
    modes: list[str] = field(default_factory=lambda: list(MODES))
    speed_utterances: int = 48
    speed_repeats: int = 5
    notes: str = ("micro presets, built-in keyword spotting and speaker identification, fine-tuned and probed; "
                  "within 45 min on 2 CPU cores (plus the cached pretraining)")


def train_run(task: str, model: str, mode: str, run_dir: Path, *, budget: float, seed: int, root: Path,
              pretrained: str | None, progress: bool) -> dict:
    """Train one classifier and score it on the task's test split: a result row. ``mode`` is one of
    ``MODES`` or ``finetune-pretrained`` (the whole model from ``pretrained``)."""
    from sew.classify.finetune import finetune_classifier, load_recipe
    from sew.train.setup import make_accelerator

    preset = "quick" if mode.startswith("finetune") else "probe"
    init = {"finetune": model, "finetune-pretrained": pretrained, "probe": pretrained, "probe-random": model,
            "logmel": "logmel"}[mode]
    # Validated once, at the end: the model scored is the one the budget produced.
    recipe = load_recipe(preset, [f"model={init}", f"train.max_minutes={budget}", f"train.seed={seed}",
                                  "train.save_every=0", "train.validate_every_minutes=null"])
    state = finetune_classifier(recipe, root, run_dir, progress=progress, accelerator=make_accelerator("no", cpu=True))
    best = run_dir / ("best" if (run_dir / "best").is_dir() else "final")
    summary = score(best, root)
    return {"task": task, "model": "logmel" if mode == "logmel" else model, "mode": mode, "seed": seed,
            "updates": state.update, "train_seconds": round(state.elapsed_seconds, 1),
            "accuracy": round(100 * summary["accuracy"], 2), "macro_f1": round(100 * summary["macro_f1"], 2),
            "test_utterances": summary["utterances"], "model_dir": str(best)}


def score(model_dir: Path, root: Path) -> dict:
    """Accuracy and macro-F1 of a trained model (an encoder classifier or the log-mel baseline) on ``test``."""
    from sew.classify.data import LabelDataset
    from sew.classify.evaluate import evaluate_classifier
    from sew.classify.logmel import CONFIG_NAME, load_logmel
    from sew.classify.predict import load_classifier
    from sew.data.corpus import read_corpus

    model = load_logmel(model_dir) if (model_dir / CONFIG_NAME).is_file() else load_classifier(model_dir, "cpu")[0]
    dataset = LabelDataset(read_corpus(root, split="test"), model.labels)
    result = evaluate_classifier(model, dataset, model.labels)
    result.write(model_dir.parent / "eval-test")
    return result.summary


def time_models_in_fresh_process(models: list[str], root: Path, labels: list[str], *, utterances: int,
                                  repeats: int, failures: FailureLog, task: str) -> list[dict] | None:
    """``time_models`` in a fresh process, as a deployed classifier runs (``sew.bench.timing.in_fresh_process``);
    a timing process that dies is recorded for every model (None: the task's speed rows only are lost)."""
    from sew.bench.timing import in_fresh_process

    return failures.attempt("every model", f"{task} speed", lambda: in_fresh_process(
        time_models, models, root, labels, utterances=utterances, repeats=repeats, failures=failures, task=task))


def time_models(models: list[str], root: Path, labels: list[str], *, utterances: int, repeats: int,
                failures: FailureLog, task: str) -> list[dict]:
    """ms per utterance (padded batches) and batch-1 latency of each model's classifier on ``root``'s test
    utterances, the models taking turns; random weights (the time does not depend on them). A model that
    cannot be built is recorded in ``failures`` and the others are timed."""
    import sew
    from sew.bench.timing import length_sorted_batches, make_inputs, time_alternating
    from sew.data.corpus import read_corpus
    from sew.data.dataset import SpeechDataset

    data = SpeechDataset(read_corpus(root, split="test"))
    lengths = data.lengths[:: max(1, len(data.lengths) // utterances)][:utterances]
    device = torch.device("cpu")
    names, forwards = [], []
    for name in models:
        torch.manual_seed(0)
        model = failures.attempt(name, f"{task} speed", lambda n=name: sew.optimize_for_cpu(
            sew.build_classifier(n, labels).eval()))
        if model is not None:
            names.append(name)
            forwards.append(lambda x, n, m=model: m(x, n).logits.argmax(-1))
    if not forwards:
        return []
    batched = make_inputs(lengths, length_sorted_batches(lengths, 1_600_000), device, torch.float32)
    single = make_inputs(lengths[:16], [[i] for i in range(min(16, len(lengths)))], device, torch.float32)
    per_batch = time_alternating(forwards, batched, device, warmup=1, repeats=repeats)
    per_single = time_alternating(forwards, single, device, warmup=1, repeats=repeats)
    return [{"model": name, "ms_per_utterance": round(1000 * t / len(lengths), 2),
             "batch1_ms": round(1000 * s / len(single), 2), "utterances": len(lengths),
             "mean_seconds": round(sum(lengths) / len(lengths) / 16000, 2)}
            for name, t, s in zip(names, per_batch, per_single)]


def run_downstream(profile: DownstreamProfile, out_root="results", *, seed: int = 0, device: str = "cpu",
                   progress: bool = True, resume=None) -> tuple[Path, dict]:
    """Every run of ``profile``; writes results.json, results.md and accuracy.png; returns (directory, results).
    Each finished run is kept as it ends (``PhaseStore``); ``resume`` continues a results directory."""
    from sew.bench.pretrained import pretrained_encoder
    from sew.bench.profile import Progress
    from sew.bench.report import PhaseStore, markdown_table, results_dir, write_results
    from sew.bench.timing import machine_info
    from sew.classify.data import corpus_labels
    from sew.data.corpus import read_corpus
    from sew.data.tasks import default_task

    if device != "cpu":
        print("sew bench: the downstream profile runs on the CPU (the micro models' budget is CPU minutes)",
              file=sys.stderr)
    out = results_dir(out_root, resume)
    failures = FailureLog()
    store = PhaseStore(out, {"profile": vars(profile), "seed": seed}, failures)
    pretrained = {}
    if "probe" in profile.modes:
        for name in profile.models:
            path = failures.attempt(name, "pretraining (cached)", lambda n=name: pretrained_encoder(
                n, profile.pretrain_minutes, seed, recipe=profile.pretrain_preset, progress=progress))
            if path is not None:
                pretrained[name] = str(path)
    plan = [(task, model, mode) for task in profile.tasks for mode in profile.modes
            for model in (["logmel"] if mode == "logmel" else profile.models)]
    budget_s = profile.budget_minutes * 60 + 20
    steps = Progress([None] * len(profile.tasks) + [budget_s] * len(plan))
    rows, speed = [], []
    roots = {}
    for task in profile.tasks:
        steps.step(f"{task}: data and speed")
        roots[task] = root = default_task(task)
        labels = corpus_labels(read_corpus(root, split="train"))
        timed = store.run(f"speed {task}", lambda: time_models_in_fresh_process(
            profile.models, root, labels, utterances=profile.speed_utterances, repeats=profile.speed_repeats,
            failures=failures, task=task))
        for r in timed or []:
            speed.append({"task": task, **r})
    add_speed_ratios(speed)
    for task, model, mode in plan:
        steps.step(f"{task}: {model} {mode}, {profile.budget_minutes:g} min")
        if mode == "probe" and model not in pretrained:
            failures.add(model, f"{task} probe", "no pretrained encoder (its pretraining failed)")
            continue
        row = store.run(f"{task} {model} {mode}", lambda: failures.attempt(model, f"{task} {mode}", lambda: train_run(
            task, model, mode, out / "runs" / f"{task}-{model}-{mode}", budget=profile.budget_minutes, seed=seed,
            root=roots[task], pretrained=pretrained.get(model), progress=progress)))
        if row is not None:
            rows.append(row)
    merged = merge(rows, speed)
    table = markdown_table(merged, COLUMNS)
    machine = machine_info(torch.device("cpu"), torch.get_num_threads())
    results = {"profile_name": "downstream", "profile": vars(profile), "machine": machine, "seed": seed,
               "budget_minutes": profile.budget_minutes, "runs": rows, "speed": speed, "failures": failures.records,
               "targets": check_targets(rows, speed), "table": table}
    targets = "\n".join(f"- {t['target']}: {'met' if t['met'] else 'NOT met'} ({t['detail']})"
                        for t in results["targets"])
    write_results(out, results, "sew bench: downstream", f"budget per run: "
                                f"{profile.budget_minutes:g} min\n\n{table}\n\n{targets}\n\n{failures.markdown()}")
    accuracy_plot(merged, out / "accuracy.png")
    print(f"\n{table}\n\n{targets}\n\nwrote {out}/results.json, results.md and accuracy.png")
    failures.announce()
    return out, results


def add_speed_ratios(speed: list[dict]) -> None:
    """``speedup_vs_baseline``: the task's wav2vec 2.0 time over each model's."""
    from sew.models.config import load_config

    for row in speed:
        base = next((r for r in speed if r["task"] == row["task"] and load_config(r["model"]).family == "wav2vec2"),
                    None)
        if base is not None:
            row["speedup_vs_baseline"] = round(base["ms_per_utterance"] / row["ms_per_utterance"], 3)


def merge(rows: list[dict], speed: list[dict]) -> list[dict]:
    timing = {(r["task"], r["model"]): r for r in speed}
    merged = []
    for row in rows:
        t = timing.get((row["task"], row["model"]), {})
        merged.append({**row, **{k: t[k] for k in ("ms_per_utterance", "batch1_ms", "speedup_vs_baseline") if k in t}})
    return merged


def check_targets(rows: list[dict], speed: list[dict]) -> list[dict]:
    """The issue's targets, each with the numbers behind it."""
    from sew.models.config import load_config

    out = []
    floors = {"kws": 90.0, "speaker-id": 80.0}
    for task, floor in floors.items():
        tuned = [r for r in rows if r["task"] == task and r["mode"] == "finetune"]
        if tuned:
            out.append({"target": f"{task}: fine-tuned accuracy >= {floor:g}% for every family",
                        "met": all(r["accuracy"] >= floor for r in tuned),
                        "detail": ", ".join(f"{r['model']} {r['accuracy']:.1f}%" for r in tuned)})
        logmel = next((r for r in rows if r["task"] == task and r["mode"] == "logmel"), None)
        probes = [r for r in rows if r["task"] == task and r["mode"] == "probe"]
        if logmel and probes:
            out.append({"target": f"{task}: pretrained frozen probes beat the log-mel baseline ({logmel['accuracy']:.1f}%)",
                        "met": all(r["accuracy"] > logmel["accuracy"] for r in probes),
                        "detail": ", ".join(f"{r['model']} {r['accuracy']:.1f}%" for r in probes)})
        times = {r["model"]: r for r in speed if r["task"] == task}
        base = next((m for m in times if load_config(m).family == "wav2vec2"), None)
        acc = {r["model"]: r["accuracy"] for r in tuned}
        for model, t in times.items():
            if model == base or load_config(model).family == "wav2vec2" or base is None:
                continue
            fast = t.get("speedup_vs_baseline", 0.0) >= 1.8
            good = model in acc and base in acc and acc[model] >= acc[base]
            out.append({"target": f"{task}: {model} >= 1.8x faster than {base} at equal or better fine-tuned accuracy",
                        "met": fast and good, "detail": f"{t.get('speedup_vs_baseline', 0):.2f}x, accuracy "
                                                         f"{acc.get(model, float('nan')):.1f}% vs {acc.get(base, float('nan')):.1f}%"})
    return out


def accuracy_plot(rows: list[dict], path: Path) -> Path:
    """Accuracy against inference time per utterance, one panel per task, a marker style per run kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sew.bench.plot import FAMILY_STYLE
    from sew.models.config import load_config

    tasks = sorted({r["task"] for r in rows})
    fig, axes = plt.subplots(1, max(len(tasks), 1), figsize=(6 * max(len(tasks), 1), 4.5), squeeze=False)
    fill = {"finetune": "full", "finetune-pretrained": "left", "probe": "none", "probe-random": "none"}
    for ax, task in zip(axes[0], tasks):
        for r in (r for r in rows if r["task"] == task):
            if r["mode"] == "logmel":
                ax.axhline(r["accuracy"], color="black", linestyle=":", label="log-mel baseline (probe)")
                continue
            if "ms_per_utterance" not in r:
                continue
            color, marker = FAMILY_STYLE[load_config(r["model"]).family]
            ax.plot([r["ms_per_utterance"]], [r["accuracy"]], marker="x" if r["mode"] == "probe-random" else marker,
                    color=color, fillstyle=fill[r["mode"]], markersize=9, linestyle="none",
                    label=f"{r['model']} {r['mode']}")
        ax.set_xlabel("inference time per utterance (ms)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(task)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def compare_downstream(current: dict, baseline: dict, tolerance_pct: float) -> list[str]:
    """Regressions against an earlier downstream run: accuracy or speed ratio lower by more than the tolerance."""
    tol = tolerance_pct / 100.0
    problems = []
    now = {(r["task"], r["model"], r["mode"]): r for r in current.get("runs", [])}
    for old in baseline.get("runs", []):
        key = (old["task"], old["model"], old["mode"])
        new = now.get(key)
        if new is None:
            problems.append(f"{' '.join(key)}: in the baseline but not measured now")
        elif new["accuracy"] < old["accuracy"] * (1 - tol):
            problems.append(f"{' '.join(key)}: accuracy fell from {old['accuracy']:.2f}% to {new['accuracy']:.2f}%")
    speed_now = {(r["task"], r["model"]): r for r in current.get("speed", [])}
    for old in baseline.get("speed", []):
        new = speed_now.get((old["task"], old["model"]))
        if new and "speedup_vs_baseline" in old and new.get("speedup_vs_baseline", 0) < old["speedup_vs_baseline"] * (1 - tol):
            problems.append(f"{old['task']} {old['model']}: speed ratio vs wav2vec 2.0 fell from "
                            f"{old['speedup_vs_baseline']:.3f} to {new['speedup_vs_baseline']:.3f}")
    return problems


def run_from_args(args, device: str) -> dict:
    """``sew bench --profile downstream``: the profile with the command line's changes, run; its results."""
    if args.data is not None:
        raise ValueError("--profile downstream runs on its built-in tasks; drop --data (train on a corpus of your own "
                         "with sew finetune --task classify --data CORPUS)")
    wrong = [t for t in args.tasks or [] if t not in ("kws", "speaker-id")] + \
        [m for m in args.modes or [] if m not in MODES]
    if wrong:
        raise ValueError(f"--profile downstream: {', '.join(wrong)}: not a task or run of this profile (tasks: kws, "
                         f"speaker-id; runs: {', '.join(MODES)})")
    profile = DownstreamProfile()
    for option, name in (("models", "models"), ("max_minutes", "budget_minutes"),
                         ("speed_utterances", "speed_utterances"), ("pretrain_minutes", "pretrain_minutes"),
                         ("tasks", "tasks"), ("modes", "modes")):
        if getattr(args, option, None) is not None:
            setattr(profile, name, getattr(args, option))
    print(f"sew bench: profile downstream ({profile.notes}); models {', '.join(profile.models)}; "
          f"{profile.budget_minutes:g} min per run", flush=True)
    _, results = run_downstream(profile, args.out, seed=args.seed, device=device, progress=not args.no_progress,
                                resume=args.resume)
    return results
