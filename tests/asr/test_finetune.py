import json

import pytest
import torch

import sew
from sew.asr.finetune import build_model, finetune, load_recipe
from sew.cli import main
from sew.train.logs import read_log


def tiny_recipe(tmp_path, **train):
    """The quick preset on a one-layer model, a short update budget, no wall clock."""
    recipe = load_recipe("quick", ["model_overrides.num_layers=1", "train.max_minutes=null", "train.log_every=1",
                                   "train.save_every=0", "train.validate_every=0", "train.validate_every_minutes=null",
                                   "data.valid_split=null"])
    for k, v in train.items():
        setattr(recipe.train, k, v)
    return recipe


def small_train_split(tiny_corpus, tmp_path, n=4):
    """A copy of the corpus manifest with the ``n`` shortest train utterances (fast updates)."""
    root = tmp_path / "data"
    root.mkdir()
    lines = (tiny_corpus / "train.tsv").read_text().splitlines()
    words = (tiny_corpus / "train.wrd").read_text().splitlines()
    items = sorted(zip(lines[1:], words), key=lambda x: int(x[0].split("\t")[1]))[:n]
    audio_root = (tiny_corpus / lines[0]).resolve()
    (root / "train.tsv").write_text("\n".join([str(audio_root)] + [a for a, _ in items]) + "\n")
    (root / "train.wrd").write_text("\n".join(b for _, b in items) + "\n")
    (root / "vocab.json").write_text((tiny_corpus / "vocab.json").read_text())
    return root


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_freezing_really_freezes(tmp_path, tiny_corpus, monkeypatch):
    recipe = tiny_recipe(tmp_path, max_update=2, lr=1e-3)
    recipe.freeze_feature_extractor, recipe.freeze_finetune_updates = True, 2
    data = small_train_split(tiny_corpus, tmp_path)
    built = {}

    def keep(recipe, vocab):
        built["model"] = model = build_model(recipe, vocab)
        built["before"] = snapshot(model)
        return model

    monkeypatch.setattr("sew.asr.finetune.build_model", keep)
    finetune(recipe, data, tmp_path / "run", progress=False)
    model, before = built["model"], built["before"]
    after = snapshot(model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"ctc_head.proj.weight", "ctc_head.proj.bias"}  # only the head trained
    # two more updates: the encoder trains now, the feature extractor never
    recipe.train.max_update = 4
    finetune(recipe, data, tmp_path / "run", progress=False)  # resumes at update 2
    model, after = built["model"], snapshot(built["model"])
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("context.") for k in changed)
    assert not any(k.startswith("feature_extractor.") for k in changed)


def test_loss_falls_on_a_tiny_overfit(tmp_path, tiny_corpus):
    recipe = tiny_recipe(tmp_path, max_update=12, lr=3e-3, warmup_updates=3, max_tokens=16000 * 20)
    recipe.masking.mask_prob = recipe.masking.mask_channel_prob = 0.0  # overfitting is the point here
    state = finetune(recipe, small_train_split(tiny_corpus, tmp_path, n=2), tmp_path / "run", progress=False)
    losses = [r["loss"] for r in read_log(tmp_path / "run", "train")]
    assert state.update == 12 and len(losses) == 12
    assert losses[0] > 2.5  # starts on the plateau thanks to the prior bias
    assert min(losses[-3:]) < 0.6 * losses[0]


def test_cli_fine_tunes_a_hugging_face_encoder_and_evaluates(tmp_path, tiny_corpus, capsys):
    torch.manual_seed(0)
    encoder = sew.build_model("sew-micro", num_layers=1)  # no CTC head
    sew.export_hf(encoder, tmp_path / "hf-encoder")
    run = tmp_path / "run"
    code = main(["finetune", "--model", str(tmp_path / "hf-encoder"), "--data", str(tiny_corpus), "--run-dir", str(run),
                 "--max-update", "2", "--no-progress", "--set", "train.max_minutes=null",
                 "--set", "train.validate_every_minutes=null", "--set", "model_overrides.layerdrop=0.1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "finished: 2 updates" in out and "WER %" in out  # the test split was scored after training
    for name in ("best", "final"):
        assert json.loads((run / name / "sew_config.json").read_text())["model"]["family"] == "sew"
        assert (run / name / "vocab.json").is_file()
    metrics = json.loads((run / "eval-test" / "metrics.json").read_text())
    assert metrics["utterances"] > 0 and 0 <= metrics["cer"]
    assert json.loads((run / "recipe.json").read_text())["model_overrides"]["layerdrop"] == 0.1


def test_unknown_preset_and_field_are_named():
    with pytest.raises(ValueError, match="Known presets: .*quick"):
        load_recipe("quik")
    with pytest.raises(ValueError, match="mask_prob"):
        load_recipe("quick", ["masking.mask_prb=0.5"])


def audiofolder_without_dev(tiny_corpus, root):
    """The tiny corpus as a user's audiofolder: ``train/`` and ``test/`` with metadata.csv, no dev."""
    import csv
    import shutil

    from sew.data.corpus import read_corpus

    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        with open(root / split / "metadata.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["file_name", "transcription"])
            for i, u in enumerate(read_corpus(tiny_corpus, split=split)):
                name = f"{split}-{i:03d}.flac"
                shutil.copy(u.path, root / split / name)
                writer.writerow([name, u.transcript])
    return root


def test_a_corpus_without_dev_validates_on_a_held_out_part_of_train(tmp_path, tiny_corpus, capsys):
    source = audiofolder_without_dev(tiny_corpus, tmp_path / "mine")
    manifests = tmp_path / "manifests"
    assert main(["data", "manifest", str(source), "--out", str(manifests), "--no-progress"]) == 0
    assert (manifests / "rejected.tsv").is_file()  # written even when empty: not a split
    assert "train: edge silence 0.0% of the audio" in capsys.readouterr().out
    run = tmp_path / "run"
    code = main(["finetune", "--data", str(manifests), "--run-dir", str(run), "--max-update", "2", "--no-progress",
                 "--set", "model_overrides.num_layers=1", "--set", "train.max_minutes=null",
                 "--set", "train.validate_every_minutes=null"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "has no dev split: validating on" in out and "WER %" in out  # held-out dev, then the test split
    assert "edge silence" not in out  # eSpeak's edges are trimmed: no advice for fine-tuning to repeat
    held = (run / "holdout.txt").read_text().split()
    train_ids = {line.split("\t")[0].rsplit(".", 1)[0] for line in (manifests / "train.tsv").read_text().splitlines()[1:]}
    assert held and set(held) < train_ids
    recipe = json.loads((run / "recipe.json").read_text())
    assert recipe["validation"] == {"split": "dev", "held_out_from": "train", "utterances": len(held), "seed": 1}
    assert (run / "best").is_dir() and (run / "eval-test" / "metrics.json").is_file()

    # The training data never includes a held-out utterance, and the same seed holds out the same ones.
    from sew.train.splits import training_splits
    from sew.data.rejects import RejectLog

    recipe = load_recipe("quick")
    train, valid, _ = training_splits(recipe, manifests, RejectLog())
    assert {u.id for u in train}.isdisjoint(u.id for u in valid) and len(train) + len(valid) == len(train_ids)
    assert [u.id for u in valid] == [u.id for u in training_splits(recipe, manifests, RejectLog())[1]]
    assert sorted(u.id.rsplit("/", 1)[-1] for u in valid) == sorted(h.rsplit("/", 1)[-1] for h in held)


def test_valid_split_none_or_a_named_one(tmp_path, tiny_corpus, capsys):
    source = audiofolder_without_dev(tiny_corpus, tmp_path / "mine")
    common = ["--max-update", "1", "--no-progress", "--set", "model_overrides.num_layers=1",
              "--set", "train.max_minutes=null", "--set", "train.validate_every_minutes=null", "--test-split", ""]
    assert main(["finetune", "--data", str(source), "--run-dir", str(tmp_path / "a"), "--valid-split", "none",
                 *common]) == 0
    assert not (tmp_path / "a" / "best").exists() and not (tmp_path / "a" / "holdout.txt").exists()
    assert main(["finetune", "--data", str(source), "--run-dir", str(tmp_path / "b"), "--valid-split", "test",
                 *common]) == 0
    assert json.loads((tmp_path / "b" / "recipe.json").read_text())["validation"]["split"] == "test"
    capsys.readouterr()
    assert main(["finetune", "--data", str(source), "--run-dir", str(tmp_path / "c"), "--valid-split", "eval",
                 *common]) == 2
    err = capsys.readouterr().err
    assert "no split 'eval'; found train, test" in err and "--valid-split none" in err


def test_set_lr_from_the_command_line_is_a_number(tmp_path, tiny_corpus):
    """``--set train.lr=1e-4`` (the example in the help) trains with lr 0.0001."""
    data = small_train_split(tiny_corpus, tmp_path)
    run = tmp_path / "run"
    assert main(["finetune", "--data", str(data), "--run-dir", str(run), "--max-update", "3", "--no-progress",
                 "--set", "train.lr=1e-4", "--set", "train.max_minutes=null", "--set", "train.log_every=1",
                 "--set", "train.warmup_updates=null", "--set", "train.phase_ratio=[0.0, 1.0, 0.0]",
                 "--set", "train.init_lr_scale=1.0", "--set", "model_overrides.num_layers=1", "--valid-split", "none",
                 "--test-split", ""]) == 0
    assert json.loads((run / "recipe.json").read_text())["train"]["lr"] == 0.0001
    assert [r["lr"] for r in read_log(run, "train")] == [pytest.approx(1e-4)] * 3


def test_a_run_directory_in_use_is_refused_in_one_line(tmp_path, tiny_corpus, capsys):
    from sew.files import DirectoryLock

    held = DirectoryLock(tmp_path / "run")  # another `sew finetune` writing there
    try:
        code = main(["finetune", "--data", str(tiny_corpus), "--run-dir", str(tmp_path / "run"), "--max-update", "1",
                     "--no-progress", "--set", "model_overrides.num_layers=1"])
    finally:
        held.release()
    err = capsys.readouterr().err
    assert code == 2 and f"{tmp_path / 'run'}: this run directory is in use by another process" in err
    assert "Traceback" not in err and not (tmp_path / "run" / "log.jsonl").exists()
