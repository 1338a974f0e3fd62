"""One classification run: recipe -> labels, model, data -> ``ClassificationTask`` -> ``Trainer`` -> ``RUN/best``.

    recipe = load_recipe("quick")                       # configs/classify/quick.yaml
    state = finetune_classifier(recipe, data=None, run_dir="runs/kws")   # None: the built-in task

``recipe.model`` is a model preset (random weights), an encoder directory (``RUN/final`` of
``sew pretrain``, a CTC model, a Hugging Face directory or Hub id: the head is new), a classifier
directory (trained on, when its labels are the corpus's), or ``logmel`` (the filterbank baseline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sew.classify.data import LabelDataset, corpus_labels
from sew.classify.task import ClassificationTask
from sew.config import load_preset, to_mapping
from sew.data.rejects import RejectLog
from sew.train.config import TrainConfig
from sew.train.loop import Trainer, TrainingState
from sew.train.masking import MaskingConfig
from sew.train.run import run_training
from sew.train.setup import freeze

BUILTIN_TASKS = ("kws", "speaker-id")


@dataclass
class ClassifyData:
    """Which data, which splits, and how long a training crop may be."""

    builtin: str = "kws"  # the built-in task trained on when no --data is given: kws or speaker-id
    train_split: str = "train"
    valid_split: str | None = "dev"  # dev, valid or validation; None: no validation
    holdout_fraction: float = 0.05  # a corpus without a dev split: this seeded share of train validates
    valid_max_tokens: int = 1_600_000
    # Random crop of longer training utterances; None: crop only what would not fit one batch
    # (train.max_tokens), which would otherwise be skipped as too long. A label holds for any part of its clip.
    max_seconds: float | None = None


@dataclass
class HeadSettings:
    use_weighted_layer_sum: bool = False  # softmax-weighted sum of every layer's hidden states
    proj_size: int = 256  # transformers' classifier_proj_size
    pooling: str = "mean"  # mean, or mean_std (mean and standard deviation of the frames; not exportable to transformers)


@dataclass
class ClassifyRecipe:
    """Everything a ``sew finetune --task classify`` run needs besides the data and the run directory."""

    model: str = "sew-d-micro"
    model_overrides: dict[str, Any] = field(default_factory=dict)  # EncoderConfig fields
    head: HeadSettings = field(default_factory=HeadSettings)
    freeze_encoder: bool = False  # probing: only the layer weights and the head learn
    freeze_feature_extractor: bool = False
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    data: ClassifyData = field(default_factory=ClassifyData)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(best_metric="error"))
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return to_mapping(self)


def load_recipe(spec: str | Path | dict = "quick", overrides: list[str] | None = None,
                values: dict[str, Any] | None = None) -> ClassifyRecipe:
    """A recipe from a preset of ``configs/classify/``, a YAML path or a mapping, with ``--set`` overrides."""
    return load_preset("classify", ClassifyRecipe, spec, overrides, values)


def task_root(recipe: ClassifyRecipe, data) -> Path:
    """``data``, or the recipe's built-in task (generated into the cache on first use)."""
    if data is not None:
        return Path(data)
    from sew.data.tasks import default_task

    if recipe.data.builtin not in BUILTIN_TASKS:
        raise ValueError(f"classify recipe field 'data.builtin': got {recipe.data.builtin!r}, expected one of "
                         f"{', '.join(BUILTIN_TASKS)} (or pass --data CORPUS)")
    return default_task(recipe.data.builtin)


def build_classifier_model(recipe: ClassifyRecipe, labels: list[str]):
    """The model to train: see the module docstring."""
    import sew
    from sew.hub import model_directory
    from sew.classify.logmel import LogMelClassifier, LogMelConfig
    from sew.models.classifier import ClassifierConfig, SequenceClassifier

    head = ClassifierConfig(labels=list(labels), use_weighted_layer_sum=recipe.head.use_weighted_layer_sum,
                            proj_size=recipe.head.proj_size, pooling=recipe.head.pooling)
    if recipe.model == "logmel":
        return LogMelClassifier(LogMelConfig(labels=list(labels), proj_size=head.proj_size, pooling=head.pooling))
    directory = model_directory(recipe.model)
    if directory is None:
        return sew.build_classifier(recipe.model, labels, use_weighted_layer_sum=head.use_weighted_layer_sum,
                                    proj_size=head.proj_size, pooling=head.pooling, **recipe.model_overrides)
    source = sew.load_model(directory)
    if isinstance(source, SequenceClassifier) and source.labels == list(labels) and not recipe.model_overrides:
        return source
    encoder = source.encoder if isinstance(source, SequenceClassifier) else source
    model = SequenceClassifier(encoder.config.replace(**recipe.model_overrides), head)  # drops any CTC head
    model.encoder.load_state_dict({k: v for k, v in encoder.state_dict().items() if not k.startswith("ctc_head.")})
    return model


def finetune_classifier(recipe: ClassifyRecipe, data, run_dir, *, resume=None, strict: bool = False,
                        progress: bool = True, accelerator=None, change_recipe: bool = False) -> TrainingState:
    """Train per ``recipe`` on ``data`` (None: the recipe's built-in task) into ``run_dir``; returns the final state."""
    from sew.train.splits import HOLDOUT_FILE, training_splits

    root = task_root(recipe, data)
    run = Path(run_dir)
    log = RejectLog(strict=strict)
    train_corpus, valid_corpus, validation = training_splits(recipe, root, log)
    labels = corpus_labels(train_corpus)
    crop = min(int(recipe.data.max_seconds * 16000) if recipe.data.max_seconds else recipe.train.max_tokens,
               recipe.train.max_tokens)
    train_set = LabelDataset(train_corpus, labels, max_sample_size=crop, seed=recipe.train.seed, rejects_log=log)
    valid = LabelDataset(valid_corpus, labels, rejects_log=log) if valid_corpus is not None else None

    torch.manual_seed(recipe.train.seed)  # the same initial weights for the same seed
    model = build_classifier_model(recipe, labels)
    encoder = getattr(model, "encoder", None)
    if encoder is not None and recipe.freeze_encoder:
        freeze(encoder)
    elif encoder is not None and recipe.freeze_feature_extractor:
        freeze(encoder.feature_extractor)

    config = {**recipe.to_dict(), "validation": validation, "labels": labels}
    task = ClassificationTask(labels, recipe.masking, frozen_encoder=recipe.freeze_encoder, valid=valid,
                              valid_max_tokens=recipe.data.valid_max_tokens, config=config)
    trainer = Trainer(recipe.train, model, task, run, accelerator=accelerator, progress=progress,
                      find_unused_parameters=encoder is not None and encoder.config.layerdrop > 0)
    held = valid_corpus is not None and validation["held_out_from"]

    def announce() -> None:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        kind = "frozen-encoder probe" if recipe.freeze_encoder else "classifier"
        print(f"training a {kind} ({total / 1e6:.2f}M parameters, {trainable / 1e6:.3f}M trainable) on "
              f"{len(train_set)} utterances ({sum(train_set.lengths) / 16000 / 60:.1f} min) from {root}; "
              f"{len(labels)} labels; {torch.get_num_threads()} threads on {trainer.acc.device}", flush=True)

    files = {HOLDOUT_FILE: "".join(f"{u.id}\n" for u in valid_corpus)} if held else {}
    return run_training(trainer, train_set, config, root, log, files=files, resume=resume,
                        change_recipe=change_recipe, announce=announce)
