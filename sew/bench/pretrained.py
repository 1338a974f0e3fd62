"""Encoders pretrained with the quick pretraining preset, cached for the benchmarks that probe them.

``pretrained_encoder("sew-d-micro", minutes=10, seed=0)`` pretrains the preset on the built-in
corpus once (``sew pretrain --preset quick`` with that model, budget and seed) and returns the
cached ``final`` directory afterwards; the time it takes is not part of any profile's budget.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def pretrained_dir(model: str, minutes: float, seed: int, recipe: str = "quick") -> Path:
    from sew.data.synth import cache_dir

    return cache_dir() / "pretrained" / f"{model}-{recipe}-m{minutes:g}-s{seed}"


def pretrained_encoder(model: str, minutes: float = 10.0, seed: int = 0, *, recipe: str = "quick",
                       progress: bool = True, log=print) -> Path:
    """The ``final`` encoder of a quick pretraining run of ``model`` (a preset), from the cache or trained now."""
    from sew.pretrain.recipe import load_recipe
    from sew.pretrain.run import pretrain

    final = pretrained_dir(model, minutes, seed, recipe)
    if (final / "final").is_dir():
        return final / "final"
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"pretraining {model} with the {recipe} preset for {minutes:g} min (seed {seed}) into {final} (once, "
        "outside the profile's budget)")
    pretrain(load_recipe(recipe, [f"model={model}", f"train.seed={seed}", f"train.max_minutes={minutes}"]),
             None, tmp, progress=progress)
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.rename(final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (final / "final").is_dir():
            raise
    return final / "final"
