"""sew.runtime: glibc keeps large freed buffers in its heap instead of mapping them afresh."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sew.bench.timing import heap_bytes_reader

SCRIPT = """
import ctypes, sys, torch
from sew.runtime import keep_freed_memory, malloc_tuned
applied = keep_freed_memory() if sys.argv[1] == "tune" else False
class Info(ctypes.Structure):
    _fields_ = [(f"f{i}", ctypes.c_size_t) for i in range(10)]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
before = libc.mallinfo2().f4  # hblkhd: bytes in mmapped blocks
x = torch.ones(64 * 2**20 // 4)  # 64 MiB, above glibc's largest mmap threshold
mapped = libc.mallinfo2().f4 - before
del x
print(int(applied), int(malloc_tuned()), mapped, libc.mallinfo2().f8)  # fordblks: free bytes kept in the heap
"""


@pytest.mark.skipif(heap_bytes_reader() is None, reason="needs glibc")
@pytest.mark.parametrize("mode", ["tune", "default"])
def test_keep_freed_memory_serves_large_blocks_from_the_heap(mode):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | {"SEW_MALLOC_TUNING": "1"}
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True,
                         env=env).stdout.split()
    applied, tuned, mapped, kept = (int(v) for v in out)
    if mode == "tune":  # served from the heap, and kept there once freed
        assert applied == tuned == 1 and mapped == 0 and kept >= 64 * 2**20
    else:  # mapped afresh, and unmapped on free
        assert applied == tuned == 0 and mapped >= 64 * 2**20 and kept < 64 * 2**20


def test_opt_out(monkeypatch):
    import sew.runtime as runtime

    monkeypatch.setattr(runtime, "_applied", False)
    monkeypatch.setenv("SEW_MALLOC_TUNING", "0")
    assert runtime.keep_freed_memory() is False


@pytest.mark.parametrize("preset", [None, "300"])
def test_keep_onednn_kernels_sets_the_cache_unless_the_environment_did(monkeypatch, preset):
    import sew.runtime as runtime

    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)  # restored after the test
    monkeypatch.setattr(runtime, "_user_kernels", None)
    if preset:
        monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", preset)
    out = [runtime.keep_onednn_kernels(runtime.TRAINING_KERNELS), os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"]]
    want = int(preset) if preset else runtime.TRAINING_KERNELS
    assert out == [want, str(want)]
    # A process started for inference from this one gets the user's capacity, or the inference one,
    # never the training capacity this process wrote into the environment.
    assert runtime.inference_kernels() == (int(preset) if preset else runtime.INFERENCE_KERNELS)
    assert runtime.TRAINING_KERNELS < 1024 < runtime.INFERENCE_KERNELS


@pytest.mark.parametrize("argv, trains", [
    (["finetune"], True), (["pretrain"], True), (["bench"], True), (["bench", "wer"], True),
    (["bench", "speed"], False), (["bench", "train-speed"], False), (["transcribe", "x.wav", "--model", "m"], False),
    (["classify", "x.wav", "--model", "m"], False), (["eval", "--model", "m"], False)])
def test_commands_that_train_keep_few_kernels(argv, trains):
    from sew.cli import build_parser

    assert getattr(build_parser().parse_args(argv), "trains", False) is trains


def test_timing_runs_in_a_fresh_process_with_the_inference_cache(monkeypatch):
    """A training process (few kernels kept) times its models in a child that keeps many, with its own
    thread count, and the child's failures come back into the parent's log."""
    import torch

    import sew.runtime as runtime
    from sew.bench.failures import FailureLog
    from sew.bench.speed import SpeedSetup, run_speed_suite
    from sew.bench.timing import in_fresh_process

    monkeypatch.setattr(runtime, "_user_kernels", None)
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    runtime.keep_onednn_kernels(runtime.TRAINING_KERNELS)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert in_fresh_process(os.getenv, "ONEDNN_PRIMITIVE_CACHE_CAPACITY") == str(runtime.INFERENCE_KERNELS)
        assert in_fresh_process(torch.get_num_threads) == 1
        failures = FailureLog()
        run = in_fresh_process(run_speed_suite, ["no-such-model"], SpeedSetup(lengths=[1600], repeats=1),
                               reference=False, failures=failures, log=str)
    finally:
        torch.set_num_threads(threads)
    assert run.rows == [] and [(r["model"], r["phase"]) for r in failures.records] == [("no-such-model", "speed")]
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == str(runtime.TRAINING_KERNELS)  # this process unchanged


def _die() -> None:  # module level: the spawned child imports it by name
    import signal

    os.kill(os.getpid(), signal.SIGKILL)  # what the out-of-memory killer does


def _record_then_raise(failures) -> None:
    failures.add("some-model", "speed", "recorded before the error")
    raise ValueError("bad input in the child")


def test_a_timing_process_that_dies_or_raises_says_so():
    """A child killed without a word is named with its signal; an error in it comes back as itself, with
    the failures it recorded first."""
    from sew.bench.failures import FailureLog
    from sew.bench.timing import TimingProcessDied, in_fresh_process

    with pytest.raises(TimingProcessDied, match="_die was killed by SIGKILL"):
        in_fresh_process(_die)
    failures = FailureLog()
    with pytest.raises(ValueError, match="bad input in the child"):
        in_fresh_process(_record_then_raise, failures=failures)
    assert [(r["model"], r["error"]) for r in failures.records] == [("some-model", "recorded before the error")]
