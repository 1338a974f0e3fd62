"""Half-precision inference: a bfloat16 model takes float32 waveforms and stays close to float32, on
every CPU: converted for CPU inference through oneDNN's bfloat16 kernels where the CPU has them,
emulated elsewhere, and as the reference model."""

from __future__ import annotations

import pytest
import torch

import sew
from sew.cpu import capabilities, limit


def bf16_path(kind: str):
    if kind in ("fallback", "reference"):
        return limit(onednn=False)
    if not capabilities().onednn_bf16:
        pytest.skip(f"no oneDNN bfloat16 kernel on this CPU ({capabilities().describe()})")
    return limit()


@pytest.mark.parametrize("kind", ["native", "fallback", "reference"])
@pytest.mark.parametrize("preset", ["sew-d-micro", "sew-micro", "w2v2-micro"])
def test_bfloat16_model_accepts_float32_audio_and_tracks_float32(preset, kind):
    torch.manual_seed(0)
    model = sew.build_model(preset, vocab_size=12, num_layers=2).eval()
    model = model if kind == "reference" else sew.optimize_for_cpu(model)
    x = torch.randn(2, 24000) * 0.1
    lengths = torch.tensor([24000, 15000])
    with torch.inference_mode(), bf16_path(kind):
        want = model(x, lengths)
        got = model.to(torch.bfloat16)(x, lengths)  # float32 input: cast inside, after normalisation
    assert got.logits.dtype == torch.bfloat16 and torch.equal(got.lengths, want.lengths)
    valid = torch.arange(want.logits.shape[1])[None] < want.lengths[:, None]
    a, b = want.logits[valid], got.logits.float()[valid]
    assert torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1] > 0.99
    assert (a - b).abs().max() < 0.1 * a.abs().max()
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() > 0.9


def test_native_bfloat16_equals_the_fallback():
    """oneDNN's bfloat16 products against PyTorch's plain bfloat16 ones, on the same bfloat16 model."""
    torch.manual_seed(0)
    model = sew.optimize_for_cpu(sew.build_model("sew-d-micro", vocab_size=12, num_layers=2).to(torch.bfloat16))
    x, lengths = torch.randn(2, 24000) * 0.1, torch.tensor([24000, 15000])
    with torch.inference_mode(), bf16_path("native"):
        fast = model(x, lengths).logits.float()
    with torch.inference_mode(), limit(onednn=False):
        plain = model(x, lengths).logits.float()
    assert (fast - plain).abs().max() < 0.05 * plain.abs().max()
