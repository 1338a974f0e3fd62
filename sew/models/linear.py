"""``Linear``: ``nn.Linear`` with a faster CPU inference path.

On CPUs PyTorch sends ``F.linear`` to MKL's SGEMM; oneDNN's matmul with a weight reordered once
into its blocked layout runs the same product much faster on some CPUs (measured on a 2-core AMD
EPYC, 4744 x 768 by 768 x 3072: 291 GFLOP/s against 164 in float32, 810 against 675 in
bfloat16). ``Linear`` takes that path when nothing needs gradients (``torch.no_grad`` or
``torch.inference_mode``) on a CPU float32 / bfloat16 input, and ``F.linear`` otherwise (training,
CUDA, ``torch.compile``, export). The reordered weight is cached and rebuilt whenever the weight
changes (an optimiser step, ``load_state_dict``, ``.to(dtype)``; fused optimisers and ``.data``
writes leave no trace, so ``train()`` / ``eval()`` also drop it); it costs one extra copy of the
linear weights in memory. The parameters and state-dict keys are those of ``nn.Linear``.

``set_packed_linear(False)`` (or ``SEW_PACKED_LINEAR=0``) turns the path off, e.g. to compare.
"""

from __future__ import annotations

import os

import torch
from torch import nn
from torch.nn import functional as F

from sew.models.lengths import eager_cpu_inference

_AVAILABLE = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
_enabled = os.environ.get("SEW_PACKED_LINEAR", "1") != "0"
_DTYPES = (torch.float32, torch.bfloat16)


def set_packed_linear(enabled: bool) -> bool:
    """Turn the oneDNN inference path of every ``Linear`` on or off; returns the previous setting."""
    global _enabled
    previous, _enabled = _enabled, bool(enabled)
    return previous


def packed_linear_enabled() -> bool:
    return _enabled and _AVAILABLE


def packed_path(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether a product of ``x`` with ``weight`` takes the oneDNN inference path."""
    return packed_linear_enabled() and x.dtype == weight.dtype and x.dtype in _DTYPES and eager_cpu_inference(x)


class PackedWeightCache:
    """Mixin for modules that multiply by a weight on the oneDNN path: the reordered copy of one
    weight, cached and rebuilt when the weight's storage, version counter or dtype changes, and
    dropped by ``train()`` / ``eval()``. Writes that bypass the version counter (``weight.data``
    edits, fused optimisers) are seen at the next ``eval()``, or call ``clear_packed_weight()``."""

    def clear_packed_weight(self) -> None:
        self.__dict__.pop("_packed", None)
        self.__dict__.pop("_packed_key", None)

    def train(self, mode: bool = True):
        self.clear_packed_weight()
        return super().train(mode)

    def _packed_weight(self, weight: torch.Tensor, as_matrix=None) -> torch.Tensor:
        """``weight`` (``as_matrix(weight)`` when given: ``[out, in]``) reordered for ``packed_linear``."""
        key = (weight.data_ptr(), weight._version, weight.dtype)
        if self.__dict__.get("_packed_key") != key:
            matrix = weight.detach() if as_matrix is None else as_matrix(weight.detach())
            self.__dict__["_packed"] = torch.ops.mkldnn._reorder_linear_weight(matrix.contiguous(), None)
            self.__dict__["_packed_key"] = key
        return self.__dict__["_packed"]

    def __getstate__(self):  # deepcopy / pickling: the cache is rebuilt on demand
        state = super().__getstate__()
        state.pop("_packed", None)
        state.pop("_packed_key", None)
        return state


def packed_linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


class Linear(PackedWeightCache, nn.Linear):
    """``nn.Linear`` whose CPU inference runs on oneDNN with a cached reordered weight (see the module)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if packed_path(x, self.weight):
            return packed_linear(x, self._packed_weight(self.weight), self.bias)
        return F.linear(x, self.weight, self.bias)
