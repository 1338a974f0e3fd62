"""Common serving patterns around the weight caches of the CPU inference modules: a model loaded and
converted under ``torch.inference_mode`` (a decorated load-and-predict function), ``no_grad``,
``.to(dtype)``, ``load_state_dict`` and ``torch.compile`` of the original, on the oneDNN path (where
the CPU has it) and the plain one."""

from __future__ import annotations

import pytest
import torch

import sew
from sew.checkpoint import save_model
from sew.cpu import capabilities, limit


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = sew.build_model("sew-d-micro", vocab_size=10, num_layers=2).eval()
    directory = tmp_path_factory.mktemp("model")
    save_model(model, directory)
    x, lengths = torch.randn(2, 16000) * 0.1, torch.tensor([16000, 11000])
    with torch.no_grad(), limit(onednn=False):
        want = model(x, lengths).logits
    return directory, x, lengths, want


def test_load_convert_and_run_under_inference_mode(cpu_path, saved):
    directory, x, lengths, want = saved

    @torch.inference_mode()
    def predict(path):
        model = sew.optimize_for_cpu(sew.load_model(path))
        first = model(x, lengths).logits
        return model, first, model(x, lengths).logits  # the second call reuses the packed weights

    model, first, again = predict(directory)
    assert (first - want).abs().max() < 1e-5 and torch.equal(first, again)
    # New weights loaded under inference_mode into the same parameters (no version counter):
    other = {k: torch.zeros_like(v) if k.startswith("ctc_head.") else v for k, v in model.state_dict().items()}
    with torch.inference_mode():
        model.load_state_dict(other)
        assert torch.equal(model(x, lengths).logits, torch.zeros_like(want))


def test_no_grad_dtype_and_state_dict_changes(cpu_path, saved):
    directory, x, lengths, want = saved
    original = sew.load_model(directory)
    model = sew.optimize_for_cpu(original)
    with torch.no_grad():
        assert (model(x, lengths).logits - want).abs().max() < 1e-5
        model.to(torch.bfloat16)
        half = model(x, lengths).logits
        assert half.dtype == torch.bfloat16 and (half.float() - want).abs().max() < 0.1 * want.abs().max()
        model.to(torch.float32)
        original.load_state_dict(sew.load_model(directory).state_dict())  # into the shared parameters
        assert (model(x, lengths).logits - want).abs().max() < 1e-5


@pytest.mark.slow
def test_the_original_compiles_after_the_converted_one_ran(saved):
    directory, x, lengths, want = saved
    model = sew.load_model(directory).eval()
    with torch.inference_mode():
        with limit(onednn_fp32=True) if capabilities().onednn else limit():
            sew.optimize_for_cpu(model)(x, lengths)  # pack the weights first, then compile the original
        compiled = torch.compile(model, backend="aot_eager", dynamic=True)
        assert (compiled(x, lengths).logits - want).abs().max() < 1e-5
