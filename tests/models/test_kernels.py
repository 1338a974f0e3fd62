"""The CPU kernels of the reference modules (``sew.models.kernels``) against the batched ones: the
same outputs on valid frames and the same gradients, per parameter, in training mode."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

import sew
from sew.models import kernels
from sew.models.kernels import batched_kernels

from .helpers import padded_batch

LENGTHS = [16000, 12345, 4001, 9000]


def ctc_gradients(model, batch, lengths):
    """Per-parameter gradients of a summed CTC loss (a plain user training step), and the logits."""
    model.zero_grad(set_to_none=True)
    out = model(batch, lengths)
    targets = torch.arange(1, 6).repeat(len(lengths), 1)
    log_probs = out.logits.log_softmax(-1).transpose(0, 1)
    loss = F.ctc_loss(log_probs, targets, out.lengths, torch.full((len(lengths),), 5), reduction="sum")
    loss.backward()
    return out, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("preset,norm", [("sew-d-micro", "group"), ("sew-micro", "group"), ("w2v2-micro", "group"),
                                         ("w2v2-micro", "layer")])
def test_cpu_kernels_match_batched_in_training(preset, norm):
    torch.manual_seed(0)
    model = sew.build_model(preset, vocab_size=9, conv_norm=norm, conv_bias=norm == "layer", hidden_dropout=0.0,
                            attention_dropout=0.0, activation_dropout=0.0, feature_dropout=0.0, final_dropout=0.0,
                            layerdrop=0.0).train()
    _, batch, lengths = padded_batch(LENGTHS)
    assert kernels.per_utterance(batch)
    fast_out, fast = ctc_gradients(model, batch, lengths)
    with batched_kernels():
        assert not kernels.per_utterance(batch)
        plain_out, plain = ctc_gradients(model, batch, lengths)
    # every parameter but the mask embedding (no time mask here) has a gradient on both paths
    assert fast.keys() == plain.keys() == {n for n, _ in model.named_parameters()} - {"mask_embedding"}
    for i, n in enumerate(fast_out.lengths.tolist()):
        assert (fast_out.logits[i, :n] - plain_out.logits[i, :n]).abs().max() <= 1e-5
    # Key biases get no gradient in exact arithmetic (softmax ignores a shift of a query's scores):
    # theirs is rounding noise, so those are held to the scale of the whole gradient instead.
    floor = 1e-4 * torch.cat([g.flatten() for g in plain.values()]).norm()
    for name, g in plain.items():
        error = float((fast[name] - g).norm() / torch.maximum(g.norm(), floor))
        assert error <= 1e-5, f"{name}: relative gradient difference {error:.2e}"


def test_feature_kernels_zero_padding_and_agree_on_valid_frames():
    torch.manual_seed(0)
    model = sew.build_model("w2v2-micro")
    _, batch, lengths = padded_batch(LENGTHS)
    fast, frames = model.feature_extractor(batch, lengths)
    with batched_kernels():
        plain, plain_frames = model.feature_extractor(batch, lengths)
    assert torch.equal(frames, plain_frames) and fast.shape == plain.shape
    for i, n in enumerate(frames.tolist()):
        assert (fast[i, :, :n] - plain[i, :, :n]).abs().max() <= 1e-5
        assert fast[i, :, n:].abs().max() == 0 if n < fast.shape[-1] else True


@pytest.mark.parametrize("preset", ["sew-d-micro", "w2v2-micro"])
def test_packed_stack_gives_the_batched_hidden_states(preset):
    torch.manual_seed(0)
    model = sew.build_model(preset).eval()
    _, batch, lengths = padded_batch(LENGTHS)
    with torch.no_grad():
        fast = model(batch, lengths, output_hidden_states=True)
        with batched_kernels():
            plain = model(batch, lengths, output_hidden_states=True)
    frames = fast.lengths // (model.config.squeeze_factor if model.config.squeezes else 1)
    assert len(fast.hidden_states) == len(plain.hidden_states) == model.config.num_layers + 1
    for mine, theirs in zip(fast.hidden_states, plain.hidden_states):
        assert mine.shape == theirs.shape
        for i, n in enumerate(frames.tolist()):
            assert (mine[i, :n] - theirs[i, :n]).abs().max() <= 1e-5


def test_tracers_take_the_batched_kernels(monkeypatch):
    x = torch.zeros(2, 400)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert not kernels.per_utterance(x)
    monkeypatch.undo()
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    assert not kernels.per_utterance(x)
    monkeypatch.undo()
    assert kernels.per_utterance(x)
    assert not kernels.per_utterance(x.to("meta"))  # not a CPU tensor


@pytest.mark.parametrize("kernel, stride", [(10, 5), (3, 2), (2, 2), (1, 1), (4, 1)])
def test_window_matrix_matches_unfold_forward_and_backward(kernel, stride):
    """The per-utterance conv windows: rows of ``kernel`` frames, ``stride`` apart, frame-major; the
    hand-written backward is autograd's gradient of the same windows made by ``unfold``."""
    from sew.models.features import window_matrix

    torch.manual_seed(0)
    x = torch.randn(23, 3, dtype=torch.double, requires_grad=True)
    reference = x.unfold(0, kernel, stride).transpose(1, 2).reshape(-1, kernel * 3)
    got = window_matrix(x, kernel, stride)
    assert torch.equal(got, reference)
    assert torch.autograd.gradcheck(lambda t: window_matrix(t, kernel, stride), (x,))
