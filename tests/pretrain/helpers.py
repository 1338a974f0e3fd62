"""A tiny pretraining recipe (seconds per run on 2 cores) and readers for run directories."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]
# CLI --set overrides turning the quick-contrastive preset into a seconds-long run of a 2-layer model.
TINY_SET = [
    "model_overrides={num_layers: 2, layerdrop: 0.0}",
    "objective.num_negatives=20", "objective.mlp_hidden_size=256", "objective.codebook_entries=64",
    "data.max_sample_size=16000", "data.min_sample_size=16000", "data.valid_split=null",
    "train.max_minutes=null", "train.max_tokens=64000", "train.warmup_updates=2", "train.log_every=1",
    "train.validate_every=0", "train.save_every=0", "train.lr=2e-3",
]


def tiny_args(run_dir: Path, max_update: int, *extra: str) -> list[str]:
    """``sew pretrain`` arguments for a tiny run of ``max_update`` updates in ``run_dir``."""
    args = ["pretrain", "--preset", "quick-contrastive", "--run-dir", str(run_dir), "--no-progress",
            "--max-update", str(max_update)]
    for item in TINY_SET:
        args += ["--set", item]
    return args + list(extra)


def read_log(run_dir: Path, kind: str = "train") -> list[dict]:
    lines = (Path(run_dir) / "log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def checkpoint_weights(run_dir: Path, update: int) -> dict[str, torch.Tensor]:
    return load_file(str(Path(run_dir) / "checkpoints" / f"update_{update:08d}" / "model.safetensors"))


def run_sew(args: list[str]) -> subprocess.Popen:
    """``python -m sew ARGS --threads 1`` in the background, output captured."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "sew", *args, "--threads", "1"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


# ``python -c`` program: the sew command line, SIGKILLed by itself while it writes the optimizer state of
# the checkpoint of update argv[1] (a checkpoint half written): the same moment on every machine.
_KILLED_WHILE_SAVING = """
import os, signal, sys
import sew.train.state as state

save, update = state.save_state_dict, int(sys.argv.pop(1))

def save_or_die(directory, name, tree):
    save(directory, name, tree)
    if name == "optimizer" and directory.name == f".tmp-update_{update:08d}":
        os.kill(os.getpid(), signal.SIGKILL)

state.save_state_dict = save_or_die
from sew.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_sew_killed_while_saving(args: list[str], update: int) -> subprocess.Popen:
    """``run_sew`` of a run that dies by SIGKILL halfway through writing the checkpoint of ``update``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", _KILLED_WHILE_SAVING, str(update), *args, "--threads", "1"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
