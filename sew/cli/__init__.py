"""The ``sew`` command line: one entry point, one module per subcommand.

Each module in ``COMMANDS`` exposes ``add_parser(subparsers)``, which registers its
parser and sets ``func`` to the function that runs it with the parsed arguments.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from sew.files import DirectoryInUseError
from sew.runtime import INFERENCE_KERNELS, TRAINING_KERNELS, keep_freed_memory, keep_onednn_kernels

COMMANDS = ["models", "convert", "data", "pretrain", "finetune", "eval", "transcribe", "classify", "features", "bench",
            "export"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sew",
        description="SEW / SEW-D / wav2vec 2.0 speech encoders: models, data, training and benchmarks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"sew.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command as typed, for result files
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # Reuse freed heap memory instead of page-faulting fresh buffers every forward pass (sew.runtime).
    keep_freed_memory()
    # oneDNN's compiled kernels: many kept where models run (rebuilding one costs more than a short clip's
    # product), few where they train (each batch's shapes are new; a full cache slows training down).
    # A command that trains says so with set_defaults(trains=True).
    keep_onednn_kernels(TRAINING_KERNELS if getattr(args, "trains", False) else INFERENCE_KERNELS)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, DirectoryInUseError) as err:
        # User errors: one clear line, no traceback.
        print(f"sew {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
