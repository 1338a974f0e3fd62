"""Our model format: exact round trip, atomic writes, no unpickling of arbitrary objects."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

import sew
from sew.checkpoint import save_model
from sew.files import atomic_write, read_state_dict


def test_round_trip_is_exact(tmp_path):
    model = sew.build_model("sew-d-micro", vocab_size=11, normalize_waveform=True).eval()
    save_model(model, tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors", "sew_config.json"]
    loaded = sew.load_model(tmp_path).eval()
    assert loaded.config == model.config
    x = torch.randn(2, 5000)
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, model(x).logits)


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def crash(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, crash)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]  # no temporary left behind


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    with open(path, "wb") as f:
        pickle.dump({"w": Evil()}, f, protocol=2)
    with pytest.raises(ValueError, match="cannot read the weights safely"):
        read_state_dict(path)
