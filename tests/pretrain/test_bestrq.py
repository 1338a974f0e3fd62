"""BEST-RQ (``sew.pretrain.bestrq``): fixed targets, the loss and its statistics, training, saving, config."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

import sew
from sew.config import ConfigError
from sew.data.dataset import Batch
from sew.pretrain import BestRQModel, ObjectiveConfig, PretrainingModel, load_pretraining_model, make_pretraining_model
from sew.pretrain.bestrq import stack_frames
from sew.pretrain.recipe import load_recipe
from sew.pretrain.run import build_model
from sew.pretrain.task import PretrainTask
from sew.train.masking import compute_time_mask
from sew.train.state import TrainingState, load_checkpoint, save_checkpoint

TINY = dict(  # a SEW-D encoder of ~0.1 M parameters with the presets' 400-sample window and 320-sample stride
    conv_layers=[[32, 10, 5], [32, 3, 2], [32, 3, 2], [32, 3, 2], [32, 3, 2], [32, 2, 2], [32, 2, 2]],
    hidden_size=64, num_layers=1, num_heads=2, intermediate_size=128, pos_conv_kernel=15, pos_conv_groups=4,
    position_buckets=32, max_relative_positions=64, layerdrop=0.0, feature_dropout=0.0, attention_dropout=0.0,
)


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: one thread is faster, and much faster on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(seed: int = 0, **objective) -> BestRQModel:
    torch.manual_seed(seed)
    config = ObjectiveConfig(**{"kind": "bestrq", "bestrq_entries": 64, **objective})
    return make_pretraining_model(sew.build_model("sew-d-micro", **TINY), config)


def _tones(count: int = 4, seconds: float = 1.0, seed: int = 0) -> torch.Tensor:
    """``[count, samples]`` of harmonic tones whose pitch changes every 100 ms: structured, predictable audio."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    waves = []
    for _ in range(count):
        f0 = np.repeat(rng.choice([110.0, 165.0, 220.0, 330.0, 440.0], size=int(seconds * 10)), 1600)[:len(t)]
        phase = 2 * np.pi * np.cumsum(f0) / 16000
        waves.append(sum(np.sin(k * phase) / k for k in (1, 2, 3)) * 0.3 + 0.01 * rng.standard_normal(len(t)))
    return torch.tensor(np.stack(waves), dtype=torch.float32)


def _mask(model, lengths, samples, seed, prob=0.4, span=5):
    frame_lengths, frames = model.frame_lengths(lengths, samples)
    return compute_time_mask(frame_lengths, frames, prob, span, 2, torch.Generator().manual_seed(seed))


def test_targets_are_fixed_by_the_seed_and_the_same_alone_or_padded():
    a, b = _model(seed=0), _model(seed=1)  # different global RNG, same bestrq_seed
    assert torch.equal(a.projections, b.projections) and torch.equal(a.codebooks, b.codebooks)
    assert not torch.equal(a.codebooks, _model(bestrq_seed=1).codebooks)
    waves = _tones(2)
    lengths = torch.tensor([16000, 9000])
    waves[1, 9000:] = torch.randn(7000)  # garbage in the padding must not reach the targets
    batch = a.targets(waves, lengths)
    frame_lengths = a.encoder.output_lengths(lengths)
    assert batch.shape == (2, 49, 1) and frame_lengths.tolist() == [49, 27]
    assert torch.equal(batch, b.targets(waves, lengths))
    for i, n in enumerate(frame_lengths.tolist()):
        alone = a.targets(waves[i:i + 1, :int(lengths[i])])
        assert torch.equal(batch[i, :n], alone[0]) and (batch[i, n:] == -1).all() and (alone >= 0).all()
    assert len(batch[0].unique()) > 5  # normalised input: the tones spread over the codebook


@pytest.mark.parametrize("samples", [400, 559, 560, 719, 720, 1000, 16000, 16159, 16160])
def test_one_target_per_encoder_frame(samples):
    model = _model()
    targets = model.targets(torch.randn(1, samples, generator=torch.Generator().manual_seed(samples)))
    assert targets.shape[1] == int(model.encoder.output_lengths(torch.tensor([samples]))[0])
    assert (targets >= 0).all()


def test_stacking_pairs_log_mel_frames_2t_and_2t_plus_1():
    mel = torch.arange(10.0)[:, None].expand(10, 3)  # row j holds j
    stacked = stack_frames(mel, 2, 5)
    assert stacked[:, ::3].tolist() == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    short = stack_frames(mel[:9], 2, 5)  # the last encoder frame lacks its second log-mel frame: repeat the last
    assert short[-1, ::3].tolist() == [8, 8]


def test_targets_do_not_depend_on_the_time_mask_and_the_loss_uses_them():
    model = _model().train()
    waves, lengths = _tones(2), torch.tensor([16000, 12000])
    targets = model.targets(waves, lengths)
    for seed in (0, 1):
        mask = _mask(model, lengths, 16000, seed)
        out = model(waves, lengths, mask)
        assert torch.equal(model.targets(waves, lengths), targets)
        n, target = int(out.sample_size), targets[mask][:, 0]
        assert n == int(mask.sum()) and out.logits.shape == (n, 64)
        assert torch.allclose(out.contrastive, F.cross_entropy(out.logits, target, reduction="sum"), rtol=1e-5)
        cfg = model.config.objective
        assert torch.allclose(out.loss, out.contrastive + n * cfg.feature_penalty_weight * out.feature_penalty)
        assert int(out.correct) == int((out.logits.argmax(-1) == target).sum())
        assert float(out.diversity) == 0.0 and out.temperature == 0.0
        assert float(out.chance) == pytest.approx(n * math.log(64))
        p = torch.bincount(target, minlength=64).double() / n
        assert float(out.code_perplexity) == pytest.approx(math.exp(-float(torch.xlogy(p, p).sum())), rel=1e-5)
        assert 0.0 < float(out.time_share) <= 1.0


def test_a_fresh_model_scores_ln_entries():
    for entries in (64, 1024):
        model = _model(bestrq_entries=entries).eval()
        waves = _tones(3)
        out = model(waves, None, _mask(model, torch.tensor([16000] * 3), 16000, 0))
        per_target = float(out.contrastive.detach()) / int(out.sample_size)
        assert per_target == pytest.approx(math.log(entries), rel=0.1)
        assert float(out.prob_perplexity) > 0.9 * entries  # near-uniform predictions


def test_two_codebooks_average_their_cross_entropies():
    model = _model(bestrq_codebooks=2).train()
    assert model.projections.shape == (2, 160, 16) and model.codebooks.shape == (2, 64, 16)
    waves = _tones(2)
    targets = model.targets(waves)
    assert targets.shape[-1] == 2 and not torch.equal(targets[..., 0], targets[..., 1])
    mask = _mask(model, torch.tensor([16000, 16000]), 16000, 0)
    out = model(waves, None, mask)
    n = int(out.sample_size)
    logits = model.head(model.encoder(waves, time_mask=mask).last_hidden_state[mask]).view(n, 2, 64)
    ce = [F.cross_entropy(logits[:, g], targets[mask][:, g], reduction="sum") for g in range(2)]
    assert torch.allclose(out.contrastive, (ce[0] + ce[1]) / 2, rtol=1e-4)
    assert torch.allclose(out.logits, logits[:, 0], rtol=1e-4, atol=1e-6)


def test_training_on_fixed_tones_lowers_the_loss_below_chance_and_below_the_unigram_entropy():
    model = _model(bestrq_entries=64).train()
    waves, lengths = _tones(4), torch.full((4,), 16000)
    counts = torch.bincount(model.targets(waves).flatten(), minlength=64).double()
    p = counts / counts.sum()
    unigram = float(-torch.xlogy(p, p).sum())  # the best loss without context (3.7 nats here)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(80):
        out = model(waves, lengths, _mask(model, lengths, 16000, step))
        (out.loss / out.sample_size).backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(out.contrastive.detach()) / int(out.sample_size))
    chance = math.log(64)
    assert losses[0] == pytest.approx(chance, rel=0.1)
    last = sum(losses[-5:]) / 5
    assert last < 0.75 * chance and last < 0.85 * unigram, (unigram, losses)  # measured: 1.7-2.0 at the end


def test_frozen_quantizer_survives_a_training_checkpoint(tmp_path):
    model = _model()
    model.codebooks.neg_()  # not what the seed draws: the checkpoint must carry it
    model.projections.mul_(2.0)
    state = model.state_dict()
    assert {"projections", "codebooks"} <= set(state) and not {"filters", "window"} & set(state)
    optimizer = torch.optim.Adam(model.parameters())
    path = save_checkpoint(tmp_path, model=model, optimizer=optimizer, state=TrainingState(update=3))
    loaded = load_pretraining_model(path)
    assert isinstance(loaded, BestRQModel)
    assert torch.equal(loaded.codebooks, model.codebooks) and torch.equal(loaded.projections, model.projections)
    waves = _tones(1)
    assert torch.equal(loaded.targets(waves), model.targets(waves))
    resumed = _model(seed=5)  # what the trainer does on resume: a fresh model, then load_checkpoint
    load_checkpoint(path, model=resumed)
    assert torch.equal(resumed.codebooks, model.codebooks) and torch.equal(resumed.projections, model.projections)
    assert not any(name in ("projections", "codebooks") for name, _ in model.named_parameters())


def test_saved_encoder_loads_with_sew_load_model_without_bestrq_weights(tmp_path):
    model = _model()
    model.save_encoder(tmp_path / "enc", update=3)
    loaded = sew.load_model(tmp_path / "enc")
    assert type(loaded) is sew.SpeechEncoder
    assert set(loaded.state_dict()) == set(model.encoder.state_dict())
    assert not any(k.startswith(("head", "projections", "codebooks")) for k in loaded.state_dict())
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    meta = json.loads((tmp_path / "enc" / "sew_config.json").read_text())
    assert meta["objective"]["kind"] == "bestrq" and meta["update"] == 3


def test_the_preset_and_the_task_run_bestrq():
    recipe = load_recipe("quick")
    assert recipe.objective.kind == "bestrq" and load_recipe("quick-contrastive").objective.kind == "contrastive"
    model = build_model(load_recipe("quick", ["model_overrides={num_layers: 1}"]))
    assert isinstance(model, BestRQModel) and model.projections.shape == (1, 160, 16)
    assert isinstance(build_model(load_recipe("quick-contrastive", ["model_overrides={num_layers: 1}"])), PretrainingModel)
    task = PretrainTask(recipe.objective, seed=1)
    batch = Batch(["a", "b"], _tones(2), torch.tensor([16000, 14000]))
    sums = task.loss(model, batch, 0, 0, torch.Generator())
    assert sums.count > 0 and sums.sums["chance"] == pytest.approx(sums.count * math.log(1024))
    assert float(sums.loss.detach()) / sums.count == pytest.approx(math.log(1024), rel=0.1)


@pytest.mark.parametrize("field, value", [
    ("kind", "hubert"), ("bestrq_codebooks", 0), ("bestrq_entries", 1), ("bestrq_code_dim", 0),
    ("bestrq_mel_bins", 0), ("bestrq_mel_bins", 400), ("bestrq_seed", -1),
])
def test_bad_config_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"'{field}'"):
        ObjectiveConfig(**{"kind": "bestrq", field: value})
    with pytest.raises(ConfigError, match=field):
        load_recipe("quick", [f"objective.{field}={value}"])


def test_each_model_class_refuses_the_other_kind():
    encoder = sew.build_model("sew-d-micro", **TINY)
    with pytest.raises(ValueError, match="'kind'"):
        PretrainingModel(encoder, ObjectiveConfig(kind="bestrq"))
    with pytest.raises(ValueError, match="'kind'"):
        BestRQModel(encoder, ObjectiveConfig())
    odd = sew.build_model("sew-d-micro", **{**TINY, "conv_layers": [[32, 10, 5], [32, 3, 3]]})
    with pytest.raises(ValueError, match="multiple of 160"):
        BestRQModel(odd, ObjectiveConfig(kind="bestrq"))
