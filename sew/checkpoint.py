"""Saving and loading models: safetensors weights plus a JSON config, written atomically.

Our directory format: ``sew_config.json`` (the ``EncoderConfig`` and any extra metadata) and
``model.safetensors``. ``load_model`` also reads Hugging Face directories (see ``sew.interop``).
Nothing is ever unpickled except through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from sew.models.config import EncoderConfig

CONFIG_NAME = "sew_config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1


def atomic_write(path: str | Path, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``, so a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: str | Path, data: Any) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2, sort_keys=False) + "\n"))


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    clean = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(clean, tmp, metadata=metadata))


def save_model(model, path: str | Path, **extra: Any) -> None:
    """Write ``model`` (a ``SpeechEncoder``) to directory ``path``; ``extra`` goes into the JSON."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_tensors(path / WEIGHTS_NAME, model.state_dict(), metadata={"format": "sew"})
    write_json(path / CONFIG_NAME, {"format_version": FORMAT_VERSION, "model": model.config.to_dict(), **extra})


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Weights from a safetensors file (or a sharded index) or, safely, a PyTorch ``.bin``."""
    path = Path(path)
    if path.name.endswith(".index.json"):
        index = json.loads(path.read_text())
        tensors: dict[str, torch.Tensor] = {}
        for shard in sorted(set(index["weight_map"].values())):
            tensors.update(read_state_dict(path.parent / shard))
        return tensors
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # an unpickling error names the refused global
        raise ValueError(f"{path}: cannot read the weights safely (weights_only=True): {err}") from err


def find_weights(directory: Path) -> Path | None:
    for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json"):
        if (directory / name).is_file():
            return directory / name
    return None


def load_sew_directory(directory: Path):
    """A ``SpeechEncoder`` from our own format."""
    from sew.models.encoder import SpeechEncoder

    meta = json.loads((directory / CONFIG_NAME).read_text())
    if "model" not in meta:
        raise ValueError(f"{directory / CONFIG_NAME}: no 'model' section; is this a sew model directory?")
    config = EncoderConfig.from_dict(meta["model"], str(directory / CONFIG_NAME))
    model = SpeechEncoder(config)
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise ValueError(f"{directory}: {CONFIG_NAME} found but no {WEIGHTS_NAME}")
    load_checked(model, read_state_dict(weights), str(weights))
    return model


def load_checked(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict`` that names every missing, unexpected or mis-shaped key."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own.keys() & state.keys() if own[k].shape != state[k].shape]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} weights: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} weights: {', '.join(unexpected[:8])}"
                        f"{' ...' if len(unexpected) > 8 else ''}")
    if shapes:
        problems.append("shape mismatches: " + "; ".join(shapes[:8]))
    if problems:
        raise ValueError(f"{source}: weights do not fit the model config: " + " | ".join(problems))
    model.load_state_dict(state)


def load_model(path: str | Path, revision: str | None = None):
    """Load a model directory, ours (``sew_config.json``) or Hugging Face (``config.json``), or a
    Hugging Face Hub id (``asapp/sew-d-mid-400k``, ``ID@REVISION`` or ``revision=``) through the Hub cache."""
    from sew.hub import resolve_model_dir
    from sew.interop import load_hf_directory

    directory = resolve_model_dir(path, revision)
    if not directory.exists():
        raise ValueError(f"model path {directory} does not exist (nor is it a Hub id ORG/NAME)")
    if directory.is_file():
        raise ValueError(f"model path {directory} is a file; pass the directory that holds the config and weights")
    if (directory / CONFIG_NAME).is_file():
        return load_sew_directory(directory)
    if (directory / "config.json").is_file():
        return load_hf_directory(directory)
    found = sorted(p.name for p in directory.iterdir())[:10]
    raise ValueError(f"{directory}: no recognised model config (expected {CONFIG_NAME} or a Hugging Face "
                     f"config.json); found {found or 'an empty directory'}")
