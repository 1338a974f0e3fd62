"""The CUDA paths, where a GPU is present (skipped elsewhere): the same outputs as the CPU reference,
half precision close to float32, padded batches equal to single utterances, a training step that
lowers the loss, and the speed harness."""

from __future__ import annotations

import json

import pytest
import torch

import sew

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
PRESETS = ["sew-d-micro", "sew-micro", "w2v2-micro"]


@pytest.fixture(autouse=True)
def exact_float32():
    """No TF32 in the float32 comparisons."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 24000, generator=g) * 0.1
    lengths = torch.tensor([24000, 17000, 9000])
    for i, n in enumerate(lengths.tolist()):
        x[i, n:] = 0
    return x, lengths


@pytest.mark.parametrize("preset", PRESETS)
def test_cuda_equals_cpu_and_padding_is_exact(preset):
    torch.manual_seed(0)
    model = sew.build_model(preset, vocab_size=10, num_layers=2).eval()
    x, lengths = batch()
    with torch.no_grad():
        want = model(x, lengths)
        gpu = model.cuda()
        got = gpu(x.cuda(), lengths.cuda())
        assert torch.equal(got.lengths.cpu(), want.lengths)
        for i, n in enumerate(want.lengths.tolist()):
            assert (got.logits[i, :n].cpu() - want.logits[i, :n]).abs().max() < 1e-4
            alone = gpu(x[i: i + 1, : lengths[i]].cuda()).logits[0]
            assert (alone[:n] - got.logits[i, :n]).abs().max() < 1e-4


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("preset", PRESETS)
def test_cuda_half_precision_tracks_float32(preset, dtype):
    torch.manual_seed(0)
    model = sew.build_model(preset, vocab_size=10, num_layers=2).eval().cuda()
    x, lengths = batch()
    x, lengths = x.cuda(), lengths.cuda()
    with torch.no_grad():
        want = model(x, lengths).logits.float()
        got = model.to(dtype)(x, lengths).logits.float()
    assert torch.corrcoef(torch.stack([want.flatten(), got.flatten()]))[0, 1] > 0.99


@pytest.mark.parametrize("precision", ["no", "bf16", "fp16"])
def test_cuda_training_lowers_the_loss(precision):
    from sew.asr.ctc import ctc_loss
    from sew.train.setup import make_accelerator

    torch.manual_seed(0)
    model = sew.build_model("sew-d-micro", vocab_size=8, num_layers=2, layerdrop=0.0)
    acc = make_accelerator(precision)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model, optimizer = acc.prepare(model, optimizer)
    x, lengths = batch()
    x, lengths = x.to(acc.device), lengths.to(acc.device)
    target_lengths = torch.tensor([12, 9, 5], device=acc.device)
    targets = torch.randint(1, 8, (3, 12), device=acc.device)
    targets[torch.arange(12, device=acc.device)[None] >= target_lengths[:, None]] = -100  # padding
    losses = []
    for _ in range(8):
        with acc.autocast():
            out = model(x, lengths)
            loss = ctc_loss(out.logits, out.lengths, targets, target_lengths)
        acc.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss))
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]


def test_cuda_speed_rows(tmp_path):
    from sew.cli import main

    code = main(["bench", "speed", "--device", "cuda", "--models", "sew-d-micro", "w2v2-micro", "--utterances", "4",
                 "--repeats", "1", "--warmup", "1", "--out", str(tmp_path)])
    assert code == 0
    (run,) = list(tmp_path.iterdir())
    data = json.loads((run / "results.json").read_text())
    assert data["machine"]["gpu"] and all(r["ms_per_utterance"] > 0 for r in data["speed"])
    assert {r["implementation"] for r in data["speed"]} == {"sew", "transformers"}
