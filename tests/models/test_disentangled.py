"""SEW-D attention: the fused (Toeplitz view + SDPA) path equals the explicit-gather reference."""

from __future__ import annotations

import itertools

import pytest
import torch

from sew.models.disentangled import DisentangledAttention, log_bucket_positions, relative_index
from sew.models.lengths import lengths_to_mask


def reference_attention(attn: DisentangledAttention, x, key_mask, table, index):
    """Plain softmax attention with the gathered position terms, scores materialised."""
    q, k, v = attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
    b, t, _ = x.shape
    heads = lambda z: z.view(b, t, attn.heads, -1).transpose(1, 2)  # noqa: E731
    scores = heads(q) @ heads(k).transpose(-1, -2) * attn.scale
    if attn.c2p or attn.p2c:
        scores = scores + attn.position_bias_reference(q, k, table, index)
    scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    y = scores.softmax(-1) @ heads(v)
    return attn.out_proj(y.transpose(1, 2).reshape(b, t, -1))


CASES = list(itertools.product([["c2p", "p2c"], ["c2p"], ["p2c"]], [True, False], [(1, 1), (3, 37), (2, 100), (2, 300)]))


@pytest.mark.parametrize("pos_att_type,share,shape", CASES)
def test_fused_equals_reference(pos_att_type, share, shape):
    torch.manual_seed(0)
    batch, t = shape
    dim, heads, buckets, max_pos = 48, 4, 32, 128  # buckets small enough that 300 frames hit the log range
    attn = DisentangledAttention(dim, heads, pos_att_type=pos_att_type, share_att_key=share).eval()
    table_full = torch.randn(2 * buckets, dim)
    index = relative_index(t, buckets, max_pos)
    table = table_full[index.lo:index.hi]
    x = torch.randn(batch, t, dim)
    lengths = torch.randint(1, t + 1, (batch,))
    lengths[0] = t
    key_mask = lengths_to_mask(lengths, t)
    with torch.no_grad():
        fused = attn(x, key_mask=key_mask, table=table, index=index)
        ref = reference_attention(attn, x, key_mask, table, index)
        via_flag = attn(x, key_mask=key_mask, table=table, index=index, reference=True)
    valid = key_mask[..., None]
    assert ((fused - ref) * valid).abs().max() <= 1e-5
    assert ((via_flag - ref) * valid).abs().max() <= 1e-5


def test_fused_gradients_equal_reference():
    torch.manual_seed(0)
    attn = DisentangledAttention(32, 2, share_att_key=False)
    index = relative_index(20, 8, 32)
    table = torch.randn(index.hi - index.lo, 32, requires_grad=True)
    x = torch.randn(2, 20, 32)
    key_mask = lengths_to_mask(torch.tensor([20, 13]), 20)
    grads = []
    for reference in (False, True):
        attn.zero_grad()
        table.grad = None
        out = attn(x, key_mask=key_mask, table=table, index=index, reference=reference)
        (out * key_mask[..., None]).pow(2).sum().backward()
        grads.append([p.grad.clone() for p in attn.parameters()] + [table.grad.clone()])
    for a, b in zip(*grads):
        assert (a - b).abs().max() <= 1e-4 * max(1.0, b.abs().max().item())


def test_log_buckets():
    rel = torch.arange(-600, 601)
    buckets = log_bucket_positions(rel, 256, 512)
    assert torch.equal(buckets[abs(rel) <= 128], rel[abs(rel) <= 128])  # exact near the diagonal
    assert torch.equal(buckets, -buckets.flip(0))  # odd symmetry (p2c relies on it)
    assert (buckets.diff() >= 0).all()  # monotone
    # Offsets up to max_position - 1 stay inside the 512-row table around its centre; beyond, rows are clamped.
    assert buckets[rel.abs() < 512].abs().max() == 255
    index = relative_index(600, 256, 512)
    assert index.lo == 0 and index.hi == 512


def test_relative_index_rows():
    index = relative_index(10, 256, 512)
    # Offsets within +-9 use the 19 rows around the centre (256) of the table.
    assert (index.lo, index.hi) == (256 - 9, 256 + 10)
    i, j = 7, 2
    assert int(index.pairs[i, j]) + index.lo == 256 + (i - j)


def test_index_cached_under_inference_mode_still_trains():
    """The relative index is cached per length; a first call under inference_mode must not poison training."""
    import sew

    relative_index.cache_clear()
    model = sew.build_model("sew-d-micro", num_layers=1)
    x = torch.randn(1, 12345)
    with torch.inference_mode():
        model.eval()(x)
    model.train()(x).last_hidden_state.sum().backward()
    assert model.context.transformer.layers[0].attention.q_proj.weight.grad is not None


@pytest.mark.parametrize("pos_att_type,share", [(["c2p", "p2c"], True), (["c2p"], False), (["p2c"], True)])
def test_segments_equal_each_utterance_alone(pos_att_type, share):
    """Packed utterances (``segments``, the stack's inference path) use the middle offsets of the
    padded length's table: each segment equals that utterance attended alone with its own table."""
    torch.manual_seed(0)
    dim, heads, buckets, max_pos = 48, 4, 32, 128
    attn = DisentangledAttention(dim, heads, pos_att_type=pos_att_type, share_att_key=share).eval()
    table_full = torch.randn(2 * buckets, dim)
    lengths = [300, 1, 57, 140]  # 300 and 140 reach the log-bucketed rows
    xs = [torch.randn(1, n, dim) for n in lengths]
    t = max(lengths)
    index = relative_index(t, buckets, max_pos)
    ends = torch.tensor(lengths).cumsum(0).tolist()
    segments = list(zip([0] + ends[:-1], ends))
    with torch.no_grad():
        packed = attn(torch.cat(xs, 1), table=table_full[index.lo:index.hi], index=index, segments=segments)
        for x, (start, end) in zip(xs, segments):
            alone_index = relative_index(x.shape[1], buckets, max_pos)
            alone = reference_attention(attn, x, torch.ones(1, x.shape[1], dtype=torch.bool),
                                        table_full[alone_index.lo:alone_index.hi], alone_index)
            assert (packed[:, start:end] - alone).abs().max() <= 1e-5


@pytest.mark.parametrize("pos_att_type", [["c2p", "p2c"], ["c2p"], ["p2c"]])
@pytest.mark.parametrize("grad", [False, True])
def test_traced_position_bias_equals_reference(pos_att_type, grad):
    """Under torch.compile the bias is read in one block, as a view with gradients and by a gather
    without: both equal DeBERTa's explicit gathers over several lengths of one dynamic graph."""
    from sew.models.disentangled import traced_relative_index

    torch._dynamo.reset()
    torch.manual_seed(0)
    dim, heads, buckets, max_pos = 48, 4, 32, 128
    attn = DisentangledAttention(dim, heads, pos_att_type=pos_att_type, share_att_key=False).eval()
    table = torch.randn(2 * buckets, dim)

    def traced(q, k):
        index = traced_relative_index(q.shape[1], buckets, max_pos, q.device)
        return attn.position_bias(q, k, *attn.offset_keys(table, index))

    compiled = torch.compile(traced, backend="aot_eager", dynamic=True, fullgraph=True)
    for t in (5, 37, 150):  # 150 reaches the log-bucketed rows
        q, k = torch.randn(2, t, dim, requires_grad=grad), torch.randn(2, t, dim, requires_grad=grad)
        with torch.set_grad_enabled(grad):
            bias = compiled(q, k)
            ref = attn.position_bias_reference(q, k, table, traced_relative_index(t, buckets, max_pos, None))
        assert bias.shape == (2, heads, t, t)
        assert (bias - ref).abs().max() <= 1e-5
        if grad:
            grads = torch.autograd.grad(bias.pow(2).sum(), (q, k), allow_unused=True)
            ref_grads = torch.autograd.grad(ref.pow(2).sum(), (q, k), allow_unused=True)
            for g, g_ref in zip(grads, ref_grads):  # q unused without c2p, k without p2c
                assert (g is None) == (g_ref is None)
                if g is not None:
                    assert (g - g_ref).abs().max() <= 1e-4 * g_ref.abs().max()
