"""``sew finetune``: CTC fine-tuning from a pretrained checkpoint, a Hugging Face model or a preset."""

from __future__ import annotations

import sys
from pathlib import Path

from sew.cli.options import (TRAINING_SHORTCUTS, add_training, pick_device, resume_arg, shortcut_values,
                             training_accelerator)


def run(args) -> int:
    from sew.asr.finetune import finetune, load_recipe
    from sew.train.loop import TrainingDiverged
    from sew.train.setup import configure_threads

    values = shortcut_values(args, {"model": "model", **TRAINING_SHORTCUTS})
    if args.valid_split is not None:
        values["data.valid_split"] = None if args.valid_split.lower() == "none" else args.valid_split
    recipe = load_recipe(args.preset, args.set, values)
    device = pick_device(args.device)
    if recipe.train.mixed_precision == "fp16" and device != "cuda":
        print("warning: the preset asks for fp16, which needs a GPU; training in float32 "
              "(pass --mixed-precision bf16 to use bfloat16 on this CPU)", file=sys.stderr)
        recipe.train.mixed_precision = "no"
    configure_threads(args.threads)
    out = Path(args.run_dir or f"runs/finetune-{Path(str(args.preset)).stem}")
    accelerator = training_accelerator(device, recipe.train.mixed_precision)
    try:
        state = finetune(recipe, args.data, out, resume=resume_arg(args.resume), strict=args.strict,
                         progress=not args.no_progress, accelerator=accelerator)
    except TrainingDiverged as err:
        print(f"sew finetune: error: {err}", file=sys.stderr)
        return 1
    best = f", best dev {recipe.train.best_metric} {state.best_metric:.4f} at update {state.best_update}" \
        if state.best_metric is not None else ""
    models = " and ".join(str(out / name) for name in ("best", "final") if (out / name).is_dir())
    print(f"finished: {state.update} updates in {state.elapsed_seconds / 60:.1f} min of training{best}; "
          f"model{'s' if ' and ' in models else ''} in {models}")
    if args.test_split:
        return evaluate_split(out, args.data, args.test_split, device)
    return 0


def evaluate_split(run_dir: Path, data, split: str, device: str) -> int:
    """Score ``RUN/best`` (else ``RUN/final``) on ``split`` into ``RUN/eval-SPLIT/``; print the table."""
    from sew.cli.eval import evaluate_model

    model_dir = run_dir / "best" if (run_dir / "best").is_dir() else run_dir / "final"
    try:
        evaluate_model(model_dir, data, split, run_dir / f"eval-{split}", device=device)
    except ValueError as err:  # e.g. the corpus has no such split: training itself succeeded
        print(f"warning: no {split} evaluation: {err}", file=sys.stderr)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune a model for speech recognition with CTC",
                       description="CTC fine-tuning (the official SEW / wav2vec 2.0 recipe, or a quick preset). "
                                   "Starts from our model directory, a Hugging Face SEW / SEW-D / wav2vec2 "
                                   "directory or Hub id, or a model preset with random weights; writes RUN/best "
                                   "(lowest dev WER), RUN/final, RUN/checkpoints, RUN/log.jsonl, TensorBoard logs and "
                                   "curves.png. Rerunning the same command continues from the latest checkpoint.")
    p.add_argument("--preset", default="quick",
                   help="fine-tuning preset in configs/finetune (quick, 10m, 1h, 10h, 100h) or a YAML path "
                        "(default: quick)")
    p.add_argument("--model", default=None,
                   help="model to start from: model directory (ours or Hugging Face), Hub id (ORG/NAME[@REVISION]) "
                        "or model preset name (default: the preset's, sew-d-micro for quick)")
    add_training(p, "runs/finetune-PRESET", "--set train.lr=1e-4 --set masking.mask_prob=0.5 "
                                             "--set model_overrides.layerdrop=0.1")
    p.add_argument("--valid-split", default=None, metavar="NAME|none",
                   help="split to validate on (RUN/best is the best on it), or none; default: the preset's, dev, "
                        "and a corpus without a dev split holds out a seeded 5%% of train (listed in RUN/holdout.txt)")
    p.add_argument("--test-split", default="test",
                   help="after training, evaluate RUN/best on this split of --data if it exists ('' to skip; "
                        "default: test)")
    p.set_defaults(func=run)
