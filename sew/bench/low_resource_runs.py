"""The low-resource profile's data and runs (``sew.bench.low_resource``): the pool and the labeled set,
one pretraining run and its row, one fine-tuning run and its row; each reused when finished."""

from __future__ import annotations

import json
import random
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from sew.files import write_json

FRACTIONS = (0.25, 0.5, 1.0)  # the pretraining checkpoints fine-tuned: two snapshots and RUN/final
CHECKPOINTS = {0.25: "P/4", 0.5: "P/2", 1.0: "P"}
POOL_SEED, LABELED_SEED = 0, 1000
LABELED_EVAL_MINUTES = 3.0  # dev and test of the built-in labeled corpus: at least this much each
DONE_FILE = "bench-run.json"


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


def prepare_data(profile, out: Path, progress: bool = True) -> Corpora:
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


def pretrain_run(profile, model: str, preset: str, seed: int, corpora: Corpora, run: Path, *,
                 device: str = "cpu", progress: bool = True) -> dict:
    """One pretraining run of ``model`` with ``preset`` on the pool, its encoder kept at P/4, P/2 and P;
    its statistics row (``pretraining_row``)."""
    from sew.pretrain.recipe import load_recipe
    from sew.pretrain.run import pretrain

    # Validated once, at the end: the built-in pool's dev split is large (22.5 min for 300).
    recipe = load_recipe(preset, ["train.validate_every=0", "train.validate_every_minutes=null",
                                  *profile.pretrain_overrides],
                         {"model": model, "train.seed": seed, "train.max_minutes": profile.pretrain_minutes,
                          "train.snapshot_fractions": [f for f in FRACTIONS if f < 1.0],
                          "data.train_splits": [corpora.pool_train], "data.valid_split": corpora.pool_valid})
    # The objective is part of the key: a preset's name can outlive its objective (quick was contrastive).
    key = {"model": model, "preset": preset, "objective": recipe.objective.kind, "seed": seed,
           "minutes": profile.pretrain_minutes, "overrides": list(profile.pretrain_overrides),
           "pool": corpora.description}
    done = finished(run, key)
    if done is not None:
        return done
    start = time.perf_counter()
    pretrain(recipe, corpora.pool, run, progress=progress,
             accelerator=accelerator_for(device, recipe.train.mixed_precision))
    row = pretraining_row(run, model=model, seed=seed, preset=preset, objective=recipe.objective.kind)
    row["wall_seconds"] = round(time.perf_counter() - start, 1)
    return finish(run, key, row)


def pretraining_row(run: Path, *, model: str, seed: int, preset: str, objective: str) -> dict:
    """What a pretraining run reports: updates, audio seen, the last train and dev statistics, the health
    monitor's findings and, per checkpoint (P/4, P/2, P), its directory, update, minutes and audio seen."""
    from sew.train.health_report import read_summary
    from sew.train.logs import read_log
    from sew.train.snapshots import snapshot_name

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


def finetune_run(profile, model: str, seed: int, init: str | Path, start: str, corpora: Corpora,
                 run: Path, *, max_minutes: float | None, max_update: int | None, device: str = "cpu",
                 progress: bool = True) -> dict:
    """One CTC fine-tuning with the profile's recipe from ``init`` (a preset: from scratch, or an encoder
    directory) on the labeled set, under ``max_minutes`` and / or ``max_update``; scored on its test split."""
    from sew.asr.finetune import finetune, load_recipe
    from sew.asr.evaluate import evaluate_model
    from sew.train.health_report import read_summary

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
    return [f"{f['symptom']} at update {f['update']}" + (f", recovered at update {f['recovered']}"
                                                          if f.get("recovered") is not None else "")
            for f in summary.get("health") or []]


def percent(value) -> float | None:
    return None if value is None else round(100 * float(value), 2)


def rounded(value, digits: int = 4) -> float | None:
    return None if not isinstance(value, (int, float)) else float(f"{value:.{digits}g}")


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "model"
