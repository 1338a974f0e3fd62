"""``sew bench --profile paper`` offline: small stand-ins under the released checkpoints' Hub ids in a
Hub cache made here, scored and timed on a tiny corpus in the LibriSpeech layout."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import sew
from sew.bench.paper import FINETUNED_100H, PRETRAINED, PaperRun, run_paper
from sew.cli import main
from sew.data.text import Vocabulary
from tests.hub_cache import add_to_hub_cache
from tests.train.conftest import tiny_corpus  # noqa: F401 (fixture)

LETTERS = "ETAONIHSRDLUMWCFGYPBVK'XJQZ"


def family_preset(hub_id: str) -> str:
    return "w2v2-micro" if "wav2vec2" in hub_id else "sew-d-micro" if "sew-d" in hub_id else "sew-micro"


@pytest.fixture(scope="module")
def librispeech(tiny_corpus, tmp_path_factory):  # noqa: F811
    """dev-other, test-other and train-clean-100 as SPLIT/speaker/chapter/*.flac with *.trans.txt, upper case."""
    from sew.data.corpus import read_corpus

    root = tmp_path_factory.mktemp("LibriSpeech")
    for split, source in (("dev-other", "dev"), ("test-other", "test"), ("train-clean-100", "train")):
        chapter = root / split / "100" / "7"
        chapter.mkdir(parents=True)
        lines = []
        for i, u in enumerate(read_corpus(tiny_corpus, split=source).utterances[:4]):
            shutil.copy(u.path, chapter / f"100-7-{i:04d}.flac")
            lines.append(f"100-7-{i:04d} {u.transcript.upper()}")
        (chapter / "100-7.trans.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """Every released id of the profile as a one-layer micro model of its family, in transformers' format."""
    cache, work = tmp_path_factory.mktemp("hub"), tmp_path_factory.mktemp("standins")
    vocab = Vocabulary(["<pad>", "<s>", "</s>", "<unk>", "|", *LETTERS])  # the released checkpoints' layout
    for k, hub_id in enumerate([r.hub_id for r in FINETUNED_100H] + PRETRAINED):
        torch.manual_seed(k)
        head = hub_id not in PRETRAINED
        model = sew.build_model(family_preset(hub_id), vocab_size=len(vocab) if head else None, num_layers=1)
        directory = work / hub_id.replace("/", "--")
        sew.export_hf(model, directory, vocab=vocab.save(work) if head else None)
        add_to_hub_cache(cache, hub_id, directory)
    return cache


def test_paper_profile_scores_and_times_the_released_checkpoints(librispeech, hub, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    code = main(["bench", "--profile", "paper", "--data", str(librispeech), "--out", str(tmp_path), "--no-reference",
                 "--speed-utterances", "3", "--threads", "1", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    (run,) = list(tmp_path.iterdir())
    data = json.loads((run / "results.json").read_text())
    assert data["failures"] == [] and data["speed_utterances"] == 3
    rows = {r["model"]: r for r in data["wer"]}
    assert list(rows) == [r.hub_id for r in FINETUNED_100H]
    for released in FINETUNED_100H:
        row = rows[released.hub_id]
        assert row["family"] == {"sew-d-micro": "sew-d", "sew-micro": "sew", "w2v2-micro": "wav2vec2"}[
            family_preset(released.hub_id)]
        assert 0 <= row["wer_dev-other"] and 0 <= row["wer_test-other"] and row["ms_per_utterance"] > 0
        assert row.get("card_wer_test-other") == released.card.get("test-other")
    assert rows["asapp/sew-d-mid-400k-ft-ls100h"]["card_wer_test-other"] == 11.51
    assert data["baseline"] == "facebook/wav2vec2-base-100h"
    table = (run / "results.md").read_text()
    assert "WER test-other %" in table and "card test-other %" in table and "| 11.51 |" in table
    assert (run / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_paper_profile_fine_tunes_a_released_pretrained_checkpoint(librispeech, hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    run = PaperRun(models=[], pretrained=["asapp/sew-d-tiny-100k"], finetune_minutes=0.05, splits=("dev-other",),
                   speed_utterances=2, reference=False)
    out, results = run_paper(run, librispeech, tmp_path, device="cpu", progress=False)
    assert results["failures"] == []
    (row,) = results["wer"]
    assert row["model"].endswith("asapp--sew-d-tiny-100k/best") or row["model"].endswith("/final")
    assert row["family"] == "sew-d" and 0 <= row["wer_dev-other"]
    recipe = json.loads((out / "runs" / "asapp--sew-d-tiny-100k" / "recipe.json").read_text())
    assert recipe["model"] == "asapp/sew-d-tiny-100k" and recipe["train"]["lr"] == 3e-5  # the official 100h recipe


def test_paper_profile_needs_librispeech(tmp_path, capsys):
    assert main(["bench", "--profile", "paper", "--out", str(tmp_path)]) == 2
    assert "pass --data DIR holding dev-other and test-other" in capsys.readouterr().err
