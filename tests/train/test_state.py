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
