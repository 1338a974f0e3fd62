"""Classification end to end on a tiny corpus of tones: training, evaluation, files, features."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import sew
from sew.classify.metrics import confusion_matrix, scores
from sew.cli import main
from sew.data.audio import load_audio, write_flac
from sew.train.logs import read_log

FAST = ["--set", "model_overrides.num_layers=1", "--set", "train.max_minutes=null", "--set", "train.log_every=1",
        "--set", "train.validate_every_minutes=null", "--set", "train.save_every=0", "--set", "train.warmup_updates=5",
        "--no-progress"]


def test_scores_follow_their_definitions():
    truth = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    predicted = [0, 1, 0, 1, 1, 2, 0, 2, 1]
    m = confusion_matrix(truth, predicted, 4)  # class 3 never occurs
    assert m.sum() == 9 and m[0, 1] == 1 and m[2, 0] == 1 and m[2, 1] == 1
    s = scores(m, ["a", "b", "c", "d"])
    assert s["accuracy"] == pytest.approx(np.mean(np.array(truth) == np.array(predicted)))
    f1 = []
    for k in range(3):
        tp = sum(t == p == k for t, p in zip(truth, predicted))
        precision, recall = tp / predicted.count(k), tp / truth.count(k)
        f1.append(2 * precision * recall / (precision + recall))
    assert s["macro_f1"] == pytest.approx(np.mean(f1))  # over the classes in the reference
    assert s["per_class"]["d"]["support"] == 0


def test_labels_missing_or_unknown_are_rejected_with_a_reason(tone_corpus):
    from sew.classify.data import LabelDataset
    from sew.data.corpus import read_corpus
    from sew.data.rejects import RejectLog

    corpus = read_corpus(tone_corpus, split="dev")
    log = RejectLog(warn=False)
    data = LabelDataset(corpus, ["high", "low"], rejects_log=log)
    assert len(data) == 6 and len(log) == 3
    assert all(item.reason == "unknown label" and "'noise'" in item.detail for item in log.items)
    assert sorted(set(data.targets().values())) == [0, 1]
    assert data[0].target == [data.label_index[data.utterances[0].label]]
    with pytest.raises(Exception, match="unknown label"):
        LabelDataset(corpus, ["high", "low"], rejects_log=RejectLog(strict=True))


def test_finetune_eval_and_classify_from_the_command_line(tone_corpus, tmp_path, capsys):
    run = tmp_path / "run"
    rc = main(["finetune", "--task", "classify", "--data", str(tone_corpus), "--run-dir", str(run),
               "--max-update", "40", "--lr", "2e-3", *FAST])
    assert rc == 0
    losses = [r["loss"] for r in read_log(run, "train")]
    assert len(losses) == 40 and np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])  # it learns
    metrics = json.loads((run / "eval-test" / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.75 and metrics["labels"] == ["high", "low", "noise"]
    assert (run / "eval-test" / "confusion.png").stat().st_size > 1000
    model = sew.load_model(run / "final")
    assert isinstance(model, sew.SequenceClassifier) and model.labels == ["high", "low", "noise"]

    capsys.readouterr()
    assert main(["eval", "--model", str(run / "final"), "--data", str(tone_corpus), "--split", "dev",
                 "--out", str(tmp_path / "ev")]) == 0
    assert "accuracy %" in capsys.readouterr().out
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["utterances"] == 9

    good = tone_corpus / "audio" / "test" / "low-0.flac"
    short = tmp_path / "short.wav"
    write_flac(short, np.zeros(100, dtype=np.float32))
    rc = main(["classify", "--model", str(run / "final"), "--top", "2", str(good), str(tmp_path / "nope.wav"),
               str(short)])
    out, err = capsys.readouterr()
    assert rc == 1, err
    line = out.strip().splitlines()
    assert len(line) == 1 and line[0].startswith(f"{good}\t")
    probs = [float(p.split(":")[1]) for p in line[0].split("\t")[1].split()]
    assert len(probs) == 2 and probs[0] >= probs[1] and sum(probs) <= 1.0 + 1e-6
    assert "nope.wav: file not found" in err and "short" in err and "too short" in err


def test_probe_trains_only_the_head_and_layer_weights(tone_corpus, tmp_path, monkeypatch):
    from sew.classify import finetune as ft

    built = {}
    original = ft.build_classifier_model

    def keep(recipe, labels):
        built["model"] = model = original(recipe, labels)
        built["before"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return model

    monkeypatch.setattr(ft, "build_classifier_model", keep)
    recipe = ft.load_recipe("probe", ["model_overrides.num_layers=1", "train.max_minutes=null", "train.max_update=3",
                                      "train.save_every=0", "train.validate_every_minutes=null"])
    ft.finetune_classifier(recipe, tone_corpus, tmp_path / "probe", progress=False)
    after = built["model"].state_dict()
    changed = {k for k, v in built["before"].items() if not torch.equal(v, after[k])}
    assert changed == {"layer_weights", "projector.weight", "projector.bias", "classifier.weight", "classifier.bias"}


def test_logmel_baseline_learns_the_tones(tone_corpus, tmp_path):
    from sew.bench.downstream import score
    from sew.classify import finetune as ft

    recipe = ft.load_recipe("probe", ["model=logmel", "train.max_minutes=null", "train.max_update=60",
                                      "train.save_every=0", "train.validate_every_minutes=null", "train.lr=1e-2"])
    ft.finetune_classifier(recipe, tone_corpus, tmp_path / "logmel", progress=False)
    assert score(tmp_path / "logmel" / "final", tone_corpus)["accuracy"] >= 0.9


@pytest.mark.parametrize("pooling", ["mean", "mean_std"])
def test_logmel_padded_batch_equals_alone(pooling):
    from sew.classify.logmel import LogMelClassifier, LogMelConfig

    torch.manual_seed(0)
    model = LogMelClassifier(LogMelConfig(labels=["a", "b", "c"], proj_size=8, pooling=pooling)).eval()
    waves = [torch.randn(n) for n in (4000, 2500)]
    batch = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
    with torch.no_grad():
        out = model(batch, torch.tensor([4000, 2500]))
        assert out.pooled.shape == (2, 16 if pooling == "mean_std" else 8)
        for i, wave in enumerate(waves):
            assert (model(wave[None]).logits[0] - out.logits[i]).abs().max() <= 1e-5
    with pytest.raises(ValueError, match="log-mel config field 'pooling'"):
        LogMelConfig(labels=["a", "b"], pooling="median")


@pytest.mark.parametrize("pooling", ["mean", "mean_std"])
def test_long_files_pool_over_windows(pooling):
    from sew.classify.predict import pooled_logits

    torch.manual_seed(0)
    model = sew.build_classifier("sew-d-micro", ["a", "b", "c"], num_layers=1, pooling=pooling).eval()
    unit = 16000
    window = torch.randn(unit) * 0.1
    with torch.no_grad():
        whole = model(window[None]).logits[0]
        # three identical windows: the mean (and spread) over the file is that over one window
        tiled = pooled_logits(model, window.repeat(3), chunk_seconds=1.0)
        assert torch.allclose(tiled, whole, atol=1e-5)
        # a file shorter than a window is one forward
        assert torch.allclose(pooled_logits(model, window, chunk_seconds=30.0), whole, atol=1e-6)


@pytest.mark.parametrize("preset", ["sew-micro", "w2v2-micro"])
def test_features_write_every_layer_at_50_hz(preset, tmp_path, capsys):
    torch.manual_seed(0)
    model = sew.build_model(preset, num_layers=2).eval()
    sew.save_model(model, tmp_path / "m")
    wave = (np.random.default_rng(0).standard_normal(8000) * 0.1).astype(np.float32)
    write_flac(tmp_path / "a.flac", wave)
    wave, _ = load_audio(str(tmp_path / "a.flac"))  # as the command reads it (16-bit)
    rates = ["50", "25"] if preset == "sew-micro" else ["50"]
    with torch.no_grad():
        out = model(torch.from_numpy(wave)[None], output_hidden_states=True, upsample_hidden_states=True)
        native = model(torch.from_numpy(wave)[None], output_hidden_states=True)
    for rate in rates:
        dest = tmp_path / f"f{rate}"
        assert main(["features", "--model", str(tmp_path / "m"), "--layers", "0,-1", "--rate", rate,
                     "--out", str(dest), str(tmp_path / "a.flac")]) == 0
        states = load_file(dest / "a.safetensors")
        assert sorted(states) == ["layer_0", "layer_2"]
        want = out if rate == "50" else native
        frames = int(out.lengths[0]) if rate == "50" else int(out.lengths[0]) // 2
        for k in (0, 2):
            assert states[f"layer_{k}"].shape == (frames, model.config.hidden_size)
            assert torch.allclose(states[f"layer_{k}"], want.hidden_states[k][0, :frames], atol=1e-5)
        assert json.loads((dest / "features.json").read_text())["frame_rate_hz"] == int(rate)
    assert main(["features", "--model", str(tmp_path / "m"), "--layers", "7", "--out", str(tmp_path / "x"),
                 str(tmp_path / "a.flac")]) == 2
    assert "layer 7 does not exist" in capsys.readouterr().err


def test_clips_longer_than_a_batch_are_cropped_not_skipped(tone_corpus, tmp_path, monkeypatch):
    """A label holds for any part of its clip: one longer than train.max_tokens is cropped to it (the tones
    are 0.4-0.5 s, the batch here 0.25 s); none is rejected as too long."""
    from sew.classify import finetune as ft

    seen = []
    original = ft.LabelDataset.__getitem__
    monkeypatch.setattr(ft.LabelDataset, "__getitem__",
                        lambda self, i: seen.append((self.max_sample_size, original(self, i))) or seen[-1][1])
    recipe = ft.load_recipe("probe", ["model=logmel", "train.max_minutes=null", "train.max_update=4",
                                      "train.max_tokens=4000", "train.save_every=0", "train.validate_every_minutes=null"])
    state = ft.finetune_classifier(recipe, tone_corpus, tmp_path / "cropped", progress=False)
    assert state.update == 4
    assert "too long" not in (tmp_path / "cropped" / "rejected.tsv").read_text()
    train = [len(example.waveform) for crop, example in seen if crop is not None]  # train.num_workers is 0
    assert len(train) >= 4 and max(train) == 4000  # validation reads whole clips
