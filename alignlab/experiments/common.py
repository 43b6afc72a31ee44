"""What every `alignlab experiment` shares: intervals over seeds, resumable sub-runs, corpus files, and the
run directory's deliverables (`results.json`, a markdown summary that states the finding, PNG figures).

An experiment directory holds one subdirectory per sub-run (a pretraining, a fine-tune, an eval), each a
normal alignlab run directory; `run_once` skips a sub-run whose summary.json exists, so an interrupted
experiment resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from alignlab.errors import UsageError
from alignlab.io import atomic_write_json, atomic_write_jsonl, atomic_write_text, read_json
from alignlab.rundir import RunDir

# Two-sided 97.5% quantiles of Student's t by degrees of freedom (1..10); 1.96 beyond, close enough there.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def seed_interval(values: Iterable[float], bounds: tuple[float, float] | None = None) -> dict:
    """Mean over seeds with a 95% t-interval: {"mean", "lo", "hi", "n"}; lo = hi = mean for one seed.
    `bounds` clips the interval to the quantity's range (a probability's t-interval can leave [0, 1])."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return {"mean": None, "lo": None, "hi": None, "n": 0}
    mean = float(x.mean())
    if x.size == 1:
        return {"mean": mean, "lo": mean, "hi": mean, "n": 1}
    t = _T975[x.size - 2] if x.size - 1 <= len(_T975) else 1.96
    half = t * float(x.std(ddof=1)) / math.sqrt(x.size)
    lo, hi = mean - half, mean + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return {"mean": mean, "lo": lo, "hi": hi, "n": int(x.size)}


def fmt_interval(iv: dict, digits: int = 2) -> str:
    """"0.42 [0.38, 0.46]" (or "0.42" for one seed, "-" for none)."""
    if iv["mean"] is None:
        return "-"
    if iv["n"] < 2:
        return f"{iv['mean']:.{digits}f}"
    return f"{iv['mean']:.{digits}f} [{iv['lo']:.{digits}f}, {iv['hi']:.{digits}f}]"


# Options that do not change what a sub-run computes.
_RUN_ONLY = ("output_dir", "num_threads", "quiet", "overwrite")


def check_options(root: str | Path, cfg) -> None:
    """Refuse to resume an experiment directory made with other scalar options (a sub-run skipped because it
    is complete would otherwise mix, say, 300-step and 600-step bases in one table). List options are the
    grid (seeds, n, ratios): changing them adds or drops points and is a valid resume. `--overwrite` starts
    afresh. Writes `options.json` on first use."""
    path = Path(root) / "options.json"
    options = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _RUN_ONLY and not isinstance(v, list)}
    if path.is_file() and not cfg.overwrite:
        before = read_json(path)
        changed = [f"{k}: {before.get(k)!r} -> {v!r}" for k, v in options.items() if before.get(k) != v]
        if changed:
            raise UsageError(f"--output_dir: {root} was made with other options ({'; '.join(changed)}); "
                             "use --overwrite or another --output_dir")
    atomic_write_json(path, options)


def run_once(run_dir: str | Path, fn: Callable[[], object], overwrite: bool = False) -> Path:
    """Run `fn` (which writes the run directory) unless that directory is already complete. A complete run's
    checkpoints are deleted: they only serve resuming, and dozens of sub-runs would keep hundreds of MB."""
    path = Path(run_dir)
    if overwrite or not RunDir(path).is_complete():
        fn()
    for checkpoint in path.glob("checkpoint-*"):
        shutil.rmtree(checkpoint)
    return path


def cached_json(path: str | Path, fn: Callable[[], dict], overwrite: bool = False) -> dict:
    """The JSON at `path`, computed by `fn` and written atomically when missing (resumable measurements)."""
    path = Path(path)
    if path.is_file() and not overwrite:
        return read_json(path)
    result = fn()
    atomic_write_json(path, result)
    return result


def write_text_corpus(path: str | Path, documents: Sequence[str]) -> str:
    """A jsonl corpus with a `text` field (what `alignlab pretrain --corpus` and `sft --dataset` read)."""
    atomic_write_jsonl(path, ({"text": d} for d in documents))
    return str(path)


def markdown_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_deliverables(root: str | Path, name: str, results: dict, finding: str, tables: Sequence[str] = (),
                       figures: Sequence[str] = ()) -> None:
    """results.json (with the finding in it) and summary.md: a title, the one-sentence finding, the tables,
    and links to the figures (PNG files already written in `root`)."""
    root = Path(root)
    atomic_write_json(root / "results.json", {"experiment": name, "finding": finding, **results})
    parts = [f"# alignlab experiment {name}", "", finding, ""]
    for table in tables:
        parts += [table, ""]
    parts += [f"![{Path(f).stem}]({Path(f).name})" for f in figures]
    atomic_write_text(root / "summary.md", "\n".join(parts).rstrip() + "\n")
