"""The speed harness: batching, analytical FLOPs, rows and files."""

from __future__ import annotations

import json

import pytest

import sew
from sew.bench.flops import encoder_macs, gmacs_per_second
from sew.bench.speed import SpeedSetup, add_ratios, measure
from sew.bench.timing import length_sorted_batches, utterance_lengths
from sew.cli import main


def test_length_sorted_batches_cover_everything_within_budget():
    lengths = utterance_lengths(40, seed=3)
    assert len(set(lengths)) > 30 and min(lengths) >= 1.5 * 16000 and max(lengths) <= 25 * 16000
    batches = length_sorted_batches(lengths, max_tokens=800_000)
    assert sorted(i for b in batches for i in b) == list(range(40))
    for b in batches:
        assert len(b) * max(lengths[i] for i in b) <= 800_000 or len(b) == 1
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat, reverse=True)


def test_analytical_macs_match_the_published_figures():
    # wav2vec 2.0 base: 7.4 GMAC per second of audio; SEW-D-mid about 2.7 (batch of 4 x 10 s).
    assert gmacs_per_second(sew.load_config("w2v2-base"), 10.0) == pytest.approx(7.41, abs=0.01)
    assert gmacs_per_second(sew.load_config("sew-d-mid"), 10.0, batch=4) == pytest.approx(2.66, abs=0.01)
    parts = encoder_macs(sew.load_config("sew-d-mid"), 160000)
    assert parts["features"] / 10 / 1e9 == pytest.approx(0.33, abs=0.01)  # WFE-C c64, as the reference notes
    assert parts["total"] == pytest.approx(sum(v for k, v in parts.items() if k != "total"))


def test_measure_rows_and_ratios():
    setup = SpeedSetup(lengths=[16000, 9000, 20000], max_tokens=40000, repeats=1, warmup=0, grid=[(1, 0.5)])
    rows = measure("sew-d-micro", sew.build_model("sew-d-micro", vocab_size=8, num_layers=1), setup)
    rows += measure("w2v2-micro", sew.build_model("w2v2-micro", vocab_size=8, num_layers=1), setup, reference=False)
    add_ratios(rows, "w2v2-micro")
    assert [(r.model, r.implementation) for r in rows] == [
        ("sew-d-micro", "sew"), ("sew-d-micro", "transformers"), ("w2v2-micro", "sew")]
    for r in rows:
        assert r.ms_per_utterance > 0 and r.audio_s_per_s > 0 and r.gmacs_per_audio_s > 0
        assert r.rtf == pytest.approx(1 / r.audio_s_per_s, rel=0.02)
        assert set(r.grid_ms) == {"1x0.5s"}
    assert rows[2].speedup_vs_baseline == 1.0
    assert rows[1].sew_speedup_vs_transformers == pytest.approx(
        rows[1].ms_per_utterance / rows[0].ms_per_utterance, rel=0.01)
    assert rows[0].macs_ratio_vs_baseline > 1  # SEW-D needs fewer MACs than wav2vec 2.0


def test_cli_speed_writes_results(tmp_path, capsys):
    code = main(["bench", "speed", "--models", "sew-micro", "w2v2-micro", "--utterances", "2", "--mean-seconds", "1",
                 "--repeats", "1", "--warmup", "0", "--no-reference", "--threads", "1", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "| sew-micro | sew |" in out and "speed vs base" in out
    (run,) = list(tmp_path.iterdir())
    data = json.loads((run / "results.json").read_text())
    assert data["baseline"] == "w2v2-micro" and len(data["speed"]) == 2
    machine = data["machine"]
    assert machine["threads"] == 1 and machine["matmul_peak_gflops"] > 0
    # The peak is taken before and after the models, and the larger one kept.
    assert machine["matmul_peak_gflops"] == max(machine["matmul_peak_gflops_before"], machine["matmul_peak_gflops_after"])
    for r in data["speed"]:
        assert r["peak_fraction"] == pytest.approx(r["achieved_gflops"] / machine["matmul_peak_gflops"], abs=1e-3)
    text = (run / "results.md").read_text()  # it opens with the machine as a list a person reads, not a dict
    assert text.startswith("# Speed\n\n- CPU: ") and "{'cpu'" not in text
    assert f"- threads: 1; device: cpu; matmul peak {machine['matmul_peak_gflops']:.0f} GFLOP/s" in text
    assert f"torch {machine['torch']}" in text and "commit: " in text


def test_int8_rows_quantise_linear_layers():
    import torch

    from sew.bench.speed import prepare

    setup = SpeedSetup(dtype="int8", lengths=[16000, 8000], max_tokens=40000, repeats=1, warmup=0)
    model = sew.build_model("sew-d-micro", vocab_size=8, num_layers=1).eval()
    quantised = prepare(model, setup)
    assert "quantized" in type(quantised.context.transformer.layers[0].ffn.fc1).__module__
    x = torch.randn(1, 16000)
    with torch.inference_mode():
        assert (quantised(x).logits - model(x).logits).abs().max() < 0.1  # close, not equal
    (row,) = measure("sew-d-micro", model, setup, reference=False)
    assert row.dtype == "int8" and row.ms_per_utterance > 0


def test_peak_memory_sees_every_run():
    """A second run that reuses freed memory still reports its own peak."""
    import time

    import torch

    from sew.bench.timing import PeakMemory

    peaks = []
    for _ in range(2):
        with PeakMemory(torch.device("cpu")) as memory:
            x = torch.ones(25_000_000)  # 100 MB
            time.sleep(0.05)
            del x
        peaks.append(memory.peak / 2**20)
    assert all(90 <= p <= 130 for p in peaks), peaks


@pytest.mark.slow  # 24 s on a Zen 3 VM whose default suite took 9.6 of its 10 minutes; ONNX parity stays in test_export
def test_onnx_rows_time_onnxruntime_against_eager():
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    setup = SpeedSetup(lengths=[16000, 9000], max_tokens=40000, repeats=1, warmup=0, onnx=True, threads=1)
    rows = measure("sew-d-micro", sew.build_model("sew-d-micro", vocab_size=8, num_layers=1), setup, reference=False)
    add_ratios(rows, None)
    assert [r.implementation for r in rows] == ["sew", "onnxruntime"]
    assert rows[1].onnx_speedup_vs_eager == pytest.approx(
        rows[0].ms_per_utterance / rows[1].ms_per_utterance, rel=0.01)
    with pytest.raises(ValueError, match="float32"):
        measure("sew-d-micro", sew.build_model("sew-d-micro", vocab_size=8, num_layers=1),
                SpeedSetup(lengths=[16000], dtype="bfloat16", onnx=True), reference=False)


@pytest.mark.parametrize("mode", [pytest.param("dynamic", marks=pytest.mark.slow), "static"])
def test_compiled_rows(mode):
    """--compile times the compiled model next to eager; static compiles one graph per timed shape
    (two batches here)."""
    import torch

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    setup = SpeedSetup(lengths=[16000, 15000, 9000], max_tokens=32000, repeats=1, warmup=0, compile=mode,
                       compile_backend="aot_eager")
    assert len(length_sorted_batches(setup.lengths, setup.max_tokens)) == 2
    rows = measure("sew-d-micro", sew.build_model("sew-d-micro", vocab_size=8, num_layers=1), setup, reference=False)
    add_ratios(rows, None)
    assert [r.implementation for r in rows] == ["sew", "sew-compiled"]
    assert rows[1].compiled_speedup_vs_eager == pytest.approx(  # rounded to 3 decimals
        rows[0].ms_per_utterance / rows[1].ms_per_utterance, rel=0.01, abs=1e-3)
    if mode == "static":  # one graph per shape, both compiled (not left to eager)
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 2


def test_compile_modes_refuse_what_cannot_run():
    import torch

    from sew.bench.speed import compile_model

    model = sew.build_model("sew-micro", vocab_size=8, num_layers=1)
    with pytest.raises(ValueError, match="--device cuda"):
        compile_model(model, "cudagraphs", torch.device("cpu"))
    with pytest.raises(ValueError, match="dynamic, static, cudagraphs"):
        compile_model(model, "fast", torch.device("cpu"))
    with pytest.raises(SystemExit):
        main(["bench", "speed", "--compile", "fast"])
