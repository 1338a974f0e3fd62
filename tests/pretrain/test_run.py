"""``sew pretrain`` end to end on tiny runs: learning, logging, the saved encoder, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

import sew
from sew.cli import main
from sew.data.synth import default_corpus

from .helpers import read_log, tiny_args


def test_tiny_run_learns_and_logs_every_component(tmp_path):
    # Masks of single frames: the context (neighbours) predicts the target, learnable in tens of
    # updates; the recipe's 10-frame spans need far more updates than a test can afford.
    # 110 updates: past the first checks of the health monitor (codebook, time-varying share at 100),
    # which must find nothing in this healthy run with the quick preset's diversity weight. With every
    # negative a real one (no collapsed codebook) the tiny model learns slowly: measured 3.16 -> 2.99-3.08
    # (chance ln 21 = 3.04; the spread is between thread counts), accuracy 0.065 -> 0.07-0.13; with
    # diversity weight 0.1 it fell faster because its negatives came to equal their targets.
    args = tiny_args(tmp_path, 110, "--set", "objective.mask_length=1", "--set", "objective.mask_prob=0.3",
                     "--set", "train.warmup_updates=10")
    assert main(args) == 0
    log = read_log(tmp_path)
    assert len(log) == 110
    assert read_log(tmp_path, "health") == [] and json.loads((tmp_path / "summary.json").read_text())["healthy"]
    for key in ("loss", "contrastive", "diversity", "feature_penalty", "accuracy", "code_perplexity",
                "prob_perplexity", "temperature", "lr", "gnorm", "audio_per_s", "sample_size"):
        assert key in log[0], key
    first, last = log[:10], log[-10:]
    mean = lambda rows, k: float(np.mean([r[k] for r in rows]))  # noqa: E731
    print(f"contrastive {mean(first, 'contrastive'):.3f} -> {mean(last, 'contrastive'):.3f}, "
          f"accuracy {mean(first, 'accuracy'):.3f} -> {mean(last, 'accuracy'):.3f}")
    assert mean(last, "contrastive") < mean(first, "contrastive") - 0.05
    assert mean(last, "accuracy") > mean(first, "accuracy")
    assert log[-1]["temperature"] < log[0]["temperature"]
    # The fine-tuning artefact is the encoder alone.
    encoder = sew.load_model(tmp_path / "final")
    assert not any(k.startswith(("quantizer", "project_q", "final_proj")) for k in encoder.state_dict())


def copy_train_utterances(data: Path, count: int, stem: str) -> list[str]:
    """The first ``count`` train utterances of the built-in corpus as ``data/audio/STEMi.wav``: their manifest rows."""
    corpus = default_corpus()
    lines = (corpus / "train.tsv").read_text().splitlines()
    root = (corpus / lines[0]).resolve() if not Path(lines[0]).is_absolute() else Path(lines[0])
    (data / "audio").mkdir(parents=True)
    rows = []
    for i, line in enumerate(lines[1:count + 1]):
        rel, n = line.split("\t")
        sf.write(data / "audio" / f"{stem}{i}.wav", *sf.read(root / rel, dtype="float32"))
        rows.append(f"audio/{stem}{i}.wav\t{n}")
    return rows


def test_bad_files_are_skipped_and_reported(tmp_path):
    data = tmp_path / "data"
    rows = copy_train_utterances(data, 12, "good")
    (data / "audio" / "truncated.wav").write_bytes((data / "audio" / "good0.wav").read_bytes()[:3000])
    (data / "audio" / "noise.txt.wav").write_bytes(b"not audio at all" * 100)
    nan = np.full(20000, np.nan, dtype=np.float32)
    sf.write(data / "audio" / "nan.wav", nan, 16000, subtype="FLOAT")
    rows += ["audio/truncated.wav\t20000", "audio/noise.txt.wav\t20000", "audio/nan.wav\t20000",
             "audio/missing.wav\t20000", "audio/short.wav\t300"]
    (data / "train.tsv").write_text(str(data) + "\n" + "\n".join(rows) + "\n")
    run = tmp_path / "run"
    assert main(tiny_args(run, 8, "--data", str(data), "--set", "train.max_tokens=48000")) == 0  # > 1 epoch
    rejected = (run / "rejected.tsv").read_text()
    for name in ("truncated.wav", "noise.txt.wav", "nan.wav", "missing.wav", "short.wav"):
        assert name in rejected, name
    assert "good" not in rejected
    assert len(read_log(run)) == 8


def test_a_corpus_without_a_dev_split_validates_on_a_seeded_holdout(tmp_path, capsys):
    data = tmp_path / "data"
    rows = copy_train_utterances(data, 20, "u")
    (data / "train.tsv").write_text(str(data) + "\n" + "\n".join(rows) + "\n")  # no dev split
    run = tmp_path / "run"
    assert main(tiny_args(run, 3, "--data", str(data), "--set", "data.valid_split=dev")) == 0
    out = capsys.readouterr().out
    held = (run / "holdout.txt").read_text().split()
    assert len(held) == 1 and "has no dev split: validating on 1 utterances held out of train (5%, seed" in out
    assert read_log(run, "valid") and read_log(run, "valid")[-1]["update"] == 3
    # The same corpus and seed hold out the same utterance.
    assert main(tiny_args(tmp_path / "again", 3, "--data", str(data), "--set", "data.valid_split=dev")) == 0
    assert (tmp_path / "again" / "holdout.txt").read_text().split() == held
