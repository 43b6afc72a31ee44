"""eval.json: one file per model directory, one key per instrument, merged atomically."""

from __future__ import annotations

from pathlib import Path

from alignlab.io import atomic_write_json, read_json


def write_eval(out_dir: str | Path, instrument: str, result: dict) -> Path:
    path = Path(out_dir) / "eval.json"
    data = read_json(path) if path.is_file() else {}
    data[instrument] = result
    atomic_write_json(path, data)
    return path


def read_eval(model_dir: str | Path) -> dict:
    path = Path(model_dir) / "eval.json"
    return read_json(path) if path.is_file() else {}
