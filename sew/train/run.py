"""The run directory of one training command (fine-tuning, classification, pretraining): locked before
anything is written in it, and checked against the recipe its checkpoints were made under.

    run = RunDirectory("runs/ft")               # the lock first: a second command on it stops here
    run.start(config, data_path, files={"vocab.json": vocab.index}, change_recipe=False)
    trainer.fit(train_set)                      # the Trainer uses run.lock
    run.close()

A run that resumes (the directory has a checkpoint) under another recipe is refused with the differing
fields named, unless ``change_recipe``: a command repeated with a typo must not silently continue a run
under settings it was not started with. Fields that cannot change the weights (logging, checkpoint and
validation cadence, data workers, health stopping) may differ; a changed budget is allowed and said, since
extending a run is how one continues it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sew.files import DirectoryLock, atomic_write
from sew.train.state import list_checkpoints

RECIPE_FILE = "recipe.json"
# Fields that never change what the run computes.
FREE = {"description", "train.num_workers", "train.log_every", "train.save_every", "train.keep_last",
        "train.validate_every", "train.validate_every_minutes", "train.stop_on_health", "train.snapshot_fractions",
        "train.max_nonfinite", "train.max_overflows", "train.min_loss_scale", "train.patience", "data_path"}
BUDGET = {"train.max_update", "train.max_minutes"}


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}`` (lists and scalars are leaves)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def recipe_changes(old: dict, new: dict) -> dict[str, tuple[Any, Any]]:
    """Fields whose values differ between two recipes (absent on one side: None)."""
    a, b = flatten(old), flatten(new)
    return {key: (a.get(key), b.get(key)) for key in sorted(a.keys() | b.keys()) if a.get(key) != b.get(key)}


class RunDirectory:
    """One training command's hold on its run directory (see the module docstring). ``main``: whether this
    process writes (the main process of a distributed run); the others neither lock nor write."""

    def __init__(self, path: str | Path, main: bool = True) -> None:
        self.path, self.main = Path(path), main
        self.lock = DirectoryLock(self.path) if main else None

    def start(self, config: dict, data_path: str | Path, *, files: dict[str, Any] | None = None,
              change_recipe: bool = False, resume=None) -> None:
        """Check ``config`` against the recipe of the run being resumed, then write ``recipe.json`` and ``files``
        (name -> JSON data, or text). ``resume=False`` starts afresh: nothing to compare."""
        if not self.main:
            return
        recipe = {**config, "data_path": str(data_path)}
        saved = self.path / RECIPE_FILE
        if resume is not False and list_checkpoints(self.path) and saved.is_file():
            self._compare(json.loads(saved.read_text()), recipe, files or {}, change_recipe)
        for name, data in {RECIPE_FILE: recipe, **(files or {})}.items():
            text = data if isinstance(data, str) else json.dumps(data, indent=2, ensure_ascii=False) + "\n"
            atomic_write(self.path / name, lambda tmp, text=text: Path(tmp).write_text(text, encoding="utf-8"))

    def _compare(self, saved: dict, recipe: dict, files: dict[str, Any], change_recipe: bool) -> None:
        changes = recipe_changes(saved, recipe)
        for name, data in files.items():
            path = self.path / name
            if name.endswith(".json") and path.is_file() and json.loads(path.read_text()) != data:
                changes[name] = ("the saved one", "another")
        budget = {k: v for k, v in changes.items() if k in BUDGET}
        refused = {k: v for k, v in changes.items() if k not in BUDGET and k not in FREE}
        if refused and not change_recipe:
            listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in refused.items())
            raise ValueError(f"{self.path}: this run's checkpoints were made under another recipe ({listed}); "
                             "resuming would continue it under settings it was not started with. Give another "
                             "--run-dir for a new run, or pass --change-recipe to continue it under the new one")
        for key, (a, b) in {**budget, **(refused if change_recipe else {})}.items():
            print(f"{self.path}: {key} changed from {a!r} to {b!r} for the rest of the run", flush=True)

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()


def run_training(trainer, train_set, config: dict, data_path, log, *, files: dict[str, Any] | None = None,
                 resume=None, change_recipe: bool = False, announce=None):
    """The end every training command shares: lock the run directory, check and write the recipe and ``files``,
    ``announce()`` (the main process's opening lines), train, and write the data rejected on the way
    (``log``, a ``RejectLog``). Returns the final ``TrainingState``."""
    from sew.data import rejects

    directory = RunDirectory(trainer.run_dir, main=trainer.is_main)
    try:
        directory.start(config, data_path, files=files, change_recipe=change_recipe, resume=resume)
        trainer.lock = directory.lock
        if trainer.is_main and announce is not None:
            announce()
        try:
            return trainer.fit(train_set, resume=resume)
        finally:
            if trainer.is_main:
                log.write(trainer.run_dir)
                if len(log):
                    print(f"{log.summary()}; listed in {trainer.run_dir / rejects.REJECTED_FILE}", flush=True)
    finally:
        directory.close()

