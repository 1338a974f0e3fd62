"""Options shared by the subcommands: one spelling, one help line and one default each.

``--data``, ``--run-dir``, ``--resume``, ``--set``, ``--threads``, ``--device``, ``--strict``,
``--no-progress`` and the training shortcuts (``--max-update``, ``--max-minutes``, ``--lr``,
``--mixed-precision``, ``--seed``), which map onto recipe fields the same way everywhere.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

DATA_HELP = ("corpus: manifest directory, .tsv, LibriSpeech tree, audiofolder or datasets directory "
             "(default: the built-in synthetic corpus)")
# Training shortcuts: option (argparse dest) -> the recipe field it sets.
TRAINING_SHORTCUTS = {"max_update": "train.max_update", "max_minutes": "train.max_minutes", "lr": "train.lr",
                      "mixed_precision": "train.mixed_precision", "seed": "train.seed",
                      "stop_on_health": "train.stop_on_health", "workers": "train.num_workers"}


def add_data(p: argparse.ArgumentParser, help: str = DATA_HELP) -> None:
    p.add_argument("--data", default=None, help=help)


def add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all available cores)")


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where to run: auto is cuda when torch sees a GPU, else cpu (default: auto)")


def add_strict(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strict", action="store_true",
                   help="stop at the first bad data item (default: skip it with a warning and list it in rejected.tsv)")


def add_no_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bars (log lines only)")


def add_set(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help=f"override any preset field, e.g. {example} (repeatable)")


def add_training(p: argparse.ArgumentParser, run_dir_default: str, set_example: str) -> None:
    """The options of a training run (``sew finetune``, ``sew pretrain``)."""
    add_data(p)
    p.add_argument("--run-dir", default=None, help=f"run directory (default: {run_dir_default})")
    p.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CHECKPOINT",
                   help="continue from a checkpoint directory, or the latest one in the run directory when given "
                        "without a value (default: continue automatically when the run directory has a checkpoint)")
    p.add_argument("--change-recipe", action="store_true",
                   help="continue a run under a recipe that differs from the one its checkpoints were made with "
                        "(default: refuse, naming the differing fields)")
    add_set(p, set_example)
    p.add_argument("--max-update", type=int, default=None, help="stop after this many updates (default: the preset's)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="wall-clock training budget in minutes (default: the preset's)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the preset's)")
    p.add_argument("--mixed-precision", choices=["no", "bf16", "fp16"], default=None,
                   help="float32, bf16, or fp16 with loss scaling (fp16 needs a GPU; default: the preset's)")
    p.add_argument("--seed", type=int, default=None,
                   help="run seed: weights, data order, masks, dropout (default: the preset's)")
    p.add_argument("--stop-on-health", action="store_const", const=True, default=None,
                   help="end the run (checkpoint and final model written) at the health monitor's first finding: "
                        "not learning, codebook or representation collapse, a trivial solution, divergence, the "
                        "CTC blank plateau (default: the preset's, which reports and continues)")
    p.add_argument("--workers", type=int, default=None,
                   help="data-loading worker processes (the same spelling as sew data's; default: the preset's)")
    p.add_argument("--check", default=None, metavar="RUN",
                   help="do not train: read RUN/log.jsonl of an existing run, report the health monitor's findings "
                        "and its last numbers, exit 1 when it found a problem")
    add_threads(p)
    add_device(p)
    add_strict(p)
    add_no_progress(p)


def check_run(run_dir: str) -> int:
    """``--check RUN``: the health report of an existing run (exit 1 when it found a problem)."""
    from sew.train.health_report import check_report

    report, healthy = check_report(run_dir)
    print(report)
    return 0 if healthy else 1


def shortcut_values(args: argparse.Namespace, shortcuts: dict[str, str]) -> dict[str, Any]:
    """``{recipe field: value}`` for every shortcut option given on the command line."""
    return {field: getattr(args, option) for option, field in shortcuts.items() if getattr(args, option) is not None}


def resume_arg(value: str | None):
    """``--resume`` as the trainers take it: None (automatic), True (latest, required) or a path."""
    return None if value is None else (True if value == "latest" else value)


def train_command(command: str, run_dir, args, train, recipe, data, device: str):
    """Run ``train(recipe, data, run_dir, ...)`` (``finetune`` or ``pretrain``) with the command line's options.
    Returns ``(state, None)``, or ``(None, exit status)`` when the run was preempted (75: run it again) or
    diverged (1), after saying so."""
    from sew.train.health_report import final_line
    from sew.train.interrupts import PREEMPTED_EXIT, Preempted
    from sew.train.loop import TrainingDiverged

    try:
        return train(recipe, data, run_dir, resume=resume_arg(args.resume), strict=args.strict,
                     change_recipe=args.change_recipe, progress=not args.no_progress,
                     accelerator=training_accelerator(device, recipe.train.mixed_precision)), None
    except Preempted as err:
        print(f"sew {command}: {err}", file=sys.stderr)
        return None, PREEMPTED_EXIT
    except TrainingDiverged as err:
        print(f"sew {command}: error: {err}", file=sys.stderr)
        print(final_line(run_dir))
        return None, 1


def training_accelerator(device: str, mixed_precision: str):
    """An accelerator kept on the CPU for ``--device cpu`` on a machine with a GPU; None otherwise
    (the trainer's default: the GPU when there is one)."""
    import torch

    if device == "cpu" and torch.cuda.is_available():
        from sew.train.setup import make_accelerator

        return make_accelerator(mixed_precision, cpu=True)
    return None


def pick_device(name: str) -> str:
    """``--device``: ``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``."""
    from sew.runtime import resolve_device

    return resolve_device(name)


def add_decoder_options(p) -> None:
    """Greedy / beam-search and backend options shared by ``sew eval`` and ``sew transcribe``."""
    from sew.export import BACKENDS

    p.add_argument("--vocab", default=None, help="vocab.json of the model (default: the one in the model directory)")
    p.add_argument("--beam-size", type=int, default=0,
                   help="CTC beam search with this beam (needs the lm extra: pip install -e \".[lm]\"; default: 0, "
                        "greedy decoding)")
    p.add_argument("--lm", default=None,
                   help="KenLM n-gram model (.arpa or .bin) for beam search; only its words are emitted (needs the lm "
                        "extra; default: none)")
    p.add_argument("--lexicon", default=None,
                   help="the words beam search may emit, one a line (default: the --lm ARPA file's unigrams; needed "
                        "with a binary .bin LM)")
    p.add_argument("--lm-weight", type=float, default=2.0, help="language model weight alpha (default: 2.0)")
    p.add_argument("--word-score", type=float, default=-1.0, help="word insertion score beta (default: -1.0)")
    p.add_argument("--backend", default="torch", choices=list(BACKENDS),
                   help="torch: the model as is; bf16: bfloat16 weights and activations; int8: dynamic int8 linear layers (CPU); onnx: ONNX Runtime on "
                        "--onnx-file, exported there first when missing (needs the onnx extra) (default: torch)")
    p.add_argument("--onnx-file", default=None, help="ONNX file for --backend onnx (default: MODEL/model.onnx)")
