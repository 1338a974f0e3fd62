"""``sew pretrain``: wav2vec 2.0 / SEW contrastive pretraining from a preset in configs/pretrain/."""

from __future__ import annotations

_SHORTCUTS = {  # option -> recipe field it sets
    "model": "model", "max_update": "train.max_update", "max_minutes": "train.max_minutes", "lr": "train.lr",
    "max_tokens": "train.max_tokens", "update_freq": "train.update_freq", "mixed_precision": "train.mixed_precision",
    "seed": "train.seed", "log_every": "train.log_every", "save_every": "train.save_every",
    "keep_last": "train.keep_last", "num_workers": "train.num_workers", "init": "init",
}


def run(args) -> int:
    from sew.pretrain.recipe import load_recipe, recipe_names
    from sew.pretrain.run import pretrain
    from sew.train.loop import TrainingDiverged
    from sew.train.setup import configure_threads

    if args.list:
        for name in recipe_names():
            print(f"{name:18s} {load_recipe(name).description}")
        return 0
    values = {key: getattr(args, option) for option, key in _SHORTCUTS.items() if getattr(args, option) is not None}
    if args.update_freq is not None:
        values["emulate_gpus"] = None  # an explicit update_freq replaces the 64-GPU emulation
    recipe = load_recipe(args.preset, args.set, values)
    run_dir = args.run_dir or f"runs/pretrain-{args.preset if '/' not in args.preset else 'custom'}"
    configure_threads(args.threads)
    try:
        pretrain(recipe, args.data, run_dir, resume=args.resume, strict=args.strict, progress=not args.no_progress)
    except TrainingDiverged as err:
        print(f"sew pretrain: error: {err}")
        return 1
    print(f"done: encoder for fine-tuning in {run_dir}/final (heads removed); logs in {run_dir}/log.jsonl")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "pretrain", help="pretrain an encoder with the wav2vec 2.0 objective and SEW's MLP heads",
        description="Contrastive pretraining (wav2vec 2.0 objective, SEW's MLP heads) on one CPU, one GPU or "
                    "'accelerate launch' across GPUs and machines. A run directory holds log.jsonl, TensorBoard "
                    "files, checkpoints/ (exact resume), final/ and best/ (encoders for fine-tuning) and "
                    "rejected.tsv. Rerunning the same command continues from the latest checkpoint.")
    p.add_argument("--preset", default="quick",
                   help="recipe name in configs/pretrain/ or a YAML path (default: quick, 10 minutes on a CPU)")
    p.add_argument("--data", default=None,
                   help="corpus: manifest directory, .tsv, LibriSpeech, audiofolder or HF datasets directory "
                        "(default: the built-in synthetic corpus)")
    p.add_argument("--run-dir", default=None, help="output directory (default: runs/pretrain-PRESET)")
    p.add_argument("--resume", default=None,
                   help="checkpoint or run directory to continue from (default: the latest checkpoint in --run-dir, "
                        "if any)")
    p.add_argument("--model", default=None, help="model preset or YAML replacing the recipe's (default: the recipe's)")
    p.add_argument("--init", default=None,
                   help="start from this model directory's encoder weights, ours or Hugging Face (default: random)")
    p.add_argument("--max-update", type=int, default=None, help="stop after this many updates (default: the recipe's)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop after this much training time (default: the recipe's; quick: 10)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the recipe's)")
    p.add_argument("--max-tokens", type=int, default=None,
                   help="padded audio samples per micro-batch and process (default: the recipe's)")
    p.add_argument("--update-freq", type=int, default=None,
                   help="micro-batches per update, replacing the recipe's 64-GPU emulation (default: the recipe's)")
    p.add_argument("--mixed-precision", choices=["no", "bf16", "fp16"], default=None,
                   help="float32, bf16 or fp16 with loss scaling (fp16 needs a GPU; default: the recipe's)")
    p.add_argument("--seed", type=int, default=None, help="run seed: data order, crops, masks, dropout (default: recipe's)")
    p.add_argument("--log-every", type=int, default=None, help="updates between log lines (default: the recipe's)")
    p.add_argument("--save-every", type=int, default=None,
                   help="updates between checkpoints, 0 for the end only (default: the recipe's)")
    p.add_argument("--keep-last", type=int, default=None, help="checkpoints kept (default: the recipe's)")
    p.add_argument("--num-workers", type=int, default=None, help="data loading processes (default: the recipe's)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per process (default: all available)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override any recipe field, e.g. --set objective.num_negatives=50 (repeatable)")
    p.add_argument("--strict", action="store_true", help="stop at the first bad audio file instead of skipping it")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    p.add_argument("--list", action="store_true", help="list the pretraining presets and exit")
    p.set_defaults(func=run)
