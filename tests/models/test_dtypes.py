"""Half-precision inference: a bfloat16 model takes float32 waveforms and stays close to float32."""

from __future__ import annotations

import pytest
import torch

import sew


@pytest.mark.parametrize("preset", ["sew-d-micro", "sew-micro", "w2v2-micro"])
def test_bfloat16_model_accepts_float32_audio_and_tracks_float32(preset):
    torch.manual_seed(0)
    model = sew.build_model(preset, vocab_size=12, num_layers=2).eval()
    x = torch.randn(2, 24000) * 0.1
    lengths = torch.tensor([24000, 15000])
    with torch.inference_mode():
        want = model(x, lengths)
        got = model.to(torch.bfloat16)(x, lengths)  # float32 input: cast inside, after normalisation
    assert got.logits.dtype == torch.bfloat16 and torch.equal(got.lengths, want.lengths)
    valid = torch.arange(want.logits.shape[1])[None] < want.lengths[:, None]
    a, b = want.logits[valid], got.logits.float()[valid]
    assert torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1] > 0.99
    assert (a - b).abs().max() < 0.1 * a.abs().max()
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() > 0.9
