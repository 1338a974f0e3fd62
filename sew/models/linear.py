"""``Linear``: ``nn.Linear`` with a faster CPU inference path.

On CPUs PyTorch sends ``F.linear`` to MKL's SGEMM; oneDNN's matmul with a weight reordered once
into its blocked layout is faster on CPUs with AVX-512 (and the only bfloat16 kernel that is not
emulated), slower on AVX2-only ones. ``Linear`` takes that path where ``sew.cpu.capabilities()``
says oneDNN is the faster kernel for the dtype, when nothing needs gradients (``torch.no_grad`` or
``torch.inference_mode``) on a CPU input; ``F.linear`` otherwise (training, CUDA,
``torch.compile``, export, CPUs without the kernel). Both give the same numbers (1e-5).

The reordered weight is cached and rebuilt whenever the weight changes (an optimiser step,
``load_state_dict``, ``.to(dtype)``; fused optimisers, ``.data`` writes and in-place writes to
weights made under ``torch.inference_mode`` leave no trace, so ``train()`` / ``eval()`` and
``load_state_dict`` also drop it); it costs one extra copy of the linear weights in memory. The
parameters and state-dict keys are those of ``nn.Linear``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from sew.cpu import capabilities
from sew.models.lengths import eager_cpu_inference


def onednn_available(dtype: torch.dtype) -> bool:
    """Whether oneDNN has a packed product for ``dtype`` on this CPU."""
    caps = capabilities()
    return caps.onednn if dtype == torch.float32 else dtype == torch.bfloat16 and caps.onednn_bf16


def onednn_product(dtype: torch.dtype) -> bool:
    """Whether products in ``dtype`` go to oneDNN on this CPU: where it has the kernel and, in float32,
    where it is the faster one (``sew.cpu`` decides)."""
    caps = capabilities()
    if dtype == torch.float32:
        return caps.onednn_fp32
    return dtype == torch.bfloat16 and caps.onednn_bf16


def packed_path(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether a product of ``x`` with ``weight`` takes the oneDNN inference path."""
    # eager_cpu_inference first: under torch.compile it is False and the capability read is not traced.
    return x.dtype == weight.dtype and eager_cpu_inference(x) and onednn_product(x.dtype)


def weight_key(weight: torch.Tensor) -> tuple:
    """What identifies a weight's values for the cache; inference tensors (made under
    ``torch.inference_mode``) have no version counter, so only their storage and dtype count."""
    version = None if weight.is_inference() else weight._version
    return (weight.data_ptr(), version, weight.dtype, tuple(weight.shape))


class PackedWeightCache:
    """Mixin for modules that multiply by a weight on the oneDNN path: the reordered copy of one
    weight, cached and rebuilt when the weight's storage, version counter or dtype changes, and
    dropped by ``train()`` / ``eval()`` and ``load_state_dict``. Writes that bypass the version
    counter (``weight.data`` edits, fused optimisers, in-place writes to inference tensors) are seen
    at the next ``eval()``, or call ``clear_packed_weight()``."""

    def clear_packed_weight(self) -> None:
        self.__dict__.pop("_packed", None)
        self.__dict__.pop("_packed_key", None)

    def train(self, mode: bool = True):
        self.clear_packed_weight()
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs):
        self.clear_packed_weight()
        return super()._load_from_state_dict(*args, **kwargs)

    def _packed_weight(self, weight: torch.Tensor, as_matrix=None) -> torch.Tensor:
        """``weight`` (``as_matrix(weight)`` when given: ``[out, in]``) reordered for ``packed_linear``."""
        key = weight_key(weight)
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
    """``nn.Linear`` whose CPU inference runs on oneDNN with a cached reordered weight where that is faster."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if packed_path(x, self.weight):
            return packed_linear(x, self._packed_weight(self.weight), self.bias)
        return F.linear(x, self.weight, self.bias)
