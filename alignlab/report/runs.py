"""Reading run directories for `compare` and `report`: eval.json, summary.json, config.yaml, metrics.jsonl.

Nothing here is required: a directory with only an eval.json (an instrument run on a model someone else
trained) or only metrics.jsonl (a training run not yet evaluated) is a valid stage; what is missing shows
as "not run". A file that is there but unreadable is an error naming the file (and line).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from alignlab.errors import UsageError

# Column names under which a training stage's metrics.jsonl may log the policy's KL from its reference
# (per sequence, nats) and its proxy / gold reward; the first present wins. TRL's names are included.
KL_KEYS = ("kl", "objective/kl", "kl_ref", "mean_kl")
PROXY_KEYS = ("proxy_reward", "reward", "objective/scores", "scores")
GOLD_KEYS = ("gold", "gold_reward", "reward_gold", "objective/gold")


@dataclass
class Run:
    path: Path
    name: str
    eval: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    config_text: str | None = None
    metrics: list[dict] = field(default_factory=list)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UsageError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _read_metrics(path: Path) -> list[dict]:
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UsageError(f"{path}: line {i}: invalid JSON: {e.msg}") from None
        if isinstance(row, dict):
            rows.append(row)
    return rows


def stage_names(paths: list[Path]) -> list[str]:
    """Each directory's name; with the parent's name in front where two stages would share one."""
    names = [p.name or str(p) for p in paths]
    return [f"{p.parent.name}/{n}" if names.count(n) > 1 else n for p, n in zip(paths, names, strict=True)]


def load_run(path: Path, name: str) -> Run:
    if not path.is_dir():
        raise UsageError(f"{path}: no such run directory")
    run = Run(path, name)
    if (path / "eval.json").is_file():
        run.eval = _read_json(path / "eval.json")
    if (path / "summary.json").is_file():
        run.summary = _read_json(path / "summary.json")
    if (path / "config.yaml").is_file():
        run.config_text = (path / "config.yaml").read_text(encoding="utf-8")
    if (path / "metrics.jsonl").is_file():
        run.metrics = _read_metrics(path / "metrics.jsonl")
    return run


def load_runs(dirs: list[str]) -> list[Run]:
    if not dirs:
        raise UsageError("give at least one run directory")
    paths = [Path(d) for d in dirs]
    return [load_run(p, n) for p, n in zip(paths, stage_names(paths), strict=True)]


def default_output(dirs: list[str], filename: str) -> Path:
    """`filename` in the directory that holds all the runs (runs/demo for runs/demo/pretrain, runs/demo/sft)."""
    parents = [os.path.normpath(Path(d).parent) for d in dirs]
    if len({os.path.isabs(p) for p in parents}) > 1:  # commonpath refuses a mix of absolute and relative
        parents = [os.path.abspath(p) for p in parents]
    return Path(os.path.commonpath(parents)) / filename


def dig(data: dict, path: str):
    """data["a"]["b"]["c"] for "a.b.c", or None where any step is missing."""
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def behaviour(run: Run) -> tuple[str | None, dict]:
    """The prompt format and result of the run's behaviour instrument: chat when measured, else plain."""
    for fmt in ("chat", "plain"):
        if f"behaviour_{fmt}" in run.eval:
            return fmt, run.eval[f"behaviour_{fmt}"]
    return None, {}


def _first(row: dict, keys: tuple[str, ...]):
    return next((row[k] for k in keys if isinstance(row.get(k), int | float)), None)


def reward_kl_trajectory(run: Run) -> list[dict]:
    """{"step", "kl", "proxy", "gold"} for each metrics.jsonl row that logs a KL and some reward (PPO,
    GRPO, RLOO log "kl", "reward" and, with the world's prompts, "gold")."""
    points = []
    for row in run.metrics:
        kl, proxy, gold = _first(row, KL_KEYS), _first(row, PROXY_KEYS), _first(row, GOLD_KEYS)
        if kl is not None and (proxy is not None or gold is not None):
            points.append({"step": row.get("step"), "kl": kl, "proxy": proxy, "gold": gold})
    return points


def best_of_n_curve(run: Run) -> list[dict]:
    """{"n", "kl", "proxy", "gold"} per n of eval.json["bon"]: the KL is the log n - (n - 1)/n bound and
    "proxy" the reward that selected (a reward model, or the world's rater)."""
    rows = dig(run.eval, "bon.rows") or []
    return [{"n": r["n"], "kl": r["kl_bound"], "proxy": r.get("reward"), "gold": r.get("gold")} for r in rows]
