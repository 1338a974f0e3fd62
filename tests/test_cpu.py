"""``sew.cpu``: the levels read from CPU flags, the capabilities that follow, and playing a lesser CPU."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sew import cpu

ZEN3 = frozenset("fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2".split())
ZEN4 = ZEN3 | {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni", "avx512_bf16"}
SKYLAKE_X = ZEN3 | {"avx512f", "avx512bw", "avx512vl", "avx512dq"}
SAPPHIRE_RAPIDS = ZEN4 | {"amx_bf16", "amx_tile", "amx_int8"}


@pytest.mark.parametrize("flags, level", [
    (frozenset({"sse2", "avx"}), "baseline"), (ZEN3, "avx2"), (SKYLAKE_X, "avx512"), (ZEN4, "avx512_bf16"),
    (SAPPHIRE_RAPIDS, "amx"), (ZEN3 | {"avx512f"}, "avx2"),  # AVX-512 F alone is not oneDNN's avx512_core
])
def test_x86_levels_from_flags(flags, level):
    assert cpu.isa_level("x86_64", flags) == level


def test_arm_levels_from_flags():
    assert cpu.isa_level("arm64", frozenset({"fp", "asimd"})) == "neon"
    assert cpu.isa_level("arm64", frozenset({"fp", "asimd", "bf16"})) == "neon_bf16"


@pytest.mark.parametrize("level, fp32, bf16, native, int8", [
    ("baseline", False, False, False, False), ("avx2", False, False, False, True),
    ("avx512", True, True, False, True), ("avx512_bf16", True, True, True, True),
])
def test_what_each_x86_level_may_use(level, fp32, bf16, native, int8):
    caps = cpu._derive("x86_64", "test", level, "amx", True, ZEN3, limited=True)
    assert (caps.onednn_fp32, caps.onednn_bf16, caps.bf16_native) == (fp32, bf16, native)
    assert caps.int8 == (int8 and cpu._has_int8_engine("x86_64"))
    assert caps.bf16_kind == ("native" if native else "emulated")


def test_limit_plays_a_lesser_cpu_and_restores():
    before = cpu.capabilities()
    with cpu.limit(onednn=False) as caps:
        assert cpu.capabilities() is caps and not caps.onednn and not caps.onednn_fp32 and not caps.onednn_bf16
        if before.arch == "x86_64":
            with cpu.limit("baseline") as lesser:
                assert lesser.isa == "baseline" and not lesser.int8 and not lesser.onednn
                assert "playing baseline" in lesser.describe()
            assert cpu.capabilities() is caps
    assert cpu.capabilities() == before


def test_limit_refuses_more_than_the_hardware():
    caps = cpu.capabilities()
    if caps.arch != "x86_64":
        pytest.skip("x86 levels")
    higher = [lvl for lvl in cpu.X86_LEVELS if cpu.X86_LEVELS.index(lvl) > cpu.X86_LEVELS.index(caps.isa)]
    if higher:
        with pytest.raises(ValueError, match="only a lesser level"):
            with cpu.limit(higher[0]):
                pass
    with pytest.raises(ValueError, match="unknown CPU level"):
        with cpu.limit("avx9"):
            pass
    with pytest.raises(ValueError, match="takes capabilities away"):
        with cpu.limit(onednn=True):
            pass


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_environment_plays_a_lesser_cpu_for_the_whole_process():
    caps = cpu.capabilities()
    if caps.arch != "x86_64":
        pytest.skip("x86 levels")
    show = "from sew import cpu; c = cpu.capabilities(); print(c.isa, c.onednn, c.onednn_fp32, c.onednn_bf16)"
    out = run_python(show, SEW_CPU_ISA="avx2", SEW_CPU_ONEDNN="1")
    assert out.returncode == 0, out.stderr
    isa = "avx2" if caps.isa != "baseline" else "baseline"
    assert out.stdout.split() == [isa, str(caps.onednn), "False", "False"]
    off = run_python(show, SEW_CPU_ONEDNN="0")
    assert off.stdout.split()[1:] == ["False", "False", "False"]
    # PyTorch's own switch is honoured too: its kernels then run at that level.
    aten = run_python(show, ATEN_CPU_CAPABILITY="default")
    assert aten.stdout.split()[0] == "baseline"
    bad = run_python(show, SEW_CPU_ISA="avx9")
    assert bad.returncode != 0 and "SEW_CPU_ISA=avx9" in bad.stderr
