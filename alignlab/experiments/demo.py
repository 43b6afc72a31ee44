"""`alignlab demo`: the pipeline end to end on the built-in world, each stage in its own run directory.

A stage whose run directory is complete (its summary.json exists) is skipped, so an interrupted demo
resumes where it stopped; `--overwrite` runs every stage again. The stages grow as the project does:
today world → tokenizer + pretrain → calibration and behaviour of the base → SFT →
behaviour and calibration of the assistant.
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
    # nano, not tiny: on a 2-core AVX2 CPU tiny trains at ~1,700 tokens/s, too slow to calibrate in minutes.
    preset: str = option("nano", "model shape of the base model", ("nano", "tiny", "small"))
    world: str | None = option(None, "world YAML spec; the built-in default when not given")
    world_scale: float = option(1.0, "multiplies every document count of the world (CI uses a small scale)")
    pretrain_steps: int = option(600, "pretraining optimiser steps (32 blocks of 128 tokens each)")
    sft_steps: int = option(-1, "SFT optimiser steps; -1 = the sft default (2 epochs)")
    sft_conversations: int = option(15000, "world transcripts for SFT")
    prompts_per_category: int = option(25, "behaviour probes: distinct prompts per category")
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
    from alignlab.evals.behaviour import BehaviourConfig, run_behaviour
    from alignlab.evals.calibration import CalibrationConfig, run_calibration
    from alignlab.train.pretrain import PretrainConfig, run_pretrain
    from alignlab.train.sft import SftConfig, run_sft

    root = Path(cfg.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    timings: dict = {}
    common = {"seed": cfg.seed, "quiet": cfg.quiet, "num_threads": cfg.num_threads}
    # An interrupted training stage continues from its last checkpoint; --overwrite starts it again.
    restart = {"overwrite": cfg.overwrite, "resume": not cfg.overwrite}
    base, sft = root / "pretrain", root / "sft"

    pre_cfg = PretrainConfig(output_dir=str(base), world=cfg.world, world_scale=cfg.world_scale, preset=cfg.preset,
                             max_steps=cfg.pretrain_steps, **restart, **common)
    fresh = _stage("pretrain", _complete(base, cfg), lambda: run_pretrain(pre_cfg), timings)
    for name, instrument, run in (
        ("calibration", "calibration", lambda: run_calibration(CalibrationConfig(
            model=str(base), world=cfg.world, samples_per_fact=cfg.samples_per_fact, **common))),
        ("behaviour", "behaviour_plain", lambda: run_behaviour(BehaviourConfig(
            model=str(base), world=cfg.world, prompt_format="plain", prompts_per_category=cfg.prompts_per_category,
            **common))),
    ):
        _stage(f"eval {name} (base)", not fresh and instrument in read_eval(base) and not cfg.overwrite, run, timings)

    # A new base model makes the assistant trained on the old one stale: start SFT again.
    sft_restart = {"overwrite": True, "resume": False} if fresh else restart
    sft_cfg = SftConfig(output_dir=str(sft), model_name_or_path=str(base), world=cfg.world,
                        max_steps=cfg.sft_steps, world_conversations=cfg.sft_conversations, **sft_restart, **common)
    fresh = _stage("sft", _complete(sft, cfg) and not fresh, lambda: run_sft(sft_cfg), timings)
    for name, instrument, run in (
        ("behaviour", "behaviour_chat", lambda: run_behaviour(BehaviourConfig(
            model=str(sft), world=cfg.world, prompt_format="chat", prompts_per_category=cfg.prompts_per_category,
            **common))),
        ("calibration", "calibration", lambda: run_calibration(CalibrationConfig(
            model=str(sft), world=cfg.world, samples_per_fact=0, **common))),
    ):
        _stage(f"eval {name} (sft)", not fresh and instrument in read_eval(sft) and not cfg.overwrite, run, timings)

    summary = {"stages_seconds": timings}
    atomic_write_json(root / "demo.json", summary)
    if not cfg.quiet:
        print(f"demo finished: {timings}")
    return summary


def _complete(path: Path, cfg: DemoConfig) -> bool:
    return RunDir(path).is_complete() and not cfg.overwrite
