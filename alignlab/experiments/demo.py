"""`alignlab demo`: the pipeline end to end on the built-in world, each stage in its own run directory.

A stage whose run directory is complete (its summary.json exists) is skipped, so an interrupted demo
resumes where it stopped; `--overwrite` runs every stage again. The stages grow as the project does:
today world → tokenizer + pretrain → calibration.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from alignlab.config import CommonConfig, option
from alignlab.evals.store import read_eval
from alignlab.io import atomic_write_json
from alignlab.rundir import RunDir


@dataclass
class DemoConfig(CommonConfig):
    output_dir: str = option("runs/demo", "one subdirectory per stage goes here")
    preset: str = option("tiny", "model shape of the base model", ("nano", "tiny", "small"))
    world: str | None = option(None, "world YAML spec; the built-in default when not given")
    world_scale: float = option(1.0, "multiplies every document count of the world (CI uses a small scale)")
    pretrain_steps: int = option(-1, "pretraining optimiser steps; -1 = the pretrain default (1.5 epochs)")
    samples_per_fact: int = option(400, "temperature-1 samples per fact for the sampled-frequency check")
    overwrite: bool = option(False, "run every stage again even when its directory is complete")


def _stage(name: str, complete: bool, fn, timings: dict) -> bool:
    """Run `fn` unless the stage is complete; record its wall time. Returns whether it ran."""
    if complete:
        timings[name] = "skipped (complete)"
        return False
    tick = time.perf_counter()
    fn()
    timings[name] = round(time.perf_counter() - tick, 1)
    return True


def run_demo(cfg: DemoConfig) -> dict:
    from alignlab.evals.calibration import CalibrationConfig, run_calibration
    from alignlab.train.pretrain import PretrainConfig, run_pretrain

    root = Path(cfg.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    timings: dict = {}
    base = root / "pretrain"
    pre_cfg = PretrainConfig(output_dir=str(base), world=cfg.world, world_scale=cfg.world_scale, preset=cfg.preset,
                             max_steps=cfg.pretrain_steps, seed=cfg.seed, quiet=cfg.quiet, overwrite=cfg.overwrite,
                             resume=not cfg.overwrite,  # an interrupted pretraining continues
                             num_threads=cfg.num_threads)
    fresh = _stage("pretrain", RunDir(base).is_complete() and not cfg.overwrite, lambda: run_pretrain(pre_cfg), timings)
    cal_cfg = CalibrationConfig(model=str(base), world=cfg.world, samples_per_fact=cfg.samples_per_fact,
                                seed=cfg.seed, quiet=cfg.quiet, num_threads=cfg.num_threads)
    _stage("eval calibration", "calibration" in read_eval(base) and not fresh and not cfg.overwrite,
           lambda: run_calibration(cal_cfg), timings)
    summary = {"stages_seconds": timings}
    atomic_write_json(root / "demo.json", summary)
    if not cfg.quiet:
        print(f"demo finished: {timings}")
    return summary
