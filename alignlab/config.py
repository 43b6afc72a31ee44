"""Typed dataclass configs filled from a YAML file and `--key value` overrides.

Every subcommand has one dataclass. `parse_config(Cls, argv)` reads `--config FILE.yaml` first, then
applies the command-line overrides on top; an unknown key or a value of the wrong type is a `UsageError`
naming the key and what is allowed. Help text lives in `field(metadata={"help": ...})`.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from alignlab.errors import UsageError

TRUE_WORDS = {"true", "yes", "1", "on"}
FALSE_WORDS = {"false", "no", "0", "off"}


def option(default: Any, help: str, choices: tuple | None = None) -> Any:
    """A dataclass field with help text (and optional allowed values) for `--help` and validation."""
    meta = {"help": help, "choices": choices}
    if isinstance(default, list | dict):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class CommonConfig:
    """Fields every command has."""

    seed: int = option(0, "random seed; every run is deterministic given it")
    num_threads: int = option(0, "torch intra-op threads; 0 = one per physical core")
    quiet: bool = option(False, "no progress bars (for CI and logs)")


def parse_config(cls: type, argv: list[str]) -> Any:
    """Build `cls` from `--config FILE` (YAML mapping) plus `--key value` overrides in `argv`."""
    values: dict[str, Any] = {}
    overrides, config_file = _split_argv(argv)
    if config_file is not None:
        values.update(_read_yaml_config(config_file, cls))
    for key, raw in overrides:
        values[key] = raw
    return build_config(cls, values, source="command line")


def build_config(cls: type, values: dict[str, Any], source: str = "config") -> Any:
    """Coerce and validate `values` onto `cls`; unknown keys and bad values raise UsageError."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, raw in values.items():
        if key not in fields:
            raise UsageError(_unknown_key_message(key, fields, source))
        kwargs[key] = coerce(key, raw, hints[key], fields[key].metadata.get("choices"))
    return cls(**kwargs)


def config_to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def coerce(key: str, raw: Any, annotation: Any, choices: tuple | None = None) -> Any:
    """Turn a YAML value or command-line string into `annotation`, or raise a one-line UsageError."""
    value = _coerce_type(key, raw, annotation)
    if choices is not None and value is not None:
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item not in choices:
                allowed = ", ".join(str(c) for c in choices)
                raise UsageError(f"--{key}: must be one of {allowed}; got {item!r}")
    return value


def _coerce_type(key: str, raw: Any, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if raw is None or (isinstance(raw, str) and raw.lower() in {"none", "null"}):
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce_type(key, raw, inner[0])
    if origin is list:
        items = raw if isinstance(raw, list) else [s for s in str(raw).split(",") if s.strip()]
        return [_coerce_type(key, item, args[0]) for item in items]
    if annotation is bool:
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() in TRUE_WORDS | FALSE_WORDS:
            return str(raw).lower() in TRUE_WORDS
        raise UsageError(f"--{key}: expected true or false, got {raw!r}")
    if annotation in (int, float):
        try:
            value = annotation(raw) if not isinstance(raw, bool) else None
            if annotation is int and isinstance(raw, str) and not raw.strip().lstrip("+-").isdigit():
                value = None
            if annotation is int and isinstance(raw, float) and not raw.is_integer():
                value = None  # a YAML 1.5 for an integer key is an error, not 1
        except (TypeError, ValueError):
            value = None
        if value is None:
            raise UsageError(f"--{key}: expected {'an integer' if annotation is int else 'a number'}, got {raw!r}")
        return value
    if annotation is str:
        if isinstance(raw, dict | list):
            raise UsageError(f"--{key}: expected a string, got {type(raw).__name__}")
        return str(raw)
    return raw


def _split_argv(argv: list[str]) -> tuple[list[tuple[str, Any]], str | None]:
    overrides: list[tuple[str, Any]] = []
    config_file = None
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--") or token == "--":
            raise UsageError(f"unexpected argument {token!r}; options are written --key value")
        key, eq, inline = token[2:].partition("=")
        key = key.replace("-", "_")
        if eq:
            value, i = inline, i + 1
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            value, i = argv[i + 1], i + 2
        else:
            value, i = "true", i + 1  # a bare flag: --quiet, --overwrite
        if key == "config":
            config_file = value
        else:
            overrides.append((key, value))
    return overrides, config_file


def _read_yaml_config(path: str, cls: type) -> dict:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--config: no such file {path}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UsageError(f"{path}:{where} invalid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping of key: value, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise UsageError(_unknown_key_message(key, names, path))
    return data


def _unknown_key_message(key: str, names, source: str) -> str:
    close = difflib.get_close_matches(key, list(names), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{source}: unknown key '{key}'{hint}; see --help for the allowed keys"


def format_help(cls: type, command: str, description: str) -> str:
    """The `--help` text of a command: one line per field with type, default and help."""
    hints = typing.get_type_hints(cls)
    lines = [f"usage: alignlab {command} [--config FILE.yaml] [--key value ...]", "", description, "", "options:"]
    lines.append("  --config FILE.yaml  read keys from a YAML mapping; command-line keys override it")
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        type_name = _type_name(hints[f.name])
        choices = f.metadata.get("choices")
        allowed = f" {{{', '.join(map(str, choices))}}}" if choices else ""
        lines.append(f"  --{f.name} {type_name}{allowed} (default: {default!r})")
        lines.append(f"      {f.metadata.get('help', '')}")
    return "\n".join(lines)


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _type_name(inner[0]) + "|none"
    if origin is list:
        return f"{_type_name(typing.get_args(annotation)[0])},..."
    return getattr(annotation, "__name__", str(annotation))
