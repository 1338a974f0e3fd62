import json
import random

import numpy as np
import torch

from sew.train.state import (TrainingState, latest_checkpoint, list_checkpoints, load_checkpoint, join_tensors,
                             save_checkpoint, split_tensors)


def test_nested_state_round_trip():
    state = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.ones(2)}},
             "param_groups": [{"params": [0], "betas": (0.9, 0.98), "lr": 1e-3, "foreach": None}],
             "np": np.arange(3, dtype=np.uint32)}
    tensors, tree = split_tensors(state)
    back = join_tensors(json.loads(json.dumps(tree)), tensors)
    assert back["state"][0]["step"].item() == 3.0 and list(back["state"].keys()) == [0]
    assert back["param_groups"][0]["betas"] == (0.9, 0.98)
    assert back["np"].dtype == np.uint32 and back["np"].tolist() == [0, 1, 2]


def test_checkpoint_restores_model_optimizer_rng_and_prunes(tmp_path, make_model):
    model = make_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(1, 4000)).logits.sum().backward()
    opt.step()
    for update in (1, 2, 3):
        random.seed(update), np.random.seed(update), torch.manual_seed(update)
        save_checkpoint(tmp_path, model=model, optimizer=opt, state=TrainingState(update=update, epoch=1, batches_done=5),
                        sampler_state={"epoch": 1, "batches_done": 5}, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["update_00000002", "update_00000003"]
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))

    other = make_model(seed=1)
    opt2 = torch.optim.AdamW(other.parameters(), lr=1e-3)
    state, sampler = load_checkpoint(latest_checkpoint(tmp_path), model=other, optimizer=opt2)
    assert state.update == 3 and state.batches_done == 5 and sampler["epoch"] == 1
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))
    saved, loaded = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert saved.keys() == loaded.keys() and len(saved) > 10
    assert all(torch.equal(saved[k]["exp_avg_sq"], loaded[k]["exp_avg_sq"]) for k in saved)
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected
    # a crash mid-write leaves only a temporary directory, which is ignored
    (tmp_path / "checkpoints" / ".tmp-update_00000004").mkdir()
    assert latest_checkpoint(tmp_path).name == "update_00000003"


def test_a_damaged_newest_checkpoint_falls_back_and_junk_is_ignored_or_cleared(tmp_path, make_model, capsys):
    import os
    import shutil

    import pytest

    from sew.train.state import checkpoint_to_resume

    model = make_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for update in (1, 2, 3):
        save_checkpoint(tmp_path, model=model, optimizer=opt, state=TrainingState(update=update), keep_last=3)
    root = tmp_path / "checkpoints"
    shutil.copytree(root / "update_00000003", root / "update_00000003.bak")  # a user's copy: not a checkpoint
    (root / ".tmp-update_00000004").mkdir()  # a save killed halfway
    os.replace(root / "update_00000001", root / ".old-update_00000001")  # killed between replace's two renames
    weights = root / "update_00000003" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    assert checkpoint_to_resume(tmp_path, None, is_main=True) == root / "update_00000002"
    out, err = capsys.readouterr()
    assert f"{root / 'update_00000003'} is damaged (model.safetensors has 100 bytes" in err
    assert "removed .tmp-update_00000004" in out and "restored update_00000001 from .old-update_00000001" in out
    assert sorted(p.name for p in root.iterdir()) == ["update_00000001", "update_00000002", "update_00000003",
                                                      "update_00000003.bak"]
    (root / "update_00000002" / "optimizer.json").write_text("{}")  # same size or not, the checksum tells
    (root / "update_00000001" / "trainer_state.json").unlink()  # not a checkpoint any more
    with pytest.raises(ValueError, match="no intact checkpoint"):
        checkpoint_to_resume(tmp_path, True, is_main=True)


def test_replacing_a_checkpoint_never_leaves_none(tmp_path, make_model, monkeypatch):
    import os

    model = make_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    save_checkpoint(tmp_path, model=model, optimizer=opt, state=TrainingState(update=5))
    real, calls = os.replace, []

    def killed_after_the_first_rename(src, dst):  # of a directory; files are written by atomic renames too
        real(src, dst)
        if os.path.isdir(dst):
            calls.append((str(src), str(dst)))
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed_after_the_first_rename)
    try:
        save_checkpoint(tmp_path, model=model, optimizer=opt, state=TrainingState(update=5))  # the same update again
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(os, "replace", real)
    assert calls[0][1].endswith(".old-update_00000005")  # set aside first, never deleted first
    from sew.train.state import checkpoint_to_resume

    assert checkpoint_to_resume(tmp_path, None, is_main=True).name == "update_00000005"


def test_a_trainer_state_with_an_unknown_field_is_an_error_naming_it(tmp_path, make_model):
    import pytest

    from sew.config import ConfigError

    model = make_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    path = save_checkpoint(tmp_path, model=model, optimizer=opt, state=TrainingState(update=2))
    meta = json.loads((path / "trainer_state.json").read_text())
    assert load_checkpoint(path, model=model, optimizer=opt)[0].update == 2
    (path / "trainer_state.json").write_text(json.dumps({**meta, "updtae": 7}))
    with pytest.raises(ConfigError, match=r"trainer_state.json: unknown fields updtae"):
        load_checkpoint(path, model=model)
