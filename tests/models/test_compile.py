"""torch.compile: the encoder traces as one graph (no breaks) and the compiled model equals eager."""

from __future__ import annotations

import pytest
import torch

import sew

CASES = [("sew-micro", False), ("w2v2-micro", False), ("sew-d-micro", False), ("sew-d-micro", True)]


@pytest.mark.parametrize("preset,train", CASES)
def test_one_graph_no_breaks(preset, train):
    torch._dynamo.reset()
    model = sew.build_model(preset, vocab_size=8, num_layers=2, layerdrop=0.5 if train else 0.0).train(train)
    x, lengths = torch.randn(2, 12000), torch.tensor([12000, 7000])
    with torch.set_grad_enabled(train):
        explained = torch._dynamo.explain(model)(x, lengths)
    assert explained.graph_break_count == 0, [str(b.reason)[:200] for b in explained.break_reasons]
    assert explained.graph_count == 1


def test_compiled_equals_eager_on_several_lengths():
    torch._dynamo.reset()
    model = sew.build_model("sew-d-micro", vocab_size=8, num_layers=1).eval()
    compiled = torch.compile(model, backend="aot_eager", dynamic=True)
    with torch.no_grad():
        for n in (9000, 16000, 23457):
            x, lengths = torch.randn(2, n), torch.tensor([n, n - 3000])
            assert (compiled(x, lengths).logits - model(x, lengths).logits).abs().max() <= 1e-5
