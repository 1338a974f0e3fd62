"""``sew finetune``: CTC fine-tuning (``--task asr``) or utterance classification (``--task classify``) from a
pretrained checkpoint, a Hugging Face model or a preset."""

from __future__ import annotations

import sys
from pathlib import Path

from sew.cli.options import TRAINING_SHORTCUTS, add_training, check_run, pick_device, shortcut_values, train_command


def run(args) -> int:
    from sew.train.health_report import final_line, read_summary
    from sew.train.setup import configure_threads

    if args.check:
        return check_run(args.check)
    classify = args.task == "classify"
    if classify:
        from sew.classify.finetune import finetune_classifier as finetune, load_recipe
    else:
        from sew.asr.finetune import finetune, load_recipe
    values = shortcut_values(args, {"model": "model", **TRAINING_SHORTCUTS})
    if args.valid_split is not None:
        values["data.valid_split"] = None if args.valid_split.lower() == "none" else args.valid_split
    if args.freeze_encoder:
        if not classify:
            raise ValueError("--freeze-encoder probes a frozen encoder with a classification head; add --task classify")
        values["freeze_encoder"] = True
    recipe = load_recipe(args.preset, args.set, values)
    device = pick_device(args.device)
    if recipe.train.mixed_precision == "fp16" and device != "cuda":
        print("warning: the preset asks for fp16, which needs a GPU; training in float32 "
              "(pass --mixed-precision bf16 to use bfloat16 on this CPU)", file=sys.stderr)
        recipe.train.mixed_precision = "no"
    configure_threads(args.threads)
    out = Path(args.run_dir or f"runs/{'classify' if classify else 'finetune'}-{Path(str(args.preset)).stem}")
    state, status = train_command("finetune", out, args, finetune, recipe, args.data, device)
    if status is not None:
        return status
    best = f", best dev {recipe.train.best_metric} {state.best_metric:.4f} at update {state.best_update}" \
        if state.best_metric is not None else ""
    models = " and ".join(str(out / name) for name in ("best", "final") if (out / name).is_dir())
    print(f"finished: {state.update} updates in {state.elapsed_seconds / 60:.1f} min of training{best}; "
          f"model{'s' if ' and ' in models else ''} in {models}")
    if not classify:
        print(final_line(out))
    if args.test_split:
        data = args.data
        if classify and data is None:
            from sew.classify.finetune import task_root

            data = task_root(recipe, None)
        evaluate_split(out, data, args.test_split, device)
    return 1 if (read_summary(out) or {}).get("stopped_by_health") else 0


def evaluate_split(run_dir: Path, data, split: str, device: str) -> int:
    """Score ``RUN/best`` (else ``RUN/final``) on ``split`` into ``RUN/eval-SPLIT/``; print the table."""
    from sew.classify.predict import evaluate_classifier_model, is_classifier
    from sew.cli.eval import evaluate_model

    model_dir = run_dir / "best" if (run_dir / "best").is_dir() else run_dir / "final"
    if (model_dir / "logmel_config.json").is_file():
        return 0  # the filterbank baseline of the benchmarks: scored there
    score = evaluate_classifier_model if is_classifier(model_dir) else evaluate_model
    try:
        score(model_dir, data, split, run_dir / f"eval-{split}", device=device)
    except ValueError as err:  # e.g. the corpus has no such split: training itself succeeded
        print(f"warning: no {split} evaluation: {err}", file=sys.stderr)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune a model for speech recognition (CTC) or utterance classification",
                       description="CTC fine-tuning (the official SEW / wav2vec 2.0 recipe, or a quick preset), or with "
                                   "--task classify an utterance classifier (keywords, speakers; presets in "
                                   "configs/classify: quick trains the whole model, probe a frozen encoder). "
                                   "Starts from our model directory, a Hugging Face SEW / SEW-D / wav2vec2 "
                                   "directory or Hub id, or a model preset with random weights; writes RUN/best "
                                   "(lowest dev WER, or dev error for classification), RUN/final, RUN/checkpoints, RUN/log.jsonl, TensorBoard logs and "
                                   "curves.png. Rerunning the same command continues from the latest checkpoint.")
    p.add_argument("--task", default="asr", choices=["asr", "classify"],
                   help="asr: CTC speech recognition; classify: one label per utterance, from the corpus's labels "
                        "(default: asr)")
    p.add_argument("--preset", default="quick",
                   help="preset in configs/finetune (quick, 10m, 1h, 10h, 100h) or, with --task classify, in "
                        "configs/classify (quick, probe), or a YAML path (default: quick)")
    p.add_argument("--freeze-encoder", action="store_true",
                   help="with --task classify: train only the layer weights and the head on a frozen encoder "
                        "(the SUPERB probing protocol; the probe preset does this)")
    p.add_argument("--model", default=None,
                   help="model to start from: model directory (ours or Hugging Face), Hub id (ORG/NAME[@REVISION]) "
                        "or model preset name; for classification also logmel, the filterbank baseline (default: the preset's, "
                        "sew-d-micro for quick)")
    add_training(p, "runs/finetune-PRESET", "--set train.lr=1e-4 --set masking.mask_prob=0.5 "
                                             "--set model_overrides.layerdrop=0.1")
    p.add_argument("--valid-split", default=None, metavar="NAME|none",
                   help="split to validate on (RUN/best is the best on it), or none; default: the preset's, dev, "
                        "and a corpus without a dev split holds out a seeded 5%% of train (listed in RUN/holdout.txt)")
    p.add_argument("--test-split", default="test",
                   help="after training, evaluate RUN/best on this split of --data if it exists ('' to skip; "
                        "default: test)")
    p.set_defaults(func=run, trains=True)
