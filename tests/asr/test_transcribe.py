import numpy as np
import pytest
import soundfile as sf
import torch

from sew.asr.decode import GreedyDecoder
from sew.asr.transcribe import chunked_logits
from sew.checkpoint import save_model
from sew.cli import main


def local_model(make_model, preset):
    """A model whose output depends only on nearby audio: per-frame conv norms, attention switched off.

    Chunked and whole-file logits must then agree exactly wherever a chunk's context covers
    the receptive field, which checks the chunk placement and stitching frame by frame.
    """
    model = make_model(preset=preset, conv_norm="layer", feature_dropout=0.0, hidden_dropout=0.0,
                       attention_dropout=0.0).eval()
    with torch.no_grad():
        for layer in model.context.transformer.layers:
            layer.attention.out_proj.weight.zero_()
            layer.attention.out_proj.bias.zero_()
        model.ctc_head.proj.weight.mul_(20)  # confident, varied argmax: a real transcript to compare
    return model


@pytest.mark.parametrize("preset", ["sew-d-micro", "w2v2-micro"])
def test_chunked_equals_whole_file(make_model, vocab, preset):
    model = local_model(make_model, preset)
    wave = torch.randn(16000 * 15 + 123, generator=torch.Generator().manual_seed(0)) * 0.1
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[1]))
    whole = chunked_logits(model, wave, chunk_seconds=60)
    chunked = chunked_logits(model, wave, chunk_seconds=8, context_seconds=2)
    # 15 s in cores of 8 - 2 * 2 = 4 s: four windows, none longer than 8 s
    assert len(seen) == 1 + 4 and max(seen[1:]) <= 8 * 16000
    assert chunked.shape == whole.shape == (int(model.output_lengths(torch.tensor([wave.numel()]))[0]), len(vocab))
    torch.testing.assert_close(chunked, whole, atol=1e-4, rtol=1e-4)
    decode = GreedyDecoder(vocab)
    assert decode(chunked[None]) == decode(whole[None]) and len(decode(whole[None])[0]) > 10


def test_bad_files_get_a_message_and_the_others_are_transcribed(tmp_path, make_model, vocab, capsys):
    model = make_model()
    save_model(model, tmp_path / "model")
    vocab.save(tmp_path / "model")
    good, silent, short, broken = (tmp_path / n for n in ("good.wav", "silent.wav", "short.wav", "broken.wav"))
    sf.write(good, (np.random.default_rng(0).standard_normal(24000) * 0.1).astype("float32"), 16000)
    sf.write(silent, np.zeros(16000, dtype="float32"), 16000)
    sf.write(short, np.full(160, 0.1, dtype="float32"), 16000)  # 10 ms
    broken.write_bytes(b"RIFF....WAVEfmt garbage")
    files = [broken, good, silent, short, tmp_path / "missing.flac"]
    code = main(["transcribe", "--model", str(tmp_path / "model"), *map(str, files)])
    out, err = capsys.readouterr()
    assert code == 1
    assert [line.split("\t")[0] for line in out.splitlines()] == [str(good), str(silent)]
    assert out.splitlines()[1] == f"{silent}\t"
    assert f"error: {broken}: unreadable audio" in err
    assert f"warning: {silent}: silent audio" in err
    assert f"error: {short}: too short: 10 ms, the model needs at least 25 ms" in err
    assert "missing.flac: file not found" in err
    assert "3 of 5 file(s) could not be transcribed" in err


@pytest.mark.slow  # the ONNX export itself is tested in tests/test_export.py
@pytest.mark.parametrize("preset", ["sew-d-micro"])
def test_onnx_backend_transcribes_like_pytorch(tmp_path, make_model, vocab, capsys, preset):
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    from sew.asr.model import load_ctc_model

    save_model(local_model(make_model, preset), tmp_path / "model")
    vocab.save(tmp_path / "model")
    rng = np.random.default_rng(1)
    files = [tmp_path / "long.wav", tmp_path / "tiny.wav"]
    sf.write(files[0], (rng.standard_normal(16000 * 9 + 77) * 0.1).astype("float32"), 16000)  # 3 chunks
    sf.write(files[1], (rng.standard_normal(600) * 0.1).astype("float32"), 16000)  # under the graph's MIN_SAMPLES
    args = ["transcribe", "--model", str(tmp_path / "model"), "--chunk-seconds", "4", "--context-seconds", "1",
            *map(str, files)]
    assert main(args) == 0
    want = capsys.readouterr().out
    assert main(args + ["--backend", "onnx"]) == 0
    got, err = capsys.readouterr()
    assert got == want and len(want.splitlines()[0]) > 20
    assert "exporting" in err and (tmp_path / "model" / "model.onnx").is_file()
    stamp = (tmp_path / "model" / "model.onnx").stat().st_mtime
    assert main(args + ["--backend", "onnx"]) == 0  # the export is reused
    assert capsys.readouterr().out == want and (tmp_path / "model" / "model.onnx").stat().st_mtime == stamp
    # the logits themselves, through the same chunking
    torch_model, _, _ = load_ctc_model(tmp_path / "model")
    onnx_model, _, _ = load_ctc_model(tmp_path / "model", backend="onnx")
    wave = torch.from_numpy(sf.read(files[0], dtype="float32")[0])
    torch.testing.assert_close(chunked_logits(onnx_model, wave, chunk_seconds=4, context_seconds=1),
                               chunked_logits(torch_model, wave, chunk_seconds=4, context_seconds=1),
                               atol=1e-4, rtol=1e-4)


def test_int8_backend_quantises_linear_layers_and_stays_close(tmp_path, make_model, vocab):
    from sew.asr.model import load_ctc_model

    save_model(local_model(make_model, "w2v2-micro"), tmp_path / "model")
    vocab.save(tmp_path / "model")
    float_model, _, _ = load_ctc_model(tmp_path / "model")
    int8_model, _, device = load_ctc_model(tmp_path / "model", backend="int8")
    assert device == "cpu" and "quantized" in type(int8_model.ctc_head.proj).__module__
    wave = torch.randn(1, 32000, generator=torch.Generator().manual_seed(0)) * 0.1
    with torch.no_grad():
        a, b = float_model(wave).logits, int8_model(wave).logits
    assert torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1] > 0.99
    assert 0 < (a - b).abs().max() < 0.1 * a.abs().max()  # quantised (not identical), but close
    with pytest.raises(ValueError, match="runs on the CPU"):
        load_ctc_model(tmp_path / "model", device="cuda", backend="int8")
