"""``sew bench --profile low-resource``: does self-supervised pretraining pay off at small scale?

The paper's pretraining claims measured end to end on a small budget. For each model (default SEW-D
and wav2vec 2.0 micro), seed and pretraining preset (``quick``: contrastive; ``quick-bestrq``: BEST-RQ's
fixed targets), one pretraining run of ``pretrain_minutes`` (P) on an unlabeled pool writes the encoder
at P/4 and P/2 of its budget (``train.snapshot_fractions``: so the shorter budgets follow the full
budget's schedule) and at P; then the ``quick`` CTC fine-tuning recipe trains from scratch and from each
of the three encoders on a small labeled set, and each model is scored on the labeled set's test split.

Data: the pool is the built-in corpus, 300 minutes in realistic mode (seed 0); the labeled set is a
separate built-in corpus of ``labeled_minutes`` (seed 1000) with dev and test splits of its own. With
``data``, the pool is that corpus's train split and the labeled set a seeded subset of it written as
manifests into the results directory (validation on the corpus's dev split, else on a held-out part
of the subset, as ``sew finetune`` does; test on the corpus's test split).

Equal updates, not equal time: at equal wall clock SEW-D already beats wav2vec 2.0 from scratch (it
makes about twice the updates), which would hide what pretraining adds. So the first from-scratch
run (the reference: the first model, the first seed) trains for ``finetune_minutes``, and every other
fine-tuning run gets exactly its number of updates U and no time limit; each run's wall clock is
reported beside it. Fine-tuning validates once, at the end, and the model the budget produced
(``RUN/final``) is the one scored.

Every finished run leaves ``bench-run.json`` (its settings and result row) in its directory: a rerun
into the same results directory (``resume``) reuses it, and an interrupted run continues from its
last checkpoint. Results: ``results.json``, ``results.md``, ``results.csv`` (one row per fine-tuning
run) and ``cer-vs-pretraining.png``; the checks are ``check_claims``'s.
"""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from sew.bench.failures import FailureLog
from sew.files import write_json

FRACTIONS = (0.25, 0.5, 1.0)  # the pretraining checkpoints fine-tuned: two snapshots and RUN/final
CHECKPOINTS = {0.25: "P/4", 0.5: "P/2", 1.0: "P"}
MIN_FINETUNE_MINUTES = 10.0  # below this the from-scratch runs stay on the CTC plateau (see check)
POOL_SEED, LABELED_SEED = 0, 1000
LABELED_EVAL_MINUTES = 3.0  # dev and test of the built-in labeled corpus: at least this much each
PRETRAINED_RATIO = 0.75  # the check: pretrained test CER <= this x from scratch
PLATEAU_CER = 90.0  # the check: from-scratch dev CER below this (%)
DONE_FILE = "bench-run.json"
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


# -- data -----------------------------------------------------------------------------------------
@dataclass
class Corpora:
    """Where pretraining and fine-tuning read: the pool and its splits, the labeled set's directory."""

    pool: Path
    pool_train: str
    pool_valid: str | None
    labeled: Path  # train (the labeled set), dev (when there is one) and test splits
    description: str
    pool_minutes: float | None
    labeled_minutes: float

    def to_dict(self) -> dict:
        return {"pool": str(self.pool), "pool_train_split": self.pool_train, "pool_valid_split": self.pool_valid,
                "labeled": str(self.labeled), "description": self.description,
                "pool_minutes": self.pool_minutes, "labeled_minutes": self.labeled_minutes}


def prepare_data(profile: LowResourceProfile, out: Path, progress: bool = True) -> Corpora:
    """The pool and the labeled set: the built-in corpora (generated once into the cache) or ``profile.data``."""
    from sew.data.corpus import dev_split, read_corpus, resolve_split
    from sew.data.synth import EVAL_FRACTION, default_corpus

    if profile.data is None:
        mode = "realistic" if profile.realistic else "clean"
        pool = default_corpus(profile.pool_minutes, POOL_SEED, progress, realistic=profile.realistic)
        eval_minutes = max(LABELED_EVAL_MINUTES, EVAL_FRACTION * profile.labeled_minutes)
        labeled = default_corpus(profile.labeled_minutes, LABELED_SEED, progress, realistic=profile.realistic,
                                 eval_minutes=eval_minutes)
        return Corpora(pool, "train", "dev", labeled,
                       f"built-in {mode} corpora: pool {profile.pool_minutes:g} min (seed {POOL_SEED}), labeled "
                       f"{profile.labeled_minutes:g} min (seed {LABELED_SEED}; dev and test {eval_minutes:g} min each)",
                       read_corpus(pool, split="train").total_seconds() / 60,
                       read_corpus(labeled, split="train").total_seconds() / 60)
    root = Path(profile.data)
    train, dev = resolve_split(root, "train"), dev_split(root)
    seconds = labeled_subset(root, out / "labeled", profile.labeled_minutes, LABELED_SEED)
    pool = read_corpus(root, split=train)
    return Corpora(root, train, dev, out / "labeled",
                   f"{root}: pool its {train} split, labeled a {profile.labeled_minutes:g} min subset of it (seed "
                   f"{LABELED_SEED}), validation on {dev or 'a held-out part of the subset'}, test on its test split",
                   pool.total_seconds() / 60 if pool.has_lengths else None, seconds / 60)


def labeled_subset(root: Path, out: Path, minutes: float, seed: int) -> float:
    """A seeded ``minutes`` of ``root``'s transcribed train utterances as manifests in ``out`` (``train``;
    ``dev`` when the corpus has one; ``test``) with the vocabulary of the whole train split; returns the
    subset's seconds. The same corpus and seed give the same subset."""
    from sew.data.corpus import dev_split, read_corpus, resolve_split
    from sew.data.manifest import write_split
    from sew.data.text import VOCAB_FILE, Vocabulary

    try:
        test = resolve_split(root, "test")
    except ValueError as err:
        raise ValueError(f"--data {root}: {err}; the low-resource profile scores every model on the corpus's test "
                         "split: give a corpus with one") from err
    train = read_corpus(root, split="train")
    candidates = sorted((u for u in train if u.transcript), key=lambda u: u.id)
    if not candidates:
        raise ValueError(f"--data {root}: the {train.split} split has no transcripts; CTC fine-tuning needs "
                         "transcribed speech (.wrd/.ltr next to the .tsv, or a transcript column)")
    random.Random(seed).shuffle(candidates)
    target, chosen, total = minutes * 60 * 16000, [], 0
    for utt in candidates:
        if total >= target:
            break
        utt = with_length(utt, root)
        chosen.append(utt)
        total += utt.num_samples
    if total < target:
        raise ValueError(f"--labeled-minutes {minutes:g}: the {train.split} split of {root} holds only "
                         f"{total / 16000 / 60:.2f} min of transcribed audio; give a smaller --labeled-minutes")
    out.mkdir(parents=True, exist_ok=True)
    write_split(out, "train", chosen)
    for name, split in (("dev", dev_split(root)), ("test", test)):
        if split is not None:
            write_split(out, name, [with_length(u, root) for u in read_corpus(root, split=split)])
        else:
            for suffix in (".tsv", ".wrd", ".ltr"):  # a dev split of an earlier subset must not be read back
                (out / f"{name}{suffix}").unlink(missing_ok=True)
    if (root / VOCAB_FILE).is_file():
        shutil.copyfile(root / VOCAB_FILE, out / VOCAB_FILE)
    else:  # every run fine-tunes over the same symbols, those of the whole train split
        Vocabulary.build(u.transcript for u in candidates).save(out)
    write_json(out / "subset.json", {"source": str(root), "split": train.split, "seed": seed, "minutes": minutes,
                                     "utterances": len(chosen), "seconds": round(total / 16000, 2)})
    return total / 16000


def with_length(utt, root: Path):
    """``utt`` with its 16 kHz length (read from the file's header when the corpus does not list it)."""
    from dataclasses import replace

    from sew.data.audio import header_num_samples

    if utt.audio_bytes is not None:
        raise ValueError(f"--data {root}: the audio is stored inside the dataset files; write manifests first "
                         f"(sew data manifest {root} --out DIR) and pass --data DIR")
    return utt if utt.num_samples is not None else replace(utt, num_samples=header_num_samples(utt.path))


# -- runs -----------------------------------------------------------------------------------------
def accelerator_for(device: str, precision: str):
    """A CPU accelerator for ``--device cpu`` (the budgets are CPU minutes there); None: the trainer's default."""
    from sew.train.setup import make_accelerator

    return make_accelerator(precision, cpu=True) if device == "cpu" else None


def finished(run: Path, key: dict) -> dict | None:
    """The row of a finished run made with ``key``'s settings, or None; a finished run made with other
    settings is an error (its results would be mixed with this profile's)."""
    path = run / DONE_FILE
    if not path.is_file():
        return None
    done = json.loads(path.read_text())
    old = done.get("key", {})
    if old != key:
        changed = "; ".join(f"{k}: {old.get(k)!r} then, {v!r} now" for k, v in key.items() if old.get(k) != v)
        raise ValueError(f"{run} finished with other settings ({changed}); rerun with the options it was made with, "
                         "or use a fresh results directory (drop --resume)")
    print(f"reusing the finished run {run}", flush=True)
    return {**done["row"], "reused": True}


def finish(run: Path, key: dict, row: dict) -> dict:
    write_json(run / DONE_FILE, {"key": key, "row": row})
    return row


def pretrain_run(profile: LowResourceProfile, model: str, preset: str, seed: int, corpora: Corpora, run: Path, *,
                 device: str = "cpu", progress: bool = True) -> dict:
    """One pretraining run of ``model`` with ``preset`` on the pool, its encoder kept at P/4, P/2 and P;
    its statistics row (``pretraining_row``)."""
    from sew.pretrain.recipe import load_recipe
    from sew.pretrain.run import pretrain

    key = {"model": model, "preset": preset, "seed": seed, "minutes": profile.pretrain_minutes,
           "overrides": list(profile.pretrain_overrides), "pool": corpora.description}
    done = finished(run, key)
    if done is not None:
        return done
    # Validated once, at the end: the built-in pool's dev split is large (22.5 min for 300).
    recipe = load_recipe(preset, ["train.validate_every=0", "train.validate_every_minutes=null",
                                  *profile.pretrain_overrides],
                         {"model": model, "train.seed": seed, "train.max_minutes": profile.pretrain_minutes,
                          "train.snapshot_fractions": [f for f in FRACTIONS if f < 1.0],
                          "data.train_splits": [corpora.pool_train], "data.valid_split": corpora.pool_valid})
    start = time.perf_counter()
    pretrain(recipe, corpora.pool, run, progress=progress,
             accelerator=accelerator_for(device, recipe.train.mixed_precision))
    row = pretraining_row(run, model=model, seed=seed, preset=preset, objective=recipe.objective.kind)
    row["wall_seconds"] = round(time.perf_counter() - start, 1)
    return finish(run, key, row)


def pretraining_row(run: Path, *, model: str, seed: int, preset: str, objective: str) -> dict:
    """What a pretraining run reports: updates, audio seen, the last train and dev statistics, the health
    monitor's findings and, per checkpoint (P/4, P/2, P), its directory, update, minutes and audio seen."""
    from sew.train.health import read_summary
    from sew.train.logs import read_log
    from sew.train.loop import snapshot_name

    summary = read_summary(run) or {}
    records = read_log(run)
    events = {r["snapshot"]: r for r in records if r.get("kind") == "event" and "snapshot" in r}
    checkpoints = {}
    for fraction in FRACTIONS:
        name = "final" if fraction == 1.0 else snapshot_name(fraction)
        event = {"update": summary.get("update"), "minutes": summary.get("minutes")} if fraction == 1.0 \
            else events.get(name)
        if event is None or event.get("update") is None or not (run / name).is_dir():
            continue  # the run ended before it (recorded as a failure of that fine-tuning)
        checkpoints[CHECKPOINTS[fraction]] = {
            "dir": name, "fraction": fraction, "update": event["update"],
            "minutes": round(event.get("minutes") or 0.0, 2),
            "audio_hours": round(audio_seen(records, event["update"]) / 3600, 3)}
    train, valid = summary.get("last_train") or {}, summary.get("last_valid") or {}
    row = {"model": model, "family": family_of(model), "seed": seed, "preset": preset, "objective": objective,
           "updates": summary.get("update"), "minutes": round(summary.get("minutes") or 0.0, 2),
           "audio_hours": round(audio_seen(records) / 3600, 3)}
    for prefix, record in (("train", train), ("dev", valid)):
        row[f"{prefix}_loss"] = rounded(record.get("contrastive"))  # BEST-RQ: its cross-entropy
        for key in ("accuracy", "code_perplexity", "prob_perplexity"):
            row[f"{prefix}_{key}"] = rounded(record.get(key))
    row.update(healthy=summary.get("healthy"), health=findings(summary), checkpoints=checkpoints, run_dir=run.name)
    return row


def audio_seen(records: list[dict], until: int | None = None) -> float:
    """Seconds of audio the run trained on up to update ``until`` (all when None): each train record's
    ``audio_per_s`` times the training time since the record before it (a resumed run's replayed
    records replace the first attempt's)."""
    by_update = {r["update"]: r for r in records if r.get("kind") == "train" and "audio_per_s" in r}
    seconds, last_minutes = 0.0, 0.0
    for update in sorted(by_update):
        if until is not None and update > until:
            break
        r = by_update[update]
        seconds += float(r["audio_per_s"]) * 60.0 * max(float(r["minutes"]) - last_minutes, 0.0)
        last_minutes = float(r["minutes"])
    return seconds


def finetune_run(profile: LowResourceProfile, model: str, seed: int, init: str | Path, start: str, corpora: Corpora,
                 run: Path, *, max_minutes: float | None, max_update: int | None, device: str = "cpu",
                 progress: bool = True) -> dict:
    """One CTC fine-tuning with the profile's recipe from ``init`` (a preset: from scratch, or an encoder
    directory) on the labeled set, under ``max_minutes`` and / or ``max_update``; scored on its test split."""
    from sew.asr.finetune import finetune, load_recipe
    from sew.cli.eval import evaluate_model
    from sew.train.health import read_summary

    key = {"model": model, "seed": seed, "start": start, "preset": profile.finetune_preset,
           "max_minutes": max_minutes, "max_update": max_update, "overrides": list(profile.finetune_overrides),
           "labeled": corpora.description}
    done = finished(run, key)
    if done is not None:
        return done
    values = {"model": str(init), "train.seed": seed, "train.max_minutes": max_minutes}
    if max_update is not None:
        values["train.max_update"] = max_update
    # Validated once, at the end, and RUN/final scored: the model the budget produced.
    recipe = load_recipe(profile.finetune_preset, ["train.validate_every=0", "train.validate_every_minutes=null",
                                                   *profile.finetune_overrides], values)
    clock = time.perf_counter()
    state = finetune(recipe, corpora.labeled, run, progress=progress,
                     accelerator=accelerator_for(device, recipe.train.mixed_precision))
    wall = time.perf_counter() - clock
    scores = evaluate_model(run / "final", corpora.labeled, "test", run / "eval-test", device=device)
    summary = read_summary(run) or {}
    dev = summary.get("last_valid") or {}
    row = {"model": model, "family": family_of(model), "seed": seed, "start": start, "updates": state.update,
           "max_minutes": max_minutes, "max_update": max_update, "train_seconds": round(state.elapsed_seconds, 1),
           "wall_seconds": round(wall, 1), "dev_wer": percent(dev.get("wer")), "dev_cer": percent(dev.get("cer")),
           "wer": percent(scores["wer"]), "cer": percent(scores["cer"]), "test_utterances": scores["utterances"],
           "healthy": summary.get("healthy"), "health": findings(summary), "run_dir": run.name}
    return finish(run, key, row)


def family_of(model: str) -> str | None:
    from sew.models.config import load_config

    try:
        return load_config(model).family
    except (ValueError, OSError):
        return None


def findings(summary: dict) -> list[str]:
    return [f"{f['symptom']} at update {f['update']}" for f in summary.get("health") or []]


def percent(value) -> float | None:
    return None if value is None else round(100 * float(value), 2)


def rounded(value, digits: int = 4) -> float | None:
    return None if not isinstance(value, (int, float)) else float(f"{value:.{digits}g}")


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "model"


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
                "updates (wav2vec 2.0 micro: about twice SEW-D micro's time per update).")

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


# -- numbers --------------------------------------------------------------------------------------
def add_reductions(runs: list[dict]) -> None:
    """``cer_reduction`` of every pretrained run: 1 - its test CER / the same model and seed's from scratch."""
    scratch = {(r["model"], r["seed"]): r for r in runs if r["checkpoint"] == "scratch"}
    for r in runs:
        base = scratch.get((r["model"], r["seed"]))
        if r["checkpoint"] != "scratch" and base is not None and base["cer"]:
            r["cer_reduction"] = round(1 - r["cer"] / base["cer"], 3)


def mean(values) -> float | None:
    """The mean of the values given (None when there are none); whole numbers stay whole."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    value = statistics.fmean(values)
    return int(value) if value.is_integer() and all(isinstance(v, int) for v in values) else round(value, 3)


def mean_rows(runs: list[dict], pretrain_minutes: float) -> list[dict]:
    """Per model, pretraining preset and checkpoint (from scratch once per model): means over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["model"], r["preset"], r["checkpoint"]), []).append(r)
    out = []
    for (model, preset, checkpoint), rows in groups.items():
        rows = sorted(rows, key=lambda r: r["seed"])
        out.append({"model": model, "family": rows[0]["family"], "preset": preset, "checkpoint": checkpoint,
                    "pretrain_minutes": round(rows[0]["fraction"] * pretrain_minutes, 2),
                    "seeds": [r["seed"] for r in rows], "cer": mean(r["cer"] for r in rows),
                    "cer_runs": [r["cer"] for r in rows], "wer": mean(r["wer"] for r in rows),
                    "cer_reduction": mean(r.get("cer_reduction") for r in rows),
                    "updates": mean(r["updates"] for r in rows), "wall_seconds": mean(r["wall_seconds"] for r in rows)})
    order = {m: i for i, m in enumerate(dict.fromkeys(r["model"] for r in runs))}
    return sorted(out, key=lambda r: (order[r["model"]], r["preset"] or "", r["pretrain_minutes"]))


def check_claims(runs: list[dict]) -> list[dict]:
    """The profile's checks, each ``{"check", "passed" (None: not measurable here), "detail"}``:

    * pretraining pays: test CER after pretraining (P) <= 0.75 x from scratch, per model, seed and preset;
    * the from-scratch runs are off the CTC plateau: dev CER < 90 %, per model and seed (otherwise the
      comparisons above are against a model that learned nothing);
    * SEW-D benefits at least as much as wav2vec 2.0: its mean relative CER reduction at P >= theirs;
    * SEW-D pretrained for P/4 is at least as good as wav2vec 2.0 pretrained for P (mean test CER).
    """
    out = []
    scratch = {(r["model"], r["seed"]): r for r in runs if r["checkpoint"] == "scratch"}
    for r in runs:
        base = scratch.get((r["model"], r["seed"]))
        if r["checkpoint"] == "P" and base is not None:
            ratio = r["cer"] / base["cer"] if base["cer"] else float("inf")
            out.append({"check": f"{r['model']} seed {r['seed']}, {r['preset']}: pretrained test CER <= "
                                 f"{PRETRAINED_RATIO:g} x from scratch",
                        "passed": r["cer"] <= PRETRAINED_RATIO * base["cer"],
                        "detail": f"{r['cer']:.2f}% vs {base['cer']:.2f}% from scratch (x{ratio:.2f})"})
    for (model, seed), r in scratch.items():
        dev = r.get("dev_cer")
        out.append({"check": f"{model} seed {seed}: from-scratch dev CER below {PLATEAU_CER:g}% (off the plateau)",
                    "passed": dev is not None and dev < PLATEAU_CER,
                    "detail": f"dev CER {dev:.2f}%" if dev is not None else "no dev CER (validation did not run)"})
    presets = list(dict.fromkeys(r["preset"] for r in runs if r["preset"]))
    for preset in presets:
        def at(model: str, label: str, key: str, preset=preset) -> float | None:
            return mean(r.get(key) for r in runs
                        if r["model"] == model and r["preset"] == preset and r["checkpoint"] == label)

        tuned = list(dict.fromkeys(r["model"] for r in runs if r["preset"] == preset))
        sewd = [m for m in tuned if family(runs, m) == "sew-d"]
        w2v2 = [m for m in tuned if family(runs, m) == "wav2vec2"]
        if not (sewd and w2v2):
            for name in ("SEW-D's relative CER reduction at P >= wav2vec 2.0's", "SEW-D at P/4 <= wav2vec 2.0 at P"):
                out.append({"check": f"{preset}: {name}", "passed": None,
                            "detail": "not measured: needs a SEW-D and a wav2vec 2.0 model pretrained with it"})
            continue
        for a in sewd:
            for b in w2v2:
                ra, rb = at(a, "P", "cer_reduction"), at(b, "P", "cer_reduction")
                out.append({"check": f"{preset}: {a}'s relative CER reduction at P >= {b}'s",
                            "passed": None if ra is None or rb is None else ra >= rb,
                            "detail": f"{fmt(ra)} vs {fmt(rb)} (mean over seeds, 1 - pretrained / scratch)"})
                ca, cb = at(a, "P/4", "cer"), at(b, "P", "cer")
                out.append({"check": f"{preset}: {a} at P/4 <= {b} at P (test CER)",
                            "passed": None if ca is None or cb is None else ca <= cb,
                            "detail": f"{fmt(ca)}% vs {fmt(cb)}% (mean over seeds)"})
    return out


def family(runs: list[dict], model: str) -> str | None:
    return next((r["family"] for r in runs if r["model"] == model), None)


def fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def check_line(check: dict) -> str:
    verdict = {True: "PASS", False: "FAIL", None: "n/a"}[check["passed"]]
    return f"- {verdict}: {check['check']} ({check['detail']})"


# -- result files ---------------------------------------------------------------------------------
SUMMARY_COLUMNS = [("model", "model"), ("preset", "pretraining"), ("checkpoint", "checkpoint"),
                   ("pretrain_minutes", "pretraining min"), ("seeds", "seeds"), ("cer", "test CER %"),
                   ("cer_runs", "CER per seed"), ("wer", "test WER %"), ("cer_reduction", "rel. CER reduction"),
                   ("updates", "updates"), ("wall_seconds", "wall s")]
PRETRAIN_COLUMNS = [("model", "model"), ("seed", "seed"), ("preset", "preset"), ("objective", "objective"),
                    ("updates", "updates"), ("minutes", "min"), ("audio_hours", "audio h"),
                    ("train_loss", "train loss"), ("dev_loss", "dev loss"), ("train_accuracy", "train acc"),
                    ("dev_accuracy", "dev acc"), ("train_code_perplexity", "code ppl"),
                    ("train_prob_perplexity", "prob ppl"), ("dev_code_perplexity", "dev code ppl"),
                    ("dev_prob_perplexity", "dev prob ppl"), ("snapshots", "P/4, P/2 at update"),
                    ("health", "health")]
RUN_COLUMNS = [("model", "model"), ("seed", "seed"), ("preset", "pretraining"), ("checkpoint", "checkpoint"),
               ("pretrain_minutes", "pretraining min"), ("pretrain_updates", "pretraining updates"),
               ("updates", "updates"), ("train_seconds", "train s"), ("wall_seconds", "wall s"),
               ("dev_cer", "dev CER %"), ("wer", "test WER %"), ("cer", "test CER %"),
               ("cer_reduction", "rel. CER reduction"), ("health", "health")]
CSV_FIELDS = ["model", "family", "seed", "preset", "checkpoint", "fraction", "pretrain_minutes", "pretrain_updates",
              "reference", "max_minutes", "max_update", "updates", "train_seconds", "wall_seconds", "dev_wer",
              "dev_cer", "wer", "cer", "cer_reduction", "test_utterances", "healthy", "health", "run_dir"]


def markdown_summary(summary: list[dict]) -> str:
    from sew.bench.report import markdown_table

    shown = [{**r, "preset": r["preset"] or "-", "seeds": ", ".join(map(str, r["seeds"])),
              "cer_runs": " / ".join(fmt(c) for c in r["cer_runs"])} for r in summary]
    return markdown_table(shown, SUMMARY_COLUMNS)


def pretraining_table(rows: list[dict]) -> str:
    from sew.bench.report import markdown_table

    shown = [{**r, "health": "; ".join(r["health"]) or ("ok" if r["healthy"] else "not monitored"),
              "snapshots": ", ".join(str(r["checkpoints"][k]["update"]) if k in r["checkpoints"] else "missing"
                                     for k in ("P/4", "P/2"))} for r in rows]
    return markdown_table(shown, PRETRAIN_COLUMNS)


def runs_table(runs: list[dict]) -> str:
    from sew.bench.report import markdown_table

    shown = [{**r, "preset": r["preset"] or "-", "health": "; ".join(r["health"]) or "ok",
              "checkpoint": r["checkpoint"] + (" (reference)" if r.get("reference") else "")} for r in runs]
    return markdown_table(shown, RUN_COLUMNS)


def write_results_files(out: Path, results: dict, tables: dict, check_lines: str, failures: str) -> None:
    from sew.bench.report import write_results

    ref, p = results["reference"], results["profile"]
    if ref:
        rule = (f"Fine-tuning at equal updates: the reference run ({ref['model']}, seed {ref['seed']}, from scratch) "
                f"trained for {ref['max_minutes']:g} min"
                + (f" (at most {ref['max_update']} updates)" if ref.get("max_update") else "")
                + f" and made U = {ref['updates']} updates; every other fine-tuning run got exactly U updates and no "
                "time limit. Equal updates, not equal wall clock: at equal wall clock SEW-D already wins from "
                "scratch, which would hide what pretraining adds. Each run's wall clock is in the runs table.")
    else:
        rule = "No reference run finished, so no fine-tuning ran at equal updates (see Failures)."
    smoke = ("**Smoke test (--smoke): budgets under the minimums; these numbers test the machinery and measure "
             "nothing.**\n\n" if results["smoke"] else "")
    m = results["machine"]
    machine = (f"{m['cpu']} ({m.get('cpu_isa', '?')}), {m['threads']} thread(s), torch {m['torch']}, device "
               f"{m['device']}" + (f" ({m['gpu']})" if m.get("gpu") else ""))
    text = (f"# sew bench: low-resource\n\n{smoke}{machine}\n\ndata: {results['data']['description']}\n\n"
            f"Budget per model and seed: {p['pretrain_minutes']:g} min of pretraining per preset "
            f"({', '.join(p['pretrain_presets'])}; the P/4 and P/2 encoders are snapshots of the same run), then "
            f"fine-tuning with the {p['finetune_preset']} recipe on {results['data']['labeled_minutes']:.1f} min of "
            f"labeled audio from scratch and from each encoder. {rule}\n\n"
            f"## Test CER against pretraining (mean over seeds)\n\n{tables['summary']}\n\n"
            f"## Checks\n\n{check_lines}\n\n"
            f"## Pretraining\n\n{tables['pretraining']}\n\n## Fine-tuning runs\n\n{tables['runs']}\n\n{failures}")
    write_results(out, results, text.rstrip())
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for r in results["runs"]:
            writer.writerow({**r, "health": "; ".join(r["health"])})


def cer_plot(summary: list[dict], runs: list[dict], profile: LowResourceProfile, path: Path) -> Path:
    """Test CER against pretraining minutes (0: from scratch, P/4, P/2, P): a line per model and
    pretraining preset through the means over seeds, each seed's run a point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sew.bench.plot import FAMILY_STYLE

    fig, ax = plt.subplots(figsize=(7, 4.5))
    lines = ["-", "--", ":", "-."]
    models = list(dict.fromkeys(r["model"] for r in summary))
    for i, preset in enumerate(profile.pretrain_presets):
        for model in models:
            color, marker = FAMILY_STYLE.get(family(runs, model), ("black", "o"))
            points = [r for r in summary if r["model"] == model and r["preset"] in (None, preset)
                      and r["cer"] is not None]
            if not any(r["preset"] == preset for r in points):
                continue
            ax.plot([r["pretrain_minutes"] for r in points], [r["cer"] for r in points], color=color, marker=marker,
                    linestyle=lines[i % len(lines)], label=f"{model} ({preset})")
            seeds = [r for r in runs if r["model"] == model and r["preset"] in (None, preset)]
            ax.scatter([r["fraction"] * profile.pretrain_minutes for r in seeds], [r["cer"] for r in seeds],
                       color=color, marker=marker, alpha=0.35, s=18)
    ax.set_xticks([f * profile.pretrain_minutes for f in (0.0, *FRACTIONS)])
    ax.set_xlabel("pretraining minutes (0: from scratch)")
    ax.set_ylabel("test CER (%)")
    ax.set_title("Test CER against pretraining (lines: mean over seeds; points: seeds)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def compare_low_resource(current: dict, baseline: dict, tolerance_pct: float) -> list[str]:
    """Regressions against an earlier low-resource run: a mean test CER higher, or a relative CER
    reduction lower, by more than the tolerance; a check that passed there and fails now."""
    tol = tolerance_pct / 100.0
    problems = []
    now = {(r["model"], r["preset"], r["checkpoint"]): r for r in current.get("summary", [])}
    for old in baseline.get("summary", []):
        key = (old["model"], old["preset"], old["checkpoint"])
        name = " ".join(k for k in (old["model"], old["preset"], old["checkpoint"]) if k)
        new = now.get(key)
        if new is None:
            problems.append(f"{name}: in the baseline but not measured now")
            continue
        if old["cer"] is not None and (new["cer"] is None or new["cer"] > old["cer"] * (1 + tol)):
            problems.append(f"{name}: test CER rose from {fmt(old['cer'])}% to {fmt(new['cer'])}%")
        reduction = old.get("cer_reduction")
        if reduction is not None and reduction > 0 and (new.get("cer_reduction") is None
                                                        or new["cer_reduction"] < reduction * (1 - tol)):
            problems.append(f"{name}: relative CER reduction fell from {fmt(reduction)} to "
                            f"{fmt(new.get('cer_reduction'))}")
    passed = {c["check"] for c in baseline.get("checks", []) if c["passed"] is True}
    for check in current.get("checks", []):
        if check["check"] in passed and check["passed"] is False:
            problems.append(f"check '{check['check']}' passed in the baseline and fails now ({check['detail']})")
    return problems
