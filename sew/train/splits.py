"""The data a training command trains and validates on: the named splits, or, for a corpus without a dev
split, a seeded share of train held out (listed in ``RUN/holdout.txt``). Fine-tuning and classification
share it."""

from __future__ import annotations

from pathlib import Path

from sew.data.corpus import DEV_ALIASES, dev_split, hold_out, read_corpus
from sew.data.rejects import RejectLog

HOLDOUT_FILE = "holdout.txt"  # ids of the train utterances held out for validation


def training_splits(recipe, root: Path, log: RejectLog):
    """(train corpus, validation corpus or None, what validates) for ``recipe.data`` (``train_split``,
    ``valid_split``, ``holdout_fraction``; the seed is ``recipe.train.seed``): the named
    split, or, when the recipe asks for the dev split and the corpus has none, a seeded part of train."""
    data = recipe.data
    train = read_corpus(root, split=data.train_split, rejects_log=log)
    validation = {"split": data.valid_split, "held_out_from": None, "utterances": 0}
    if not data.valid_split:
        return train, None, validation
    if data.valid_split in DEV_ALIASES and dev_split(root) is None:
        train, held = hold_out(train, data.holdout_fraction, recipe.train.seed)
        validation.update(held_out_from=train.split, utterances=len(held), seed=recipe.train.seed)
        return train, held, validation
    try:
        valid = read_corpus(root, split=data.valid_split, rejects_log=log)
    except ValueError as err:
        raise ValueError(f"{err}; validate on one of them with --valid-split NAME, or on nothing with "
                         "--valid-split none") from err
    validation.update(split=valid.split, utterances=len(valid))
    return train, valid, validation
