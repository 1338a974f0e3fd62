"""Parity with transformers: HF -> sew.load_model and sew.export_hf -> HF give the same outputs."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file
import transformers

import sew

from .helpers import TINY_HF

LENGTHS = [400, 1601, 4003, 16000, 48000]  # 1601 and 4003 give odd frame counts at this stride
TOL = 1e-4

VARIANTS = [
    ("sew", {}),
    ("sew", {"feat_extract_norm": "layer", "conv_bias": True}),
    ("sew", {"squeeze_factor": 3, "num_conv_pos_embeddings": 16}),
    ("sew-d", {}),
    ("sew-d", {"share_att_key": False}),
    ("sew-d", {"pos_att_type": ["c2p"], "position_buckets": 8, "max_position_embeddings": 32}),
    ("sew-d", {"pos_att_type": ["p2c"], "share_att_key": False, "feat_extract_norm": "layer"}),
    ("sew-d", {"position_buckets": -1, "max_position_embeddings": 24}),
    ("sew-d", {"norm_rel_ebd": "none", "layer_norm_eps": 1e-5}),
    ("wav2vec2", {}),
    ("wav2vec2", {"do_stable_layer_norm": True, "feat_extract_norm": "layer", "conv_bias": True}),
]


def hf_model(family: str, with_head: bool = True, **overrides):
    cfg_cls = {"sew": transformers.SEWConfig, "sew-d": transformers.SEWDConfig, "wav2vec2": transformers.Wav2Vec2Config}
    heads = {"sew": (transformers.SEWForCTC, transformers.SEWModel),
             "sew-d": (transformers.SEWDForCTC, transformers.SEWDModel),
             "wav2vec2": (transformers.Wav2Vec2ForCTC, transformers.Wav2Vec2Model)}
    config = cfg_cls[family](**{**TINY_HF, **overrides})
    return heads[family][0 if with_head else 1](config).eval()


def max_diff(ours, theirs, lengths=LENGTHS) -> float:
    """Worst |difference| of last_hidden_state (and logits) over single utterances of several lengths."""
    worst = 0.0
    g = torch.Generator().manual_seed(1)
    for n in lengths:
        x = torch.randn(1, n, generator=g)
        with torch.no_grad():
            a, b = ours(x), theirs(x)
        if a.logits is not None:
            assert a.logits.shape == b.logits.shape
            worst = max(worst, (a.logits - b.logits).abs().max().item())
        else:
            assert a.last_hidden_state.shape == b.last_hidden_state.shape
            worst = max(worst, (a.last_hidden_state - b.last_hidden_state).abs().max().item())
    return worst


@pytest.mark.parametrize("family,overrides", VARIANTS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(VARIANTS)])
def test_hf_to_ours(tmp_path, family, overrides):
    torch.manual_seed(0)
    theirs = hf_model(family, **overrides)
    theirs.save_pretrained(tmp_path)
    ours = sew.load_model(tmp_path).eval()
    assert ours.config.family == family
    assert max_diff(ours, theirs) <= TOL
    # The hidden state too, not only the logits.
    x = torch.randn(1, 4003)
    with torch.no_grad():
        base = theirs.base_model(x).last_hidden_state
        assert (ours(x).last_hidden_state - base).abs().max().item() <= TOL


@pytest.mark.parametrize("family", ["sew", "sew-d", "wav2vec2"])
def test_base_model_directory(tmp_path, family):
    theirs = hf_model(family, with_head=False)
    theirs.save_pretrained(tmp_path)
    ours = sew.load_model(tmp_path).eval()
    assert ours.ctc_head is None
    assert max_diff(ours, theirs, [1601, 16000]) <= TOL


@pytest.mark.parametrize("preset", ["sew-micro", "sew-d-micro", "w2v2-micro"])
def test_ours_to_hf(tmp_path, preset):
    torch.manual_seed(0)
    ours = sew.build_model(preset, vocab_size=10).eval()
    sew.export_hf(ours, tmp_path)
    theirs = transformers.AutoModelForCTC.from_pretrained(tmp_path).eval()
    assert type(theirs).__name__.endswith("ForCTC")
    # 720 samples = 2 frames: transformers cannot squeeze a 1-frame input (ours can, see test_batching).
    assert max_diff(ours, theirs, [720, 1601, 16000, 33333]) <= TOL
    base = transformers.AutoModel.from_pretrained(tmp_path).eval()
    x = torch.randn(1, 9999)
    with torch.no_grad():
        assert (ours(x).last_hidden_state - base(x).last_hidden_state).abs().max().item() <= TOL


def test_full_size_preset_both_directions(tmp_path):
    """A full-size preset (SEW-D-tiny, 24 M parameters) through export_hf and back."""
    torch.manual_seed(0)
    ours = sew.build_model("sew-d-tiny", vocab_size=32).eval()
    sew.export_hf(ours, tmp_path / "hf")
    theirs = transformers.SEWDForCTC.from_pretrained(tmp_path / "hf").eval()
    assert max_diff(ours, theirs, [1601, 24000]) <= TOL
    back = sew.load_model(tmp_path / "hf").eval()
    x = torch.randn(1, 24000)
    with torch.no_grad():
        assert torch.equal(back(x).logits, ours(x).logits)


def test_legacy_weight_norm_keys_and_bin(tmp_path):
    """weight_g/weight_v keys and a pytorch_model.bin load like the current format."""
    theirs = hf_model("sew-d")
    theirs.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    legacy = {k.replace("parametrizations.weight.original0", "weight_g")
               .replace("parametrizations.weight.original1", "weight_v"): v for k, v in state.items()}
    assert any(k.endswith("weight_g") for k in legacy)
    save_file(legacy, tmp_path / "model.safetensors")
    assert max_diff(sew.load_model(tmp_path).eval(), theirs, [4003]) <= TOL
    (tmp_path / "model.safetensors").unlink()
    torch.save({("sew-d." + k[len("sew_d."):] if k.startswith("sew_d.") else k): v for k, v in legacy.items()},
               tmp_path / "pytorch_model.bin")  # 4.x prefix "sew-d."
    assert max_diff(sew.load_model(tmp_path).eval(), theirs, [4003]) <= TOL


def test_wav2vec2_pretraining_encoder(tmp_path):
    """The encoder of Wav2Vec2ForPreTraining loads; quantiser and projections are skipped."""
    config = transformers.Wav2Vec2Config(**TINY_HF, codevector_dim=16, proj_codevector_dim=16,
                                         num_codevector_groups=2, num_codevectors_per_group=8)
    pre = transformers.Wav2Vec2ForPreTraining(config).eval()
    pre.save_pretrained(tmp_path)
    ours = sew.load_model(tmp_path).eval()
    assert ours.ctc_head is None
    assert max_diff(ours, pre.wav2vec2, [1601, 16000]) <= TOL
