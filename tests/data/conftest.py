"""Helpers for the data tests: small audio files written into tmp dirs, and the CLI."""

from __future__ import annotations

import argparse
import filecmp
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def tone(seconds: float, rate: int = 16000, freq: float = 220.0, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A quiet tone plus noise, ``[T]`` or ``[T, C]`` float32."""
    t = np.arange(int(round(seconds * rate))) / rate
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))
    x = x.astype(np.float32)
    return np.stack([x, -x * 0.5], axis=1) if channels == 2 else x


def write_audio(path: Path, seconds: float = 0.5, rate: int = 16000, channels: int = 1, **kw) -> Path:
    """Write a tone to ``path``; the format follows the suffix (.wav, .flac, .ogg)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(seconds, rate, channels=channels, **kw), rate)
    return path


@pytest.fixture
def audio():
    """The helpers above, for tests (test modules are not importable as a package)."""
    return argparse.Namespace(tone=tone, write=write_audio)


@pytest.fixture
def cli(capsys):
    """Run ``sew ARGS`` in process; return (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = _main([str(a) for a in argv])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def _main(argv: list[str]) -> int:
    from sew.cli import main

    return main(argv)


def tree_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file())


@pytest.fixture
def same_bytes():
    """``same_bytes(a, b)`` asserts that two directory trees hold the same files with the same bytes
    (the generators' determinism across worker counts)."""
    def check(a, b):
        assert tree_files(a) == tree_files(b)
        _, mismatch, errors = filecmp.cmpfiles(a, b, tree_files(a), shallow=False)
        assert not mismatch and not errors, mismatch
    return check
