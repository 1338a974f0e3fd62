"""Training-state checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint is a directory ``RUN/checkpoints/update_00001234/`` holding

* ``model.safetensors`` + ``sew_config.json`` (a loadable model: ``sew.load_model`` reads it),
* ``optimizer.safetensors`` + ``optimizer.json`` (tensors and the rest of ``state_dict()``),
* ``scaler.json`` (the fp16 loss scaler, when there is one),
* ``rng_<rank>.safetensors`` + ``rng_<rank>.json`` (python, numpy, torch and CUDA generators per process),
* ``trainer_state.json`` (``TrainingState``: update count, epoch, sampler position, elapsed
  time, best metric, skip counters) plus any ``extra`` the task adds,
* ``manifest.json`` (size and SHA-256 of every file, checked before a resume).

Nothing is pickled: tensors go to safetensors, everything else to JSON. The directory is
written under a temporary name and renamed when complete (the old copy of the same update set
aside first), so a crash never leaves a half-written checkpoint or none at all; a resume takes
the newest intact one; only the newest ``keep_last`` are kept.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sew.checkpoint import save_model
from sew.files import load_checked, read_state_dict, remove_stale, replace_directory, save_tensors, write_json

CHECKPOINTS = "checkpoints"
PREFIX = "update_"
TRAINER_STATE = "trainer_state.json"
MANIFEST = "manifest.json"
_NAME = re.compile(rf"{PREFIX}\d{{8}}")


@dataclass
class TrainingState:
    """Counters of a run; saved in ``trainer_state.json``."""

    update: int = 0  # optimizer updates done (skipped ones not counted)
    epoch: int = 0
    batches_done: int = 0  # micro-batches of ``epoch`` already consumed (this shard)
    elapsed_seconds: float = 0.0  # training time, validation excluded
    skipped_updates: int = 0  # non-finite loss / gradient updates skipped so far
    nonfinite_streak: int = 0  # consecutive ones (three stop the run)
    overflow_steps: int = 0  # fp16 steps the loss scaler skipped (overflowing gradients) so far
    overflow_streak: int = 0  # consecutive ones
    best_metric: float | None = None
    best_update: int | None = None
    evals_since_best: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "trainer state") -> "TrainingState":
        """Through the config loader: an unknown field is an error naming it, not dropped. ``world_size``,
        saved beside the state, is the caller's to check."""
        from sew.config import from_mapping

        return from_mapping(cls, {k: v for k, v in data.items() if k != "world_size"}, source)


# -- nested state dicts <-> (tensors, JSON) ---------------------------------------------------
def split_tensors(obj: Any, prefix: str = "") -> tuple[dict[str, torch.Tensor], Any]:
    """Replace every tensor in a nested dict/list by ``{"__tensor__": key}``; return (tensors, tree)."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(value, path):
        if isinstance(value, torch.Tensor):
            tensors[path] = value
            return {"__tensor__": path}
        if isinstance(value, np.ndarray):
            return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
        if isinstance(value, dict):
            return {"__dict__": [[walk(k, f"{path}.k{i}"), walk(v, f"{path}.{i}")] for i, (k, v) in enumerate(value.items())]}
        if isinstance(value, (list, tuple)):
            items = [walk(v, f"{path}.{i}") for i, v in enumerate(value)]
            return {"__tuple__": items} if isinstance(value, tuple) else items
        return value

    return tensors, walk(obj, prefix or "s")


def join_tensors(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of ``split_tensors``."""
    if isinstance(tree, dict):
        if "__tensor__" in tree:
            return tensors[tree["__tensor__"]]
        if "__ndarray__" in tree:
            return np.asarray(tree["__ndarray__"], dtype=tree["dtype"])
        if "__dict__" in tree:
            return {join_tensors(k, tensors): join_tensors(v, tensors) for k, v in tree["__dict__"]}
        if "__tuple__" in tree:
            return tuple(join_tensors(v, tensors) for v in tree["__tuple__"])
    if isinstance(tree, list):
        return [join_tensors(v, tensors) for v in tree]
    return tree


def save_state_dict(directory: Path, name: str, state: Any) -> None:
    """``name.safetensors`` (tensors, if any) + ``name.json`` (the rest) for any nested state dict."""
    tensors, tree = split_tensors(state)
    if tensors:
        save_tensors(directory / f"{name}.safetensors", tensors)
    write_json(directory / f"{name}.json", tree)


def load_state_dict(directory: Path, name: str, map_location: str | torch.device = "cpu") -> Any:
    tree = json.loads((directory / f"{name}.json").read_text())
    path = directory / f"{name}.safetensors"
    tensors = {k: v.to(map_location) for k, v in read_state_dict(path).items()} if path.is_file() else {}
    return join_tensors(tree, tensors)


# -- RNG ----------------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """Every generator the training step draws from: python, numpy, torch CPU and CUDA."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np.random.set_state(tuple(state["numpy"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


# -- checkpoints --------------------------------------------------------------------------------
def checkpoint_dir(run_dir: str | Path, update: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"{PREFIX}{update:08d}"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first: ``update_NNNNNNNN`` directories with a trainer state
    (temporaries, copies such as ``update_N.bak`` and other junk are ignored)."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _NAME.fullmatch(p.name) and (p / TRAINER_STATE).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: Path) -> None:
    """``manifest.json``: the size and SHA-256 of every file of a checkpoint, checked before resuming."""
    files = {p.name: {"size": p.stat().st_size, "sha256": sha256(p)}
             for p in sorted(directory.iterdir()) if p.is_file() and p.name != MANIFEST}
    write_json(directory / MANIFEST, files)


def checkpoint_problem(directory: Path) -> str | None:
    """What is wrong with a checkpoint against its manifest (a missing, truncated or changed file), or None.
    Checkpoints written before manifests existed are taken as they are."""
    manifest = directory / MANIFEST
    if not manifest.is_file():
        return None
    try:
        files = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError) as err:
        return f"{MANIFEST} unreadable ({err})"
    for name, want in files.items():
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != want["size"]:
            return f"{name} has {size} bytes, {want['size']} were written"
        if sha256(path) != want["sha256"]:
            return f"{name} does not match its checksum"
    return None


def resumable_checkpoint(run_dir: str | Path, warn=print) -> Path | None:
    """The newest checkpoint that passes ``checkpoint_problem``; each damaged newer one is named with what is
    wrong (``warn``). Raises ``ValueError`` when checkpoints exist and none is intact."""
    found = list_checkpoints(run_dir)
    for path in reversed(found):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        warn(f"warning: {path} is damaged ({problem}); falling back to the checkpoint before it")
    if found:
        raise ValueError(f"{Path(run_dir) / CHECKPOINTS}: no intact checkpoint ({len(found)} damaged, see above); "
                         "remove them to start over, or restore one from a backup")
    return None


def checkpoint_to_resume(run_dir: Path, resume, is_main: bool) -> Path | None:
    """The checkpoint a run continues from. ``resume``: a checkpoint directory, a run directory, True (the
    newest intact checkpoint of ``run_dir``, an error if none) or None (that, or a fresh start). The main
    process first removes what a killed writer left (half-written checkpoints and models, replaced copies)."""
    def warn(message: str) -> None:
        if is_main:
            print(message, file=sys.stderr, flush=True)

    if is_main:
        for line in remove_stale(Path(run_dir) / CHECKPOINTS) + remove_stale(run_dir):
            print(f"{run_dir}: {line}, left by an interrupted write", flush=True)
    if resume in (None, True):
        path = resumable_checkpoint(run_dir, warn=warn)
        if path is None and resume is True:
            raise ValueError(f"--resume: no checkpoint in {Path(run_dir) / CHECKPOINTS}")
        return path
    path = Path(resume)
    if (path / TRAINER_STATE).is_file():
        return path
    return resumable_checkpoint(path, warn=warn) or path


def save_checkpoint(run_dir: str | Path, *, model, optimizer, state: TrainingState, scaler=None,
                    sampler_state: dict | None = None, extra_files: dict[str, Any] | None = None,
                    keep_last: int = 2, rank: int = 0, world_size: int = 1, barrier=None) -> Path:
    """Write a complete checkpoint of ``state.update`` and prune old ones; returns its directory.

    ``model`` is the unwrapped ``SpeechEncoder``. In multi-process runs every process calls
    this (each saves its RNG state); ``barrier`` (``accelerator.wait_for_everyone``) orders
    the steps and rank 0 writes the rest. ``extra_files`` are JSON files written next to the
    state (e.g. the task config and vocabulary).
    """
    final = checkpoint_dir(run_dir, state.update)
    tmp = final.with_name(f".tmp-{final.name}")
    barrier = barrier or (lambda: None)
    if rank == 0:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    barrier()
    save_state_dict(tmp, f"rng_{rank}", rng_state())
    if rank == 0:
        save_model(model, tmp)
        save_state_dict(tmp, "optimizer", optimizer.state_dict())
        if scaler is not None:
            save_state_dict(tmp, "scaler", scaler.state_dict())
        if sampler_state is not None:
            write_json(tmp / "sampler.json", sampler_state)
        for name, data in (extra_files or {}).items():
            write_json(tmp / name, data)
        write_json(tmp / TRAINER_STATE, {**state.to_dict(), "world_size": world_size})
    barrier()
    if rank == 0:
        write_manifest(tmp)
        replace_directory(tmp, final)  # never zero valid copies, even when an update is saved twice
        for old in list_checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


def load_checkpoint(path: str | Path, *, model, optimizer=None, scaler=None, rank: int = 0,
                    world_size: int = 1, map_location: str | torch.device = "cpu") -> tuple[TrainingState, dict | None]:
    """Restore ``model`` (unwrapped), ``optimizer``, ``scaler`` and this process's RNG from a checkpoint.

    Returns ``(TrainingState, sampler_state or None)``; the caller hands the sampler state to
    ``LengthBucketSampler.load_state_dict``. Raises ``ValueError`` naming the file when a piece
    is missing or the process count differs.
    """
    path = Path(path)
    if not (path / TRAINER_STATE).is_file():
        raise ValueError(f"{path}: not a training checkpoint (no {TRAINER_STATE}); pass a directory "
                         f"RUN/{CHECKPOINTS}/{PREFIX}NNNNNNNN or the run directory")
    meta = json.loads((path / TRAINER_STATE).read_text())
    saved_world = meta.get("world_size", 1)
    if saved_world != world_size:
        raise ValueError(f"{path}: saved by {saved_world} process(es), resumed with {world_size}; "
                         "an exact resume needs the same number of processes")
    load_checked(model, read_state_dict(path / "model.safetensors"), str(path / "model.safetensors"))
    if optimizer is not None:
        optimizer.load_state_dict(load_state_dict(path, "optimizer", map_location))
    if scaler is not None and (path / "scaler.json").is_file():
        scaler.load_state_dict(load_state_dict(path, "scaler"))
    if (path / f"rng_{rank}.json").is_file():
        set_rng_state(load_state_dict(path, f"rng_{rank}"))
    sampler = json.loads((path / "sampler.json").read_text()) if (path / "sampler.json").is_file() else None
    return TrainingState.from_dict(meta, str(path / TRAINER_STATE)), sampler
