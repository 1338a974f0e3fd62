"""Linear products on oneDNN with a weight reordered once into its blocked layout.

On CPUs with AVX-512 oneDNN's matmul on a pre-packed weight is much faster than MKL's SGEMM, and it
is the only native bfloat16 product; on AVX2-only CPUs MKL is the faster (``sew.cpu`` holds the
rule, docs/cpu-paths.md the measurements). ``PackedLinear`` asks ``sew.cpu`` per dtype and falls
back to ``F.linear``.

oneDNN builds (JIT-compiles) a kernel for each input shape and keeps the last 1024 in a cache. A corpus
gives every clip a new length, and a product on a shape not seen before costs 0.3-2 ms more than the
product itself (docs/cpu-paths.md), which made the packed path slower than MKL on short clips. So the
rows of a product are padded up to one of eight sizes per octave (``padded_rows``: at most 12.5%
more rows) and a stream of clips reuses a bounded set of kernels.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from sew.cpu import onednn_product


def weight_key(weight: torch.Tensor) -> tuple:
    """What identifies a weight's values for the cache; inference tensors (made under
    ``torch.inference_mode``) have no version counter, so only their storage and dtype count."""
    version = None if weight.is_inference() else weight._version
    return (weight.data_ptr(), version, weight.dtype, tuple(weight.shape))


class PackedWeight:
    """The reordered copy of one weight matrix, rebuilt when the weight's storage, version counter or
    dtype changes. Writes that bypass the version counter (``.data`` edits, fused optimisers,
    in-place writes to inference tensors) need ``clear()``; the modules holding one clear it on
    ``load_state_dict``. Not pickled or deep-copied (rebuilt on demand)."""

    def __init__(self) -> None:
        self.key, self.value = None, None

    def get(self, weight: torch.Tensor, as_matrix=None) -> torch.Tensor:
        """``weight`` (``as_matrix(weight)`` when given: ``[out, in]``) reordered for ``packed_linear``."""
        key = weight_key(weight)
        if self.key != key:
            matrix = weight.detach() if as_matrix is None else as_matrix(weight.detach())
            self.value = torch.ops.mkldnn._reorder_linear_weight(matrix.contiguous(), None)
            self.key = key
        return self.value

    def clear(self) -> None:
        self.key, self.value = None, None

    def __getstate__(self) -> dict:
        return {"key": None, "value": None}

    def __deepcopy__(self, memo) -> "PackedWeight":
        return PackedWeight()


def packed_linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


def padded_rows(rows: int) -> int:
    """``rows`` rounded up to a multiple of 1/8 to 1/16 of it (of 16 below 256): eight sizes per octave."""
    step = max(16, 1 << max(0, rows.bit_length() - 4))
    return -(-rows // step) * step


def linear_product(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, cache: PackedWeight,
                   as_matrix=None) -> torch.Tensor:
    """``x @ W.T + b`` on oneDNN where this CPU prefers it for the dtype, else ``F.linear``;
    ``as_matrix`` turns ``weight`` into the ``[out, in]`` matrix (a conv weight, say). On oneDNN the
    rows are zero-padded to ``padded_rows`` (the padding's outputs are cut off) so that the kernel
    built for one shape serves many lengths."""
    if x.dtype == weight.dtype and x.device.type == "cpu" and onednn_product(x.dtype):
        packed = cache.get(weight, as_matrix)
        features = x.shape[-1]
        rows = x.numel() // features if features else 0
        padded = padded_rows(rows)
        if padded == rows:
            return packed_linear(x, packed, bias)
        out = packed_linear(F.pad(x.reshape(rows, features), (0, 0, 0, padded - rows)), packed, bias)
        return out[:rows].view(*x.shape[:-1], out.shape[-1])
    return F.linear(x, weight if as_matrix is None else as_matrix(weight), bias)


class InferenceOnly:
    """Mixin: a module of a model converted for inference refuses ``train()`` (train the original)."""

    def train(self, mode: bool = True):
        if mode:
            raise ValueError("this model was converted for CPU inference (sew.optimize_for_cpu); train the "
                             "original model, which shares its parameters")
        return super().train(False)


class PackedLinear(InferenceOnly, nn.Module):
    """An ``nn.Linear``'s parameters (shared, same state-dict keys) with its product on oneDNN where faster."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight, linear.bias
        self.packed = PackedWeight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear_product(x, self.weight, self.bias, self.packed)

    def train(self, mode: bool = True):  # eval() also drops the cache: it sees .data writes then
        self.packed.clear()
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs):
        self.packed.clear()
        return super()._load_from_state_dict(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
