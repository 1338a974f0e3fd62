"""SequenceClassifier: padded batches give each utterance's logits alone, exact save/load, config errors."""

from __future__ import annotations

import json

import pytest
import torch

import sew
from sew.checkpoint import save_model
from sew.models.classifier import POOLINGS, STD_EPS, ClassifierConfig, SequenceClassifier, merge_pooled, pool_frames

from .helpers import padded_batch

LABELS = ["yes", "no", "maybe"]
# 3 convs (stride 80, receptive field 60 samples), 32 wide, 2 layers: a tiny model of each family.
TINY = dict(conv_layers=[(32, 10, 5), (32, 3, 4), (32, 3, 4)], hidden_size=32, num_layers=2, num_heads=4,
            intermediate_size=64, pos_conv_kernel=15, pos_conv_groups=4, hidden_dropout=0.0, attention_dropout=0.0,
            activation_dropout=0.0, feature_dropout=0.0)
FAMILIES = ["sew", "sew-d", "wav2vec2"]
# 0.1-0.2 s; 1683 and 3283 samples give odd frame counts (21, 41), whose last frame squeezing drops.
LENGTHS = [3283, 1683, 2480]


def tiny_classifier(family: str, weighted: bool, proj_size: int = 16, pooling: str = "mean",
                    **overrides) -> SequenceClassifier:
    torch.manual_seed(0)
    model = sew.build_classifier({"family": family, **TINY, **overrides}, LABELS,
                                 use_weighted_layer_sum=weighted, proj_size=proj_size, pooling=pooling)
    with torch.no_grad():  # a head far from its init, layer weights far from uniform: a wrong state or frame shows
        for p in (*model.projector.parameters(), *model.classifier.parameters()):
            p.normal_(std=0.5)
        if weighted:
            model.layer_weights.normal_()
    return model.eval()


@pytest.mark.parametrize("weighted,pooling", [(False, "mean"), (True, "mean"), (True, "mean_std")],
                         ids=["last", "weighted", "weighted-mean-std"])
@pytest.mark.parametrize("family", FAMILIES)
def test_padded_batch_equals_alone(family, weighted, pooling):
    model = tiny_classifier(family, weighted, pooling=pooling)
    waves, batch, lengths = padded_batch(LENGTHS, seed=1)
    with torch.no_grad():
        out = model(batch, lengths)
        assert out.logits.shape == (3, len(LABELS)) and out.pooled.shape == (3, 32 if pooling == "mean_std" else 16)
        frames = model.output_lengths(lengths)
        squeezed = frames // 2 if weighted and family != "wav2vec2" else frames
        assert out.lengths.tolist() == squeezed.tolist()
        for i, wave in enumerate(waves):
            alone = model(wave[None])
            assert alone.lengths.tolist() == [int(out.lengths[i])]
            assert (alone.logits[0] - out.logits[i]).abs().max() <= 1e-5
    assert out.logits.abs().max() > 0.1  # not a degenerate head


@pytest.mark.parametrize("family", ["sew", "sew-d"])
def test_no_valid_squeezed_frame_gives_finite_logits(family):
    """100 samples = 1 frame at 50 Hz, 0 frames at 25 Hz: the weighted sum pools nothing, without NaN."""
    model = tiny_classifier(family, weighted=True)
    _, batch, lengths = padded_batch([100, 2000], seed=2)
    with torch.no_grad():
        out = model(batch, lengths)
        alone = model(batch[:1, :100])
    assert out.lengths.tolist()[0] == 0 and torch.isfinite(out.logits).all()
    assert torch.allclose(out.logits[0], model.classifier.bias) and torch.allclose(alone.logits[0], out.logits[0])


def test_the_weighted_sum_uses_every_state():
    model = tiny_classifier("sew-d", weighted=True)
    x = torch.randn(2, 2000)
    with torch.no_grad():
        out = model(x, output_hidden_states=True)
        assert len(out.hidden_states) == 3 and out.hidden_states[0].shape[1] == 12  # 25 Hz
        w = torch.softmax(model.layer_weights, 0)
        mixed = sum(wi * s for wi, s in zip(w, out.hidden_states))
        expected = model.classifier(model.projector(mixed).mean(1))
    assert (out.logits - expected).abs().max() <= 1e-5
    assert model(x).hidden_states is None


def test_mean_std_pooling_is_the_frames_mean_and_standard_deviation():
    model = tiny_classifier("sew-d", weighted=False, pooling="mean_std")
    x = torch.randn(1, 3283)
    with torch.no_grad():
        out = model(x)
        frames = model.projector(model.encoder(x).last_hidden_state)[0]
        expected = torch.cat([frames.mean(0), (frames.var(0, unbiased=False) + STD_EPS).sqrt()])
    assert out.pooled.shape == (1, 32) and (out.pooled[0] - expected).abs().max() <= 1e-5
    assert (out.logits[0] - model.classifier(expected)).abs().max() <= 1e-5


@pytest.mark.parametrize("pooling", POOLINGS)
def test_windows_merge_as_one_pooling(pooling):
    """merge_pooled over unequal windows of frames gives what pool_frames gives on all of them at once."""
    torch.manual_seed(3)
    frames = torch.randn(57, 6, dtype=torch.float64) * 3 + 1
    cuts = [0, 20, 21, 57]
    whole = pool_frames(frames[None], torch.tensor([57]), pooling)[0]
    parts = [(pool_frames(frames[None, a:b], torch.tensor([b - a]), pooling)[0], b - a) for a, b in zip(cuts, cuts[1:])]
    assert (merge_pooled(parts, pooling) - whole).abs().max() <= 1e-9


def test_mean_std_heads_are_not_exported_to_transformers(tmp_path):
    model = tiny_classifier("sew", weighted=False, pooling="mean_std")
    with pytest.raises(ValueError, match="pools by the mean only.*head.pooling=mean"):
        sew.export_hf(model, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_round_trip(tmp_path, family):
    pooling = "mean_std" if family == "sew-d" else "mean"
    model = tiny_classifier(family, weighted=family != "sew", proj_size=8, pooling=pooling)
    save_model(model, tmp_path)
    meta = json.loads((tmp_path / "sew_config.json").read_text())
    assert meta["classifier"] == {"labels": LABELS, "use_weighted_layer_sum": family != "sew", "proj_size": 8,
                                  "pooling": pooling}
    assert meta["model"]["family"] == family and meta["model"]["vocab_size"] is None
    loaded = sew.load_model(tmp_path).eval()
    assert isinstance(loaded, SequenceClassifier)
    assert loaded.labels == LABELS and loaded.head_config == model.head_config and loaded.config == model.config
    assert sorted(loaded.state_dict()) == sorted(model.state_dict())
    _, batch, lengths = padded_batch(LENGTHS)
    with torch.no_grad():
        assert torch.equal(loaded(batch, lengths).logits, model(batch, lengths).logits)


def test_encoder_directories_still_load_as_encoders(tmp_path):
    save_model(sew.build_model({"family": "sew", **TINY}, vocab_size=5), tmp_path)
    assert type(sew.load_model(tmp_path)) is sew.SpeechEncoder


def test_from_encoder_reuses_the_weights_without_the_ctc_head():
    torch.manual_seed(0)
    encoder = sew.build_model({"family": "sew-d", **TINY}, vocab_size=7).eval()
    model = SequenceClassifier.from_encoder(encoder, ClassifierConfig(LABELS)).eval()
    assert model.encoder.ctc_head is None and model.config.vocab_size is None
    assert not any(k.startswith("encoder.ctc_head") for k in model.state_dict())
    x = torch.randn(1, 2000)
    with torch.no_grad():
        assert torch.equal(model.encoder(x).last_hidden_state, encoder(x).last_hidden_state)
    assert model.encoder.feature_norm.weight is not encoder.feature_norm.weight  # a copy


def test_cpu_inference_conversion_keeps_the_logits():
    model = tiny_classifier("sew-d", weighted=True)
    fast = sew.optimize_for_cpu(model)
    _, batch, lengths = padded_batch(LENGTHS)
    with torch.no_grad():
        assert (fast(batch, lengths).logits - model(batch, lengths).logits).abs().max() <= 1e-5


@pytest.mark.parametrize("fields,field", [
    ({"labels": ["a"]}, "labels"),
    ({"labels": ["a", "b", "a"]}, "labels"),
    ({"labels": "ab"}, "labels"),
    ({"labels": ["a", "b"], "proj_size": 0}, "proj_size"),
    ({"labels": ["a", "b"], "pooling": "max"}, "pooling"),
])
def test_config_errors_name_the_field(fields, field):
    with pytest.raises(ValueError, match=f"classifier config field '{field}'"):
        ClassifierConfig(**fields)
    with pytest.raises(ValueError, match=field):
        sew.config.from_mapping(ClassifierConfig, fields, "classifier")


def test_bad_classifier_section_names_the_file(tmp_path):
    save_model(tiny_classifier("wav2vec2", weighted=False), tmp_path)
    meta = json.loads((tmp_path / "sew_config.json").read_text())
    meta["classifier"]["proj_sise"] = 3
    (tmp_path / "sew_config.json").write_text(json.dumps(meta))
    message = r"sew_config.json: classifier: unknown fields proj_sise \(did you mean proj_size"
    with pytest.raises(ValueError, match=message):
        sew.load_model(tmp_path)
