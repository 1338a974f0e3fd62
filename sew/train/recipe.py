"""Reading training presets: YAML files in ``configs/<kind>/`` made of dataclass sections.

Shared by ``sew finetune`` and usable by any other trainer: ``load_preset("finetune", "quick",
["train.lr=1e-3"])`` returns the YAML as a dict with ``--set`` style overrides applied, and
``section(Cls, data, source)`` turns one mapping into a dataclass, naming unknown fields.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml

from sew.config import preset_dir, unknown_field_hints


def section(cls, data: Any, source: str):
    """``cls(**data)`` for a dataclass ``cls``; unknown keys raise ``ValueError`` with suggestions."""
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping, found {type(data).__name__}")
    hints = unknown_field_hints(cls, data)
    if hints:
        raise ValueError(f"{source}: unknown fields {', '.join(hints)}")
    return cls(**data)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=1e-3"`` -> (["train", "lr"], 0.001); the value is read as YAML."""
    if "=" not in text:
        raise ValueError(f"--set {text!r}: expected SECTION.FIELD=VALUE, e.g. train.lr=1e-3")
    key, value = text.split("=", 1)
    try:
        return key.strip().split("."), yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise ValueError(f"--set {text!r}: the value is not valid YAML ({err})") from err


def preset_names(kind: str) -> list[str]:
    return sorted(p.stem for p in preset_dir(kind).glob("*.yaml"))


def load_preset(kind: str, spec: str | Path, overrides: list[str] | None = None) -> tuple[dict[str, Any], str]:
    """``(data, source)``: a preset name of ``configs/<kind>/`` or a YAML path, with overrides applied."""
    path = Path(spec)
    if path.suffix not in (".yaml", ".yml"):
        path = preset_dir(kind) / f"{spec}.yaml"
        if not path.is_file():
            names = preset_names(kind)
            close = difflib.get_close_matches(str(spec), names, 3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"unknown {kind} preset {str(spec)!r}.{hint} Known presets: {', '.join(names)}")
    elif not path.is_file():
        raise ValueError(f"{kind} preset file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of sections, found {type(data).__name__}")
    for text in overrides or []:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {text!r}: {k} is not a section")
        node[keys[-1]] = value
    return data, str(path)
