"""Conv features for CPU inference: one utterance at a time, channels last, equal to the batched convs."""

from __future__ import annotations

import pytest
import torch

import sew
from sew.inference.features import ChannelsLastFeatureExtractor, packed_conv
from sew.inference.packed import PackedWeight
from sew.models.features import group_norm_channels_last
from tests.models.helpers import padded_batch

LENGTHS = [16000, 12345, 4001, 719, 400, 9000]


@pytest.mark.parametrize("norm", ["group", "layer"])
def test_channels_last_equals_the_batched_convs(norm, cpu_path):
    torch.manual_seed(0)
    extractor = sew.build_model("sew-d-micro", conv_norm=norm, conv_bias=norm == "layer").feature_extractor
    fast = ChannelsLastFeatureExtractor(extractor)
    _, batch, lengths = padded_batch(LENGTHS)
    with torch.no_grad():
        each, each_lengths = fast(batch, lengths)
        batched, batched_lengths = extractor(batch, lengths)
    assert torch.equal(each_lengths, batched_lengths) and each.shape == batched.shape
    for i, n in enumerate(each_lengths.tolist()):
        assert (each[i, :, :n] - batched[i, :, :n]).abs().max() <= 1e-5
        assert each[i, :, n:].abs().max() == 0 if n < each.shape[-1] else True


def test_channels_last_group_norm_keeps_group_norm_precision():
    """The first-layer GroupNorm over a long utterance (80k frames, a DC offset) is as accurate as
    ``F.group_norm`` against float64 (``F.batch_norm``'s statistics were 8x worse)."""
    from sew.models.features import MaskedGroupNorm

    torch.manual_seed(0)
    norm = MaskedGroupNorm(16)
    x = 100 + 0.01 * torch.randn(80000, 16)
    with torch.no_grad():
        exact = torch.nn.functional.group_norm(x.double().t()[None], 16, eps=norm.eps)[0].t()
        fast = (group_norm_channels_last(norm, x).double() - exact).abs().max()
        plain = (torch.nn.functional.group_norm(x.t()[None], 16, eps=norm.eps)[0].t().double() - exact).abs().max()
    assert fast <= 2 * plain


def test_copied_conv_windows_in_blocks_of_rows(monkeypatch, cpu_path):
    """Overlapping conv windows are copied a block of rows at a time (bounded memory): same features."""
    import sew.inference.features as features

    torch.manual_seed(0)
    extractor = sew.build_model("w2v2-micro").feature_extractor
    _, batch, lengths = padded_batch([16000, 9000])
    fast = ChannelsLastFeatureExtractor(extractor)
    with torch.no_grad():
        whole, _ = fast(batch, lengths)
        monkeypatch.setattr(features, "WINDOW_BYTES", 4096)  # a few rows per block, a ragged last one
        blocks, frame_lengths = fast(batch, lengths)
        batched, _ = extractor(batch, lengths)
    assert (whole - blocks).abs().max() <= 1e-5  # MKL's blocking depends on the row count
    for i, n in enumerate(frame_lengths.tolist()):
        assert (blocks[i, :, :n] - batched[i, :, :n]).abs().max() <= 1e-5


def test_one_layer_channels_last_equals_conv1d(cpu_path):
    from sew.models.features import ConvLayer

    torch.manual_seed(0)
    conv = ConvLayer(8, 16, 3, 2, None, True).eval()
    frames = torch.randn(20, 8)
    with torch.no_grad():
        got = packed_conv(conv, frames, PackedWeight())
        want = torch.nn.functional.gelu(torch.nn.functional.conv1d(frames.t()[None], conv.conv.weight,
                                                                   conv.conv.bias, stride=2))[0].t()
    assert (got - want).abs().max() <= 1e-5
