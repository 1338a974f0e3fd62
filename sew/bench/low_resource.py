"""``sew bench --profile low-resource``: does self-supervised pretraining pay off at small scale?

The paper's pretraining claims measured end to end on a small budget. For each model (default SEW-D
and wav2vec 2.0 micro), seed and pretraining preset (``quick``: BEST-RQ's fixed targets;
``quick-contrastive``: wav2vec 2.0's contrastive objective), one pretraining run of ``pretrain_minutes``
(P) on an unlabeled pool writes the encoder at P/4 and P/2 of its budget (``train.snapshot_fractions``:
so the shorter budgets follow the full budget's schedule) and at P; then the ``quick`` CTC fine-tuning
recipe trains from scratch and from each of the three encoders on a small labeled set, and each model
is scored on the labeled set's test split.

Data: the pool is the built-in corpus, 300 minutes in realistic mode (seed 0); the labeled set is a
separate built-in corpus of ``labeled_minutes`` (seed 1000) with dev and test splits of its own. With
``data``, the pool is that corpus's train split and the labeled set a seeded subset of it written as
manifests into the results directory (validation on the corpus's dev split, else on a held-out part
of the subset, as ``sew finetune`` does; test on the corpus's test split).

Equal updates, not equal time: at equal wall clock SEW-D already beats wav2vec 2.0 from scratch (it
makes 1.6-1.7x the updates), which would hide what pretraining adds. So the first from-scratch
run (the reference: the first model, the first seed) trains for ``finetune_minutes``, and every other
fine-tuning run gets exactly its number of updates U and no time limit; each run's wall clock is
reported beside it. Fine-tuning validates once, at the end, and the model the budget produced
(``RUN/final``) is the one scored.

Every finished run leaves ``bench-run.json`` (its settings and result row) in its directory: a rerun
into the same results directory (``resume``) reuses it, and an interrupted run continues from its
last checkpoint. Results: ``results.json``, ``results.md``, ``results.csv`` (one row per fine-tuning
run) and ``cer-vs-pretraining.png``; the checks are ``check_claims``'s.
"""

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from sew.bench.failures import FailureLog
from sew.bench.low_resource_report import (  # noqa: F401 (re-exported: the profile's API)
    PLATEAU_CER, PRETRAINED_RATIO, add_reductions, cer_plot, check_claims, check_line, compare_low_resource,
    markdown_summary, mean, mean_rows, pretraining_table, runs_table, write_results_files)
from sew.bench.low_resource_runs import (  # noqa: F401 (re-exported: the profile's API)
    CHECKPOINTS, DONE_FILE, FRACTIONS, LABELED_EVAL_MINUTES, LABELED_SEED, POOL_SEED, Corpora, finetune_run,
    labeled_subset, prepare_data, pretrain_run, safe_name, with_length)
from sew.files import write_json

MIN_FINETUNE_MINUTES = 10.0  # below this the from-scratch runs stay on the CTC plateau (see check)
SETTINGS_FILE = "profile.json"
REFERENCE_FILE = "reference.json"
PRETRAIN_OVERHEAD_S, FINETUNE_OVERHEAD_S = 90.0, 45.0  # start, validation, checkpoints, test decoding (estimates)
# Profile fields a resumed results directory must share (models, seeds and presets may change).
RUN_LISTS = ("models", "seeds", "pretrain_presets")


@dataclass
class LowResourceProfile:
    """What the profile runs; ``check()`` refuses settings that cannot answer its question."""

    models: list[str] = field(default_factory=lambda: ["sew-d-micro", "w2v2-micro"])
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    pretrain_presets: list[str] = field(default_factory=lambda: ["quick"])
    pretrain_minutes: float = 30.0  # P, per model, seed and preset
    finetune_minutes: float = 10.0  # the reference run's budget; every other fine-tuning gets its updates
    finetune_max_update: int | None = None  # also stop the reference (so every fine-tuning) at this many updates
    finetune_preset: str = "quick"
    labeled_minutes: float = 10.0
    pool_minutes: float = 300.0  # the built-in pool (not used with data)
    realistic: bool = True  # the built-in corpora's mode (False: clean)
    data: str | None = None  # a corpus instead of the built-in ones: its train split is the pool
    pretrain_overrides: list[str] = field(default_factory=list)  # --set strings of every pretraining run
    finetune_overrides: list[str] = field(default_factory=list)  # --set strings of every fine-tuning run
    smoke: bool = False  # budgets under the minimum allowed: a test of the machinery, not a measurement
    notes: str = ("pretraining at P/4, P/2 and P, then CTC fine-tuning on a small labeled set from scratch and "
                  "from each encoder at equal updates; per model and seed: P min of pretraining per preset plus "
                  "1 + 3 x presets fine-tuning runs of about F min")

    def check(self) -> None:
        """Raise ``ValueError`` naming the option and the fix for settings the profile cannot run."""
        from sew.config import preset_path

        for option, values in (("--models", self.models), ("--seeds", self.seeds),
                               ("--pretrain-preset", self.pretrain_presets)):
            if not values:
                raise ValueError(f"{option}: give at least one")
            if len(set(values)) != len(values):
                raise ValueError(f"{option}: {', '.join(map(str, values))} names one twice; give each once")
        for preset in self.pretrain_presets:
            preset_path("pretrain", preset)  # an unknown preset is named with the known ones
        preset_path("finetune", self.finetune_preset)
        for option, value in (("--pretrain-minutes", self.pretrain_minutes),
                              ("--finetune-minutes", self.finetune_minutes),
                              ("--labeled-minutes", self.labeled_minutes), ("--pool-minutes", self.pool_minutes)):
            if not value > 0:
                raise ValueError(f"{option} must be positive, got {value:g}")
        if self.finetune_max_update is not None and self.finetune_max_update < 1:
            raise ValueError(f"--max-update must be at least 1, got {self.finetune_max_update}")
        if self.finetune_minutes < MIN_FINETUNE_MINUTES and not self.smoke:
            raise ValueError(
                f"--finetune-minutes {self.finetune_minutes:g}: under {MIN_FINETUNE_MINUTES:g} minutes the "
                "from-scratch runs stay on the CTC plateau, and every comparison with them is void; give at least "
                f"{MIN_FINETUNE_MINUTES:g}, or add --smoke to test the machinery with tiny budgets (its numbers "
                "mean nothing and the results say so)")

    def settings(self) -> dict:
        """The fields every run of a results directory shares (what ``resume`` checks)."""
        return {k: v for k, v in asdict(self).items() if k not in RUN_LISTS + ("notes",)}



# -- the plan and its clock -----------------------------------------------------------------------
@dataclass
class Step:
    kind: str  # "pretrain" or "finetune"
    model: str
    seed: int
    run: Path
    preset: str | None = None
    fraction: float = 0.0  # of the pretraining budget the fine-tuning starts from (0: from scratch)


class Plan:
    """Every run of the profile with its expected seconds: the budget said up front, and a line per run
    with the time left of the whole. A run at the reference's U updates is expected to take U x its
    model's measured seconds per update (the reference's until that model finished a fine-tuning run);
    a run already finished in the results directory, a few seconds."""

    def __init__(self, profile: LowResourceProfile, out: Path):
        self.profile, self.steps = profile, []
        for model in profile.models:
            for seed in profile.seeds:
                self.steps.append(Step("finetune", model, seed, out / "runs" / scratch_name(model, seed)))
                for preset in profile.pretrain_presets:
                    self.steps.append(Step("pretrain", model, seed, out / "runs" / pretrain_name(model, preset, seed),
                                           preset))
                    self.steps += [Step("finetune", model, seed, out / "runs" / tuned_name(model, preset, seed, f),
                                        preset, f) for f in FRACTIONS]
        self.reused = {s.run for s in self.steps if (s.run / DONE_FILE).is_file()}
        self.started: list[Path] = []
        self.updates: int | None = None  # U
        self.rates: dict[str, float] = {}  # model -> seconds per fine-tuning update
        self.reference_rate: float | None = None
        self.clock = time.perf_counter()

    def expected(self, step: Step) -> float:
        p = self.profile
        if step.run in self.reused:
            return 2.0
        if step.kind == "pretrain":
            return p.pretrain_minutes * 60 + PRETRAIN_OVERHEAD_S
        rate = self.rates.get(step.model, self.reference_rate)
        if self.updates is None or rate is None:
            return p.finetune_minutes * 60 + FINETUNE_OVERHEAD_S
        return self.updates * rate + FINETUNE_OVERHEAD_S

    def budget(self) -> str:
        """The whole budget, said before anything runs."""
        p = self.profile
        runs = 1 + 3 * len(p.pretrain_presets)
        total = sum(self.expected(s) for s in self.steps)
        again = f"; {len(self.reused)} run(s) already finished there, reused" if self.reused else ""
        corpora = "" if p.data else "; plus generating the built-in corpora once (cached)"
        return (f"budget per model and seed: {len(p.pretrain_presets)} pretraining run(s) of "
                f"{p.pretrain_minutes:g} min and {runs} fine-tuning runs of about {p.finetune_minutes:g} min (the "
                f"reference run {p.finetune_minutes:g} min, every other one its number of updates) = about "
                f"{(len(p.pretrain_presets) * p.pretrain_minutes + runs * p.finetune_minutes):g} min; "
                f"{len(p.models)} model(s) x {len(p.seeds)} seed(s): about {total / 3600:.1f} h in all with scoring"
                f"{again}{corpora}. A model slower per update than the reference's takes longer for the same "
                "updates (wav2vec 2.0 micro: about 1.7x SEW-D micro's time per update).")

    def start(self, step: Step, text: str) -> None:
        left = sum(self.expected(s) for s in self.steps if s.run not in self.started)
        self.started.append(step.run)
        elapsed = (time.perf_counter() - self.clock) / 60
        print(f"[{len(self.started)}/{len(self.steps)}] {step.model} seed {step.seed}: {text} ({elapsed:.1f} min "
              f"elapsed, about {left / 60:.0f} min left)", flush=True)

    def skip(self, step: Step) -> None:
        """A run that cannot start (what it needs failed): counted as done, recorded by the caller."""
        self.started.append(step.run)

    def measured(self, step: Step, row: dict, reference: bool = False) -> None:
        """A fine-tuning run finished: its model's seconds per update (and U, for the reference)."""
        if row.get("updates"):
            self.rates[step.model] = row["train_seconds"] / row["updates"]
            if reference:
                self.updates, self.reference_rate = row["updates"], self.rates[step.model]


def scratch_name(model: str, seed: int) -> str:
    return f"finetune-{safe_name(model)}-s{seed}-scratch"


def pretrain_name(model: str, preset: str, seed: int) -> str:
    return f"pretrain-{safe_name(model)}-{safe_name(preset)}-s{seed}"


def tuned_name(model: str, preset: str, seed: int, fraction: float) -> str:
    return f"finetune-{safe_name(model)}-s{seed}-{safe_name(preset)}-at{fraction:g}"


# -- the profile ----------------------------------------------------------------------------------
def open_results(profile: LowResourceProfile, out_root, resume) -> Path:
    """A fresh ``OUT/<timestamp>/``, or ``resume`` (a directory this profile wrote) once its settings are
    checked to be this run's."""
    from sew.bench.report import results_dir

    settings = profile.settings()
    if resume is None:
        out = results_dir(out_root)
    else:
        out = Path(resume)
        path = out / SETTINGS_FILE
        if not path.is_file():
            raise ValueError(f"--resume {out}: no {SETTINGS_FILE} there; pass a results directory the low-resource "
                             "profile wrote (OUT/<timestamp>/)")
        old = json.loads(path.read_text()).get("settings", {})
        changed = [f"{k}: {old.get(k)!r} then, {v!r} now" for k, v in settings.items() if old.get(k) != v]
        if changed:
            raise ValueError(f"--resume {out}: made with other settings ({'; '.join(changed)}); rerun with the options "
                             "it was made with (models, seeds and pretraining presets may change), or drop --resume "
                             "for a fresh directory")
    write_json(out / SETTINGS_FILE, {"settings": settings, **{k: getattr(profile, k) for k in RUN_LISTS}})
    return out


def run_low_resource(profile: LowResourceProfile, out_root="results", *, resume=None, device: str = "cpu",
                     progress: bool = True) -> tuple[Path, dict]:
    """Every run of ``profile`` (see the module docstring); writes the result files; returns (directory, results)."""
    from sew.bench.timing import machine_info

    profile.check()
    out = open_results(profile, out_root, resume)
    plan = Plan(profile, out)
    print(f"sew bench: low-resource into {out}\n{plan.budget()}", flush=True)
    corpora = prepare_data(profile, out, progress)
    failures = FailureLog()
    runs: list[dict] = []
    pretraining: list[dict] = []
    steps = {(s.kind, s.model, s.seed, s.preset, s.fraction): s for s in plan.steps}

    def tune(step: Step, init, start: str, extra: dict, *, max_minutes=None, max_update=None,
             reference: bool = False) -> dict | None:
        budget = f"{max_minutes:g} min (the reference)" if reference else f"{max_update} updates"
        plan.start(step, f"fine-tuning from {start}, {budget}")
        phase = f"fine-tuning from {start}, seed {step.seed}"
        row = failures.attempt(step.model, phase, lambda: finetune_run(
            profile, step.model, step.seed, init, start, corpora, step.run, max_minutes=max_minutes,
            max_update=max_update, device=device, progress=progress))
        if row is not None:
            row = {**row, **extra, "reference": reference}
            runs.append(row)
            plan.measured(step, row, reference)
        return row

    scratch = {"preset": None, "checkpoint": "scratch", "fraction": 0.0, "pretrain_minutes": 0.0,
               "pretrain_updates": 0}
    reference = json.loads((out / REFERENCE_FILE).read_text()) if (out / REFERENCE_FILE).is_file() else None
    tried = set()
    if reference is None:  # the first from-scratch run that succeeds sets U
        for model in profile.models:
            step = steps[("finetune", model, profile.seeds[0], None, 0.0)]
            tried.add((model, step.seed))
            row = tune(step, model, "scratch", scratch, max_minutes=profile.finetune_minutes,
                       max_update=profile.finetune_max_update, reference=True)
            if row is not None:
                reference = {"model": model, "seed": step.seed, "updates": row["updates"],
                             "max_minutes": profile.finetune_minutes, "max_update": profile.finetune_max_update,
                             "train_seconds": row["train_seconds"], "run_dir": step.run.name}
                write_json(out / REFERENCE_FILE, reference)
                break
    else:
        plan.updates = reference["updates"]
    updates = reference["updates"] if reference else None
    no_reference = "no reference run (every first from-scratch run failed): no number of updates to give it"

    def from_encoders(model: str, seed: int, preset: str, pre: dict | None) -> None:
        """Fine-tune from the P/4, P/2 and P encoders of one pretraining run (``pre``: its row, None if it failed)."""
        for fraction in FRACTIONS:
            label = CHECKPOINTS[fraction]
            step = steps[("finetune", model, seed, preset, fraction)]
            checkpoint = (pre or {}).get("checkpoints", {}).get(label)
            if pre is None:
                problem = "no pretrained encoder (its pretraining failed)"
            elif checkpoint is None:
                problem = f"the pretraining run ended before {label} of its budget (see its log): no encoder"
            elif updates is None:
                problem = no_reference
            else:
                tune(step, step.run.parent / pretrain_name(model, preset, seed) / checkpoint["dir"],
                     f"{preset} {label}", {"preset": preset, "checkpoint": label, "fraction": fraction,
                                           "pretrain_minutes": checkpoint["minutes"],
                                           "pretrain_updates": checkpoint["update"]}, max_update=updates)
                continue
            plan.skip(step)
            failures.add(model, f"fine-tuning from {preset} {label}, seed {seed}", problem)

    for model in profile.models:
        for seed in profile.seeds:
            step = steps[("finetune", model, seed, None, 0.0)]
            if (model, seed) in tried:
                pass
            elif reference and (model, seed) == (reference["model"], reference["seed"]):
                tune(step, model, "scratch", scratch, max_minutes=reference["max_minutes"],
                     max_update=reference["max_update"], reference=True)
            elif updates is None:
                plan.skip(step)
                failures.add(model, f"fine-tuning from scratch, seed {seed}", no_reference)
            else:
                tune(step, model, "scratch", scratch, max_update=updates)
            for preset in profile.pretrain_presets:
                step = steps[("pretrain", model, seed, preset, 0.0)]
                plan.start(step, f"pretraining with {preset} for {profile.pretrain_minutes:g} min")
                pre = failures.attempt(model, f"pretraining with {preset}, seed {seed}", lambda: pretrain_run(
                    profile, model, preset, seed, corpora, step.run, device=device, progress=progress))
                if pre is not None:
                    pretraining.append(pre)
                from_encoders(model, seed, preset, pre)

    order = {m: i for i, m in enumerate(profile.models)}
    runs.sort(key=lambda r: (order[r["model"]], r["seed"], r["preset"] or "", r["fraction"]))
    add_reductions(runs)
    summary = mean_rows(runs, profile.pretrain_minutes)
    checks = check_claims(runs)
    machine = machine_info(torch.device(device), torch.get_num_threads())
    tables = {"summary": markdown_summary(summary), "pretraining": pretraining_table(pretraining),
              "runs": runs_table(runs)}
    check_lines = "\n".join(check_line(c) for c in checks)
    results = {"profile_name": "low-resource", "profile": asdict(profile), "smoke": profile.smoke, "machine": machine,
               "data": corpora.to_dict(), "reference": reference, "pretraining": pretraining, "runs": runs,
               "summary": summary, "checks": checks, "failures": failures.records,
               "wall_minutes": round((time.perf_counter() - plan.clock) / 60, 1),
               "table": f"{tables['summary']}\n\n{check_lines}"}
    write_results_files(out, results, tables, check_lines, failures.markdown())
    cer_plot(summary, runs, profile, out / "cer-vs-pretraining.png")
    print(f"\n{tables['summary']}\n\n{check_lines}\n\nwrote {out}/results.json, results.md, results.csv and "
          "cer-vs-pretraining.png")
    if failures:
        print(f"{len(failures)} part(s) failed, recorded under 'failures' in results.json: "
              + "; ".join(f"{r['model']} {r['phase']}" for r in failures.records), file=sys.stderr)
    return out, results


def split_list(values: list[str] | None) -> list[str] | None:
    """``--models a,b c`` -> ``["a", "b", "c"]``: commas and spaces both separate."""
    return None if values is None else [v for value in values for v in value.split(",") if v.strip()]


def parse_seeds(values: list[str]) -> list[int]:
    """``--seeds 0,1`` or ``--seeds 0 1`` -> ``[0, 1]``; anything else is refused, naming what was given."""
    try:
        return [int(s) for s in split_list(values)]
    except ValueError:
        raise ValueError(f"--seeds: expected whole numbers such as 0,1; got {' '.join(values)}") from None


def run_from_args(args, device: str) -> dict:
    """``sew bench --profile low-resource``: the profile with the command line's changes, run; its results."""
    foreign = [flag for flag, given in (("--max-minutes", args.max_minutes is not None),
                                        ("--repeats", args.repeats != 1), ("--variants", args.variants is not None),
                                        ("--speed-utterances", args.speed_utterances is not None),
                                        ("--tasks", args.tasks is not None), ("--modes", args.modes is not None),
                                        ("--lm", args.lm is not None), ("--no-reference", args.no_reference)) if given]
    if foreign:
        raise ValueError(f"{', '.join(foreign)}: not options of --profile low-resource; its budgets are "
                         "--pretrain-minutes and --finetune-minutes, its runs --models, --seeds and --pretrain-preset")
    if args.data is not None and (args.pool_minutes is not None or args.clean):
        raise ValueError("--pool-minutes and --clean shape the built-in pool; with --data the pool is the corpus's "
                         "train split: drop them, or drop --data")
    profile = LowResourceProfile(realistic=not args.clean, smoke=args.smoke,
                                 data=str(Path(args.data).resolve()) if args.data is not None else None,
                                 pretrain_overrides=list(args.pretrain_set), finetune_overrides=list(args.finetune_set))
    if args.models is not None:
        profile.models = split_list(args.models)
    if args.seeds is not None:
        profile.seeds = parse_seeds(args.seeds)
    if args.pretrain_presets is not None:
        profile.pretrain_presets = split_list(args.pretrain_presets)
    for option, name in (("pretrain_minutes", "pretrain_minutes"), ("finetune_minutes", "finetune_minutes"),
                         ("max_update", "finetune_max_update"), ("labeled_minutes", "labeled_minutes"),
                         ("pool_minutes", "pool_minutes")):
        if getattr(args, option) is not None:
            setattr(profile, name, getattr(args, option))
    print(f"sew bench: profile low-resource ({profile.notes}); models {', '.join(profile.models)}; seeds "
          f"{', '.join(map(str, profile.seeds))}; pretraining {', '.join(profile.pretrain_presets)} for "
          f"{profile.pretrain_minutes:g} min; fine-tuning {profile.finetune_minutes:g} min (the reference)", flush=True)
    _, results = run_low_resource(profile, args.out, resume=args.resume, device=device, progress=not args.no_progress)
    return results
