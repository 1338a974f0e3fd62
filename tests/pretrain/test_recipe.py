"""The presets in configs/pretrain/ carry the official recipe's numbers."""

from __future__ import annotations

import sew
from sew.pretrain.recipe import load_recipe, recipe_names


def test_presets_load_with_the_official_numbers():
    names = recipe_names()
    for expected in ("quick", "quick-contrastive", "sew-tiny", "sew-small", "sew-mid", "sew-d-tiny", "sew-d-small",
                     "sew-d-mid", "sew-d-mid-k127", "sew-d-base", "sew-d-base-plus", "w2v2-base"):
        assert expected in names
    for name in names:
        recipe = load_recipe(name)
        if name.startswith("quick"):  # quick (BEST-RQ), quick-contrastive: small scale, not the official numbers
            assert recipe.objective.kind == ("contrastive" if name == "quick-contrastive" else "bestrq")
            continue
        assert recipe.objective.kind == "contrastive"
        t, o, d = recipe.train, recipe.objective, recipe.data
        assert (t.lr, t.warmup_updates, t.total_num_update, t.max_update) == (5e-4, 32000, 400000, 100000)
        assert (tuple(t.betas), t.adam_eps, t.weight_decay, t.mixed_precision) == ((0.9, 0.98), 1e-6, 0.01, "fp16")
        assert t.max_tokens == 1_400_000 * recipe.batch_scale
        assert recipe.update_freq(1) * recipe.batch_scale == 64 and recipe.update_freq(8) * 8 * recipe.batch_scale == 64
        assert (o.mask_prob, o.mask_length, o.num_negatives, o.codebook_groups, o.codebook_entries) == (0.65, 10, 100, 2, 320)
        assert (o.diversity_weight, o.feature_penalty_weight, o.feature_grad_mult, o.dropout_features) == (0.1, 10.0, 0.1, 0.1)
        assert (d.max_sample_size, d.min_sample_size) == (250000, 32000)
        assert o.mlp_heads == (not name.startswith("w2v2"))
        layers = sew.load_config(recipe.model).num_layers
        assert recipe.model_overrides["layerdrop"] == (0.2 if layers == 24 else 0.05)
