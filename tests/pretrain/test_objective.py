"""The objective's pieces: negatives, logits, quantiser, heads, gradient scaling, padding, saving."""

from __future__ import annotations

import math

import pytest
import torch

import sew
from sew.pretrain import ObjectiveConfig, PretrainingModel
from sew.pretrain.heads import MLPHead
from sew.pretrain.negatives import sample_negatives
from sew.pretrain.objective import contrastive_logits, scale_grad
from sew.pretrain.quantizer import GumbelVectorQuantizer, gumbel_temperature

SMALL = dict(codebook_entries=16, codevector_dim=16, final_dim=16, mlp_hidden_size=32, num_negatives=10,
             dropout_features=0.0)


def test_negatives_are_other_masked_frames_of_the_same_utterance():
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(3, 40, dtype=torch.bool)
    mask[0, 3:20] = True
    mask[1, [0, 5, 39]] = True
    mask[2, 7] = True  # a single masked frame: nothing else to draw from
    neg = sample_negatives(mask, 50, g)
    rows = mask.nonzero()  # [N, 2] (utterance, frame), the row order of the objective
    assert neg.shape == (len(rows), 50)
    for r, (b, _) in enumerate(rows.tolist()):
        drawn = neg[r]
        if b == 2:
            assert (drawn == r).all()
            continue
        assert (drawn != r).all()
        assert (rows[drawn, 0] == b).all()  # same utterance, masked (so never padding)
    # uniform over the other 16 frames of utterance 0
    counts = torch.bincount(neg[:17].flatten(), minlength=17).float()
    assert counts.min() > 0.5 * counts.mean()


def test_logits_cosine_over_temperature_and_minus_inf_for_copies():
    pred = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    targets = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    negatives = torch.stack([targets[[1, 1]], targets[[0, 1]]])  # row 1's second negative is itself
    logits = contrastive_logits(pred, targets, negatives, 0.1)
    assert logits[0, 0].item() == pytest.approx(math.cos(math.pi / 4) / 0.1, rel=1e-6)
    assert logits[1, 0].item() == pytest.approx(10.0, rel=1e-6)
    assert logits[1, 2].item() == float("-inf") and torch.isfinite(logits[0]).all()


def test_temperature_schedule():
    assert gumbel_temperature(0) == 2.0
    assert gumbel_temperature(1) == pytest.approx(2.0 * 0.999995)
    assert gumbel_temperature(10**6) == 0.5  # 2 * 0.999995^1e6 = 0.013 -> clamped


def test_quantizer_picks_one_code_per_group():
    q = GumbelVectorQuantizer(8, groups=2, entries=5, codevector_dim=6).train()
    x = torch.randn(7, 8, requires_grad=True)
    out = q(x)
    book = q.codevectors.view(2, 5, 3)
    expected = torch.cat([book[0, out.codes[:, 0]], book[1, out.codes[:, 1]]], dim=-1)
    assert torch.allclose(out.quantized, expected)  # training: the Gumbel-sampled codes that were used
    q.eval()
    hard = q(x)
    assert torch.allclose(hard.quantized, torch.cat([book[0, hard.codes[:, 0]], book[1, hard.codes[:, 1]]], -1))
    assert 1.0 <= out.prob_perplexity.item() <= 10.0 and 1.0 <= out.code_perplexity.item() <= 10.0
    out.quantized.sum().backward()  # straight-through: the projection gets a gradient
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_a_negative_with_its_positives_codes_is_minus_inf_however_the_heads_round(monkeypatch):
    # Every frame picks entry 0 of each group, so every target is the same vector; a CPU whose matrix
    # product rounds identical rows differently (AMD Zen 5 does for a few rows) must not turn those
    # copies into usable negatives. The rounding is simulated: a different last-bit nudge per row.
    model = _model().train()
    q = model.quantizer
    with torch.no_grad():
        q.weight_proj.weight.zero_()
        q.weight_proj.bias.copy_(torch.tensor([30.0] + [0.0] * (q.entries - 1)).repeat(q.groups))
    head = model.project_q.forward
    monkeypatch.setattr(model.project_q, "forward", lambda x: head(x) * (1 + 1e-7 * torch.arange(len(x))[:, None]))
    waves = torch.randn(2, 8000, generator=torch.Generator().manual_seed(1))
    _, frames = model.frame_lengths(torch.tensor([8000, 8000]), 8000)
    mask = torch.zeros(2, frames, dtype=torch.bool)
    mask[:, 3:13] = True
    out = model(waves, None, mask, generator=torch.Generator().manual_seed(0))
    assert torch.isinf(out.logits[:, 1:]).all() and torch.isfinite(out.logits[:, 0]).all()
    assert out.chance.item() == 0.0 and out.correct.item() == 20 and out.contrastive.item() == 0.0


def test_mlp_head_batchnorm_in_float32():
    head = MLPHead(8, 4, hidden=16).train()
    x = torch.randn(10, 8, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = head.fc1(x)
        normed = head.norm(y)
    assert normed.dtype == y.dtype
    # the statistics are those of the float32 values: zero mean, unit variance per channel
    ref = torch.nn.functional.batch_norm(y.float(), None, None, training=True)
    assert torch.allclose(normed.float(), ref.to(torch.bfloat16).float(), atol=2e-2)
    assert head.fc1.bias is None and head.norm.weight.dtype == torch.float32


def test_scale_grad_is_identity_forward():
    x = torch.randn(5, requires_grad=True)
    y = scale_grad(x, 0.1)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.allclose(x.grad, torch.full((5,), 0.1))


def _model(preset="sew-d-micro", **objective):
    torch.manual_seed(0)
    encoder = sew.build_model(preset, layerdrop=0.0)
    return PretrainingModel(encoder, ObjectiveConfig(**{**SMALL, **objective}))


@pytest.mark.parametrize("preset", ["sew-micro", "sew-d-micro", "w2v2-micro"])
def test_objective_runs_on_padded_batches_and_never_masks_padding(preset):
    model = _model(preset).train()
    lengths = torch.tensor([16000, 9000])
    waves = torch.randn(2, 16000)
    waves[1, 9000:] = 0
    frame_lengths, frames = model.frame_lengths(lengths, 16000)
    mask = torch.zeros(2, frames, dtype=torch.bool)
    mask[0, 5:25] = True
    mask[1, 2:12] = True
    out = model(waves, lengths, mask, generator=torch.Generator().manual_seed(0))
    assert int(out.sample_size) == 30 and out.logits.shape == (30, 11)
    n = int(out.sample_size)
    cfg = model.config.objective
    expected = out.contrastive + n * (cfg.diversity_weight * out.diversity + cfg.feature_penalty_weight
                                      * out.feature_penalty)
    assert torch.allclose(out.loss, expected)
    out.loss.backward()
    conv = model.encoder.feature_extractor.layers[0].conv.weight
    assert conv.grad is not None and torch.isfinite(conv.grad).all()
    bad = mask.clone()
    bad[1, int(frame_lengths[1])] = True
    with pytest.raises(ValueError, match="padding"):
        model(waves, lengths, bad)


def test_feature_grad_mult_scales_and_zero_freezes_the_extractor():
    grads = {}
    for mult in (1.0, 0.1, 0.0):
        model = _model(feature_grad_mult=mult).eval()  # eval: no dropout, argmax codes -> same loss each time
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.train()
        waves = torch.randn(2, 8000, generator=torch.Generator().manual_seed(1))
        _, frames = model.frame_lengths(torch.tensor([8000, 8000]), 8000)
        mask = torch.zeros(2, frames, dtype=torch.bool)
        mask[:, 3:13] = True
        out = model(waves, None, mask, generator=torch.Generator().manual_seed(0))
        out.loss.backward()
        grads[mult] = model.encoder.feature_extractor.layers[3].conv.weight.grad
    assert grads[0.0] is None
    assert torch.allclose(grads[0.1], 0.1 * grads[1.0], rtol=1e-4, atol=1e-6)


def test_saved_encoder_has_no_pretraining_heads(tmp_path):
    model = _model()
    model.save_encoder(tmp_path / "enc", update=3)
    loaded = sew.load_model(tmp_path / "enc")
    assert set(loaded.state_dict()) == set(model.encoder.state_dict())
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
