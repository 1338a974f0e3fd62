"""Configuration: dataclasses built from mappings, by type, and the YAML presets in ``configs/``.

``from_mapping(Cls, data, source)`` is the one loader of the project: every config (the encoder,
the training loop, the fine-tuning and pretraining recipes and their sections) is a dataclass, and
a mapping read from YAML, JSON or ``--set`` overrides becomes one here. Values are converted by
the field's type annotation (``"1e-4"`` -> 0.0001 for a float, lists -> tuples, nested mappings ->
nested dataclasses), and an unknown key is named with the closest known field.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from pathlib import Path
from typing import Any, Union

import yaml

_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


class ConfigError(ValueError):
    """A config value or key that does not fit its dataclass; the message names where."""


def field_hint(cls, key: str) -> str:
    """``key`` with the closest field name of dataclass ``cls``, for error messages."""
    close = difflib.get_close_matches(key, [f.name for f in dataclasses.fields(cls)], 1)
    return f"{key} (did you mean {close[0]}?)" if close else key


def from_mapping(cls, data: Any, source: str = "config"):
    """An instance of dataclass ``cls`` from ``data`` (a mapping, an instance, or None for the defaults)."""
    if data is None:
        return cls()
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of {cls.__name__} fields, found {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = [field_hint(cls, str(k)) for k in data if k not in known]
    if unknown:
        raise ConfigError(f"{source}: unknown fields {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    defaults = {f.name: f.default_factory() for f in dataclasses.fields(cls)
                if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(hints[f.name])}
    values = {}
    for key, value in data.items():
        where = f"{source}: {key}"
        if key in defaults and isinstance(value, dict):  # a section given in part keeps its other defaults
            values[key] = from_mapping(hints[key], {**to_mapping(defaults[key]), **value}, where)
        else:
            values[key] = convert(value, hints[key], where)
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source}: {err}") from err


def convert(value: Any, annotation: Any, where: str) -> Any:
    """``value`` as the type ``annotation`` says (see the module docstring); ``where`` names it in errors."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return convert(value, option, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of "
                          f"{', '.join(getattr(o, '__name__', str(o)) for o in options)}")
    if dataclasses.is_dataclass(annotation):
        return from_mapping(annotation, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, found {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} values, found {len(value)} ({value!r})")
            return tuple(convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, found {value!r}")
        key_type, value_type = args if args else (Any, Any)
        return {convert(k, key_type, where): convert(v, value_type, f"{where}.{k}") for k, v in value.items()}
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"{where}: expected true or false, found {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, found {value!r}")
        if isinstance(value, int):
            return value
        number = _number(value, where, "an integer")
        if number != int(number):
            raise ConfigError(f"{where}: expected an integer, found {value!r}")
        return int(number)
    if annotation is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, found {value!r}")
        return float(value) if isinstance(value, (int, float)) else _number(value, where, "a number")
    if annotation is str:
        if isinstance(value, bool):  # YAML 1.1 reads no / yes / off / on as booleans
            raise ConfigError(f"{where}: expected text, found the boolean {value!r}; quote it ('{value}' in YAML "
                              "turns into a boolean: write \"no\" or \"off\" with quotes)")
        if isinstance(value, (int, float)):
            return str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected text, found {value!r}")
        return value
    return value


def _number(value: Any, where: str, what: str) -> float:
    if isinstance(value, str):
        try:
            return float(value.replace("_", ""))
        except ValueError:
            pass
    raise ConfigError(f"{where}: expected {what}, found {value!r}")


def to_mapping(config) -> dict[str, Any]:
    """A dataclass as plain JSON/YAML data (tuples as lists)."""
    def plain(v):
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(dataclasses.asdict(config))


# -- presets -------------------------------------------------------------------------------------
def preset_dir(kind: str = "model") -> Path:
    """``configs/<kind>/``: ``sew/_configs`` links to the repository's configs/ and ships in the wheel."""
    return Path(__file__).resolve().parent / "_configs" / kind


def preset_names(kind: str = "model") -> list[str]:
    return sorted(p.stem for p in preset_dir(kind).glob("*.yaml"))


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping, found {type(data).__name__}")
    return data


def preset_path(kind: str, spec: str | Path) -> Path:
    """The YAML file of preset ``spec`` of ``configs/<kind>/``, or ``spec`` itself when it is a path."""
    path = Path(spec)
    if path.suffix in (".yaml", ".yml", ".json") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"{kind} config file {path} does not exist")
        return path
    preset = preset_dir(kind) / f"{spec}.yaml"
    if not preset.is_file():
        names = preset_names(kind)
        close = difflib.get_close_matches(str(spec), names, 3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown {kind} preset {str(spec)!r}.{hint} Known presets: {', '.join(names)}")
    return preset


def parse_override(text: str) -> tuple[list[str], str]:
    """``"train.lr=1e-4"`` -> (["train", "lr"], "1e-4")."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected SECTION.FIELD=VALUE, e.g. train.lr=1e-4")
    key, value = text.split("=", 1)
    return key.strip().split("."), value.strip()


def override_value(text: str) -> Any:
    """A ``--set`` value read as YAML, except YAML 1.1's booleans ``no`` / ``yes`` / ``on`` / ``off``,
    which stay text (a text field gets "no", a boolean field still reads it as false); the field's
    type then converts it (``"1e-4"`` -> 0.0001 for a float)."""
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"--set value {text!r} is not valid YAML ({err})") from err
    if isinstance(parsed, bool) and text.strip().lower() not in ("true", "false"):
        return text
    return parsed


def set_dotted(data: dict[str, Any], keys: list[str], value: Any, label: str) -> None:
    """``data[k1][k2]...[kn] = value``, creating sections on the way."""
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{label}: {k} is not a section")
    node[keys[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """``data`` with ``--set SECTION.FIELD=VALUE`` overrides applied (nested sections created)."""
    for text in overrides or []:
        keys, raw = parse_override(text)
        set_dotted(data, keys, override_value(raw), f"--set {text!r}")
    return data


def load_preset(kind: str, cls, spec, overrides: list[str] | None = None, values: dict[str, Any] | None = None):
    """A ``cls`` from preset ``spec`` of ``configs/<kind>/`` (or a YAML / JSON path, or a mapping), with
    ``--set`` overrides, then ``values`` by dotted field name (``{"train.lr": 1e-4}``), applied."""
    if isinstance(spec, dict):
        data, source = dict(spec), f"{kind} config"
    else:
        path = preset_path(kind, spec)
        data, source = (json.loads(path.read_text()) if path.suffix == ".json" else read_yaml(path)), str(path)
    for key in ("name", "description"):
        if key not in {f.name for f in dataclasses.fields(cls)}:
            data.pop(key, None)
    apply_overrides(data, overrides)
    for dotted, value in (values or {}).items():
        set_dotted(data, dotted.split("."), value, dotted)
    return from_mapping(cls, data, source)
