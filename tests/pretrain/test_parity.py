"""Parity with transformers' Wav2Vec2ForPreTraining: same weights, inputs, mask, negatives and Gumbel noise.

transformers returns SUMS over the masked frames: ``contrastive_loss`` (InfoNCE summed),
``diversity_loss`` = (GV - perplexity) / GV * num_masked, ``loss`` = contrastive + 0.1 * diversity.
Ours are the same sums (``contrastive``, ``diversity * sample_size``) plus the feature penalty,
which transformers does not have; the comparison sets its weight to 0. Both sides divide by the
number of masked frames only in the trainer (fairseq's ``sample_size``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from transformers.models.wav2vec2 import modeling_wav2vec2 as hf_w2v

from sew.pretrain.interop import load_hf_pretraining


TOL = 1e-4
TINY = dict(
    conv_dim=(32, 32, 32), conv_kernel=(10, 3, 3), conv_stride=(5, 4, 4), hidden_size=64, num_hidden_layers=2,
    num_attention_heads=4, intermediate_size=128, num_conv_pos_embeddings=15, num_conv_pos_embedding_groups=4,
    hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, layerdrop=0.0,
    feat_quantizer_dropout=0.0, codevector_dim=32, proj_codevector_dim=24, num_negatives=20, mask_time_prob=0.5,
    mask_time_length=4,
)


def fixed_gumbel(noise: torch.Tensor, time_mask: torch.Tensor):
    """A ``gumbel_softmax`` that adds the same noise per (utterance, frame, group) on both sides.

    transformers quantises every frame ([B*T*G, V] logits), we quantise the masked ones ([N*G, V]).
    """
    def gumbel_softmax(logits, tau=1.0, hard=False, eps=1e-10, dim=-1):
        rows = noise.reshape(-1, noise.shape[-1]) if logits.shape[0] == noise[..., 0].numel() \
            else noise[time_mask].reshape(-1, noise.shape[-1])
        soft = torch.softmax((logits + rows) / tau, dim=-1)
        index = soft.argmax(-1, keepdim=True)
        one_hot = torch.zeros_like(soft).scatter_(-1, index, 1.0)
        return one_hot - soft.detach() + soft
    return gumbel_softmax


@pytest.mark.parametrize("entries", [320, 3], ids=["V320", "V3-collisions"])
def test_loss_and_gradients_equal_transformers(tmp_path, monkeypatch, entries):
    torch.manual_seed(0)
    np.random.seed(0)
    config = transformers.Wav2Vec2Config(**TINY, num_codevectors_per_group=entries)
    theirs = transformers.Wav2Vec2ForPreTraining(config)
    theirs.save_pretrained(tmp_path)
    ours = load_hf_pretraining(tmp_path, feature_penalty_weight=0.0)
    theirs.train()
    ours.train()

    batch, samples = 3, 16000
    waves = torch.randn(batch, samples)
    frames = int(theirs._get_feat_extract_output_lengths(samples))
    mask_np = hf_w2v._compute_mask_indices((batch, frames), 0.5, 4, min_masks=2)
    neg_np = hf_w2v._sample_negative_indices((batch, frames), config.num_negatives, mask_np)
    time_mask = torch.from_numpy(mask_np)
    hf_negatives = torch.from_numpy(neg_np).long()
    # transformers: flat index b * T + t of the negative frame; ours: its row among the masked frames.
    row_of = torch.full((batch * frames,), -1, dtype=torch.long)
    row_of[time_mask.flatten()] = torch.arange(int(time_mask.sum()))
    negatives = row_of[hf_negatives[time_mask]]
    assert (negatives >= 0).all()

    noise = -torch.empty(batch, frames, config.num_codevector_groups, entries).exponential_().log()
    monkeypatch.setattr(torch.nn.functional, "gumbel_softmax", fixed_gumbel(noise, time_mask))

    ref = theirs(waves, mask_time_indices=time_mask, sampled_negative_indices=hf_negatives)
    out = ours(waves, None, time_mask, negatives)
    n = int(out.sample_size)
    assert n == int(time_mask.sum())
    # Per target (what the trainer optimises and logs): the sums divided by N. The sums themselves
    # (about 3 * N) agree to float32 rounding, checked relatively.
    diffs = {
        "contrastive": (out.contrastive - ref.contrastive_loss).abs().item() / n,
        "diversity": (out.diversity * n - ref.diversity_loss).abs().item() / n,
        "loss": (out.loss - ref.loss).abs().item() / n,
        "prob_perplexity": (out.prob_perplexity - ref.codevector_perplexity).abs().item(),
    }
    print(f"\nV={entries} N={n} per-target contrastive={ref.contrastive_loss.item() / n:.6f} "
          f"diversity={ref.diversity_loss.item() / n:.6f} perplexity={ref.codevector_perplexity.item():.4f} "
          f"max |diff| {', '.join(f'{k}={v:.1e}' for k, v in diffs.items())}")
    assert max(diffs.values()) <= TOL, diffs
    assert (out.loss - ref.loss).abs() <= 1e-6 * ref.loss.abs()
    if entries == 3:  # collisions: some negatives equal their positive and must have been -inf
        assert torch.isinf(out.logits).any()

    # Gradients of every shared weight.
    ref.loss.backward()
    out.loss.backward()
    theirs_grads = dict(theirs.named_parameters())
    worst = 0.0
    for name, param in ours.named_parameters():
        hf_name = _hf_name(name)
        if hf_name is None:
            continue
        g_ref = theirs_grads[hf_name].grad
        worst = max(worst, (param.grad - g_ref.reshape(param.grad.shape)).abs().max().item()
                    / max(1.0, g_ref.abs().max().item()))
    print(f"worst relative gradient difference {worst:.2e}")
    assert worst <= TOL


def _hf_name(ours: str) -> str | None:
    """HF parameter name of a few representative weights (encoder ends, heads, quantiser)."""
    table = {
        "encoder.feature_extractor.layers.0.conv.weight": "wav2vec2.feature_extractor.conv_layers.0.conv.weight",
        "encoder.feature_norm.weight": "wav2vec2.feature_projection.layer_norm.weight",
        "encoder.feature_projection.weight": "wav2vec2.feature_projection.projection.weight",
        "encoder.mask_embedding": "wav2vec2.masked_spec_embed",
        "encoder.context.transformer.layers.1.ffn.fc2.weight": "wav2vec2.encoder.layers.1.feed_forward.output_dense.weight",
        "quantizer.codevectors": "quantizer.codevectors",
        "quantizer.weight_proj.weight": "quantizer.weight_proj.weight",
        "final_proj.weight": "project_hid.weight",
        "project_q.weight": "project_q.weight",
    }
    return table.get(ours)
