"""Encoders pretrained with a quick pretraining preset, cached for the benchmarks that probe them.

``pretrained_encoder("sew-d-micro", minutes=10, seed=0)`` pretrains the preset on the built-in
corpus once (``sew pretrain --preset quick`` with that model, budget and seed) and returns the
cached ``final`` directory afterwards; the time it takes is not part of any profile's budget.
"""

from __future__ import annotations

from pathlib import Path


def pretrained_dir(model: str, minutes: float, seed: int, recipe: str = "quick") -> Path:
    """The cache directory; it names the objective too, since a preset's objective can change (``quick``
    was contrastive, then BEST-RQ) and an encoder cached under the old one must not be reused."""
    from sew.data.synth import cache_dir
    from sew.pretrain.recipe import load_recipe

    kind = load_recipe(recipe).objective.kind
    return cache_dir() / "pretrained" / f"{model}-{recipe}-{kind}-m{minutes:g}-s{seed}"


def pretrained_encoder(model: str, minutes: float = 10.0, seed: int = 0, *, recipe: str = "quick",
                       progress: bool = True) -> Path:
    """The ``final`` encoder of a quick pretraining run of ``model`` (a preset), from the cache or trained now."""
    from sew.data.synth import cached
    from sew.pretrain.recipe import load_recipe
    from sew.pretrain.run import pretrain

    def run(tmp: Path) -> None:  # RUN/final is written last
        pretrain(load_recipe(recipe, [f"model={model}", f"train.seed={seed}", f"train.max_minutes={minutes}"]),
                 None, tmp, progress=progress)

    what = f"{model} pretrained with the {recipe} preset for {minutes:g} min (seed {seed}; outside any profile's budget)"
    return cached(pretrained_dir(model, minutes, seed, recipe), run, what, done="final") / "final"
