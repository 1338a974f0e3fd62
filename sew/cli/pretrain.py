"""``sew pretrain``: self-supervised pretraining (wav2vec 2.0 / SEW contrastive, or BEST-RQ) from a preset in
configs/pretrain/."""

from __future__ import annotations

from sew.cli.options import TRAINING_SHORTCUTS, add_training, check_run, pick_device, shortcut_values, train_command

_SHORTCUTS = {  # option -> recipe field it sets, besides the training shortcuts of sew.cli.options
    "model": "model", "init": "init", "max_tokens": "train.max_tokens", "update_freq": "train.update_freq",
    "log_every": "train.log_every", "save_every": "train.save_every", "keep_last": "train.keep_last",
}


def run(args) -> int:
    from sew.pretrain.recipe import load_recipe, recipe_names
    from sew.pretrain.run import pretrain
    from sew.train.health_report import final_line, read_summary
    from sew.train.setup import configure_threads

    if args.list:
        for name in recipe_names():
            print(f"{name:18s} {load_recipe(name).description}")
        return 0
    if args.check:
        return check_run(args.check)
    values = shortcut_values(args, {**_SHORTCUTS, **TRAINING_SHORTCUTS})
    if args.update_freq is not None:
        values["emulate_gpus"] = None  # an explicit update_freq replaces the 64-GPU emulation
    recipe = load_recipe(args.preset, args.set, values)
    run_dir = args.run_dir or f"runs/pretrain-{args.preset if '/' not in args.preset else 'custom'}"
    configure_threads(args.threads)
    device = pick_device(args.device)
    _, status = train_command("pretrain", run_dir, args, pretrain, recipe, args.data, device)
    if status is not None:
        return status
    print(f"done: encoder for fine-tuning in {run_dir}/final (heads removed); logs in {run_dir}/log.jsonl")
    print(final_line(run_dir))
    summary = read_summary(run_dir) or {}
    return 1 if summary.get("stopped_by_health") else 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "pretrain", help="self-supervised pretraining of an encoder (BEST-RQ, or wav2vec 2.0's contrastive objective)",
        description="Self-supervised pretraining on one CPU, one GPU or 'accelerate launch' across GPUs and "
                    "machines: BEST-RQ's fixed random-projection targets (the quick preset) or the wav2vec 2.0 "
                    "contrastive objective with SEW's MLP heads (quick-contrastive and the official sizes). A run "
                    "directory holds log.jsonl, TensorBoard files, checkpoints/ (exact resume), final/ and best/ "
                    "(encoders for fine-tuning) and rejected.tsv. Rerunning the same command continues from the "
                    "latest checkpoint; SIGTERM / SIGUSR1 save one and exit 75 (docs/long-runs.md).")
    p.add_argument("--preset", default="quick",
                   help="recipe name in configs/pretrain/ or a YAML path (default: quick, BEST-RQ for 10 minutes on a CPU; "
                        "quick-contrastive: the wav2vec 2.0 objective; the official sizes' presets are contrastive)")
    p.add_argument("--model", default=None, help="model preset or YAML replacing the recipe's (default: the recipe's)")
    p.add_argument("--init", default=None,
                   help="start from this model's encoder weights: a directory (ours or Hugging Face) or Hub id "
                        "(default: random)")
    add_training(p, "runs/pretrain-PRESET", "--set objective.num_negatives=50")
    p.add_argument("--max-tokens", type=int, default=None,
                   help="padded audio samples per micro-batch and process (default: the recipe's)")
    p.add_argument("--update-freq", type=int, default=None,
                   help="micro-batches per update, replacing the recipe's 64-GPU emulation (default: the recipe's)")
    p.add_argument("--log-every", type=int, default=None, help="updates between log lines (default: the recipe's)")
    p.add_argument("--save-every", type=int, default=None,
                   help="updates between checkpoints, 0 for the end only (default: the recipe's)")
    p.add_argument("--keep-last", type=int, default=None, help="checkpoints kept (default: the recipe's)")
    p.add_argument("--list", action="store_true", help="list the pretraining presets and exit")
    p.set_defaults(func=run, trains=True)
