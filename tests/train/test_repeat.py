"""Runs that repeat, through the command line in separate processes: the same command and seed give
bitwise the same final weights, and a run killed with SIGKILL (before and after its first checkpoint)
and rerun to the end gives bitwise the weights of the uninterrupted run; fine-tuning and pretraining."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.pretrain.helpers import run_sew, tiny_args


def finetune_args(run_dir: Path, data: Path, max_update: int = 6) -> list[str]:
    return ["finetune", "--data", str(data), "--run-dir", str(run_dir), "--max-update", str(max_update),
            "--seed", "3", "--no-progress", "--valid-split", "none", "--test-split", "",
            "--set", "model_overrides.num_layers=1", "--set", "train.max_minutes=null", "--set", "train.save_every=2",
            "--set", "train.keep_last=1", "--set", "train.max_tokens=96000", "--set", "train.log_every=1",
            "--set", "train.validate_every_minutes=null"]


def pretrain_args(run_dir: Path, max_update: int = 6) -> list[str]:
    return tiny_args(run_dir, max_update, "--seed", "3", "--save-every", "2", "--keep-last", "1")


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "final" / "model.safetensors"))


def finish(args: list[str]) -> str:
    process = run_sew(args)
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 0, out
    return out


def kill_at(args: list[str], ready, extra: float) -> None:
    """Start ``args``, wait until ``ready()`` (or the run ends), then ``extra`` seconds, and SIGKILL it."""
    process = run_sew(args)
    deadline = time.time() + 300
    while not ready() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(extra)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait()


def checkpoints(run_dir: Path) -> list[str]:
    root = run_dir / "checkpoints"
    return sorted(p.name for p in root.iterdir() if (p / "trainer_state.json").is_file()) if root.is_dir() else []


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("kind", ["finetune", pytest.param("pretrain", marks=pytest.mark.slow)])  # pretrain: also tests/pretrain/test_resume.py
def test_same_seed_same_weights_and_kill_9_then_rerun_gives_the_same_weights(kind, tmp_path, tiny_corpus):
    make = (lambda run: finetune_args(run, tiny_corpus)) if kind == "finetune" else pretrain_args
    finish(make(tmp_path / "a"))
    finish(make(tmp_path / "b"))
    reference = final_weights(tmp_path / "a")
    assert_same(reference, final_weights(tmp_path / "b"))  # same command, same seed: the same weights

    rng = random.Random(0)
    killed = tmp_path / "killed"
    log = killed / "log.jsonl"
    # Killed while training, before the first checkpoint: the rerun starts over.
    kill_at(make(killed), lambda: log.is_file() and log.stat().st_size > 0, rng.uniform(0.0, 0.2))
    assert not (killed / "final").exists()
    # Killed again after the first checkpoint: the rerun resumes from it.
    kill_at(make(killed), lambda: len(checkpoints(killed)) > 0, rng.uniform(0.0, 0.5))
    assert checkpoints(killed), "the second kill came before any checkpoint"
    out = finish(make(killed))
    assert "resuming from" in out or (killed / "final").is_dir()
    assert_same(reference, final_weights(killed))
