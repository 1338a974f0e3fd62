"""What this CPU and this torch build can do: the one place every CPU fast path asks.

``capabilities()`` describes the machine: the architecture, an instruction-set level, whether
oneDNN is there and has bfloat16 kernels on this CPU, whether bfloat16 arithmetic is native
(AVX512-BF16, AMX or Arm BF16) or emulated through float32, whether a dynamic int8 engine runs,
and which float32 matrix-product kernel is the faster here.

A lesser CPU can be played, for tests and for users comparing paths:

    with sew.cpu.limit(isa="avx2"):        # as an AVX2-only machine (Zen 3)
        ...
    with sew.cpu.limit(onednn=False):      # every oneDNN fast path off: the plain PyTorch paths
        ...

or for a whole process with ``SEW_CPU_ISA=avx2`` (and ``SEW_CPU_ONEDNN=0``). ``limit`` only ever
takes capabilities away, except ``onednn_fp32=True``, which asks for oneDNN's float32 product where
the rule below prefers MKL's (both exist on every x86 CPU with oneDNN).

The float32 rule: oneDNN's product on a packed weight where the CPU has AVX-512 (there it is much
faster than MKL's SGEMM), MKL elsewhere (on AVX2-only CPUs MKL is the faster one); the measurements
are in docs/cpu-paths.md.
"""

from __future__ import annotations

import os
import platform
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache

import torch

# x86 instruction-set levels, lowest first. "avx512" is oneDNN's avx512_core (F, BW, VL, DQ);
# "avx512_bf16" adds native bfloat16 dot products (Zen 4, Cooper Lake); "amx" adds AMX tiles.
X86_LEVELS = ("baseline", "avx2", "avx512", "avx512_bf16", "amx")
ARM_LEVELS = ("neon", "neon_bf16")
_ENV_ISA, _ENV_ONEDNN = "SEW_CPU_ISA", "SEW_CPU_ONEDNN"


@dataclass(frozen=True)
class CpuCapabilities:
    """What the CPU fast paths may use. Fields are what is in force (after any ``limit``)."""

    arch: str  # "x86_64", "arm64" or what platform.machine() says
    model: str  # the CPU's name
    isa: str  # instruction-set level in force: one of X86_LEVELS / ARM_LEVELS ("unknown" elsewhere)
    detected_isa: str  # the level the hardware has
    onednn: bool  # oneDNN's packed matrix product is usable (torch built with it)
    onednn_fp32: bool  # float32 products go to oneDNN (faster on this CPU) rather than MKL
    onednn_bf16: bool  # oneDNN has bfloat16 kernels on this CPU (AVX-512 or AVX-NE-CONVERT or Arm BF16)
    bf16_native: bool  # bfloat16 arithmetic in hardware; otherwise bfloat16 runs emulated through float32
    int8: bool  # a dynamic int8 quantised linear engine runs here (fbgemm needs AVX2; qnnpack on Arm)
    limited: bool = False  # a lesser CPU is being played (limit() or SEW_CPU_ISA)

    @property
    def bf16_kind(self) -> str:
        """How bfloat16 runs here: ``native`` or ``emulated``."""
        return "native" if self.bf16_native else "emulated"

    def describe(self) -> str:
        """One line for logs and result files."""
        paths = [name for name, on in (("oneDNN fp32", self.onednn_fp32), ("oneDNN bf16", self.onednn_bf16),
                                       ("int8", self.int8)) if on]
        notes = [f"playing {self.isa}; hardware {self.detected_isa}"] if self.isa != self.detected_isa else []
        if self.limited and not self.onednn and detect().onednn:
            notes.append("oneDNN off")
        played = f" ({'; '.join(notes)})" if notes else ""
        return (f"{self.model}, {self.arch} {self.isa}{played}; bf16 {self.bf16_kind}; "
                f"fast paths: {', '.join(paths) or 'none'}")

    def as_dict(self) -> dict:
        return {"arch": self.arch, "isa": self.isa, "detected_isa": self.detected_isa, "onednn": self.onednn,
                "onednn_fp32": self.onednn_fp32, "onednn_bf16": self.onednn_bf16, "bf16": self.bf16_kind,
                "int8": self.int8, "limited": self.limited}


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags the kernel reports (``/proc/cpuinfo``: x86 ``flags``, Arm ``Features``)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "CPU part"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def architecture() -> str:
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return "x86_64"
    if machine in ("aarch64", "arm64"):
        return "arm64"
    return machine


def isa_level(arch: str, flags: frozenset[str]) -> str:
    """The highest level of ``X86_LEVELS`` / ``ARM_LEVELS`` whose features are all in ``flags``."""
    if arch == "arm64":
        return "neon_bf16" if "bf16" in flags else "neon"
    if arch != "x86_64":
        return "unknown"
    level = "baseline"
    if {"avx2", "fma"} <= flags:
        level = "avx2"
        if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
            level = "avx512"
            if "avx512_bf16" in flags:
                level = "avx512_bf16"
                if "amx_bf16" in flags:
                    level = "amx"
    return level


def _torch_level(arch: str) -> str | None:
    """The level PyTorch's own kernels run at (``ATEN_CPU_CAPABILITY`` lowers it), as ours."""
    if arch != "x86_64":
        return None
    capability = torch.backends.cpu.get_cpu_capability().upper()
    if capability.startswith("AVX512"):
        return None  # as high as ours can say
    return "avx2" if capability == "AVX2" else "baseline"


def _level_index(isa: str) -> int:
    levels = X86_LEVELS if isa in X86_LEVELS else ARM_LEVELS
    return levels.index(isa)


def _min_level(a: str, b: str | None) -> str:
    if b is None or a == "unknown":
        return a
    return a if _level_index(a) <= _level_index(b) else b


@lru_cache(maxsize=1)
def detect() -> CpuCapabilities:
    """The hardware and build as they are (no limits), read once per process."""
    arch, flags = architecture(), cpu_flags()
    isa = isa_level(arch, flags)
    onednn = bool(torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
                  and hasattr(torch.ops.mkldnn, "_reorder_linear_weight"))
    return _derive(arch, cpu_model(), isa, isa, onednn, flags)


def _has_int8_engine(arch: str) -> bool:
    engines = torch.backends.quantized.supported_engines
    return any(e in engines for e in (("x86", "fbgemm") if arch == "x86_64" else ("qnnpack",)))


def _derive(arch: str, model: str, isa: str, detected: str, onednn: bool, flags: frozenset[str],
            limited: bool = False) -> CpuCapabilities:
    """The capabilities that follow from a level (the hardware's, or a lesser one being played)."""
    if arch == "x86_64":
        rank = _level_index(isa)
        avx512 = rank >= X86_LEVELS.index("avx512")
        # oneDNN converts bf16 on AVX-512 cores, or uses AVX-NE-CONVERT (newer AVX2 cores).
        onednn_bf16 = onednn and (avx512 or ("avx_ne_convert" in flags and not limited))
        bf16_native = rank >= X86_LEVELS.index("avx512_bf16")
        int8 = _has_int8_engine(arch) and rank >= X86_LEVELS.index("avx2")
        onednn_fp32 = onednn and avx512
    elif arch == "arm64":
        bf16_native = isa == "neon_bf16"
        onednn_bf16 = onednn and bf16_native
        int8 = _has_int8_engine(arch)
        onednn_fp32 = False  # not measured on Arm: PyTorch's own choice
    else:
        bf16_native = onednn_bf16 = int8 = onednn_fp32 = False
    if onednn_bf16 and not limited:  # trust the build's own check where the hardware is not limited
        onednn_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return CpuCapabilities(arch, model, isa, detected, onednn, onednn_fp32, onednn_bf16, bf16_native, int8, limited)


def _limited(base: CpuCapabilities, isa: str | None, onednn: bool | None, onednn_fp32: bool | None) -> CpuCapabilities:
    caps = base
    if isa is not None and isa != caps.isa:
        levels = X86_LEVELS if caps.arch == "x86_64" else ARM_LEVELS
        if isa not in levels:
            raise ValueError(f"unknown CPU level {isa!r} for {caps.arch}; choose one of {', '.join(levels)}")
        if _level_index(isa) > _level_index(caps.isa):
            raise ValueError(f"cannot play {isa}: this CPU runs at {caps.isa}; only a lesser level can be played")
        caps = _derive(caps.arch, caps.model, isa, caps.detected_isa, caps.onednn, cpu_flags(), limited=True)
    if onednn is False:
        caps = replace(caps, onednn=False, onednn_fp32=False, onednn_bf16=False, limited=True)
    if onednn_fp32 is not None:
        if onednn_fp32 and not caps.onednn:
            raise ValueError("onednn_fp32=True: oneDNN is not usable here (torch built without it, or switched off)")
        caps = replace(caps, onednn_fp32=bool(onednn_fp32))
    return caps


def _from_environment(base: CpuCapabilities) -> CpuCapabilities:
    isa = os.environ.get(_ENV_ISA, "").strip().lower() or None
    torch_isa = _torch_level(base.arch)
    if torch_isa is not None and _level_index(torch_isa) < _level_index(base.isa):
        isa = _min_level(torch_isa, isa)
    onednn = False if os.environ.get(_ENV_ONEDNN, "1").strip() == "0" else None
    try:
        return _limited(base, isa, onednn, None)
    except ValueError as err:
        raise ValueError(f"{_ENV_ISA}={os.environ.get(_ENV_ISA)}: {err}") from err


def onednn_available(dtype: torch.dtype) -> bool:
    """Whether oneDNN has a packed matrix product for ``dtype`` on this CPU."""
    caps = capabilities()
    return caps.onednn if dtype == torch.float32 else dtype == torch.bfloat16 and caps.onednn_bf16


def onednn_product(dtype: torch.dtype) -> bool:
    """Whether products in ``dtype`` go to oneDNN on this CPU: where it has the kernel and, in float32,
    where it is the faster one (the rule in the module docstring)."""
    caps = capabilities()
    if dtype == torch.float32:
        return caps.onednn_fp32
    return dtype == torch.bfloat16 and caps.onednn_bf16


_stack: list[CpuCapabilities] = []


def capabilities() -> CpuCapabilities:
    """What the CPU fast paths may use now: the hardware, less ``SEW_CPU_ISA`` / ``limit``."""
    if _stack:
        return _stack[-1]
    return _process_capabilities()


@lru_cache(maxsize=1)
def _process_capabilities() -> CpuCapabilities:
    return _from_environment(detect())


@contextmanager
def limit(isa: str | None = None, *, onednn: bool | None = None, onednn_fp32: bool | None = None):
    """Play a lesser CPU inside the block: ``isa`` (a lower level, e.g. ``"avx2"``), ``onednn=False``
    (no oneDNN fast path), ``onednn_fp32`` (True/False: oneDNN or MKL for float32 products)."""
    if onednn is True:
        raise ValueError("limit() takes capabilities away; onednn=True is what the hardware decides")
    _stack.append(_limited(capabilities(), isa, onednn, onednn_fp32))
    try:
        yield _stack[-1]
    finally:
        _stack.pop()
