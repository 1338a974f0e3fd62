import numpy as np
import pytest
import soundfile as sf
import torch

from sew.asr.decode import GreedyDecoder
from sew.asr.transcribe import chunked_logits
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
    model.save_pretrained(tmp_path / "model")
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
