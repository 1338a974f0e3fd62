"""Exact resume: a run killed with SIGKILL and rerun ends with the weights of an uninterrupted run, bitwise."""

from __future__ import annotations

import os
import signal
import time

import torch

from .helpers import checkpoint_weights, run_sew, tiny_args


def test_sigkill_then_resume_gives_the_same_weights_bitwise(tmp_path):
    total = 8
    full, killed = tmp_path / "full", tmp_path / "killed"
    reference = run_sew(tiny_args(full, total, "--save-every", "1", "--keep-last", str(total)))
    victim = run_sew(tiny_args(killed, total, "--save-every", "1"))
    marker = killed / "checkpoints" / "update_00000003"
    deadline = time.time() + 120
    while not marker.is_dir() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert victim.poll() is None, victim.communicate()[0]
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    out, _ = reference.communicate()
    assert reference.returncode == 0, out
    done = sorted(p.name for p in (killed / "checkpoints").iterdir())
    resumed = run_sew(tiny_args(killed, total, "--save-every", "1"))
    out, _ = resumed.communicate()
    assert resumed.returncode == 0, out
    assert "resuming from" in out, out
    print(f"killed with checkpoints {done}; {out.splitlines()[1]}")
    a, b = checkpoint_weights(full, total), checkpoint_weights(killed, total)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
