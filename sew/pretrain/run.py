"""One pretraining run: data -> model -> ``PretrainTask`` -> the shared ``Trainer`` -> checkpoints and logs.

    state = pretrain(load_recipe("quick"), data=None, run_dir="runs/pretrain-quick")

``data`` is any corpus ``sew.data`` reads (None: the built-in synthetic corpus). Bad items are
skipped with a warning and listed in ``RUN/rejected.tsv`` (``strict=True`` stops at the first).
``RUN/final`` (and ``RUN/best`` by validation loss) hold the encoder without the pretraining
heads, ready for ``sew finetune``; ``RUN/checkpoints/`` the full training state.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from sew.data import rejects
from sew.data.corpus import DEV_ALIASES, dev_split, hold_out, read_corpus
from sew.data.dataset import SpeechDataset
from sew.data.records import Corpus
from sew.data.rejects import RejectLog
from sew.pretrain.build import make_pretraining_model
from sew.pretrain.recipe import PretrainRecipe
from sew.pretrain.task import PretrainTask
from sew.train.loop import Trainer, TrainingState
from sew.train.run import run_training
from sew.train.splits import HOLDOUT_FILE
from sew.train.setup import make_accelerator


def build_model(recipe: PretrainRecipe) -> torch.nn.Module:
    """The encoder (a preset, or ``recipe.init`` weights) wrapped with the objective's quantiser and heads:
    a ``PretrainingModel`` (``objective.kind: contrastive``) or a ``BestRQModel`` (``bestrq``)."""
    import sew

    if recipe.init:
        encoder = sew.load_model(recipe.init)
        if recipe.model_overrides:  # e.g. other dropouts: rebuild with the new config, keep the weights
            weights = encoder.state_dict()
            encoder = sew.SpeechEncoder(encoder.config.replace(**recipe.model_overrides))
            encoder.load_state_dict(weights)
    else:
        encoder = sew.build_model(recipe.model, **recipe.model_overrides)
    if encoder.ctc_head is not None:
        raise ValueError(f"{recipe.init}: this model has a CTC head; pretraining starts from an encoder without one")
    return make_pretraining_model(encoder, recipe.objective)


def read_split(root, splits: list[str], min_samples: int, log: RejectLog) -> list:
    """Utterances of ``splits`` (concatenated); those under ``min_samples`` are reported as too short."""
    keep = []
    for split in splits:
        for utt in read_corpus(root, split=split, rejects_log=log):
            if utt.num_samples is not None and utt.num_samples < min_samples:
                log.reject(utt.path, rejects.TOO_SHORT, utt.line,
                           f"{utt.num_samples} samples < min_sample_size {min_samples}")
                continue
            keep.append(utt)
    return keep


def build_datasets(recipe: PretrainRecipe, root, log: RejectLog) -> tuple[SpeechDataset, SpeechDataset | None, list]:
    """(train, validation or None, the held-out train utterances): validation is the named split or, when the
    recipe asks for the dev split and the corpus has none, a seeded share of train, as fine-tuning does."""
    d, seed = recipe.data, recipe.train.seed
    utts, held = read_split(root, d.train_splits, d.min_sample_size, log), []
    if d.valid_split in DEV_ALIASES and dev_split(root) is None:
        kept, out = hold_out(Corpus(utts, "+".join(d.train_splits), str(root), ""), d.holdout_fraction, seed)
        utts, held = kept.utterances, out.utterances
    train = SpeechDataset(utts, max_sample_size=d.max_sample_size, seed=seed, rejects_log=log)
    if len(train) == 0:
        raise ValueError(f"{root}: no usable training utterance in split(s) {', '.join(d.train_splits)}")
    valid = None
    if d.valid_split:
        utts = held or read_split(root, [d.valid_split], d.min_sample_size, log)
        valid = SpeechDataset(utts, max_sample_size=d.max_sample_size, seed=seed, rejects_log=log) if utts else None
    return train, valid, held


def pretrain(recipe: PretrainRecipe, data=None, run_dir: str | Path = "runs/pretrain", *, resume=None,
             strict: bool = False, progress: bool = True, accelerator=None, change_recipe: bool = False) -> TrainingState:
    """Run (or continue, see ``Trainer.fit``'s ``resume``) a pretraining run; returns the final state.
    Resuming under another recipe is refused unless ``change_recipe`` (``sew.train.run``)."""
    from sew.data.synth import default_corpus

    run_dir = Path(run_dir)
    torch.manual_seed(recipe.train.seed)  # the same initial weights in every process and every rerun
    model = build_model(recipe)
    if accelerator is None:
        # cpu=True on a machine without GPUs: that is what makes accelerate treat torchrun's
        # processes (``accelerate launch --multi_gpu``, ``torchrun``) as one multi-CPU job.
        accelerator = make_accelerator(recipe.train.mixed_precision, cpu=not torch.cuda.is_available(),
                                       find_unused_parameters=model.encoder.config.layerdrop > 0)
    world, rank = accelerator.num_processes, accelerator.process_index
    recipe = replace(recipe, train=replace(recipe.train, update_freq=recipe.update_freq(world)))
    log = RejectLog(strict=strict, warn=rank == 0)
    root = data if data is not None else default_corpus(progress=rank == 0)
    train, valid, held = build_datasets(recipe, root, log)
    task = PretrainTask(recipe.objective, seed=recipe.train.seed, crop=recipe.data.crop_to_shortest,
                        valid_dataset=valid, valid_max_tokens=recipe.data.valid_max_tokens)
    trainer = Trainer(recipe.train, model, task, run_dir, accelerator=accelerator, progress=progress)

    def announce() -> None:
        if held:
            print(f"{root} has no dev split: validating on {len(held)} utterances held out of "
                  f"{', '.join(recipe.data.train_splits)} ({recipe.data.holdout_fraction:.0%}, seed {recipe.train.seed}; "
                  f"listed in {run_dir / HOLDOUT_FILE}, never trained on); --set data.valid_split=NAME or null to "
                  "change", flush=True)
        enc = model.encoder.num_parameters()
        print(f"pretraining {recipe.model} ({enc / 1e6:.2f}M encoder + {(model_size(model) - enc) / 1e6:.2f}M heads) "
              f"on {len(train)} utterances ({sum(train.lengths) / 16000 / 3600:.2f} h after crops) from {root}; "
              f"{world} process(es) x update_freq {recipe.train.update_freq} x {recipe.train.max_tokens} samples",
              flush=True)

    files = {HOLDOUT_FILE: "".join(f"{u.id}\n" for u in held)} if held else {}
    return run_training(trainer, train, recipe.to_dict(), root, log, files=files, resume=resume,
                        change_recipe=change_recipe, announce=announce)


def model_size(model) -> int:
    return sum(p.numel() for p in model.parameters())
