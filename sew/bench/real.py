"""``sew bench --profile real --data DIR``: recognition and classification on recordings of people.

DIR is what ``make-real-corpora`` writes (audiofolders: ``tuxpaint-LANG``, ``tuxpaint-lid``,
``hedgewars-speaker``, ``hedgewars-phrase``, each with ``train/`` and ``test/``). The profile,
within 2 hours on 2 CPU cores by default:

1. writes a manifest of each corpus it uses (``sew data manifest``, the user's path);
2. builds the unlabelled pool: every training clip of every corpus under DIR whose file name is in
   no test split of any corpus (a Tux Paint description is in test in every language or in none;
   a Hedgewars clip is kept only when neither the speaker nor the phrase task tests on it), each
   file once; clips from half a second up are kept (a third to a half of Tux Paint's clips are
   under 1 s);
3. pretrains ``pretrain_model`` on it with the quick BEST-RQ preset (a seeded 5% holdout validates);
4. fine-tunes CTC on each ASR language with the quick recipe from random initialisation for
   ``asr_minutes``, then from the pretrained encoder for the same number of updates, per seed, and
   scores the last model on test (CER, WER, empty hypotheses); dev CER every ``validate_minutes``
   gives the curves (``curves.png``);
5. trains each classification task: every model fine-tuned from random initialisation, the
   pretrained model fine-tuned from its encoder, probes (weighted layer sum and head) on the frozen
   pretrained and on a frozen random encoder, and the log-mel baseline; times each model's
   classifier on the task's test clips (``accuracy.png``);
6. checks the targets of issue 34 and writes results.json, results.md and the plots.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sew.bench.failures import FailureLog
from sew.bench.real_data import BUILD_HINT, build_pool, find_corpora, write_manifests
from sew.train.logs import read_log

TASKS = ("tuxpaint-lid", "hedgewars-speaker", "hedgewars-phrase")
MODES = ("finetune", "finetune-pretrained", "probe", "probe-random", "logmel")
RUN_LISTS = ("languages", "seeds", "tasks", "models", "modes")  # may change when a results directory is resumed
ASR_COLUMNS = [("language", "language"), ("init", "init"), ("seeds", "seeds"), ("updates", "updates"),
               ("cer", "test CER %"), ("cer_runs", "CER per seed"), ("wer", "test WER %"),
               ("empty", "empty hyps %"), ("ratio", "CER vs scratch")]
CLASSIFY_COLUMNS = [("task", "task"), ("model", "model"), ("mode", "run"), ("updates", "updates"),
                    ("accuracy", "accuracy %"), ("macro_f1", "macro-F1 %"), ("ms_per_utterance", "ms / utt"),
                    ("speedup_vs_baseline", "speed vs w2v2")]


@dataclass
class RealProfile:
    languages: list[str] = field(default_factory=lambda: ["fr", "es", "ru"])  # tuxpaint-LANG, ASR
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    models: list[str] = field(default_factory=lambda: ["sew-d-micro", "sew-micro", "w2v2-micro"])
    modes: list[str] = field(default_factory=lambda: list(MODES))
    pretrain_model: str = "sew-d-micro"  # the encoder pretrained on the pool, fine-tuned and probed
    pretrain_preset: str = "quick"
    pretrain_minutes: float = 20.0
    min_clip_seconds: float = 0.5  # pretraining keeps clips from this length (the preset's 1 s drops 44%)
    # Each from-scratch CTC run; the pretrained run gets its number of updates. At 4 minutes (225 updates on
    # French) the pretrained encoder had not pulled ahead yet (dev CER 87% either way).
    asr_minutes: float = 8.0
    validate_minutes: float = 1.0  # dev CER every so often: the curves
    classify_minutes: float = 1.25  # each classification run
    # Fine-tuning seeds of the ASR comparison; each adds about 52 minutes (--seeds 0,1: about 2.7 h in all).
    seeds: list[int] = field(default_factory=lambda: [0])
    speed_utterances: int = 48
    speed_repeats: int = 5
    notes: str = ("Tux Paint and Hedgewars recordings: pretraining on their unlabelled training audio, CTC from "
                  "scratch and pretrained, classification fine-tuned and probed; about 2 h on 2 CPU cores")

    def settings(self, root: Path) -> dict:
        """What every run of one results directory shares (``--resume`` refuses a change): all but the lists of
        languages, seeds, tasks, models and runs, which may grow; the first seed seeds the shared runs."""
        fixed = {k: v for k, v in vars(self).items() if k not in RUN_LISTS + ("notes",)}
        return {"profile": fixed, "first_seed": self.seeds[0], "data": str(Path(root).resolve())}

    def expected_minutes(self) -> float:
        classify = len(self.tasks) * (len([m for m in self.modes if m not in ("finetune",)])
                                      + (len(self.models) if "finetune" in self.modes else 0))
        return (3 + self.pretrain_minutes + 2 * len(self.languages) * len(self.seeds) * (self.asr_minutes + 0.6)
                + classify * (self.classify_minutes + 0.4) + 2 * len(self.tasks))


# -- runs -------------------------------------------------------------------------------------------
def pretrain_run(profile: RealProfile, pool: Path, run_dir: Path, seed: int, progress: bool) -> dict:
    from sew.pretrain.recipe import load_recipe
    from sew.pretrain.run import pretrain
    from sew.train.setup import make_accelerator

    recipe = load_recipe(profile.pretrain_preset, [
        f"model={profile.pretrain_model}", f"train.seed={seed}", f"train.max_minutes={profile.pretrain_minutes}",
        f"data.min_sample_size={int(profile.min_clip_seconds * 16000)}"])
    state = pretrain(recipe, pool, run_dir, progress=progress, accelerator=make_accelerator("no", cpu=True))
    valid = read_log(run_dir, "valid")
    return {"model": profile.pretrain_model, "preset": profile.pretrain_preset, "updates": state.update,
            "minutes": round(state.elapsed_seconds / 60, 1), "encoder": str(run_dir / "final"),
            "dev_loss_first": valid[0]["loss"] if valid else None, "dev_loss_last": valid[-1]["loss"] if valid else None,
            "dev_accuracy_last": valid[-1].get("accuracy") if valid else None}


def asr_run(profile: RealProfile, language: str, data: Path, run_dir: Path, *, init: str, seed: int,
            max_updates: int | None, progress: bool) -> dict:
    """One CTC run with the quick recipe (the default a user gets), validated on its 5% holdout every
    ``validate_minutes``; the last model scored on test."""
    from sew.bench.wer import train_and_score

    budget = profile.asr_minutes if max_updates is None else profile.asr_minutes * 4  # updates end the second run
    row = train_and_score(init, run_dir, recipe="quick", budget_minutes=budget, max_updates=max_updates, seed=seed,
                          data=data, progress=progress, device="cpu",
                          extra=["data.valid_split=dev", f"train.validate_every_minutes={profile.validate_minutes}"])
    curve = [(e["minutes"], 100 * e["cer"]) for e in read_log(run_dir, "valid") if "cer" in e]
    return {"language": language, "init": "scratch" if max_updates is None else "pretrained", "seed": seed,
            "updates": row["updates"], "train_seconds": row["train_seconds"], "cer": row["cer"], "wer": row["wer"],
            "empty": round(100 * row["empty_hypotheses"] / max(row["test_utterances"], 1), 1),
            "test_utterances": row["test_utterances"], "curve": curve, "run_dir": str(run_dir)}


def asr_summary(rows: list[dict]) -> list[dict]:
    """One row per (language, init): means over seeds, per-seed CERs and the ratio to scratch."""
    out = []
    keys = sorted({(r["language"], r["init"]) for r in rows}, key=lambda k: (k[0], k[1] != "scratch"))
    for language, init in keys:
        runs = [r for r in rows if r["language"] == language and r["init"] == init]
        row = {"language": language, "init": init, "seeds": ",".join(str(r["seed"]) for r in runs),
               "updates": ",".join(str(r["updates"]) for r in runs),
               "cer": round(statistics.fmean(r["cer"] for r in runs), 1),
               "cer_runs": " / ".join(f"{r['cer']:.1f}" for r in runs),
               "wer": round(statistics.fmean(r["wer"] for r in runs), 1),
               "empty": round(statistics.fmean(r["empty"] for r in runs), 1)}
        scratch = {r["seed"]: r["cer"] for r in rows if r["language"] == language and r["init"] == "scratch"}
        ratios = [r["cer"] / scratch[r["seed"]] for r in runs if scratch.get(r["seed"])]
        if init == "pretrained" and ratios:
            row["ratio"] = f"{statistics.fmean(ratios):.2f} (max {max(ratios):.2f})"
            row["ratio_max"] = round(max(ratios), 3)
        out.append(row)
    return out


def check_targets(asr: list[dict], classify: list[dict], speed: list[dict], pretrained_model: str) -> list[dict]:
    """Issue 34's targets, each with the numbers behind it."""
    from sew.models.config import load_config

    targets = []
    scratch = [r for r in asr if r["init"] == "scratch"]
    if scratch:
        targets.append({"target": "from scratch, every language off the plateau (<= 5% empty test hypotheses)",
                        "met": all(r["empty"] <= 5.0 for r in scratch),
                        "detail": ", ".join(f"{r['language']} {r['empty']:.1f}%" for r in scratch)})
    tuned = [r for r in asr if r["init"] == "pretrained" and "ratio_max" in r]
    if tuned:
        targets.append({"target": "pretrained test CER <= 0.6x scratch in every language, every seed",
                        "met": all(r["ratio_max"] <= 0.6 for r in tuned),
                        "detail": ", ".join(f"{r['language']} {r['ratio']}" for r in tuned)})
        targets.append({"target": "pretrained test CER <= 30% in at least two languages",
                        "met": sum(r["cer"] <= 30.0 for r in tuned) >= 2,
                        "detail": ", ".join(f"{r['language']} {r['cer']:.1f}%" for r in tuned)})
    floors = {"tuxpaint-lid": 90.0, "hedgewars-speaker": 90.0, "hedgewars-phrase": 70.0}
    wins = []
    for task, floor in floors.items():
        rows = {(r["model"], r["mode"]): r for r in classify if r["task"] == task}
        if not rows:
            continue
        mine = [rows[(pretrained_model, m)] for m in ("finetune", "finetune-pretrained") if (pretrained_model, m) in rows]
        if mine:
            targets.append({"target": f"{task}: fine-tuned {pretrained_model} >= {floor:g}%",
                            "met": any(r["accuracy"] >= floor for r in mine),
                            "detail": ", ".join(f"{r['mode']} {r['accuracy']:.1f}%" for r in mine)})
        probe, random_probe = rows.get((pretrained_model, "probe")), rows.get((pretrained_model, "probe-random"))
        if probe and random_probe:
            targets.append({"target": f"{task}: the pretrained probe beats the random-encoder probe",
                            "met": probe["accuracy"] > random_probe["accuracy"],
                            "detail": f"{probe['accuracy']:.1f}% vs {random_probe['accuracy']:.1f}%"})
        times = {r["model"]: r for r in speed if r["task"] == task}
        base = next((m for m in times if load_config(m).family == "wav2vec2"), None)
        mine_scratch, theirs = rows.get((pretrained_model, "finetune")), rows.get((base, "finetune"))
        if base and pretrained_model in times and mine_scratch and theirs:
            ratio = times[pretrained_model].get("speedup_vs_baseline", 0.0)
            wins.append((task, ratio >= 1.8 and mine_scratch["accuracy"] >= theirs["accuracy"],
                         f"{task} {ratio:.2f}x, {mine_scratch['accuracy']:.1f}% vs {theirs['accuracy']:.1f}%"))
    if wins:
        targets.append({"target": f"{pretrained_model} >= 1.8x faster than wav2vec 2.0 micro at equal or better "
                                  "accuracy (both fine-tuned from scratch) on at least two tasks",
                        "met": sum(ok for _, ok, _ in wins) >= 2, "detail": "; ".join(d for _, _, d in wins)})
    return targets


# -- the profile ------------------------------------------------------------------------------------
def run_real(profile: RealProfile, data: str | Path, out_root="results", *, progress: bool = True, resume=None,
             workers: int = 2) -> tuple[Path, dict]:
    """Every phase of ``profile`` on the corpora under ``data``; writes results.json, results.md, curves.png and
    accuracy.png; returns (directory, results). Finished phases are kept (``PhaseStore``); ``resume`` continues.
    The pretraining and the classification runs use the first of ``profile.seeds``."""
    from sew.bench.downstream import accuracy_plot, add_speed_ratios, merge, time_models_in_fresh_process, train_run
    from sew.bench.profile import Progress
    from sew.bench.report import PhaseStore, markdown_table, results_dir, write_results
    from sew.bench.timing import machine_info
    from sew.classify.data import corpus_labels
    from sew.data.corpus import read_corpus

    root = Path(data)
    asr_names = [f"tuxpaint-{lang}" for lang in profile.languages]
    corpora = find_corpora(root, asr_names + list(profile.tasks))
    out = results_dir(out_root, resume)
    failures = FailureLog()
    seed = profile.seeds[0]
    store = PhaseStore(out, profile.settings(root), failures)
    languages = [lang for lang in profile.languages if f"tuxpaint-{lang}" in corpora]
    tasks = [t for t in profile.tasks if t in corpora]
    classify_plan = [(task, model, mode) for task in tasks for mode in profile.modes
                     for model in (["logmel"] if mode == "logmel" else profile.models if mode == "finetune"
                                   else [profile.pretrain_model])]
    asr_s, cls_s = profile.asr_minutes * 60 + 40, profile.classify_minutes * 60 + 25
    steps = Progress([180.0] + [120.0] * len(tasks) + [profile.pretrain_minutes * 60 + 30]
                     + [asr_s] * (2 * len(languages) * len(profile.seeds)) + [cls_s] * len(classify_plan))
    print(f"sew bench: profile real ({profile.notes}); expected about {profile.expected_minutes():.0f} min; "
          f"results in {out}", flush=True)

    steps.step("manifests and the pretraining pool")
    manifests = write_manifests(corpora, out / "data", workers, progress)
    pool = store.run("pool", lambda: build_pool(root, out / "data" / "pool", min_seconds=profile.min_clip_seconds,
                                                workers=workers, progress=progress))
    speed = []
    for task in tasks:
        steps.step(f"{task}: speed of each model's classifier")
        labels = corpus_labels(read_corpus(manifests[task], split="train"))
        timed = store.run(f"speed {task}", lambda: time_models_in_fresh_process(
            profile.models, manifests[task], labels, utterances=profile.speed_utterances,
            repeats=profile.speed_repeats, failures=failures, task=task))
        speed += [{"task": task, **r} for r in timed or []]
    add_speed_ratios(speed)
    steps.step(f"pretraining {profile.pretrain_model} on the pool ({profile.pretrain_preset} preset), "
               f"{profile.pretrain_minutes:g} min")
    pretrained = store.run("pretrain", lambda: failures.attempt(profile.pretrain_model, "pretraining", lambda: pretrain_run(
        profile, out / "data" / "pool", out / "runs" / "pretrain", seed, progress)))
    encoder = pretrained["encoder"] if pretrained else None

    asr_rows = []
    for language in languages:
        data_dir = manifests[f"tuxpaint-{language}"]
        for s in profile.seeds:
            steps.step(f"tuxpaint-{language}: CTC from scratch, seed {s}, {profile.asr_minutes:g} min")
            scratch = store.run(f"asr {language} scratch seed {s}", lambda: failures.attempt(
                profile.pretrain_model, f"tuxpaint-{language} scratch seed {s}", lambda: asr_run(
                    profile, language, data_dir, out / "runs" / f"asr-{language}-scratch-s{s}",
                    init=profile.pretrain_model, seed=s, max_updates=None, progress=progress)))
            steps.step(f"tuxpaint-{language}: CTC from the pretrained encoder, seed {s}, "
                       f"{scratch['updates'] if scratch else '-'} updates")
            if scratch:
                asr_rows.append(scratch)
            if scratch is None or encoder is None:
                failures.add(profile.pretrain_model, f"tuxpaint-{language} pretrained seed {s}",
                             "not run: " + ("the from-scratch run failed" if scratch is None else "no pretrained encoder"))
                continue
            tuned = store.run(f"asr {language} pretrained seed {s}", lambda: failures.attempt(
                profile.pretrain_model, f"tuxpaint-{language} pretrained seed {s}", lambda: asr_run(
                    profile, language, data_dir, out / "runs" / f"asr-{language}-pretrained-s{s}",
                    init=encoder, seed=s, max_updates=scratch["updates"], progress=progress)))
            if tuned:
                asr_rows.append(tuned)

    classify_rows = []
    for task, model, mode in classify_plan:
        steps.step(f"{task}: {model} {mode}, {profile.classify_minutes:g} min")
        if mode in ("probe", "finetune-pretrained") and encoder is None:
            failures.add(model, f"{task} {mode}", "not run: no pretrained encoder")
            continue
        row = store.run(f"{task} {model} {mode}", lambda: failures.attempt(model, f"{task} {mode}", lambda: train_run(
            task, model, mode, out / "runs" / f"{task}-{model}-{mode}", budget=profile.classify_minutes, seed=seed,
            root=manifests[task], pretrained=encoder, progress=progress)))
        if row is not None:
            classify_rows.append(row)

    asr = asr_summary(asr_rows)
    merged = merge(classify_rows, speed)
    targets = check_targets(asr, merged, speed, profile.pretrain_model)
    target_lines = "\n".join(f"- {t['target']}: {'met' if t['met'] else 'NOT met'} ({t['detail']})" for t in targets)
    pre = (f"Pool: {pool['clips']} clips, {pool['minutes']} min (clips >= {pool['min_seconds']:g} s; "
           f"{pool['excluded_as_test']} training clips left out as test audio elsewhere, test files in the pool: "
           f"{pool['test_files_in_pool']}). Pretraining: " + (
               f"{pretrained['model']}, {pretrained['preset']} preset, {pretrained['updates']} updates in "
               f"{pretrained['minutes']} min, dev loss {pretrained['dev_loss_first']:.2f} -> "
               f"{pretrained['dev_loss_last']:.2f}" if pretrained and pretrained.get("dev_loss_last") is not None
               else "failed" if not pretrained else f"{pretrained['updates']} updates"))
    table = (f"{pre}\n\nCTC, quick recipe, last model on test (scratch {profile.asr_minutes:g} min; pretrained: the "
             f"same updates):\n\n{markdown_table(asr, ASR_COLUMNS)}\n\nClassification, "
             f"{profile.classify_minutes:g} min per run:\n\n{markdown_table(merged, CLASSIFY_COLUMNS)}\n\n"
             f"Targets:\n\n{target_lines}\n\n![dev CER against minutes](curves.png) ![accuracy](accuracy.png)")
    machine = machine_info(torch.device("cpu"), torch.get_num_threads())
    results = {"profile_name": "real", "profile": vars(profile), "machine": machine,
               "data": str(root), "pool": pool, "pretrain": pretrained, "asr_runs": asr_rows, "asr": asr,
               "classify": classify_rows, "speed": speed, "targets": targets, "failures": failures.records,
               "table": table.replace("](curves.png)", "](img/real-curves.png)").replace(
                   "](accuracy.png)", "](img/real-accuracy.png)"),
               "figures": {"real-curves.png": str(out / "curves.png"), "real-accuracy.png": str(out / "accuracy.png")}}
    write_results(out, results, "sew bench: real recorded speech", f"{table}\n\n{failures.markdown()}")
    curves_plot(asr_rows, out / "curves.png")
    accuracy_plot(merged, out / "accuracy.png")
    print(f"\n{table}\n\nwrote {out}/results.json, results.md, curves.png and accuracy.png")
    failures.announce()
    return out, results


def curves_plot(rows: list[dict], path: Path) -> Path:
    """Dev CER against fine-tuning minutes, one panel per language, scratch dashed grey and pretrained solid
    red, a marker (and shade) per seed so that seeds stay apart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    languages = sorted({r["language"] for r in rows})
    fig, axes = plt.subplots(1, max(len(languages), 1), figsize=(5 * max(len(languages), 1), 4), squeeze=False)
    for ax, language in zip(axes[0], languages):
        for r in (r for r in rows if r["language"] == language and r["curve"]):
            xs, ys = zip(*r["curve"])
            shade = (("tab:gray", "black", "silver") if r["init"] == "scratch" else ("tab:red", "darkred", "salmon"))
            ax.plot(xs, ys, linestyle="--" if r["init"] == "scratch" else "-", color=shade[r["seed"] % 3],
                    marker=".ox^"[r["seed"] % 4], markersize=4, label=f"{r['init']}, seed {r['seed']}")
        ax.set_title(f"tuxpaint-{language}")
        ax.set_xlabel("fine-tuning minutes")
        ax.set_ylabel("dev CER (%)")
        ax.set_ylim(0, 105)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_from_args(args, device: str) -> dict:
    """``sew bench --profile real --data DIR``: the profile with the command line's changes, run; its results."""
    if args.data is None:
        raise ValueError(f"--profile real needs --data DIR, the corpora of real recorded speech; {BUILD_HINT}")
    if device != "cpu":
        print("sew bench: the real profile runs on the CPU (its budgets are CPU minutes)", file=sys.stderr)
    profile = RealProfile()
    for option, name in (("models", "models"), ("tasks", "tasks"), ("modes", "modes"), ("languages", "languages"),
                         ("pretrain_minutes", "pretrain_minutes"), ("max_minutes", "asr_minutes"),
                         ("classify_minutes", "classify_minutes"), ("speed_utterances", "speed_utterances")):
        if getattr(args, option, None) is not None:
            setattr(profile, name, getattr(args, option))
    from sew.bench.low_resource import parse_seeds

    if args.seeds is not None:
        profile.seeds = parse_seeds(args.seeds)
    wrong = [t for t in profile.tasks if t not in TASKS] + [m for m in profile.modes if m not in MODES]
    if wrong:
        raise ValueError(f"--profile real: {', '.join(wrong)}: not a task or run of this profile (tasks: "
                         f"{', '.join(TASKS)}; runs: {', '.join(MODES)})")
    _, results = run_real(profile, args.data, args.out, progress=not args.no_progress, resume=args.resume)
    return results
