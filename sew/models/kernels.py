"""Which kernel a reference module runs, chosen the way ``scaled_dot_product_attention`` chooses its
backend: by device and tracing state, never by grad mode, so training and inference take the same one.

* On a CPU, in eager mode, the conv feature extractor runs one utterance at a time over its valid
  samples, channels last, each conv one window product (``ConvLayer.forward_frames``), and the
  transformer stack runs a padded batch packed: valid frames only, attention per utterance
  (``TransformerStack.forward``, ``attend_segments``). No work on padding, no masks, and faster
  than the batched kernels forward and backward.
* On GPUs, and whenever a tracer records the model (``torch.compile``, ONNX export, ``torch.jit``),
  the batched, shape-generic kernels run: one graph for any lengths.

``batched_kernels()`` forces the batched kernels inside a block, to compare the two (``sew bench
train-speed`` rows ``sew-plain``) and in tests.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

import torch

# Set only by ``batched_kernels()`` for the block it wraps (per thread and task, as a context variable).
_batched: ContextVar[bool] = ContextVar("sew_batched_kernels", default=False)


def compiling() -> bool:
    """True while ``torch.compile`` / ``torch.export`` traces the model: checks that read values on the host
    are skipped then."""
    return torch.compiler.is_compiling()


def exporting_onnx() -> bool:
    """True while the ONNX exporter records the model (some kernels are spelled out for it)."""
    return torch.onnx.is_in_onnx_export()


def tracing() -> bool:
    """True while any tracer records the model (``torch.compile``, ``torch.export`` / ONNX, ``torch.jit``)."""
    return compiling() or torch.jit.is_tracing() or exporting_onnx()


def per_utterance(x: torch.Tensor) -> bool:
    """Whether the per-utterance CPU kernels serve ``x``: on a CPU, eager, not inside ``batched_kernels()``.
    The one place that decides; ``compiling``, ``exporting_onnx`` and ``tracing`` are the only readers of
    the tracers' state in the models."""
    return not tracing() and x.device.type == "cpu" and not _batched.get()  # tracers never reach the variable


@contextmanager
def batched_kernels():
    """Run the batched kernels everywhere inside the block (the plain path), as
    ``torch.nn.attention.sdpa_kernel`` picks an attention backend for a block."""
    token = _batched.set(True)
    try:
        yield
    finally:
        _batched.reset(token)
