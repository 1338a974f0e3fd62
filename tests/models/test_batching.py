"""Padded batches give each utterance the same valid frames as alone (better than the reference ports)."""

from __future__ import annotations

import pytest
import torch

import sew

from .helpers import padded_batch

# 400 and 719 samples give one frame (nothing left after squeezing); 4001 an odd frame count.
LENGTHS = [16000, 12345, 4001, 719, 400, 9000]


@pytest.mark.parametrize("preset", ["sew-micro", "sew-d-micro", "w2v2-micro"])
@pytest.mark.parametrize("norm", ["group", "layer"])
def test_padded_batch_equals_single(preset, norm):
    torch.manual_seed(0)
    model = sew.build_model(preset, vocab_size=9, conv_norm=norm, conv_bias=norm == "layer").eval()
    waves, batch, lengths = padded_batch(LENGTHS)
    with torch.no_grad():
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


@pytest.mark.parametrize("preset", ["sew-micro", "sew-d-micro", "w2v2-micro"])
def test_packed_inference_equals_masked_batch(preset, monkeypatch, cpu_path):
    """CPU inference packs a padded batch's valid frames (no work on padding); the masked batch
    (what training and CUDA run) gives the same valid frames and hidden states."""
    torch.manual_seed(0)
    model = sew.build_model(preset, vocab_size=9).eval()
    stack = model.context.transformer
    calls = []
    packed_forward = stack._forward_packed
    monkeypatch.setattr(stack, "_forward_packed", lambda *a: calls.append(1) or packed_forward(*a))
    _, batch, lengths = padded_batch(LENGTHS)
    with torch.no_grad():
        packed = model(batch, lengths, output_hidden_states=True)
    assert calls == [1]
    masked = model(batch, lengths, output_hidden_states=True)  # gradients on: the masked batch
    assert calls == [1]
    rate = model.config.squeeze_factor if model.config.squeezes else 1
    for i, n in enumerate(packed.lengths.tolist()):
        assert (packed.logits[i, :n] - masked.logits[i, :n]).abs().max() <= 1e-5
        for a, b in zip(packed.hidden_states, masked.hidden_states):
            assert torch.allclose(a[i, : n // rate], b[i, : n // rate], rtol=0, atol=1e-5)


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


@pytest.mark.parametrize("norm", ["group", "layer"])
def test_feature_extractor_one_by_one_equals_batched(norm, cpu_path):
    """CPU inference runs the conv stack utterance by utterance; the batched path (training) agrees."""
    torch.manual_seed(0)
    model = sew.build_model("sew-d-micro", conv_norm=norm, conv_bias=norm == "layer")
    extractor = model.feature_extractor
    _, batch, lengths = padded_batch(LENGTHS)
    with torch.no_grad():
        assert extractor.one_by_one(batch) and extractor.one_by_one(batch[:1])
        each, each_lengths = extractor(batch, lengths)
    assert not extractor.one_by_one(batch)  # gradients on: batched
    batched, batched_lengths = extractor(batch, lengths)
    assert torch.equal(each_lengths, batched_lengths) and each.shape == batched.shape
    for i, n in enumerate(each_lengths.tolist()):
        assert (each[i, :, :n] - batched[i, :, :n]).abs().max() <= 1e-5
        assert each[i, :, n:].abs().max() == 0 if n < each.shape[-1] else True


def test_channels_last_group_norm_keeps_group_norm_precision():
    """The one-by-one path's first-layer GroupNorm over a long utterance (80k frames, a DC offset)
    is as accurate as ``F.group_norm`` against float64 (``F.batch_norm``'s statistics were 8x worse)."""
    from sew.models.features import MaskedGroupNorm

    torch.manual_seed(0)
    norm = MaskedGroupNorm(16)
    x = 100 + 0.01 * torch.randn(80000, 16)
    with torch.no_grad():
        exact = torch.nn.functional.group_norm(x.double().t()[None], 16, eps=norm.eps)[0].t()
        fast = (norm.channels_last(x).double() - exact).abs().max()
        batched = (norm(x.t()[None], None)[0].t().double() - exact).abs().max()
    assert fast <= 2 * batched


def test_copied_conv_windows_in_blocks_of_rows(monkeypatch, cpu_path):
    """Overlapping conv windows are copied a block of rows at a time (bounded memory): same features."""
    import sew.models.features as features

    torch.manual_seed(0)
    extractor = sew.build_model("w2v2-micro").feature_extractor
    _, batch, lengths = padded_batch([16000, 9000])
    with torch.no_grad():
        whole, _ = extractor(batch, lengths)
        monkeypatch.setattr(features, "WINDOW_BYTES", 4096)  # a few rows per block, a ragged last one
        blocks, frame_lengths = extractor(batch, lengths)
    assert (whole - blocks).abs().max() <= 1e-5  # MKL's blocking depends on the row count
    batched, _ = extractor(batch, lengths)  # gradients on: the batched convs
    for i, n in enumerate(frame_lengths.tolist()):
        assert (blocks[i, :, :n] - batched[i, :, :n]).abs().max() <= 1e-5
