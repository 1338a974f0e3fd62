"""Hub ids wherever a model is accepted, served offline from a Hub cache made in the test."""

from __future__ import annotations

import json

import pytest
import torch

import sew
from sew.checkpoint import save_model
from sew.cli import main
from sew.data.text import Vocabulary
from tests.hub_cache import add_to_hub_cache
from tests.train.conftest import tiny_corpus  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A fine-tuned model (CTC head + vocab.json) in our format, and an encoder in transformers' format."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    vocab = Vocabulary.build(["hello world", "a quick test"])
    ft = sew.build_model("sew-d-micro", vocab_size=len(vocab), num_layers=1).eval()
    save_model(ft, root / "ft")
    vocab.save(root / "ft")
    sew.export_hf(sew.build_model("w2v2-micro", num_layers=1), root / "encoder-hf")
    return root, ft


@pytest.fixture
def hub(models, tmp_path, monkeypatch):
    root, _ = models
    cache = tmp_path / "hub"
    commit = add_to_hub_cache(cache, "org/tiny-ft", root / "ft")
    add_to_hub_cache(cache, "org/encoder", root / "encoder-hf")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)  # nothing may be written into the cache or next to it
    return cache, commit


def test_load_model_by_hub_id_gives_the_same_outputs(models, hub):
    _, ft = models
    _, commit = hub
    x = torch.randn(1, 12000) * 0.1
    with torch.no_grad():
        want = ft(x).logits
        for spec, kwargs in (("org/tiny-ft", {}), (f"org/tiny-ft@{commit}", {}), ("org/tiny-ft", {"revision": commit})):
            assert torch.equal(sew.load_model(spec, **kwargs).eval()(x).logits, want)
    assert sew.load_model("org/encoder").config.family == "wav2vec2"


def test_offline_and_not_cached_says_what_to_do(hub):
    with pytest.raises(ValueError, match=r"org/missing.*HF_HUB_OFFLINE=1.*download it once online"):
        sew.load_model("org/missing")
    with pytest.raises(ValueError, match="org/tiny-ft at revision 0123456"):
        sew.load_model("org/tiny-ft@0123456789012345678901234567890123456789")


def test_a_mistyped_local_path_is_never_sent_to_the_hub(tmp_path, monkeypatch):
    from sew.hub import is_hub_id

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "ft").mkdir(parents=True)
    assert is_hub_id("org/name") and is_hub_id("org/name@refs/pr/1")
    for spec in ("runs/typo", "./org/name", "/org/name", "a/b/c", "runs/ft"):
        assert not is_hub_id(spec), spec
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: pytest.fail("went to the Hub"))
    with pytest.raises(ValueError, match=r"model path runs/typo does not exist .*not looked up.*runs has: ft"):
        sew.load_model("runs/typo")


def test_every_model_option_takes_a_hub_id(hub, tiny_corpus, tmp_path, capsys):  # noqa: F811 (fixture)
    from sew.data.corpus import read_corpus

    clip = read_corpus(tiny_corpus, split="test").utterances[0].path
    assert main(["transcribe", "--model", "org/tiny-ft", clip]) == 0
    assert capsys.readouterr().out.startswith(clip + "\t")
    assert main(["eval", "--model", "org/tiny-ft", "--data", str(tiny_corpus)]) == 0
    assert json.loads((tmp_path / "runs" / "eval-org--tiny-ft-test" / "metrics.json").read_text())["utterances"] > 0
    assert main(["finetune", "--model", "org/encoder", "--data", str(tiny_corpus), "--run-dir", str(tmp_path / "ft"),
                 "--max-update", "1", "--no-progress", "--set", "train.max_minutes=null",
                 "--set", "train.validate_every_minutes=null", "--test-split", ""]) == 0
    assert json.loads((tmp_path / "ft" / "recipe.json").read_text())["model"] == "org/encoder"
    assert json.loads((tmp_path / "ft" / "final" / "sew_config.json").read_text())["model"]["family"] == "wav2vec2"
    assert main(["convert", "org/tiny-ft", str(tmp_path / "hf"), "--to", "hf"]) == 0
    assert (tmp_path / "hf" / "config.json").is_file() and (tmp_path / "hf" / "vocab.json").is_file()
    assert main(["bench", "speed", "--models", "org/tiny-ft", "--utterances", "1", "--mean-seconds", "1",
                 "--repeats", "1", "--warmup", "0", "--no-reference", "--threads", "1"]) == 0
    assert "| org/tiny-ft | sew |" in capsys.readouterr().out
    cache, _ = hub
    assert not list(cache.rglob("eval-*")) and not list(cache.rglob("*.onnx"))
