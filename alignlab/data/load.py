"""Read a dataset file into a list of plain dicts, one per record.

Supported: `.jsonl` (one JSON object a line), `.json` (a list of objects, or `{"data": [...]}`),
`.parquet`, and a directory written by `datasets.Dataset.save_to_disk` (or `DatasetDict.save_to_disk`, in
which case the `train` split is read). Records are numbered from 1 in every error message; for `.jsonl` the
record number is the line number, which is why blank lines are only tolerated at the end of the file.

What the records mean (which TRL format they are in) is `formats.py`'s business, not this module's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alignlab.errors import UsageError

SUFFIXES = (".jsonl", ".json", ".parquet")


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """Read every record of `path` (.jsonl, .json, .parquet, or a `save_to_disk` directory) as dicts."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{path}: no such file or directory")
    if p.is_dir():
        records = _read_saved_dataset(p, str(path))
    elif p.suffix == ".jsonl":
        records = _read_jsonl(p, str(path))
    elif p.suffix == ".json":
        records = _read_json(p, str(path))
    elif p.suffix == ".parquet":
        records = _read_parquet(p, str(path))
    else:
        raise UsageError(
            f"{path}: unknown dataset extension {p.suffix!r}; expected one of {', '.join(SUFFIXES)}"
            " or a directory written by datasets' save_to_disk"
        )
    if not records:
        raise UsageError(f"{path}: the dataset has no records")
    return records


def _read_jsonl(p: Path, name: str) -> list[dict]:
    try:
        lines = p.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        raise UsageError(f"{name}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    records = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            raise UsageError(f"{name}: line {lineno}: blank line; each line must be one JSON object")
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UsageError(f"{name}: line {lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
        records.append(_require_object(obj, name, lineno))
    return records


def _read_json(p: Path, name: str) -> list[dict]:
    try:
        obj = json.loads(p.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise UsageError(f"{name}: line {e.lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"{name}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if isinstance(obj, dict) and isinstance(obj.get("data"), list):
        obj = obj["data"]
    if not isinstance(obj, list):
        raise UsageError(
            f'{name}: expected a JSON list of objects or {{"data": [...]}}, got {_type_name(obj)}'
        )
    return [_require_object(r, name, i) for i, r in enumerate(obj, start=1)]


def _read_parquet(p: Path, name: str) -> list[dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(p).to_pylist()
    except (pa.ArrowException, OSError) as e:
        raise UsageError(f"{name}: cannot read parquet: {e}") from None


def _read_saved_dataset(p: Path, name: str) -> list[dict]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(p))
    except FileNotFoundError:
        raise UsageError(
            f"{name}: is a directory but not one written by datasets' save_to_disk"
            " (no dataset_info.json / dataset_dict.json)"
        ) from None
    if isinstance(ds, datasets.DatasetDict):
        splits = list(ds)
        if "train" in ds:
            ds = ds["train"]
        elif len(splits) == 1:
            ds = ds[splits[0]]
        else:
            raise UsageError(
                f"{name}: a DatasetDict with splits {splits} and no 'train' split; save one split"
            )
    return ds.to_list()


def _require_object(obj: Any, name: str, number: int) -> dict:
    if not isinstance(obj, dict):
        raise UsageError(f"{name}: record {number}: expected a JSON object, got {_type_name(obj)}")
    return obj


def _type_name(obj: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(obj), type(obj).__name__
    )
