"""Saving and loading models: safetensors weights plus a JSON config, written atomically.

Our directory format: ``sew_config.json`` (the ``EncoderConfig`` under "model", a classifier's
``ClassifierConfig`` under "classifier", and any extra metadata) and ``model.safetensors``.
``load_model`` also reads Hugging Face directories (see ``sew.interop``).
Nothing is ever unpickled except through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sew.config import from_mapping
from sew.files import load_checked, read_state_dict, save_tensors, write_json
from sew.hub import resolve_model_dir
from sew.interop import load_hf_directory
from sew.models.classifier import ClassifierConfig, SequenceClassifier
from sew.models.config import EncoderConfig
from sew.models.encoder import SpeechEncoder

CONFIG_NAME = "sew_config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1


def save_model(model, path: str | Path, **extra: Any) -> None:
    """Write ``model`` (a ``SpeechEncoder`` or a ``SequenceClassifier``) to directory ``path``;
    ``extra`` goes into the JSON."""
    path = Path(path)
    meta: dict[str, Any] = {"format_version": FORMAT_VERSION, "model": model.config.to_dict()}
    if isinstance(model, SequenceClassifier):
        meta["classifier"] = model.head_config.to_dict()
    reserved = sorted(set(extra) & set(meta))
    if reserved:
        raise ValueError(f"save_model: extra metadata may not use the reserved keys {', '.join(reserved)}")
    path.mkdir(parents=True, exist_ok=True)
    save_tensors(path / WEIGHTS_NAME, model.state_dict(), metadata={"format": "sew"})
    write_json(path / CONFIG_NAME, {**meta, **extra})


def read_model_json(directory: str | Path, name: str = CONFIG_NAME) -> dict:
    """The JSON object of a model directory (``sew_config.json`` unless ``name``): the one reader of every
    model directory's metadata (models, pretraining checkpoints, classifiers, the log-mel baseline), with
    one error naming the file when it is missing or not a JSON object."""
    path = Path(directory) / name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{directory}: no {name}; pass a model directory (or RUN/checkpoints/update_NNNNNNNN)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable JSON file ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def load_sew_directory(directory: Path):
    """A ``SpeechEncoder`` from our own format, or a ``SequenceClassifier`` when it has a "classifier" section."""
    source = str(directory / CONFIG_NAME)
    meta = read_model_json(directory)
    if "model" not in meta:
        raise ValueError(f"{source}: no 'model' section; is this a sew model directory?")
    config = EncoderConfig.from_dict(meta["model"], source)
    if meta.get("classifier") is not None:
        head = from_mapping(ClassifierConfig, meta["classifier"], f"{source}: classifier")
        model = SequenceClassifier(config, head)
    else:
        model = SpeechEncoder(config)
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise ValueError(f"{directory}: {CONFIG_NAME} found but no {WEIGHTS_NAME}")
    load_checked(model, read_state_dict(weights), str(weights))
    return model


def load_model(path: str | Path, revision: str | None = None):
    """Load a model directory, ours (``sew_config.json``) or Hugging Face (``config.json``), or a
    Hugging Face Hub id (``asapp/sew-d-mid-400k``, ``ID@REVISION`` or ``revision=``) through the Hub cache."""
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
