"""The CPU inference stack: attention within segments of packed frames, SEW-D's bias by blocks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sew.inference.attention import SegmentDisentangledAttention
from sew.models.disentangled import DisentangledAttention, relative_index
from tests.models.test_disentangled import BUCKETS, DIM, HEADS, MAX_POS, reference_attention


@pytest.mark.parametrize("pos_att_type,share", [(["c2p", "p2c"], True), (["c2p"], False), (["p2c"], True)])
def test_segments_equal_each_utterance_alone(pos_att_type, share):
    """Packed utterances use the middle offsets of the padded length's keys and a bias built by
    blocks of rows: each segment equals that utterance attended alone by the reference."""
    torch.manual_seed(0)
    attn = DisentangledAttention(DIM, HEADS, pos_att_type=pos_att_type, share_att_key=share).eval()
    segment = SegmentDisentangledAttention(attn, lambda linear: linear)
    table_full = torch.randn(2 * BUCKETS, DIM)
    lengths = [300, 1, 57, 140]  # 300 and 140 reach the log-bucketed rows and several row blocks
    xs = [torch.randn(1, n, DIM) for n in lengths]
    index = relative_index(max(lengths), BUCKETS, MAX_POS)
    ends = torch.tensor(lengths).cumsum(0).tolist()
    segments = list(zip([0] + ends[:-1], ends))
    with torch.no_grad():
        packed = segment(torch.cat(xs, 1), segments=segments, table=table_full[index.lo:index.hi],
                         by_offset=index.by_offset)
        for x, (start, end) in zip(xs, segments):
            alone = reference_attention(attn, x, torch.ones(1, x.shape[1], dtype=torch.bool), table_full)
            assert (packed[:, start:end] - alone).abs().max() <= 1e-5


def test_segment_modules_share_the_parameters():
    attn = DisentangledAttention(DIM, HEADS, share_att_key=False)
    segment = SegmentDisentangledAttention(attn, lambda linear: linear)
    assert {id(p) for p in segment.parameters()} == {id(p) for p in attn.parameters()}
    assert set(segment.state_dict()) == set(attn.state_dict())
    with pytest.raises(ValueError, match="converted for CPU inference"):
        segment.train()
    assert isinstance(segment.q_proj, nn.Linear)
