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


@pytest.mark.parametrize("preset", [None, "256"])
def test_keep_onednn_kernels_raises_the_cache_unless_the_environment_sets_it(monkeypatch, preset):
    from sew.runtime import ONEDNN_KERNELS, keep_onednn_kernels

    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)  # restored after the test
    if preset:
        monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", preset)
    out = [str(keep_onednn_kernels()), os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"]]
    want = int(preset) if preset else ONEDNN_KERNELS
    assert ONEDNN_KERNELS > 1024 and out == [str(want), str(want)]
