"""Small random models and inputs shared by the model tests."""

from __future__ import annotations

import torch

# A 3-layer conv stack (total stride 80, receptive field 60 samples) keeps HF reference models tiny.
TINY_HF = dict(
    conv_dim=(32, 32, 32), conv_kernel=(10, 3, 3), conv_stride=(5, 4, 4), hidden_size=64, num_hidden_layers=2,
    num_attention_heads=4, intermediate_size=128, num_conv_pos_embeddings=15, num_conv_pos_embedding_groups=4,
    vocab_size=12, hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
    layerdrop=0.0, final_dropout=0.0,
)


def padded_batch(lengths, seed: int = 0):
    """Random utterances of the given sample counts, alone and zero-padded into one batch."""
    g = torch.Generator().manual_seed(seed)
    waves = [torch.randn(n, generator=g) for n in lengths]
    batch = torch.zeros(len(lengths), max(lengths))
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w
    return waves, batch, torch.tensor(lengths)
