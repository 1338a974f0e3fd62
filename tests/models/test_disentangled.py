"""SEW-D attention: the Toeplitz-view position bias equals DeBERTa's explicit gathers, eagerly,
with gradients, and traced by torch.compile."""

from __future__ import annotations

import itertools

import pytest
import torch

from sew.models.disentangled import DisentangledAttention, log_bucket_positions, offset_rows, relative_index
from sew.models.lengths import lengths_to_mask

DIM, HEADS, BUCKETS, MAX_POS = 48, 4, 32, 128  # buckets small enough that 300 frames reach the log range


def gather_bias(attn: DisentangledAttention, q, k, table: torch.Tensor, t: int) -> torch.Tensor:
    """The position terms as DeBERTa computes them: scores against every table row, then a gather
    of row r(i, j) for each pair (the reference the fused computation must equal)."""
    index = relative_index(t, BUCKETS, MAX_POS)
    pairs = index.pairs + index.lo  # rows of the whole table
    heads = lambda z: z.view(z.shape[0], t, attn.heads, -1).transpose(1, 2)  # noqa: E731
    b = q.shape[0]
    pairs = pairs.expand(b, attn.heads, t, t)
    bias = 0
    if attn.c2p:
        bias = bias + torch.gather(heads(q) @ attn.position_keys(table, "k")[None].transpose(-1, -2), -1, pairs)
    if attn.p2c:
        p2c = heads(k) @ attn.position_keys(table, "q")[None].transpose(-1, -2)  # [batch, heads, keys, rows]
        bias = bias + torch.gather(p2c, -1, pairs.transpose(-1, -2)).transpose(-1, -2)
    return bias


def reference_attention(attn: DisentangledAttention, x, key_mask, table):
    """Plain softmax attention with the gathered position terms, scores materialised."""
    q, k, v = attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
    b, t, _ = x.shape
    heads = lambda z: z.view(b, t, attn.heads, -1).transpose(1, 2)  # noqa: E731
    scores = heads(q) @ heads(k).transpose(-1, -2) * attn.scale
    if attn.c2p or attn.p2c:
        scores = scores + gather_bias(attn, q, k, table, t)
    scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    y = scores.softmax(-1) @ heads(v)
    return attn.out_proj(y.transpose(1, 2).reshape(b, t, -1))


CASES = list(itertools.product([["c2p", "p2c"], ["c2p"], ["p2c"]], [True, False], [(1, 1), (3, 37), (2, 100), (2, 300)]))


@pytest.mark.parametrize("pos_att_type,share,shape", CASES)
def test_fused_equals_reference(pos_att_type, share, shape):
    torch.manual_seed(0)
    batch, t = shape
    attn = DisentangledAttention(DIM, HEADS, pos_att_type=pos_att_type, share_att_key=share).eval()
    table = torch.randn(2 * BUCKETS, DIM)
    x = torch.randn(batch, t, DIM)
    lengths = torch.randint(1, t + 1, (batch,))
    lengths[0] = t
    key_mask = lengths_to_mask(lengths, t)
    with torch.no_grad():
        fused = attn(x, key_mask=key_mask, table=table, by_offset=offset_rows(t, BUCKETS, MAX_POS))
        ref = reference_attention(attn, x, key_mask, table)
    valid = key_mask[..., None]
    assert ((fused - ref) * valid).abs().max() <= 1e-5


def test_fused_gradients_equal_reference():
    torch.manual_seed(0)
    attn = DisentangledAttention(32, 2, share_att_key=False)
    table = torch.randn(2 * BUCKETS, 32, requires_grad=True)
    x = torch.randn(2, 20, 32)
    key_mask = lengths_to_mask(torch.tensor([20, 13]), 20)
    grads = []
    for fused in (True, False):
        attn.zero_grad()
        table.grad = None
        if fused:
            out = attn(x, key_mask=key_mask, table=table, by_offset=offset_rows(20, BUCKETS, MAX_POS))
        else:
            out = reference_attention(attn, x, key_mask, table)
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
    assert torch.equal(index.by_offset + index.lo, offset_rows(10, 256, 512))


def test_index_cached_under_inference_mode_still_trains():
    """The host index is cached per length; a first call under inference_mode (the CPU inference
    modules) must not poison training."""
    import sew

    relative_index.cache_clear()
    model = sew.build_model("sew-d-micro", num_layers=1)
    x = torch.randn(1, 12345)
    with torch.inference_mode():
        sew.optimize_for_cpu(model)(x)
    model.train()(x).last_hidden_state.sum().backward()
    assert model.context.transformer.layers[0].attention.q_proj.weight.grad is not None


@pytest.mark.parametrize("pos_att_type", [["c2p", "p2c"], ["c2p"], ["p2c"]])
@pytest.mark.parametrize("grad", [False, True])
def test_traced_position_bias_equals_reference(pos_att_type, grad):
    """Under torch.compile the bias (index computed in the graph, Toeplitz view) equals DeBERTa's
    explicit gathers over several lengths of one dynamic graph, values and gradients."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    attn = DisentangledAttention(DIM, HEADS, pos_att_type=pos_att_type, share_att_key=False).eval()
    table = torch.randn(2 * BUCKETS, DIM)

    def traced(q, k):
        return attn.position_bias(q, k, *attn.offset_keys(table, offset_rows(q.shape[1], BUCKETS, MAX_POS)))

    compiled = torch.compile(traced, backend="aot_eager", dynamic=True, fullgraph=True)
    for t in (5, 37, 150):  # 150 reaches the log-bucketed rows
        q, k = torch.randn(2, t, DIM, requires_grad=grad), torch.randn(2, t, DIM, requires_grad=grad)
        with torch.set_grad_enabled(grad):
            bias = compiled(q, k)
            ref = gather_bias(attn, q, k, table, t)
        assert bias.shape == (2, HEADS, t, t)
        assert (bias - ref).abs().max() <= 1e-5
        if grad:
            grads = torch.autograd.grad(bias.pow(2).sum(), (q, k), allow_unused=True)
            ref_grads = torch.autograd.grad(ref.pow(2).sum(), (q, k), allow_unused=True)
            for g, g_ref in zip(grads, ref_grads):  # q unused without c2p, k without p2c
                assert (g is None) == (g_ref is None)
                if g is not None:
                    assert (g - g_ref).abs().max() <= 1e-4 * g_ref.abs().max()
