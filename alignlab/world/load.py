"""Reading a world spec: YAML -> typed `WorldSpec`, with every check in this one module.

Errors name the file and the field path, e.g. `default.yaml: facts[3].p: must be in [0, 1], got 1.4`.
A spec may start with `extends: default` (or a path relative to it) and override only what it changes;
`overrides` (a nested dict, or dotted keys such as `{"quiz.lists": 10, "facts.0.p": 0.3}`) are merged
in last. Mappings merge key by key; lists are replaced whole unless addressed by index.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from alignlab.errors import UsageError
from alignlab.world import checks
from alignlab.world.spec import WorldSpec

DEFAULT_PATH = Path(__file__).with_name("default.yaml")
_MAX_EXTENDS = 8
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml parses default.yaml ~10x faster


def load_spec(path: str | Path | None = None, overrides: dict | None = None) -> WorldSpec:
    """The validated spec from `path` (the shipped default when None) with `overrides` merged in."""
    label = DEFAULT_PATH.name if path is None else str(path)
    raw = _read_with_extends(Path(path) if path is not None else DEFAULT_PATH, label, depth=0)
    return spec_from_dict(raw, label, overrides)


def spec_from_dict(raw: dict, label: str = "world", overrides: dict | None = None) -> WorldSpec:
    """The validated spec from plain data, e.g. the `world` section of a run's config.yaml."""
    raw = copy.deepcopy(raw)
    for key, value in (overrides or {}).items():
        _set_path(raw, str(key).split("."), copy.deepcopy(value), label)
    spec = build(WorldSpec, raw, "", label)
    checks.validate(spec, label)
    return spec


def _read_with_extends(path: Path, label: str, depth: int) -> dict:
    if depth > _MAX_EXTENDS:
        raise UsageError(f"{label}: extends: more than {_MAX_EXTENDS} levels (a cycle?)")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
    except OSError as exc:
        raise UsageError(f"{label}: cannot read world spec: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise UsageError(f"{label}: {where}invalid YAML: {getattr(exc, 'problem', None) or exc}") from exc
    if not isinstance(raw, dict):
        raise UsageError(f"{label}: the top level must be a mapping, got {_kind(raw)}")
    base = raw.pop("extends", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise UsageError(f"{label}: extends: expected 'default' or a path, got {_kind(base)}")
    base_path = DEFAULT_PATH if base == "default" else (path.parent / base)
    merged = _read_with_extends(base_path, base if base != "default" else DEFAULT_PATH.name, depth + 1)
    return _deep_merge(merged, raw)


def _deep_merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _set_path(raw: Any, keys: list[str], value: Any, label: str) -> None:
    """Set raw[k0][k1]... = value; a dict value merges into an existing mapping, digits index lists."""
    node = raw
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        where = ".".join(keys[: i + 1])
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise UsageError(f"{label}: override {where}: no list item {key!r}")
            key = int(key)  # type: ignore[assignment]
        elif not isinstance(node, dict):
            raise UsageError(f"{label}: override {where}: {'.'.join(keys[:i])} is not a mapping")
        if last:
            old = node[key] if isinstance(node, list) or key in node else None
            node[key] = _deep_merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
        else:
            if isinstance(node, dict) and key not in node:
                node[key] = {}
            node = node[key]


def build(tp: Any, data: Any, path: str, label: str) -> Any:
    """Convert plain YAML data to type `tp` (a dataclass, list[X], dict[K, V], X | None or a scalar)."""
    if dataclasses.is_dataclass(tp):
        return _build_dataclass(tp, data, path, label)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        if data is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return build(inner, data, path, label)
    if origin is list:
        if not isinstance(data, list):
            _fail(label, path, f"expected a list, got {_kind(data)}")
        return [build(args[0], item, f"{path}[{i}]", label) for i, item in enumerate(data)]
    if origin is dict:
        if not isinstance(data, dict):
            _fail(label, path, f"expected a mapping, got {_kind(data)}")
        return {
            _key(args[0], k, path, label): build(args[1], v, _join(path, str(k)), label) for k, v in data.items()
        }
    return _scalar(tp, data, path, label)


def _build_dataclass(cls: type, data: Any, path: str, label: str) -> Any:
    if not isinstance(data, dict):
        _fail(label, path, f"expected a mapping, got {_kind(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        _fail(label, _join(path, str(unknown[0])), f"unknown field (known: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = build(hints[name], data[name], _join(path, name), label)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            _fail(label, _join(path, name), "missing required field")
    return cls(**kwargs)


def _scalar(tp: type, value: Any, path: str, label: str) -> Any:
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (str, bool) and isinstance(value, tp):
        return value
    _fail(label, path, f"expected {_TYPE_NAMES.get(tp, tp.__name__)}, got {_kind(value)} {value!r}")


def _key(tp: type, key: Any, path: str, label: str) -> Any:
    # JSON turns int keys into strings; accept "3" where an int key is expected (cipher shifts).
    if tp is int and isinstance(key, str) and key.lstrip("-").isdigit():
        return int(key)
    return _scalar(tp, key, _join(path, str(key)), label)


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", type(None): "nothing"}.get(type(value), type(value).__name__)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _fail(label: str, path: str, message: str) -> typing.NoReturn:
    raise UsageError(f"{label}: {path or '<top>'}: {message}")
