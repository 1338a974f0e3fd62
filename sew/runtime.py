"""Process-wide settings for fast CPU work: how glibc's malloc treats PyTorch's large buffers, and
how many compiled kernels oneDNN keeps (``keep_onednn_kernels``: many for inference, few for
training).

PyTorch's CPU allocator has no cache: every activation is a fresh ``malloc`` and a ``free``. glibc
serves blocks above its mmap threshold (at most 32 MiB) with a fresh ``mmap``, so each such
buffer is page-faulted in again on every forward pass, and ``free`` hands it back to the kernel.
In a virtual machine that is expensive for models with large activations (wav2vec 2.0 base:
docs/cpu-paths.md).

``keep_freed_memory()`` tells glibc to serve every block from its heap and not to trim it, so freed
buffers are reused without faults. The cost: the process keeps its peak heap until it exits. The
``sew`` command applies it at start (``SEW_MALLOC_TUNING=0`` opts out); a library user calls it,
or sets ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647`` in the environment, or preloads
jemalloc / tcmalloc, which do the same job.
"""

from __future__ import annotations

import ctypes
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_applied = False


def keep_freed_memory() -> bool:
    """Serve all allocations from glibc's heap and keep freed memory for reuse.

    Returns True when the setting is in force (glibc), False where it cannot be applied (another
    C library) or ``SEW_MALLOC_TUNING=0`` asks not to.
    """
    global _applied
    if _applied:
        return True
    if os.environ.get("SEW_MALLOC_TUNING", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        # mallopt takes a C int: the largest trim threshold is INT_MAX (2 GiB of free heap top).
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    except (OSError, AttributeError):
        return False
    _applied = ok
    return ok


INFERENCE_KERNELS = 4096
TRAINING_KERNELS = 256
_ENV_KERNELS = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
_user_kernels: str | None = None  # the environment's capacity before sew set one ("" when unset)


def keep_onednn_kernels(capacity: int = INFERENCE_KERNELS) -> int:
    """Let oneDNN keep ``capacity`` compiled kernels (its default: 1024) unless the environment sets
    ``ONEDNN_PRIMITIVE_CACHE_CAPACITY``; returns the capacity in force.

    oneDNN compiles a kernel per product shape and reads the capacity once, when it builds its first
    kernel, so call this before any oneDNN product runs; the ``sew`` command does at start, choosing
    by what the command does:

    * inference (``INFERENCE_KERNELS``): evicting a kernel costs 0.3-2 ms to rebuild it, and even with
      rows padded to shared sizes (``sew.inference.packed``) a SEW-D over a corpus of clips uses more
      than 1024 (13 conv layers times the sizes its lengths pass through, for each model);
    * training (``TRAINING_KERNELS``): nearly every batch has a length of its own, so kernels are
      rarely reused across updates, and a process whose cache fills up with thousands of them trains
      more slowly as it goes (docs/cpu-paths.md); 256 still holds several updates' kernels (a SEW-D
      micro update uses 31 distinct ones).
    """
    global _user_kernels
    if _user_kernels is None:
        _user_kernels = os.environ.get(_ENV_KERNELS, "")
    os.environ.setdefault(_ENV_KERNELS, str(capacity))
    return int(os.environ[_ENV_KERNELS])


def inference_kernels() -> int:
    """The capacity a process that runs models should have: the environment's, when it set one before
    ``keep_onednn_kernels`` did, else ``INFERENCE_KERNELS`` (for ``sew.bench.timing.in_fresh_process``)."""
    user = os.environ.get(_ENV_KERNELS, "") if _user_kernels is None else _user_kernels
    return int(user) if user else INFERENCE_KERNELS


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without one is an error."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    return name


def malloc_tuned() -> bool:
    """Whether this process keeps freed memory (set by ``keep_freed_memory`` or glibc's environment variables)."""
    return _applied or os.environ.get("MALLOC_MMAP_MAX_") == "0"
