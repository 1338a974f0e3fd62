"""Padded batches give each utterance the same valid frames as alone (better than the reference ports)."""

from __future__ import annotations

import contextlib

import pytest
import torch

import sew
from sew.models.kernels import batched_kernels

from .helpers import padded_batch

# 400 and 719 samples give one frame (nothing left after squeezing); 4001 an odd frame count.
LENGTHS = [16000, 12345, 4001, 719, 400, 9000]


@pytest.mark.parametrize("convert", ["reference", "batched-kernels", "cpu-inference"])
@pytest.mark.parametrize("preset", ["sew-micro", "sew-d-micro", "w2v2-micro"])
@pytest.mark.parametrize("norm", ["group", "layer"])
def test_padded_batch_equals_single(preset, norm, convert):
    torch.manual_seed(0)
    model = sew.build_model(preset, vocab_size=9, conv_norm=norm, conv_bias=norm == "layer").eval()
    model = sew.optimize_for_cpu(model) if convert == "cpu-inference" else model
    waves, batch, lengths = padded_batch(LENGTHS)
    kernels = batched_kernels() if convert == "batched-kernels" else contextlib.nullcontext()
    with torch.no_grad(), kernels:
        out = model(batch, lengths, output_hidden_states=True)
        assert torch.isfinite(out.last_hidden_state).all()
        for i, wave in enumerate(waves):
            alone = model(wave[None], output_hidden_states=True)
            n = int(alone.lengths[0])
            assert n == int(out.lengths[i]) == alone.last_hidden_state.shape[1]
            assert (alone.last_hidden_state[0] - out.last_hidden_state[i, :n]).abs().max() <= 1e-5
            assert (alone.logits[0] - out.logits[i, :n]).abs().max() <= 1e-5
            # Frames past the valid length are exactly zero in the batch.
            assert out.last_hidden_state[i, n:].abs().max() == 0 if n < out.last_hidden_state.shape[1] else True


def test_normalized_input_is_batch_invariant():
    """Per-utterance waveform normalisation uses only the valid samples."""
    model = sew.build_model("sew-d-micro", conv_norm="layer", normalize_waveform=True).eval()
    waves, batch, lengths = padded_batch([8000, 3000], seed=3)
    with torch.no_grad():
        out = model(batch * 3 + 0.5 * (batch != 0), lengths)
        alone = model((waves[1] * 3 + 0.5)[None])
    n = int(alone.lengths[0])
    assert (alone.last_hidden_state[0] - out.last_hidden_state[1, :n]).abs().max() <= 1e-5


@pytest.mark.parametrize("preset", ["sew-micro", "sew-d-micro", "w2v2-micro"])
def test_hidden_states(preset):
    model = sew.build_model(preset).eval()
    x = torch.randn(2, 8000)
    with torch.no_grad():
        out = model(x, output_hidden_states=True)
        up = model(x, output_hidden_states=True, upsample_hidden_states=True)
    cfg = model.config
    assert len(out.hidden_states) == cfg.num_layers + 1
    frames = out.last_hidden_state.shape[1]
    rate = cfg.squeeze_factor if cfg.squeezes else 1
    assert all(h.shape == (2, frames // rate, cfg.hidden_size) for h in out.hidden_states)
    assert all(h.shape == (2, frames, cfg.hidden_size) for h in up.hidden_states)
    if cfg.squeezes:  # nearest-neighbour upsampling of the squeezed states
        assert torch.equal(up.hidden_states[1][:, 0::2], out.hidden_states[1])
        assert torch.equal(up.hidden_states[1][:, 1::2], out.hidden_states[1])


@pytest.mark.parametrize("preset", ["sew-micro", "sew-d-micro", "w2v2-micro"])
def test_layerdrop_and_dropout_only_in_training(preset):
    model = sew.build_model(preset, layerdrop=0.5, hidden_dropout=0.2, attention_dropout=0.2)
    x = torch.randn(1, 8000)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x).last_hidden_state, model(x).last_hidden_state)
    model.train()
    torch.manual_seed(0)
    a = model(x).last_hidden_state
    torch.manual_seed(1)
    b = model(x).last_hidden_state
    assert not torch.equal(a, b)
