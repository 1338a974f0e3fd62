"""Writing and reading tensors and JSON safely: atomic writes, safetensors, ``weights_only`` loads.

The primitives every file format of the project uses (our model directories, Hugging Face
directories, training checkpoints, result files). Nothing is ever unpickled except through
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


def current_umask() -> int:
    """The process umask, read without changing it where Linux reports it (``os.umask`` sets it to read it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``, so a crash never leaves a half-written file.

    The file gets the permissions of an ordinary new file under the user's umask (``mkstemp`` alone
    would make it 0600: a model saved for a team unreadable to the rest of it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())  # after: a writer may replace the file it was given
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def replace_directory(tmp: str | Path, final: str | Path) -> None:
    """Move the complete directory ``tmp`` to ``final`` so that a valid copy exists at every moment: the old
    ``final`` is renamed aside (``.old-NAME``), ``tmp`` renamed in, and only then the old one removed. A kill
    in between leaves ``.old-NAME`` behind, which ``remove_stale`` clears."""
    tmp, final = Path(tmp), Path(final)
    aside = final.with_name(f".old-{final.name}")
    if aside.exists():
        shutil.rmtree(aside)
    if final.exists():
        os.replace(final, aside)
    os.replace(tmp, final)
    shutil.rmtree(aside, ignore_errors=True)


def remove_stale(directory: str | Path) -> list[str]:
    """Clear what a killed ``replace_directory`` left in ``directory``: ``.tmp-NAME`` (half written) is
    removed; ``.old-NAME`` is removed when NAME is in place, and renamed back when the kill came between
    the two renames. Returns what it did, one line each."""
    directory = Path(directory)
    done = []
    for path in sorted(directory.glob(".*")) if directory.is_dir() else []:
        if path.name.startswith(".old-") and not path.with_name(path.name[len(".old-"):]).exists():
            os.replace(path, path.with_name(path.name[len(".old-"):]))
            done.append(f"restored {path.name[len('.old-'):]} from {path.name}")
        elif path.name.startswith((".tmp-", ".old-")):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            done.append(f"removed {path.name}")
    return done


def write_json(path: str | Path, data: Any) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2, sort_keys=False) + "\n"))


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    clean = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(clean, tmp, metadata=metadata))


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Weights from a safetensors file (or a sharded index) or, safely, a PyTorch ``.bin``."""
    path = Path(path)
    if path.name.endswith(".index.json"):
        index = json.loads(path.read_text())
        tensors: dict[str, torch.Tensor] = {}
        for shard in sorted(set(index["weight_map"].values())):
            tensors.update(read_state_dict(path.parent / shard))
        return tensors
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # an unpickling error names the refused global
        raise ValueError(f"{path}: cannot read the weights safely (weights_only=True): {err}") from err


def find_weights(directory: Path) -> Path | None:
    for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json"):
        if (directory / name).is_file():
            return directory / name
    return None


def load_checked(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict`` that names every missing, unexpected or mis-shaped key."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own.keys() & state.keys() if own[k].shape != state[k].shape]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} weights: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} weights: {', '.join(unexpected[:8])}"
                        f"{' ...' if len(unexpected) > 8 else ''}")
    if shapes:
        problems.append("shape mismatches: " + "; ".join(shapes[:8]))
    if problems:
        raise ValueError(f"{source}: weights do not fit the model config: " + " | ".join(problems))
    model.load_state_dict(state)


LOCK_FILE = ".lock"


class DirectoryInUseError(RuntimeError):
    """Another process holds a directory's ``DirectoryLock``."""


class DirectoryLock:
    """An exclusive lock on ``DIR/.lock`` while one process writes ``DIR`` (a run directory).

    A second training process started on the same run directory would interleave its log with the
    first one's and overwrite its checkpoints; it is refused instead, with the holder's pid. It is a
    POSIX record lock (``lockf``): the kernel releases it when its process ends, even by a crash, and
    forked children (data-loader workers) do not inherit it, so a rerun right after a kill starts even
    while the dead run's workers linger. Such locks do not conflict within one process, so this
    process's own locks are also kept in a set. Platforms without ``fcntl`` (Windows) go unlocked."""

    _held: set[Path] = set()  # directories this process has locked

    def __init__(self, directory: str | Path, what: str = "run directory") -> None:
        self.path = Path(directory) / LOCK_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.key = self.path.resolve()
        def in_use(pid) -> DirectoryInUseError:
            return DirectoryInUseError(f"{self.path.parent}: this {what} is in use by another process (pid {pid}; "
                                       f"lock {self.path}); wait for it to end, or give another directory")

        if self.key in DirectoryLock._held:  # checked before opening: closing any descriptor drops the lock
            raise in_use(os.getpid())
        self.file = open(self.path, "a+", encoding="utf-8")
        try:
            import fcntl
        except ImportError:
            return
        try:
            fcntl.lockf(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            holder = self.file.read().strip() or "unknown"
            self.file.close()
            raise in_use(holder) from None
        DirectoryLock._held.add(self.key)
        self.file.seek(0)
        self.file.truncate()
        self.file.write(str(os.getpid()))
        self.file.flush()

    def release(self) -> None:
        """Unlock (closing the file releases the lock)."""
        if not self.file.closed:
            self.file.close()
            DirectoryLock._held.discard(self.key)

