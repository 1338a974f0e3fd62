"""One CTC fine-tuning run: recipe -> vocabulary, model, data -> ``CTCTask`` -> ``Trainer`` -> ``RUN/best``.

    recipe = load_recipe("quick")                       # configs/finetune/quick.yaml
    state = finetune(recipe, data=None, run_dir="runs/ft-quick")   # None: the built-in corpus

The model comes from ``recipe.model``: a model preset (random weights), our model directory
(e.g. ``RUN/final`` of ``sew pretrain``) or a Hugging Face SEW / SEW-D / wav2vec 2.0 directory.
A CTC head over the vocabulary of the training transcripts is added (or kept, when the model
already has one over the same vocabulary) and the vocabulary is saved with every model written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sew.asr.ctc import init_prior_bias
from sew.config import load_preset, to_mapping
from sew.asr.evaluate import eval_dataset
from sew.asr.task import CTCTask
from sew.data.dataset import SpeechDataset
from sew.data.rejects import RejectLog
from sew.data.silence import silence_advice
from sew.data.text import PLAUSIBLE_CHARS_PER_SECOND, VOCAB_FILE, Vocabulary
from sew.hub import model_directory
from sew.train.config import TrainConfig
from sew.train.loop import Trainer, TrainingState
from sew.train.masking import MaskingConfig
from sew.train.run import run_training
from sew.train.splits import HOLDOUT_FILE, training_splits
from sew.train.setup import freeze


@dataclass
class FinetuneData:
    """Splits of the corpus and the validation batch size."""

    train_split: str = "train"
    valid_split: str | None = "dev"  # None: no validation (RUN/best is then not written)
    holdout_fraction: float = 0.05  # a corpus without a dev split: this seeded share of train validates
    valid_max_tokens: int = 1_600_000
    # Training utterances whose transcript has more characters per second of audio are skipped and
    # reported (sew.data.text.PLAUSIBLE_CHARS_PER_SECOND says why 30). 0: keep all.
    max_chars_per_second: float = PLAUSIBLE_CHARS_PER_SECOND


@dataclass
class FinetuneRecipe:
    """Everything a ``sew finetune`` run needs besides the data and the run directory."""

    model: str | None = "sew-d-micro"  # model preset, our model directory, a Hugging Face directory or Hub id
    model_overrides: dict[str, Any] = field(default_factory=dict)  # EncoderConfig fields (dropouts, layerdrop, ...)
    freeze_feature_extractor: bool = True  # the official feature_grad_mult 0.0
    freeze_finetune_updates: int = 0  # only the CTC head trains before this many updates
    prior_bias_init: bool = False  # CTC head bias = log plateau distribution (needed from random init)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    data: FinetuneData = field(default_factory=FinetuneData)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(best_metric="wer"))
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return to_mapping(self)


def load_recipe(spec: str | Path | dict = "quick", overrides: list[str] | None = None,
                values: dict[str, Any] | None = None) -> FinetuneRecipe:
    """A recipe from a preset of ``configs/finetune/``, a YAML path or a mapping, with ``--set``
    overrides and then ``values`` by dotted name (``{"train.lr": 1e-4}``)."""
    return load_preset("finetune", FinetuneRecipe, spec, overrides, values)


# -- vocabulary and model -------------------------------------------------------------------------
def choose_vocabulary(recipe: FinetuneRecipe, corpus_root: Path, transcripts: list[str]) -> Vocabulary:
    """The model's own vocabulary when it already has a CTC head, else the corpus's ``vocab.json``,
    else one built from the training transcripts."""
    directory = model_directory(recipe.model)
    if directory is not None and (directory / VOCAB_FILE).is_file():
        return Vocabulary.load(directory)
    if corpus_root.is_dir() and (corpus_root / VOCAB_FILE).is_file():
        return Vocabulary.load(corpus_root)
    return Vocabulary.build(transcripts)


def build_model(recipe: FinetuneRecipe, vocab: Vocabulary):
    """The encoder with a CTC head over ``vocab``, the recipe's overrides applied, weights from ``recipe.model``."""
    import sew

    overrides = {**recipe.model_overrides, "vocab_size": len(vocab)}
    directory = model_directory(recipe.model)
    if directory is None:
        return sew.build_model(recipe.model, **overrides)
    source = sew.load_model(directory)
    weights = source.state_dict()
    if source.config.vocab_size != len(vocab) or not (directory / VOCAB_FILE).is_file():
        # A new head: the old one (if any) predicts another symbol set.
        weights = {k: v for k, v in weights.items() if not k.startswith("ctc_head.")}
    model = sew.SpeechEncoder(source.config.replace(**overrides))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or any(not k.startswith("ctc_head.") for k in missing):
        raise ValueError(f"{recipe.model}: weights do not fit after the overrides {recipe.model_overrides}: "
                         f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model


# -- the run --------------------------------------------------------------------------------------
def finetune(recipe: FinetuneRecipe, data: str | Path | None, run_dir: str | Path, *, resume=None,
             strict: bool = False, progress: bool = True, accelerator=None, change_recipe: bool = False) -> TrainingState:
    """Fine-tune per ``recipe`` on ``data`` (None: the built-in corpus) into ``run_dir``; returns the final state.
    Resuming under another recipe is refused unless ``change_recipe`` (``sew.train.run``)."""
    from sew.data.synth import default_corpus

    if not recipe.model:
        raise ValueError(f"this recipe ({recipe.description or 'no description'}) fine-tunes a pretrained model: "
                         "pass --model DIR (ours, e.g. RUN/final of sew pretrain, or a Hugging Face directory)")
    root = Path(data) if data is not None else default_corpus()
    run = Path(run_dir)
    log = RejectLog(strict=strict)
    train_corpus, valid_corpus, validation = training_splits(recipe, root, log)
    transcripts = [u.transcript for u in train_corpus if u.transcript]
    if not transcripts:
        raise ValueError(f"{root} (split {train_corpus.split}): no transcripts; CTC fine-tuning needs "
                         "transcribed speech (.wrd/.ltr next to the .tsv, or a transcript column)")
    vocab = choose_vocabulary(recipe, root, transcripts)
    train_set = SpeechDataset(train_corpus, vocab=vocab, rejects_log=log, seed=recipe.train.seed,
                              max_chars_per_second=recipe.data.max_chars_per_second)
    valid = eval_dataset(valid_corpus, log) if valid_corpus is not None else None

    torch.manual_seed(recipe.train.seed)  # the same initial weights for the same seed, in every process and rerun
    model = build_model(recipe, vocab)
    if recipe.prior_bias_init:
        kept = [u for u in train_set.utterances if u.num_samples <= recipe.train.max_tokens]
        init_prior_bias(model, vocab, [u.transcript for u in kept], [u.num_samples for u in kept])
    if recipe.freeze_feature_extractor:
        freeze(model.feature_extractor)

    config = {**recipe.to_dict(), "validation": validation}
    task = CTCTask(vocab, recipe.masking, freeze_finetune_updates=recipe.freeze_finetune_updates, valid=valid,
                   valid_max_tokens=recipe.data.valid_max_tokens, config=config)
    trainer = Trainer(recipe.train, model, task, run, accelerator=accelerator, progress=progress,
                      find_unused_parameters=recipe.freeze_finetune_updates > 0 or model.config.layerdrop > 0)
    held = valid_corpus is not None and validation["held_out_from"]

    def announce() -> None:
        advice = silence_advice(root, train_corpus.split)
        if advice:
            print(advice, flush=True)
        if held:
            print(f"{root} has no dev split: validating on {validation['utterances']} utterances held out of "
                  f"{validation['held_out_from']} ({recipe.data.holdout_fraction:.0%}, seed {recipe.train.seed}; "
                  f"listed in {run / HOLDOUT_FILE}, never trained on); --valid-split NAME or none to change",
                  flush=True)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(f"fine-tuning {model.config.family} ({model.num_parameters() / 1e6:.2f}M parameters, "
              f"{trainable / 1e6:.2f}M trainable) on {len(train_set)} utterances "
              f"({sum(train_set.lengths) / 16000 / 60:.1f} min) from {root}; vocabulary of {len(vocab)}; "
              f"{torch.get_num_threads()} threads on {trainer.acc.device}", flush=True)

    files = {VOCAB_FILE: vocab.index, **({HOLDOUT_FILE: "".join(f"{u.id}\n" for u in valid_corpus)} if held else {})}
    return run_training(trainer, train_set, config, root, log, files=files, resume=resume,
                        change_recipe=change_recipe, announce=announce)
