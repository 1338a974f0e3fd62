"""Timing on a CPU or a GPU: inputs of realistic lengths, turn-taking medians, peak memory, the
matmul peak and the machine the numbers come from.

The implementations being compared take turns repeat by repeat, so that background load on a
shared machine hits them alike; ``torch.cuda.synchronize`` brackets each timed region on a GPU.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import threading
import time

import numpy as np
import torch

from sew.bench.flops import SAMPLE_RATE
from sew.cpu import capabilities, onednn_available
from sew.runtime import inference_kernels, keep_freed_memory, keep_onednn_kernels, malloc_tuned


def utterance_lengths(count: int = 32, seed: int = 0, mean_seconds: float = 6.5) -> list[int]:
    """Deterministic utterance lengths shaped like LibriSpeech dev-other (log-normal, 1.5-25 s)."""
    rng = np.random.default_rng(seed)
    seconds = np.clip(rng.lognormal(np.log(mean_seconds) - 0.18, 0.6, count), 1.5, 25.0)
    return [int(s * SAMPLE_RATE) for s in seconds]


def length_sorted_batches(lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Indices sorted by length (longest first), grouped so batch size x longest <= max_tokens."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches, current = [], []
    for i in order:
        longest = lengths[current[0]] if current else lengths[i]
        if current and (len(current) + 1) * longest > max_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def make_inputs(lengths: list[int], batches: list[list[int]], device, dtype, seed: int = 0):
    """Zero-padded random waveforms ``[b, longest]`` and lengths for each batch (speed does not depend on content)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        x = torch.zeros(len(batch), longest)
        for row, i in enumerate(batch):
            x[row, : lengths[i]] = torch.randn(lengths[i], generator=g) * 0.1
        n = torch.tensor([lengths[i] for i in batch])
        out.append((x.to(device=device, dtype=dtype), n.to(device)))
    return out


def heap_bytes_reader():
    """A function returning the bytes this process has allocated right now (glibc ``mallinfo2``),
    or None where that is unavailable. Unlike the resident size it falls when memory is freed, so
    the peak of one run is not hidden by memory an earlier run left mapped."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
    except (OSError, AttributeError):
        return None

    def read() -> int:
        info = libc.mallinfo2()
        return info.uordblks + info.hblkhd  # heap chunks in use + large mmapped blocks

    return read


class PeakMemory:
    """Peak CUDA allocation, or on the CPU the peak of allocated bytes above the start, sampled every 2 ms
    (resident-size growth where glibc's counters are unavailable)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = 0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        read = heap_bytes_reader()
        if read is None:
            import psutil

            process = psutil.Process()
            read = lambda: process.memory_info().rss  # noqa: E731
        self._stop = threading.Event()
        baseline = read()

        def sample():
            while not self._stop.is_set():
                self.peak = max(self.peak, read() - baseline)
                time.sleep(0.002)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()


def in_fresh_process(fn, /, *args, failures=None, **kwargs):
    """``fn(*args, **kwargs)`` in a new Python process set up to run models, and its result.

    A benchmark's timings are those of a deployed model in a process of its own, whatever this
    process trained before, and with the compiled-kernel cache that inference wants and training does
    not (``sew.runtime.keep_onednn_kernels``): the child keeps ``inference_kernels()`` of oneDNN's
    kernels, keeps freed memory and uses this process's thread count. ``fn`` must be importable (a
    module-level function). With ``failures`` (a ``FailureLog``), ``fn`` gets a log of its own as
    ``failures=`` and the child's records are added to this one. An exception in ``fn`` is raised
    here; a child that dies without a word (killed for memory, a crash in native code) raises
    ``TimingProcessDied`` naming its exit code or signal, so that a benchmark can record it and go on.
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # a clean process: no fork of this one's heap or threads
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child, name="sew-timing", args=(
        send, inference_kernels(), torch.get_num_threads(), fn, args, kwargs, failures is not None))
    child.start()
    send.close()  # the child holds the only writer: its death ends the pipe
    try:
        outcome = receive.recv()  # before join: a large result would otherwise fill the pipe and stall both
    except EOFError:
        outcome = None
    finally:
        receive.close()
        child.join()
    if outcome is None:
        raise TimingProcessDied(f"the timing process for {getattr(fn, '__name__', fn)} {_ended(child.exitcode)} "
                                "without a result (out of memory, or a crash in native code); rerun with "
                                "fewer --speed-utterances or see the kernel log")
    status, value, records = outcome
    if failures is not None:
        failures.records.extend(records)  # announced on stderr by the child as they happened
    if status == "raised":
        raise value
    return value


class TimingProcessDied(RuntimeError):
    """``in_fresh_process``'s child ended without sending a result."""


def _ended(exitcode: int | None) -> str:
    import signal

    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"was killed by {name}" + (" (the kernel's out-of-memory killer sends it)" if name == "SIGKILL" else "")
    return f"exited with code {exitcode}"


def _child(send, kernels: int, threads: int, fn, args, kwargs, record: bool) -> None:
    import pickle
    import traceback

    _set_up_inference(kernels, threads)
    log = None
    try:
        if record:
            from sew.bench.failures import FailureLog

            log = FailureLog()
            kwargs = {**kwargs, "failures": log}
        outcome = ("returned", fn(*args, **kwargs))
    except Exception as err:
        from sew.bench.failures import describe_error

        try:
            pickle.dumps(err)
        except Exception:
            err = RuntimeError(describe_error(err))
        if hasattr(err, "add_note"):  # Python 3.11+: the child's frames travel with the error
            err.add_note("in the timing process:\n" + traceback.format_exc())
        outcome = ("raised", err)
    send.send((*outcome, log.records if log is not None else []))
    send.close()


def _set_up_inference(kernels: int, threads: int) -> None:
    os.environ.pop("ONEDNN_PRIMITIVE_CACHE_CAPACITY", None)  # inherited from the parent: a training capacity
    keep_onednn_kernels(kernels)
    keep_freed_memory()
    torch.set_num_threads(threads)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_all(forward, inputs) -> None:
    for x, n in inputs:
        forward(x, n)


def time_alternating(forwards, inputs, device: torch.device, warmup: int = 1, repeats: int = 3) -> list[float]:
    """Median seconds of each forward over all batches (forward + decoding), the forwards taking
    turns repeat by repeat so that background load hits them alike; warm-up runs excluded."""
    times = [[] for _ in forwards]
    with torch.inference_mode():
        for _ in range(warmup):
            for forward in forwards:
                run_all(forward, inputs)
        for _ in range(repeats):
            for forward, bucket in zip(forwards, times):
                synchronize(device)
                start = time.perf_counter()
                run_all(forward, inputs)
                synchronize(device)
                bucket.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def peak_memory(forward, inputs, device: torch.device) -> int:
    """Peak memory in bytes of one pass (CUDA: max allocated; CPU: resident growth)."""
    with torch.inference_mode(), PeakMemory(device) as memory:
        run_all(forward, inputs)
        synchronize(device)
    return memory.peak


def matmul_peak_gflops(device: torch.device, dtype: torch.dtype, size: int = 2048, trials: int = 5,
                       max_seconds: float = 1.0) -> float:
    """Measured GFLOP/s of a large matrix multiply on this device, dtype and thread count: the best of
    up to ``trials`` timings (a peak, so a moment of background load does not lower it), and on a CPU the
    better of MKL (``a @ b``) and oneDNN with a reordered weight where oneDNN has the dtype.

    Each timing repeats the product until it lasts about 0.1 s (one product already does on a CPU
    core; thousands on a GPU), and each kind of product stops after two timings once ``max_seconds``
    are spent: a benchmark measures the peak twice, and at one thread five fixed timings of three
    products cost more than the quick runs they frame."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    products = [lambda: a @ b]
    if device.type == "cpu" and onednn_available(dtype):
        packed = torch.ops.mkldnn._reorder_linear_weight(b, None)
        products.append(lambda: torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], ""))
    best = float("inf")  # seconds per product

    def timed(product, repeats: int) -> float:
        synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            product()
        synchronize(device)
        return (time.perf_counter() - start) / repeats

    with torch.inference_mode():
        for product in products:
            spent = time.perf_counter()
            product()  # warm-up: first-call allocations and kernel selection
            one = timed(product, 1)
            repeats = max(1, min(10_000, math.ceil(0.1 / max(one, 1e-9))))
            for trial in range(trials):
                best = min(best, one if trial == 0 and repeats == 1 else timed(product, repeats))
                if trial >= 1 and time.perf_counter() - spent > max_seconds:
                    break
    return 2 * size**3 / best / 1e9


def machine_info(device: torch.device | str, threads: int | None = None) -> dict:
    """What the numbers were measured on (``threads``: torch's intra-op threads unless given)."""
    device, threads = torch.device(device), threads or torch.get_num_threads()
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    caps = capabilities()
    info = {"cpu": cpu, "cpu_isa": caps.isa, "cpu_capabilities": caps.as_dict(), "cpu_count": os.cpu_count(),
            "threads": threads, "torch": torch.__version__, "python": platform.python_version(),
            "device": str(device), "malloc": "heap kept (sew.runtime)" if malloc_tuned() else "default"}
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["tf32"] = {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}
    return info
