"""``sew.optimize_for_cpu``: the reference model with its CPU inference variants swapped in, sharing its
parameters, giving the reference's outputs on padded batches (1e-5)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import sew
from sew.inference import optimize_for_cpu
from sew.inference.attention import PackedTransformerStack, SegmentAttention, SegmentDisentangledAttention
from sew.inference.features import ChannelsLastFeatureExtractor
from sew.inference.packed import PackedLinear
from tests.models.helpers import padded_batch

LENGTHS = [16000, 12345, 4001, 719, 400, 9000]  # 400 and 719: one frame, nothing left after squeezing


@pytest.mark.parametrize("norm", ["group", "layer"])
@pytest.mark.parametrize("preset", ["sew-micro", "sew-d-micro", "w2v2-micro"])
def test_converted_equals_the_reference_on_padded_batches(preset, norm, cpu_path):
    torch.manual_seed(0)
    model = sew.build_model(preset, vocab_size=9, conv_norm=norm, conv_bias=norm == "layer").eval()
    fast = optimize_for_cpu(model)
    _, batch, lengths = padded_batch(LENGTHS)
    with torch.inference_mode():
        want = model(batch, lengths, output_hidden_states=True)
        got = fast(batch, lengths, output_hidden_states=True)
        unpadded = fast(batch[:1, :16000]), model(batch[:1, :16000])
    assert torch.equal(got.lengths, want.lengths)
    rate = model.config.squeeze_factor if model.config.squeezes else 1
    for i, n in enumerate(want.lengths.tolist()):
        assert (got.logits[i, :n] - want.logits[i, :n]).abs().max() <= 1e-5
        assert got.logits[i, n:].abs().max() == 0 if n < got.logits.shape[1] else True
        for a, b in zip(got.hidden_states, want.hidden_states):
            assert torch.allclose(a[i, : n // rate], b[i, : n // rate], rtol=0, atol=1e-5)
    assert (unpadded[0].logits - unpadded[1].logits).abs().max() <= 1e-5


def test_which_modules_run_and_that_they_share_the_parameters():
    model = sew.build_model("sew-d-micro", vocab_size=9)
    fast = optimize_for_cpu(model)
    assert type(model.feature_extractor).__name__ == "ConvFeatureExtractor"  # the original is untouched
    assert isinstance(fast.feature_extractor, ChannelsLastFeatureExtractor)
    assert isinstance(fast.context.transformer, PackedTransformerStack)
    assert all(isinstance(layer.attention, SegmentDisentangledAttention) for layer in fast.context.transformer.layers)
    linears = [m for m in fast.modules() if isinstance(m, (nn.Linear, PackedLinear))]
    assert linears and all(isinstance(m, PackedLinear) for m in linears) == sew.cpu.capabilities().onednn
    assert list(fast.state_dict()) == list(model.state_dict())
    assert {id(p) for p in fast.parameters()} == {id(p) for p in model.parameters()}
    w2v2 = optimize_for_cpu(sew.build_model("w2v2-micro"))
    assert all(type(layer.attention) is SegmentAttention for layer in w2v2.context.transformer.layers)
    with pytest.raises(ValueError, match="train the original model"):
        fast.train()


def test_the_converted_model_follows_the_training_of_the_original(cpu_path):
    torch.manual_seed(0)
    model = sew.build_model("w2v2-micro", vocab_size=6, num_layers=1)
    fast = optimize_for_cpu(model)
    x, lengths = torch.randn(2, 12000) * 0.1, torch.tensor([12000, 8000])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    with torch.inference_mode():
        before = fast(x, lengths).logits
    model.train()
    model(x, lengths).logits.pow(2).mean().backward()
    optimizer.step()
    model.eval()
    with torch.inference_mode():
        after, want = fast(x, lengths).logits, model(x, lengths).logits
    assert (after - before).abs().max() > 1e-3  # packed weights were rebuilt after the step
    for i, n in enumerate(fast(x, lengths).lengths.tolist()):
        assert (after[i, :n] - want[i, :n]).abs().max() <= 1e-5


def test_int8_and_gpu_models():
    model = sew.build_model("sew-d-micro", vocab_size=6, num_layers=1).eval()
    if sew.cpu.capabilities().int8:
        from sew.export import quantize_int8

        int8 = optimize_for_cpu(quantize_int8(model))
        assert not any(isinstance(m, PackedLinear) for m in int8.modules())  # quantised layers keep their kernel
        with torch.inference_mode():
            assert int8(torch.randn(1, 8000)).logits.shape[-1] == 6
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="on the CPU"):
            optimize_for_cpu(model.cuda())


def test_off_the_cpu_the_conversion_is_a_no_op():
    # Every caller that serves inference converts the same way, whatever the device (here the meta device
    # stands for a GPU): the model comes back itself, in eval mode, its modules not swapped.
    model = sew.build_model("sew-d-micro").to("meta").train()
    assert optimize_for_cpu(model) is model and not model.training
    assert isinstance(model.feature_extractor, nn.Module)
    assert not isinstance(model.feature_extractor, ChannelsLastFeatureExtractor)
    on_cpu = optimize_for_cpu(sew.build_model("sew-d-micro"))
    assert isinstance(on_cpu.feature_extractor, ChannelsLastFeatureExtractor)
