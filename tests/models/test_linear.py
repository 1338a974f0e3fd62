"""The oneDNN inference path of ``Linear``: same numbers as ``F.linear``, only where it is allowed."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

import sew
from sew.models.linear import Linear, packed_linear_enabled, set_packed_linear

pytestmark = pytest.mark.skipif(not packed_linear_enabled(), reason="torch built without oneDNN")


def calls(monkeypatch):
    seen = []
    real = torch.ops.mkldnn._linear_pointwise

    class Spy:
        def __call__(self, *args):
            seen.append(args[0].shape)
            return real(*args)

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", Spy())
    return seen


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_packed_path_equals_f_linear(monkeypatch, dtype):
    torch.manual_seed(0)
    layer = Linear(48, 80).to(dtype)
    x = torch.randn(3, 7, 48, dtype=dtype)
    seen = calls(monkeypatch)
    with torch.inference_mode():
        got = layer(x)
        strided = layer(x[:, ::2])  # non-contiguous input
    assert len(seen) == 2
    want = F.linear(x.float(), layer.weight.float(), layer.bias.float())
    tol = 1e-5 if dtype == torch.float32 else 3e-2
    assert got.dtype == dtype and (got.float() - want).abs().max() <= tol * want.abs().max()
    assert (strided.float() - want[:, ::2]).abs().max() <= tol * want.abs().max()


def test_training_and_gradients_use_f_linear(monkeypatch):
    layer = Linear(8, 4)
    seen = calls(monkeypatch)
    x = torch.randn(5, 8, requires_grad=True)
    layer(x).sum().backward()  # grad mode: the autograd path
    assert seen == [] and x.grad is not None and layer.weight.grad is not None
    previous = set_packed_linear(False)
    try:
        with torch.no_grad():
            layer(x)
        assert seen == []  # switched off
    finally:
        set_packed_linear(previous)


def test_cache_follows_weight_updates_dtype_and_copies():
    torch.manual_seed(0)
    layer = Linear(16, 16)
    x = torch.randn(4, 16)
    with torch.no_grad():
        layer(x)
        layer.weight.add_(1.0)  # in place (an optimiser step): repacked
        assert torch.allclose(layer(x), F.linear(x, layer.weight, layer.bias), atol=1e-5)
        layer.load_state_dict({"weight": torch.zeros(16, 16), "bias": torch.ones(16)})
        assert torch.allclose(layer(x), torch.ones(4, 16))
        clone = copy.deepcopy(layer)  # the cache is not copied, the clone packs its own
        assert "_packed" not in clone.__dict__ and torch.allclose(clone(x), torch.ones(4, 16))
        half = layer.to(torch.bfloat16)
        assert half(x.bfloat16()).dtype == torch.bfloat16


def test_cache_dropped_by_eval_and_not_pickled_after_compile():
    """Writes that leave no version trace (``.data`` edits, fused optimisers) show at ``eval()``;
    pickling keeps ``nn.Module``'s own rules (a compiled module pickles)."""
    import pickle

    from sew.models.features import ConvLayer

    torch.manual_seed(0)
    layer, conv = Linear(16, 16).eval(), ConvLayer(8, 16, 3, 2, None, True).eval()
    x, frames = torch.randn(4, 16), torch.randn(20, 8)
    with torch.no_grad():
        layer(x), conv.forward_channels_last(frames)
        layer.weight.data.mul_(0.5)
        conv.conv.weight.data.mul_(0.5)
        layer.eval(), conv.eval()
        assert torch.allclose(layer(x), F.linear(x, layer.weight, layer.bias), atol=1e-5)
        want = F.gelu(F.conv1d(frames.t()[None], conv.conv.weight, conv.conv.bias, stride=2))[0].t()
        assert torch.allclose(conv.forward_channels_last(frames), want, atol=1e-5)
    layer.compile()
    clone = pickle.loads(pickle.dumps(layer))
    assert "_packed" not in clone.__dict__ and "_compiled_call_impl" not in clone.__dict__


def test_models_agree_with_the_mkl_path():
    torch.manual_seed(0)
    x, lengths = torch.randn(2, 20000) * 0.1, torch.tensor([20000, 13000])
    for preset in ("sew-d-micro", "w2v2-micro"):
        model = sew.build_model(preset, vocab_size=10, num_layers=2).eval()
        with torch.inference_mode():
            fast = model(x, lengths).logits
            previous = set_packed_linear(False)
            try:
                slow = model(x, lengths).logits
            finally:
                set_packed_linear(previous)
        assert (fast - slow).abs().max() < 1e-5
