"""The built-in offline tasks, generated once into the cache like the built-in corpus.

* ``kws``: keyword spotting in the Speech Commands v2 layout (``sew.data.kws``);
* ``speaker-id``: speaker identification in canonical manifest form (``sew.data.speaker_id``);
* ``standin``: a stand-in for a small real Czech ASR corpus, an audiofolder (``sew.data.standin``).

``default_task(name, seed)`` returns ``cache_dir()/tasks/NAME-vVERSION-sSEED`` (``NAME-vVERSION-mMINUTES-sSEED``
for the tasks sized in minutes, ``SIZED``), generating it there on first use (in a temporary directory
renamed into place when complete). ``synthesize_task(name, out_dir, seed)`` writes one anywhere else.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sew.data import kws, speaker_id, standin
from sew.data.synth import cache_dir, cached

# name -> (version, generator(out_dir, seed, *, workers, progress, log) -> corpus.json as a dict)
TASKS = {
    "kws": (kws.VERSION, kws.synthesize_kws),
    "speaker-id": (speaker_id.VERSION, speaker_id.synthesize_speaker_id),
    "standin": (standin.VERSION, standin.synthesize_standin),
}
# The tasks whose generator also takes ``minutes=``, with its default (part of their cache directory name).
SIZED = {"standin": standin.DEFAULT_MINUTES}


def _task(name: str):
    if name not in TASKS:
        raise ValueError(f"no built-in task {name!r}; the tasks are {', '.join(TASKS)}")
    return TASKS[name]


def _sizing(name: str, minutes: float | None) -> dict:
    """The ``minutes=`` argument for ``name``'s generator: none for fixed-size tasks (an error if given)."""
    if name not in SIZED:
        if minutes is not None:
            raise ValueError(f"the {name} task has a fixed size: leave minutes (--minutes) out; "
                             f"only {', '.join(SIZED)} take it")
        return {}
    if minutes is not None and minutes <= 0:
        raise ValueError(f"--minutes must be positive, got {minutes}")
    return {"minutes": SIZED[name] if minutes is None else minutes}


def synthesize_task(name: str, out_dir: str | Path, seed: int = 0, *, workers: int | None = None,
                    progress: bool = True, log=print, minutes: float | None = None) -> dict:
    """Generate the built-in task ``name`` into ``out_dir``; return its ``corpus.json``
    (``minutes``: the size of a task in ``SIZED``, default its own)."""
    return _task(name)[1](out_dir, seed, workers=workers, progress=progress, log=log, **_sizing(name, minutes))


def task_dir(name: str, seed: int = 0, minutes: float | None = None) -> Path:
    """Where ``default_task`` keeps the task: ``cache_dir()/tasks/NAME-vVERSION[-mMINUTES]-sSEED``."""
    version, sizing = _task(name)[0], _sizing(name, minutes)
    size = f"-m{sizing['minutes']:g}" if sizing else ""
    return cache_dir() / "tasks" / f"{name}-v{version}{size}-s{seed}"


def default_task(name: str, seed: int = 0, progress: bool = True, workers: int | None = None,
                 minutes: float | None = None) -> Path:
    """The built-in task ``name`` ("kws", "speaker-id" or "standin"), generated into the cache on first use
    (with ``workers`` processes, default: every core; the output does not depend on it)."""
    return cached(task_dir(name, seed, minutes),
                  lambda tmp: synthesize_task(name, tmp, seed, workers=workers, progress=progress, minutes=minutes,
                                              log=lambda s: print(s, file=sys.stderr)),
                  f"the built-in {name} task")
