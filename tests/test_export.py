"""ONNX export: dynamic batch and time, same outputs as PyTorch (skipped without the onnx extra)."""

from __future__ import annotations

import pytest
import torch

import sew
from sew.checkpoint import save_model
from sew.cli import main

pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("preset", ["sew-d-micro", "w2v2-micro"])  # SEW goes through the CLI test
def test_onnx_matches_pytorch_on_several_lengths(tmp_path, preset):
    from sew.export import MIN_SAMPLES, check_onnx, export_onnx, onnx_session, run_onnx

    torch.manual_seed(0)
    model = sew.build_model(preset, vocab_size=9, num_layers=1).eval()
    path = export_onnx(model, tmp_path / "model.onnx")
    assert check_onnx(path, model) <= 1e-4  # padded batches of 1 x 0.5 s, 3 x 1.5 s, 2 x 5 s
    # The shortest input the graph takes (1360 samples: 4 frames, 2 squeezed frames).
    x = torch.randn(1, MIN_SAMPLES)
    logits, frames = run_onnx(onnx_session(path), x, torch.tensor([MIN_SAMPLES]))
    with torch.no_grad():
        want = model(x)
    assert frames.tolist() == want.lengths.tolist() == [4]
    assert (logits - want.logits).abs().max() <= 1e-4


def test_cli_export_onnx(tmp_path, capsys):
    save_model(sew.build_model("sew-micro", num_layers=1), tmp_path / "model")
    assert main(["export", "onnx", "--model", str(tmp_path / "model"), "--out", str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    assert "dynamic batch and time" in out and "max |difference|" in out  # exit 0: within 1e-4
    assert (tmp_path / "m.onnx").is_file() and (tmp_path / "m.onnx.data").is_file()
