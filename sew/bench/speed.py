"""Inference speed, measured the way the paper did (official ``tools/eval_w2v.py timef``).

A fixed set of utterances of realistic, varied lengths goes through the model in
length-sorted, zero-padded batches of at most ``max_tokens`` samples; the timed region is
forward + greedy CTC decoding (argmax, collapse, copy to the host), warm-up runs excluded,
``torch.cuda.synchronize`` around it on GPU, the median of repeats reported as time per
utterance. A fixed-shape grid (batch x seconds) adds latency numbers.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from sew.asr.decode import greedy_ids
from sew.bench.flops import SAMPLE_RATE, encoder_macs
from sew.cpu import capabilities
from sew.export import quantize_int8
from sew.models.linear import onednn_available
from sew.runtime import malloc_tuned

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "int8": torch.float32}
COMPILE_MODES = {
    "dynamic": "one graph, batch and time symbolic: any shape without recompiling",
    "static": "one graph per input shape (fixed-shape serving); compiles once per shape timed",
    "cudagraphs": "static graphs replayed as CUDA graphs (mode reduce-overhead); CUDA only",
}


@dataclass
class SpeedSetup:
    """What is timed and how."""

    device: str = "cpu"
    dtype: str = "float32"
    threads: int | None = None
    max_tokens: int = 1_600_000  # samples per padded batch (100 s of audio)
    repeats: int = 3
    warmup: int = 1
    compile: str | None = None  # also time torch.compile(model) (rows "sew-compiled"): a COMPILE_MODES key
    compile_backend: str = "inductor"  # torch.compile's backend ("aot_eager" traces without generating code)
    onnx: bool = False  # also time the ONNX export on ONNX Runtime (rows "onnxruntime")
    lengths: list[int] = field(default_factory=list)  # samples per utterance
    grid: list[tuple[int, float]] = field(default_factory=list)  # (batch, seconds) latency shapes


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


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_all(forward, inputs) -> None:
    for x, n in inputs:
        forward(x, n)


def time_alternating(forwards, inputs, device: torch.device, setup: SpeedSetup) -> list[float]:
    """Median seconds of each forward over all batches (forward + decoding), the forwards taking
    turns repeat by repeat so that background load hits them alike; warm-up runs excluded."""
    times = [[] for _ in forwards]
    with torch.inference_mode():
        for _ in range(setup.warmup):
            for forward in forwards:
                run_all(forward, inputs)
        for _ in range(setup.repeats):
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


def ours_forward(model):
    def forward(x, n):
        out = model(x, n)
        return greedy_ids(out.logits, out.lengths)
    return forward


def transformers_forward(hf_model, frame_lengths):
    """The same pipeline through a transformers *ForCTC model, fed an attention mask when padded."""
    def forward(x, n):
        mask = (torch.arange(x.shape[1], device=x.device)[None] < n[:, None]).long()
        logits = hf_model(x, attention_mask=mask).logits
        return greedy_ids(logits, frame_lengths(n))
    return forward


def transformers_twin(model, device, dtype):
    """``transformers``' implementation of ``model``'s architecture holding the same weights."""
    from transformers import AutoModelForCTC
    from transformers.utils import logging as hf_logging

    from sew.interop import export_hf

    hf_logging.disable_progress_bar()  # a "Loading weights" bar per model would break up the bench output

    with tempfile.TemporaryDirectory() as tmp:
        export_hf(model, tmp)
        twin = AutoModelForCTC.from_pretrained(tmp)
    return twin.to(device=device, dtype=dtype).eval()


def onnx_twin(model, setup: SpeedSetup):
    """``model`` exported to ONNX, on an ONNX Runtime CPU session with the benchmark's thread count."""
    from sew.export import OnnxEncoder, export_onnx

    if setup.device != "cpu" or setup.dtype != "float32":
        raise ValueError("--onnx times ONNX Runtime on the CPU in float32; use --device cpu --dtype float32")
    import atexit
    import shutil

    tmp = tempfile.mkdtemp(prefix="sew-onnx-")  # kept while the session maps the weights
    atexit.register(shutil.rmtree, tmp, True)
    path = export_onnx(model, os.path.join(tmp, "model.onnx"))
    return OnnxEncoder(path, model, setup.threads)


def matmul_peak_gflops(device: torch.device, dtype: torch.dtype, size: int = 2048, repeats: int = 3,
                       trials: int = 5) -> float:
    """Measured GFLOP/s of a large matrix multiply on this device, dtype and thread count: the best of
    ``trials`` timings of ``repeats`` products (a peak, so a moment of background load does not lower it),
    and on a CPU the better of MKL (``a @ b``) and oneDNN with a reordered weight where oneDNN has the dtype."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    products = [lambda: a @ b]
    if device.type == "cpu" and onednn_available(dtype):
        packed = torch.ops.mkldnn._reorder_linear_weight(b, None)
        products.append(lambda: torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], ""))
    best = float("inf")
    with torch.inference_mode():
        for product in products:
            for _ in range(3):
                product()
            for _ in range(trials):
                synchronize(device)
                start = time.perf_counter()
                for _ in range(repeats):
                    product()
                synchronize(device)
                best = min(best, time.perf_counter() - start)
    return 2 * size**3 * repeats / best / 1e9


def set_peak_fractions(rows: list[dict], info: dict, device: torch.device, dtype: torch.dtype,
                       peak_before: float) -> None:
    """Measure the matmul peak again after the timed runs, keep the larger of the two (a shared
    machine slowed down while the first was taken would otherwise give fractions of peak above 1),
    record both in ``info`` and each row's ``peak_fraction``. Prints a warning when the two differ
    by more than 15%."""
    peak_after = matmul_peak_gflops(device, dtype)
    peak = max(peak_before, peak_after)
    info.update(matmul_peak_gflops=round(peak, 1), matmul_peak_gflops_before=round(peak_before, 1),
                matmul_peak_gflops_after=round(peak_after, 1))
    for r in rows:
        r["peak_fraction"] = round(r["achieved_gflops"] / peak, 3)
    if abs(peak_after - peak_before) > 0.15 * peak:
        print(f"warning: the matmul peak moved from {peak_before:.0f} to {peak_after:.0f} GFLOP/s during the run; "
              "this machine's speed is not steady, so compare only the ratios (measured turn by turn)", flush=True)


def machine_info(device: torch.device, threads: int) -> dict:
    """What the numbers were measured on."""
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


def precision_label(setup: SpeedSetup) -> str:
    """The dtype timed; bfloat16 on a CPU says whether it ran natively or emulated through float32."""
    if setup.dtype == "bfloat16" and setup.device == "cpu":
        return f"bfloat16 ({capabilities().bf16_kind})"
    return setup.dtype


def prepare(model, setup: SpeedSetup):
    """``model`` on the device in the benchmark's dtype (int8: float32 with quantised linear layers)."""
    model = model.to(device=torch.device(setup.device), dtype=DTYPES[setup.dtype]).eval()
    if setup.dtype == "int8":
        if setup.device != "cpu":
            raise ValueError("--dtype int8 (dynamic quantisation) runs on the CPU only; use --device cpu")
        model = quantize_int8(model)
    return model


def measure(name: str, model, setup: SpeedSetup, reference: bool = True) -> list[dict]:
    """Rows for ``model`` (and its ``transformers`` twin when ``reference``, and the compiled model when
    ``setup.compile``): speed, size, FLOPs, memory."""
    device, dtype = torch.device(setup.device), DTYPES[setup.dtype]
    float_model = model.to(device=device, dtype=dtype).eval()
    model = prepare(float_model, setup)
    batches = length_sorted_batches(setup.lengths, setup.max_tokens)
    inputs = make_inputs(setup.lengths, batches, device, dtype)
    audio_s = sum(setup.lengths) / SAMPLE_RATE
    macs = sum(encoder_macs(model.config, setup.lengths[i], len(b))["total"] for b in batches for i in b)
    candidates = [(name, "sew", ours_forward(model))]
    if setup.compile:
        compiled = compile_model(model, setup.compile, device, len(batches) + len(setup.grid), setup.compile_backend)
        candidates.append((name, "sew-compiled", ours_forward(compiled)))
    if setup.onnx:
        candidates.append((name, "onnxruntime", ours_forward(onnx_twin(float_model, setup))))
    if reference:
        twin = transformers_twin(float_model, device, dtype)
        if setup.dtype == "int8":
            twin = quantize_int8(twin)
        candidates.append((name, "transformers", transformers_forward(twin, model.output_lengths)))
    rows = []
    medians = time_alternating([c[2] for c in candidates], inputs, device, setup)
    for (label, implementation, forward), seconds in zip(candidates, medians):
        # ONNX Runtime allocates outside the malloc heap that PeakMemory reads: not measured.
        memory = None if implementation == "onnxruntime" else peak_memory(forward, inputs, device)
        rows.append({
            "model": label, "implementation": implementation, "family": model.config.family,
            "params_m": round(float_model.num_parameters() / 1e6, 2), "dtype": precision_label(setup),
            "gmacs_per_audio_s": round(macs / audio_s / 1e9, 3),
            "ms_per_utterance": round(1000 * seconds / len(setup.lengths), 2),
            "audio_s_per_s": round(audio_s / seconds, 2), "rtf": round(seconds / audio_s, 5),
            "achieved_gflops": round(2 * macs / seconds / 1e9, 1),
            "peak_memory_mb": None if memory is None else round(memory / 2**20, 1),
            "grid_ms": grid_latency(forward, setup, device, dtype) if setup.grid else {},
        })
    return rows


def compile_model(model, mode: str, device: torch.device, shapes: int = 1, backend: str = "inductor"):
    """``torch.compile(model)`` in one of ``COMPILE_MODES``. ``shapes``: how many input shapes will
    be timed; the static modes compile once for each, so dynamo's recompile limit is raised to that
    (past the limit it would run the eager model and time the wrong thing)."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {mode!r}; choose one of {', '.join(COMPILE_MODES)}")
    if mode == "dynamic":
        return torch.compile(model, dynamic=True, backend=backend)
    if mode == "cudagraphs" and device.type != "cuda":
        raise ValueError("--compile cudagraphs replays CUDA graphs and needs --device cuda; "
                         "on a CPU use --compile static or dynamic")
    config = torch._dynamo.config
    limit = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, limit, max(getattr(config, limit), shapes + 1))
    kwargs = {"mode": "reduce-overhead"} if mode == "cudagraphs" else {}
    return torch.compile(model, dynamic=False, backend=backend, **kwargs)


def grid_latency(forward, setup: SpeedSetup, device, dtype) -> dict[str, float]:
    """Median milliseconds per batch for each fixed (batch, seconds) shape."""
    out = {}
    for batch, seconds in setup.grid:
        samples = int(seconds * SAMPLE_RATE)
        x = torch.randn(batch, samples, device=device, dtype=dtype) * 0.1
        n = torch.full((batch,), samples, device=device)
        grid_setup = SpeedSetup(repeats=setup.repeats, warmup=1)
        (seconds_taken,) = time_alternating([forward], [(x, n)], device, grid_setup)
        out[f"{batch}x{seconds:g}s"] = round(1000 * seconds_taken, 2)
    return out


def add_ratios(rows: list[dict], baseline: str | None) -> None:
    """Speed ratios of every row against the baseline model (ours) and against its transformers twin."""
    ours = {r["model"]: r for r in rows if r["implementation"] == "sew"}
    base = ours.get(baseline) if baseline else None
    for r in rows:
        if base is not None:
            r["speedup_vs_baseline"] = round(base["ms_per_utterance"] / r["ms_per_utterance"], 3)
            r["macs_ratio_vs_baseline"] = round(base["gmacs_per_audio_s"] / r["gmacs_per_audio_s"], 3)
        if r["implementation"] == "onnxruntime":
            r["onnx_speedup_vs_eager"] = round(ours[r["model"]]["ms_per_utterance"] / r["ms_per_utterance"], 3)
        if r["implementation"] == "sew-compiled":
            r["compiled_speedup_vs_eager"] = round(ours[r["model"]]["ms_per_utterance"] / r["ms_per_utterance"], 3)
        if r["implementation"] == "transformers":
            r["sew_speedup_vs_transformers"] = round(r["ms_per_utterance"] / ours[r["model"]]["ms_per_utterance"], 3)
