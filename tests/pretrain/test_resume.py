"""Exact resume: a run killed with SIGKILL and rerun ends with the weights of an uninterrupted run, bitwise."""

from __future__ import annotations

import signal

import torch

from .helpers import checkpoint_weights, read_log, run_sew, run_sew_killed_while_saving, tiny_args


def test_sigkill_then_resume_gives_the_same_weights_bitwise(tmp_path):
    total = 8
    full, killed = tmp_path / "full", tmp_path / "killed"
    reference = run_sew(tiny_args(full, total, "--save-every", "1", "--keep-last", str(total)))
    # Killed halfway through writing update 5's checkpoint: at that moment on every machine, however slow.
    victim = run_sew_killed_while_saving(tiny_args(killed, total, "--save-every", "1"), 5)
    out, _ = victim.communicate(timeout=600)
    assert victim.returncode == -signal.SIGKILL, out
    out, _ = reference.communicate(timeout=600)
    assert reference.returncode == 0, out
    done = sorted(p.name for p in (killed / "checkpoints").iterdir())
    assert done == [".tmp-update_00000005", "update_00000003", "update_00000004"]  # keep-last 2, and the torn one
    resumed = run_sew(tiny_args(killed, total, "--save-every", "1"))
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    assert "resuming from" in out and "update_00000004" in out, out
    # The killed run logged update 5 before dying; the resumed one did it again and the log holds it once.
    assert [r["update"] for r in read_log(killed)] == list(range(1, total + 1))
    a, b = checkpoint_weights(full, total), checkpoint_weights(killed, total)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
