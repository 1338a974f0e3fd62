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

import torch

from sew.models.lengths import compiling

_forced_batched: list[bool] = []


def tracing() -> bool:
    """True while any tracer records the model (``torch.compile``, ``torch.export`` / ONNX, ``torch.jit``)."""
    return compiling() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def per_utterance(x: torch.Tensor) -> bool:
    """Whether the per-utterance CPU kernels serve ``x``: on a CPU, eager, not inside ``batched_kernels()``."""
    return x.device.type == "cpu" and not _forced_batched and not tracing()


@contextmanager
def batched_kernels():
    """Run the batched kernels everywhere inside the block (the plain path)."""
    _forced_batched.append(True)
    try:
        yield
    finally:
        _forced_batched.pop()
