"""Run directories: the resolved config, metrics.jsonl, summary.json, checkpoints, the model.

A run directory is claimed before anything is written: a non-empty directory is refused unless the user
asked for `--overwrite` (start again) or `--resume` (continue from its last checkpoint).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from alignlab.config import config_to_dict
from alignlab.errors import UsageError
from alignlab.io import atomic_write_json, atomic_write_text

SUMMARY = "summary.json"


class RunDir:
    """Paths and atomic writers of one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def claim(cls, path: str | Path, overwrite: bool = False, resume: bool = False) -> RunDir:
        run = cls(path)
        if run.path.exists() and not run.path.is_dir():
            raise UsageError(f"--output_dir: {path} exists and is not a directory")
        non_empty = run.path.is_dir() and any(run.path.iterdir())
        if non_empty and not (overwrite or resume):
            raise UsageError(
                f"--output_dir: {path} is not empty; pass --overwrite to replace it or --resume to continue it"
            )
        if non_empty and overwrite and not resume:
            shutil.rmtree(run.path)
        run.path.mkdir(parents=True, exist_ok=True)
        return run

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    def write_config(self, cfg: Any, extra: dict | None = None) -> None:
        data = config_to_dict(cfg)
        if extra:
            data.update(extra)
        atomic_write_text(self.path / "config.yaml", yaml.safe_dump(data, sort_keys=False))

    def write_summary(self, summary: dict) -> None:
        atomic_write_json(self.path / SUMMARY, summary)

    def is_complete(self) -> bool:
        """A finished run has its summary.json (written last)."""
        return (self.path / SUMMARY).is_file()

    def append_metrics(self, row: dict) -> None:
        # Appending one line is atomic enough for a log; resume rewrites the file atomically.
        with self.metrics_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def read_metrics(self) -> list[dict]:
        if not self.metrics_path.is_file():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]

    def truncate_metrics(self, last_step: int) -> None:
        """Drop rows logged after `last_step` (they are re-logged when the run resumes from there)."""
        rows = [r for r in self.read_metrics() if r.get("step", 0) <= last_step]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows))
