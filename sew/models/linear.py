"""``Linear``: ``nn.Linear`` with a faster CPU inference path.

On CPUs PyTorch sends ``F.linear`` to MKL's SGEMM; oneDNN's matmul with a weight reordered once
into its blocked layout runs the same product much faster on some CPUs (measured on a 2-core AMD
EPYC, 4744 x 768 by 768 x 3072: 291 GFLOP/s against 164 in float32, 810 against 675 in
bfloat16). ``Linear`` takes that path when nothing needs gradients (``torch.no_grad`` or
``torch.inference_mode``) on a CPU float32 / bfloat16 input, and ``F.linear`` otherwise (training,
CUDA, ``torch.compile``, export). The reordered weight is cached and rebuilt whenever the weight
changes (an optimiser step, ``load_state_dict``, ``.to(dtype)``); it costs one extra copy of the
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


class Linear(nn.Linear):
    """``nn.Linear`` whose CPU inference runs on oneDNN with a cached reordered weight (see the module)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        if _enabled and _AVAILABLE and x.dtype == w.dtype and x.dtype in _DTYPES and eager_cpu_inference(x):
            return torch.ops.mkldnn._linear_pointwise(x, self._packed_weight(), self.bias, "none", [], "")
        return F.linear(x, w, self.bias)

    def _packed_weight(self) -> torch.Tensor:
        w = self.weight
        key = (w.data_ptr(), w._version, w.dtype)
        if self.__dict__.get("_packed_key") != key:
            self.__dict__["_packed"] = torch.ops.mkldnn._reorder_linear_weight(w.detach(), None)
            self.__dict__["_packed_key"] = key
        return self.__dict__["_packed"]

    def __getstate__(self):  # deepcopy / pickling: the cache is rebuilt on demand
        state = self.__dict__.copy()
        state.pop("_packed", None)
        state.pop("_packed_key", None)
        return state
