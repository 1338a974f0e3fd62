"""The built-in offline classification tasks, generated once into the cache like the built-in corpus.

* ``kws``: keyword spotting in the Speech Commands v2 layout (``sew.data.kws``);
* ``speaker-id``: speaker identification in canonical manifest form (``sew.data.speaker_id``).

``default_task(name, seed)`` returns ``cache_dir()/tasks/NAME-vVERSION-sSEED``, generating it
there on first use (in a temporary directory renamed into place when complete).
``synthesize_task(name, out_dir, seed)`` writes one anywhere else.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sew.data import kws, speaker_id
from sew.data.synth import cache_dir, cached

# name -> (version, generator(out_dir, seed, *, workers, progress, log) -> corpus.json as a dict)
TASKS = {
    "kws": (kws.VERSION, kws.synthesize_kws),
    "speaker-id": (speaker_id.VERSION, speaker_id.synthesize_speaker_id),
}


def _task(name: str):
    if name not in TASKS:
        raise ValueError(f"no built-in task {name!r}; the tasks are {', '.join(TASKS)}")
    return TASKS[name]


def synthesize_task(name: str, out_dir: str | Path, seed: int = 0, *, workers: int | None = None,
                    progress: bool = True, log=print) -> dict:
    """Generate the built-in task ``name`` into ``out_dir``; return its ``corpus.json``."""
    return _task(name)[1](out_dir, seed, workers=workers, progress=progress, log=log)


def task_dir(name: str, seed: int = 0) -> Path:
    """Where ``default_task`` keeps the task: ``cache_dir()/tasks/NAME-vVERSION-sSEED``."""
    return cache_dir() / "tasks" / f"{name}-v{_task(name)[0]}-s{seed}"


def default_task(name: str, seed: int = 0, progress: bool = True, workers: int | None = None) -> Path:
    """The built-in task ``name`` ("kws" or "speaker-id"), generated into the cache on first use
    (with ``workers`` processes, default: every core; the output does not depend on it)."""
    return cached(task_dir(name, seed),
                  lambda tmp: synthesize_task(name, tmp, seed, workers=workers, progress=progress,
                                              log=lambda s: print(s, file=sys.stderr)),
                  f"the built-in {name} task")
