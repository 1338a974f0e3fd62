"""``sew finetune``: CTC fine-tuning from a pretrained checkpoint, a Hugging Face directory or a preset."""

from __future__ import annotations

import sys
from pathlib import Path


def run(args) -> int:
    import torch

    from sew.asr.finetune import finetune, load_recipe
    from sew.train.loop import TrainingDiverged
    from sew.train.setup import configure_threads

    overrides = list(args.set or [])
    for flag, key in (("model", "model"), ("max_minutes", "train.max_minutes"), ("max_update", "train.max_update"),
                      ("lr", "train.lr"), ("mixed_precision", "train.mixed_precision"), ("seed", "train.seed")):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.valid_split is not None:
        overrides.append(f"data.valid_split={'null' if args.valid_split.lower() == 'none' else args.valid_split}")
    recipe = load_recipe(args.config, overrides)
    if recipe.train.mixed_precision == "fp16" and not torch.cuda.is_available():
        print("warning: the preset asks for fp16, which needs a GPU; training in float32 "
              "(pass --mixed-precision bf16 to use bfloat16 on this CPU)", file=sys.stderr)
        recipe.train.mixed_precision = "no"
    configure_threads(args.threads)
    out = Path(args.out or f"runs/finetune-{Path(str(args.config)).stem}")
    resume = None if args.resume is None else (True if args.resume == "latest" else args.resume)
    try:
        state = finetune(recipe, args.data, out, resume=resume, strict=args.strict, progress=not args.no_progress)
    except TrainingDiverged as err:
        print(f"sew finetune: error: {err}", file=sys.stderr)
        return 1
    best = f", best dev {recipe.train.best_metric} {state.best_metric:.4f} at update {state.best_update}" \
        if state.best_metric is not None else ""
    models = " and ".join(str(out / name) for name in ("best", "final") if (out / name).is_dir())
    print(f"finished: {state.update} updates in {state.elapsed_seconds / 60:.1f} min of training{best}; "
          f"model{'s' if ' and ' in models else ''} in {models}")
    if args.test_split:
        return evaluate_split(out, args.data, args.test_split)
    return 0


def evaluate_split(run_dir: Path, data, split: str) -> int:
    """Score ``RUN/best`` (else ``RUN/final``) on ``split`` into ``RUN/eval-SPLIT/``; print the table."""
    from sew.cli.eval import evaluate_model

    model_dir = run_dir / "best" if (run_dir / "best").is_dir() else run_dir / "final"
    try:
        evaluate_model(model_dir, data, split, run_dir / f"eval-{split}")
    except ValueError as err:  # e.g. the corpus has no such split: training itself succeeded
        print(f"warning: no {split} evaluation: {err}", file=sys.stderr)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune a model for speech recognition with CTC",
                       description="CTC fine-tuning (the official SEW / wav2vec 2.0 recipe, or a quick preset). "
                                   "Starts from our model directory, a Hugging Face SEW / SEW-D / wav2vec2 "
                                   "directory, or a model preset with random weights; writes RUN/best (lowest dev "
                                   "WER), RUN/final, RUN/checkpoints, RUN/log.jsonl, TensorBoard logs and curves.png.")
    p.add_argument("--preset", "--config", "-c", dest="config", metavar="PRESET", default="quick",
                   help="fine-tuning preset in configs/finetune (quick, 10m, 1h, 10h, 100h) or a YAML path "
                        "(default: quick)")
    p.add_argument("--model", default=None,
                   help="model to start from: model directory (ours or Hugging Face), Hub id (ORG/NAME[@REVISION]) "
                        "or model preset name "
                        "(default: the preset's, sew-d-micro for quick)")
    p.add_argument("--data", default=None,
                   help="corpus with transcripts: manifest directory, .tsv, LibriSpeech tree, audiofolder or "
                        "datasets directory (default: the built-in synthetic corpus)")
    p.add_argument("--run-dir", "--out", dest="out", metavar="DIR", default=None, help="run directory (default: runs/finetune-PRESET)")
    p.add_argument("--resume", nargs="?", const="latest", default=None,
                   help="continue from a checkpoint directory, or the latest in the run directory when given "
                        "without a value (default: continue automatically when the run directory has a checkpoint)")
    p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE",
                   help="override a preset field, e.g. --set train.lr=1e-4 --set masking.mask_prob=0.5 "
                        "--set model_overrides.layerdrop=0.1 (repeatable)")
    p.add_argument("--max-minutes", type=float, default=None, help="wall-clock training budget (default: the preset's)")
    p.add_argument("--max-update", type=int, default=None, help="number of updates (default: the preset's)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the preset's)")
    p.add_argument("--mixed-precision", choices=["no", "bf16", "fp16"], default=None,
                   help="autocast precision; fp16 needs a GPU (default: the preset's)")
    p.add_argument("--seed", type=int, default=None, help="random seed for batches, masks, dropout (default: the preset's)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all available cores)")
    p.add_argument("--valid-split", default=None, metavar="NAME|none",
                   help="split to validate on (RUN/best is the best on it), or none; default: the preset's, dev, "
                        "and a corpus without a dev split holds out a seeded 5%% of train (listed in RUN/holdout.txt)")
    p.add_argument("--test-split", default="test",
                   help="after training, evaluate RUN/best on this split of --data if it exists ('' to skip; "
                        "default: test)")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first bad data item (default: skip it with a warning, list it in rejected.tsv)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)
