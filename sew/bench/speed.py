"""Inference speed, measured the way the paper did (official ``tools/eval_w2v.py timef``).

A fixed set of utterances of realistic, varied lengths goes through the model in
length-sorted, zero-padded batches of at most ``max_tokens`` samples; the timed region is
forward + greedy CTC decoding (argmax, collapse, copy to the host), warm-up runs excluded,
``torch.cuda.synchronize`` around it on GPU, the median of repeats reported as time per
utterance. A fixed-shape grid (batch x seconds) adds latency numbers.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass, field

import torch

from sew.asr.decode import greedy_ids
from sew.bench.failures import FailureLog
from sew.bench.flops import SAMPLE_RATE, encoder_macs
from sew.bench.timing import (length_sorted_batches, machine_info, make_inputs, matmul_peak_gflops, peak_memory,
                              time_alternating)
from sew.cpu import capabilities
from sew.export import quantize_int8

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


@dataclass
class SpeedRow:
    """One implementation of one model, timed: the rows of ``results.json`` under ``speed``."""

    model: str
    implementation: str  # "sew", "sew-compiled", "onnxruntime" or "transformers"
    family: str
    params_m: float
    dtype: str
    gmacs_per_audio_s: float
    ms_per_utterance: float
    audio_s_per_s: float
    rtf: float
    achieved_gflops: float
    peak_memory_mb: float | None = None
    grid_ms: dict[str, float] = field(default_factory=dict)
    peak_fraction: float | None = None
    speedup_vs_baseline: float | None = None
    macs_ratio_vs_baseline: float | None = None
    sew_speedup_vs_transformers: float | None = None
    compiled_speedup_vs_eager: float | None = None
    onnx_speedup_vs_eager: float | None = None

    def as_dict(self) -> dict:
        """The row as written to results.json (ratios that do not apply are left out)."""
        ratios = {"speedup_vs_baseline", "macs_ratio_vs_baseline", "sew_speedup_vs_transformers",
                  "compiled_speedup_vs_eager", "onnx_speedup_vs_eager", "peak_fraction"}
        return {k: v for k, v in dataclasses.asdict(self).items() if not (k in ratios and v is None)}


@dataclass
class SpeedRun:
    """The rows of one speed suite, the machine they were timed on and the model the ratios are against."""

    rows: list[SpeedRow]
    machine: dict
    baseline: str | None
    failures: list[dict] = field(default_factory=list)

    def row_dicts(self) -> list[dict]:
        return [r.as_dict() for r in self.rows]


def bench_model(spec: str):
    """A model with a CTC head from a preset name (seeded random weights), a model directory (ours or
    Hugging Face) or a Hub id."""
    import sew
    from sew.hub import is_hub_id

    if os.path.isdir(spec) or is_hub_id(spec):
        model = sew.load_model(spec)
        return model if model.ctc_head is not None else sew.build_model(model.config, vocab_size=32)
    torch.manual_seed(0)
    return sew.build_model(spec, vocab_size=32)


def run_speed_suite(specs: list[str], setup: SpeedSetup, *, reference: bool = True, baseline: str | None = None,
                    failures: FailureLog | None = None, step=None, log=print) -> SpeedRun:
    """Time every model of ``specs`` (presets, directories or Hub ids) under ``setup``: ours, and its
    transformers twin when ``reference``; a model that fails is recorded in ``failures`` and the rest
    still run. ``step(text)`` is called before each model (progress); each row is logged as it comes."""
    device = torch.device(setup.device)
    peak_dtype = torch.bfloat16 if setup.dtype in ("bfloat16", "float16") else torch.float32
    failures = failures if failures is not None else FailureLog()
    machine, peak_before = open_suite(device, setup.dtype, peak_dtype, log,
                                      f"{len(setup.lengths)} utterances, {sum(setup.lengths) / SAMPLE_RATE:.0f} s "
                                      "of audio; ")
    rows: list[SpeedRow] = []
    for spec in specs:
        if step is not None:
            step(f"{spec}: speed")
        timed = failures.attempt(spec, "speed", lambda: measure(spec, bench_model(spec), setup, reference=reference))
        for r in timed or []:
            log(f"  {r.model:16s} {r.implementation:12s} {r.ms_per_utterance:9.1f} ms/utt "
                f"{r.audio_s_per_s:7.1f} audio s/s  {r.achieved_gflops:6.1f} GFLOP/s")
        rows.extend(timed or [])
    baseline = baseline or next((r.model for r in rows if r.family == "wav2vec2"), None)
    add_ratios(rows, baseline)
    set_peak_fractions(rows, machine, device, peak_dtype, peak_before)
    return SpeedRun(rows, machine, baseline, failures.records)


def open_suite(device: torch.device, precision: str, peak_dtype: torch.dtype, log, what: str = ""):
    """The machine's description and matmul peak at the start of a suite, announced in one line."""
    machine = machine_info(device, torch.get_num_threads())
    peak = matmul_peak_gflops(device, peak_dtype)
    log(f"# {capabilities().describe() if device.type == 'cpu' else machine.get('gpu')}, "
        f"{torch.get_num_threads()} threads, {device.type}, {precision}, torch {machine['torch']}; "
        f"{what}matmul peak {peak:.0f} GFLOP/s")
    return machine, peak


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


def set_peak_fractions(rows: list[SpeedRow], info: dict, device: torch.device, dtype: torch.dtype,
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
        r.peak_fraction = round(r.achieved_gflops / peak, 3)
    if abs(peak_after - peak_before) > 0.15 * peak:
        print(f"warning: the matmul peak moved from {peak_before:.0f} to {peak_after:.0f} GFLOP/s during the run; "
              "this machine's speed is not steady, so compare only the ratios (measured turn by turn)", flush=True)


def precision_label(setup: SpeedSetup) -> str:
    """The dtype timed; bfloat16 on a CPU says whether it ran natively or emulated through float32."""
    if setup.dtype == "bfloat16" and setup.device == "cpu":
        return f"bfloat16 ({capabilities().bf16_kind})"
    return setup.dtype


def prepare(model, setup: SpeedSetup, convert: bool = True):
    """``model`` on the device in the benchmark's dtype (int8: float32 with quantised linear layers),
    on a CPU converted for inference (``sew.optimize_for_cpu``) unless ``convert`` is False."""
    from sew.inference import optimize_for_cpu

    model = model.to(device=torch.device(setup.device), dtype=DTYPES[setup.dtype]).eval()
    if setup.dtype == "int8":
        if setup.device != "cpu":
            raise ValueError("--dtype int8 (dynamic quantisation) runs on the CPU only; use --device cpu")
        model = quantize_int8(model)
    return optimize_for_cpu(model) if convert else model


def measure(name: str, model, setup: SpeedSetup, reference: bool = True) -> list[SpeedRow]:
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
    if setup.compile:  # the reference modules (the converted ones are eager-only)
        compiled = compile_model(prepare(float_model, setup, convert=False), setup.compile, device,
                                 len(batches) + len(setup.grid), setup.compile_backend)
        candidates.append((name, "sew-compiled", ours_forward(compiled)))
    if setup.onnx:
        candidates.append((name, "onnxruntime", ours_forward(onnx_twin(float_model, setup))))
    if reference:
        twin = transformers_twin(float_model, device, dtype)
        if setup.dtype == "int8":
            twin = quantize_int8(twin)
        candidates.append((name, "transformers", transformers_forward(twin, model.output_lengths)))
    rows = []
    medians = time_alternating([c[2] for c in candidates], inputs, device, setup.warmup, setup.repeats)
    for (label, implementation, forward), seconds in zip(candidates, medians):
        # ONNX Runtime allocates outside the malloc heap that PeakMemory reads: not measured.
        memory = None if implementation == "onnxruntime" else peak_memory(forward, inputs, device)
        rows.append(SpeedRow(
            model=label, implementation=implementation, family=model.config.family,
            params_m=round(float_model.num_parameters() / 1e6, 2), dtype=precision_label(setup),
            gmacs_per_audio_s=round(macs / audio_s / 1e9, 3),
            ms_per_utterance=round(1000 * seconds / len(setup.lengths), 2),
            audio_s_per_s=round(audio_s / seconds, 2), rtf=round(seconds / audio_s, 5),
            achieved_gflops=round(2 * macs / seconds / 1e9, 1),
            peak_memory_mb=None if memory is None else round(memory / 2**20, 1),
            grid_ms=grid_latency(forward, setup, device, dtype) if setup.grid else {},
        ))
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
        (seconds_taken,) = time_alternating([forward], [(x, n)], device, 1, setup.repeats)
        out[f"{batch}x{seconds:g}s"] = round(1000 * seconds_taken, 2)
    return out


def add_ratios(rows: list[SpeedRow], baseline: str | None) -> None:
    """Speed ratios of every row against the baseline model (ours) and against its transformers twin."""
    ours = {r.model: r for r in rows if r.implementation == "sew"}
    base = ours.get(baseline) if baseline else None
    for r in rows:
        if base is not None:
            r.speedup_vs_baseline = round(base.ms_per_utterance / r.ms_per_utterance, 3)
            r.macs_ratio_vs_baseline = round(base.gmacs_per_audio_s / r.gmacs_per_audio_s, 3)
        mine = ours.get(r.model)
        if mine is None:
            continue
        if r.implementation == "onnxruntime":
            r.onnx_speedup_vs_eager = round(mine.ms_per_utterance / r.ms_per_utterance, 3)
        if r.implementation == "sew-compiled":
            r.compiled_speedup_vs_eager = round(mine.ms_per_utterance / r.ms_per_utterance, 3)
        if r.implementation == "transformers":
            r.sew_speedup_vs_transformers = round(r.ms_per_utterance / mine.ms_per_utterance, 3)
