"""``PackedLinear``: oneDNN products on a packed weight, the same numbers as ``F.linear``, only where the CPU has it.

Each fast path has two twins: the fallback, forced by ``sew.cpu.limit`` and run on every machine,
and the native one, run where the CPU has the kernel and skipped with the reason elsewhere.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

import sew
from sew.cpu import capabilities, limit, onednn_product
from sew.inference.packed import PackedLinear, padded_rows


def Linear(*args) -> PackedLinear:  # noqa: N802 - an nn.Linear converted for inference
    return PackedLinear(torch.nn.Linear(*args))

DTYPES = [torch.float32, torch.bfloat16]
TOL = {torch.float32: 1e-5, torch.bfloat16: 3e-2}


def onednn_calls(monkeypatch):
    """Record the inputs of every oneDNN product (the torch op, not our code)."""
    seen = []
    real = torch.ops.mkldnn._linear_pointwise

    class Spy:
        def __call__(self, *args):
            seen.append(args[0].shape)
            return real(*args)

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", Spy())
    return seen


def native(dtype):
    """``limit`` forcing the oneDNN path for ``dtype``, or a skip saying why this CPU cannot take it."""
    caps = capabilities()
    if dtype == torch.float32 and not caps.onednn:
        pytest.skip("torch built without oneDNN")
    if dtype == torch.bfloat16 and not caps.onednn_bf16:
        pytest.skip(f"no oneDNN bfloat16 kernel on this CPU ({caps.describe()})")
    return limit(onednn_fp32=True) if dtype == torch.float32 else limit()


def check_layer(layer, x, dtype):
    with torch.inference_mode():
        got, strided = layer(x), layer(x[:, ::2])  # contiguous and strided inputs
    want = F.linear(x.float(), layer.weight.float(), layer.bias.float())
    assert got.dtype == dtype
    assert (got.float() - want).abs().max() <= TOL[dtype] * want.abs().max()
    assert (strided.float() - want[:, ::2]).abs().max() <= TOL[dtype] * want.abs().max()


@pytest.mark.parametrize("dtype", DTYPES)
def test_native_onednn_path_equals_f_linear(monkeypatch, dtype):
    torch.manual_seed(0)
    layer, x = Linear(48, 80).to(dtype), torch.randn(3, 7, 48).to(dtype)
    with native(dtype):
        seen = onednn_calls(monkeypatch)
        check_layer(layer, x, dtype)
    assert len(seen) == 2


def test_padded_rows_waste_at_most_an_eighth_and_give_eight_sizes_an_octave():
    sizes = [padded_rows(rows) for rows in range(70_000)]
    for rows, size in enumerate(sizes):
        assert rows <= size <= rows + max(15, rows // 8), rows
    assert padded_rows(padded_rows(1234)) == padded_rows(1234)
    for low in (256, 1024, 32768):  # every octave from 256 rows maps onto at most 8 (+1: its top) sizes
        assert len({s for s in sizes[low:2 * low]}) <= 9


@pytest.mark.parametrize("dtype", DTYPES)
def test_native_onednn_pads_new_lengths_onto_shared_shapes(monkeypatch, dtype):
    """Clips of 100 different lengths reach oneDNN as a few shapes (one kernel each), same numbers."""
    torch.manual_seed(0)
    layer = Linear(48, 80).to(dtype)
    with native(dtype):
        seen = onednn_calls(monkeypatch)
        for frames in range(1000, 1100):
            x = torch.randn(1, frames, 48).to(dtype)
            check_layer(layer, x, dtype)
            with torch.inference_mode():
                assert layer(x).shape == (1, frames, 80)
    rows = {shape[:-1].numel() for shape in seen}  # the strided halves: 500-549 rows
    assert rows <= {512, 544, 576, 1024, 1088, 1152} and {shape[-1] for shape in seen} == {48}


@pytest.mark.parametrize("dtype", DTYPES)
def test_fallback_without_onednn_equals_f_linear_on_any_cpu(monkeypatch, dtype):
    torch.manual_seed(0)
    layer, x = Linear(48, 80).to(dtype), torch.randn(3, 7, 48).to(dtype)
    seen = onednn_calls(monkeypatch)
    with limit(onednn=False):
        check_layer(layer, x, dtype)
        with torch.inference_mode():
            assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))
    assert seen == []


def test_float32_goes_to_onednn_only_with_avx512():
    """The measured rule: oneDNN float32 beats MKL with AVX-512 and loses to it on AVX2."""
    with limit("avx2"):
        assert not onednn_product(torch.float32) and not onednn_product(torch.bfloat16)
    caps = capabilities()
    if caps.arch == "x86_64":
        assert onednn_product(torch.float32) == (caps.onednn and caps.isa not in ("baseline", "avx2"))


def test_converted_layers_refuse_training():
    with pytest.raises(ValueError, match="train the original model"):
        Linear(8, 4).train()


@pytest.mark.parametrize("fast", [True, False], ids=["native", "fallback"])
def test_cache_follows_weight_updates_dtype_and_copies(fast):
    if fast and not capabilities().onednn:
        pytest.skip("torch built without oneDNN")
    torch.manual_seed(0)
    layer = Linear(16, 16)
    x = torch.randn(4, 16)
    with limit(onednn_fp32=True) if fast else limit(onednn=False), torch.no_grad():
        layer(x)
        layer.weight.add_(1.0)  # in place (an optimiser step): repacked
        assert torch.allclose(layer(x), F.linear(x, layer.weight, layer.bias), atol=1e-5)
        layer.load_state_dict({"weight": torch.zeros(16, 16), "bias": torch.ones(16)})
        assert torch.allclose(layer(x), torch.ones(4, 16))
        clone = copy.deepcopy(layer)  # the cache is not copied, the clone packs its own
        assert clone.packed.value is None and torch.allclose(clone(x), torch.ones(4, 16))
        half = layer.to(torch.bfloat16)  # bfloat16: oneDNN where it has the kernel, emulated elsewhere
        assert half(x.bfloat16()).dtype == torch.bfloat16
        assert torch.allclose(half(x.bfloat16()).float(), torch.ones(4, 16))


@pytest.mark.parametrize("fast", [True, False], ids=["native", "fallback"])
def test_cache_dropped_by_eval_and_not_pickled_after_compile(fast):
    """Writes that leave no version trace (``.data`` edits, fused optimisers) show at ``eval()``;
    a packed weight is neither pickled nor deep-copied."""
    import pickle

    from sew.inference.features import ChannelsLastFeatureExtractor
    from sew.models.features import ConvFeatureExtractor

    if fast and not capabilities().onednn:
        pytest.skip("torch built without oneDNN")
    torch.manual_seed(0)
    layer = Linear(16, 16).eval()
    reference = ConvFeatureExtractor([(16, 3, 2)], norm="layer", bias=True)
    conv = ChannelsLastFeatureExtractor(reference).eval()
    x, wave, full = torch.randn(4, 16), torch.randn(1, 40), torch.tensor([40])
    with limit(onednn_fp32=True) if fast else limit(onednn=False), torch.no_grad():
        layer(x), conv(wave, full)
        layer.weight.data.mul_(0.5)
        reference.layers[0].conv.weight.data.mul_(0.5)
        layer.eval(), conv.eval()
        assert torch.allclose(layer(x), F.linear(x, layer.weight, layer.bias), atol=1e-5)
        assert torch.allclose(conv(wave, full)[0], reference(wave, full)[0], atol=1e-5)
    clone = pickle.loads(pickle.dumps(layer))
    assert clone.packed.value is None and copy.deepcopy(layer).packed.value is None


def test_models_agree_between_onednn_and_the_plain_path():
    if not capabilities().onednn:
        pytest.skip("torch built without oneDNN")
    torch.manual_seed(0)
    x, lengths = torch.randn(2, 20000) * 0.1, torch.tensor([20000, 13000])
    for preset in ("sew-d-micro", "w2v2-micro"):
        model = sew.optimize_for_cpu(sew.build_model(preset, vocab_size=10, num_layers=2))
        with torch.inference_mode():
            with limit(onednn_fp32=True):
                fast = model(x, lengths).logits
            with limit(onednn=False):
                slow = model(x, lengths).logits
        assert (fast - slow).abs().max() < 1e-5
