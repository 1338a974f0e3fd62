import math

import pytest
import torch

from sew.asr.ctc import ctc_loss, init_prior_bias, prior_bias
from sew.data.text import Vocabulary

VOCAB = Vocabulary(["<pad>", "<s>", "</s>", "<unk>", "|", "a", "b"])


def test_prior_bias_is_the_log_plateau_distribution():
    # "ab a" -> a b | a: 4 symbols; 10 frames -> blank 6/10, a 2/10, b 1/10, | 1/10
    bias = prior_bias(VOCAB, ["ab a"], total_frames=10)
    assert bias[0].item() == pytest.approx(math.log(0.6))
    assert bias[5].item() == pytest.approx(math.log(0.2))
    assert bias[6].item() == pytest.approx(math.log(0.1)) and bias[4].item() == pytest.approx(math.log(0.1))
    assert bias[1].item() == pytest.approx(math.log(1e-4))  # never emitted
    with pytest.raises(ValueError, match="cannot align"):
        prior_bias(VOCAB, ["ab a"], total_frames=3)


def test_init_prior_bias_counts_model_frames(make_model):
    model = make_model()
    bias = init_prior_bias(model, model_vocab(model), ["ab"], [16000])
    assert torch.equal(model.ctc_head.proj.bias.data, bias)
    assert math.exp(bias[0].item()) == pytest.approx(1 - 2 / 49, rel=1e-5)  # 1 s = 49 frames at 50 Hz


def model_vocab(model):
    n = model.config.vocab_size
    return Vocabulary(["<pad>", "<s>", "</s>", "<unk>", "|"] + [chr(ord("a") + i) for i in range(n - 5)])


def test_ctc_loss_float32_zero_infinity_and_reductions():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 7, dtype=torch.bfloat16, requires_grad=True)
    targets = torch.tensor([[5, 6, 5, -100], [5, 5, 5, 5]])  # the second needs 7 frames (repeats need blanks)
    lengths, target_lengths = torch.tensor([6, 5]), torch.tensor([3, 4])
    per_utt = ctc_loss(logits, lengths, targets, target_lengths, reduction="none")
    assert per_utt.dtype == torch.float32
    assert per_utt[0] > 0 and per_utt[1] == 0  # impossible alignment: zero, not inf
    mean = ctc_loss(logits, lengths, targets, target_lengths)
    assert mean.item() == pytest.approx(per_utt[0].item() / 3 / 2)
    mean.backward()
    assert torch.isfinite(logits.grad.float()).all()
