"""`alignlab demo`: the pipeline end to end on the built-in world, each stage in its own run directory.

world → tokenizer + pretrain → SFT → preference pairs from the gold rater → reward model → DPO, PPO and
GRPO (rewarded by that reward model) → a constitutional critique-and-revise round → the instruments on
every stage → `report.html` and `compare.{csv,md}` in the output directory.

A stage whose run directory is complete (its summary.json exists) is skipped, so an interrupted demo
resumes where it stopped (training stages from their last checkpoint); a stage whose inputs were just
made again runs again; `--overwrite` runs everything again. `demo.json` records each stage's seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
    sft_conversations: int = option(8000, "world transcripts for SFT")
    preference_prompts: int = option(500, "prompts the SFT model answers k=4 times for the rater's pairs")
    reward_steps: int = option(-1, "reward-model optimiser steps; -1 = one epoch over the pairs")
    dpo_steps: int = option(-1, "DPO optimiser steps; -1 = one epoch over the pairs")
    online_steps: int = option(32, "PPO and GRPO optimiser steps each")
    revise_prompts_per_category: int = option(8, "world prompts per category of the critique-and-revise round")
    prompts_per_category: int = option(10, "sampled instruments: distinct world prompts per category")
    samples_per_fact: int = option(400, "temperature-1 samples per fact for the base's sampled-frequency check")
    overwrite: bool = option(False, "run every stage again even when its directory is complete")


@dataclass
class Stage:
    name: str  # its directory under output_dir
    deps: tuple[str, ...]
    run: Callable[[dict], object]  # called with {"overwrite", "resume"} as the runner decides
    resumable: bool = True  # a training loop with checkpoints (else an incomplete run starts again)
    evals: list[tuple[str, Callable[[], object]]] = field(default_factory=list)  # (eval.json key, fn)


def stages(cfg: DemoConfig, root: Path) -> list[Stage]:
    from alignlab.evals.calibration import CalibrationConfig, run_calibration
    from alignlab.evals.reward import RewardEvalConfig, run_reward_eval
    from alignlab.train.constitution.revise import ReviseConfig, run_revise
    from alignlab.train.grpo import GrpoConfig, run_grpo
    from alignlab.train.ppo import PpoConfig, run_ppo
    from alignlab.train.preference import DpoConfig, run_dpo
    from alignlab.train.preferences import PreferencesConfig, run_preferences
    from alignlab.train.pretrain import PretrainConfig, run_pretrain
    from alignlab.train.reward import RewardConfig, run_reward
    from alignlab.train.sft import SftConfig, run_sft

    c = {"seed": cfg.seed, "quiet": cfg.quiet, "num_threads": cfg.num_threads}
    d = {name: str(root / name) for name in ("pretrain", "sft", "preferences", "reward", "dpo", "ppo", "grpo",
                                             "revise")}
    pairs, heldout = f"{d['preferences']}/pairs.jsonl", f"{d['preferences']}/heldout.jsonl"
    world = {"world": cfg.world}

    def policy_evals(name: str, ref: str, reward_model: str | None = None) -> list:
        return [("gold", lambda: _suite(cfg, d[name], ref, reward_model))]

    return [
        Stage("pretrain", (), lambda r: run_pretrain(PretrainConfig(
            output_dir=d["pretrain"], world_scale=cfg.world_scale, preset=cfg.preset, max_steps=cfg.pretrain_steps,
            **world, **r, **c)),
            evals=[("calibration", lambda: run_calibration(CalibrationConfig(
                model=d["pretrain"], samples_per_fact=cfg.samples_per_fact, **world, **c))),
                   ("behaviour_plain", lambda: _suite(cfg, d["pretrain"], None, None, ["behaviour"], "plain"))]),
        Stage("sft", ("pretrain",), lambda r: run_sft(SftConfig(
            output_dir=d["sft"], model_name_or_path=d["pretrain"], max_steps=cfg.sft_steps,
            world_conversations=cfg.sft_conversations, **world, **r, **c)),
            evals=policy_evals("sft", d["pretrain"])),
        Stage("preferences", ("sft",), lambda r: run_preferences(PreferencesConfig(
            output_dir=d["preferences"], model=d["sft"], n_prompts=cfg.preference_prompts, overwrite=True,
            **world, **c)), resumable=False),
        Stage("reward", ("sft", "preferences"), lambda r: run_reward(RewardConfig(
            output_dir=d["reward"], model_name_or_path=d["sft"], dataset=pairs, eval_dataset=heldout,
            max_steps=cfg.reward_steps, **r, **c)),
            evals=[("reward", lambda: run_reward_eval(RewardEvalConfig(
                reward_model=d["reward"], data=heldout, **world, **c)))]),
        Stage("dpo", ("sft", "preferences"), lambda r: run_dpo(DpoConfig(
            output_dir=d["dpo"], model_name_or_path=d["sft"], dataset=pairs, max_steps=cfg.dpo_steps, **r, **c)),
            evals=policy_evals("dpo", d["sft"], d["reward"])),
        Stage("ppo", ("sft", "reward"), lambda r: run_ppo(PpoConfig(
            output_dir=d["ppo"], model_name_or_path=d["sft"], reward_model=d["reward"], max_steps=cfg.online_steps,
            **world, **r, **c)),
            evals=policy_evals("ppo", d["sft"], d["reward"])),
        Stage("grpo", ("sft", "reward"), lambda r: run_grpo(GrpoConfig(
            output_dir=d["grpo"], model_name_or_path=d["sft"], reward_model=d["reward"], max_steps=cfg.online_steps,
            **world, **r, **c)),
            evals=policy_evals("grpo", d["sft"], d["reward"])),
        Stage("revise", ("sft",), lambda r: run_revise(ReviseConfig(
            model=d["sft"], output_dir=d["revise"], prompts_per_category=cfg.revise_prompts_per_category,
            overwrite=True, **world, **c)),
            resumable=False),
    ]


def _suite(cfg: DemoConfig, model: str, ref: str | None, reward_model: str | None,
           instruments: list[str] | None = None, prompt_format: str = "chat"):
    from alignlab.evals.suite import EvalConfig, run_eval

    chosen = instruments or ["behaviour", "calibration", "kl", "optimum", "reward", "diversity", "persona", "gold"]
    return run_eval(EvalConfig(model=model, instruments=chosen, ref_model=ref, reward_model=reward_model,
                               world=cfg.world, prompt_format=prompt_format, samples_per_fact=0,
                               prompts_per_category=cfg.prompts_per_category, seed=cfg.seed, quiet=cfg.quiet,
                               num_threads=cfg.num_threads))


def _timed(fn: Callable[..., object], *args) -> float:
    tick = time.perf_counter()
    fn(*args)
    return round(time.perf_counter() - tick, 1)


# Seconds each stage took, instruments included, in the measured default demo on 2 cores (README): the
# pipeline's ETA scales the stages still to run by how fast the ones run so far went against these.
MEASURED_SECONDS = {"pretrain": 475, "sft": 242, "preferences": 19, "reward": 69, "dpo": 89, "ppo": 36,
                    "grpo": 71, "revise": 5}


class PipelineClock:
    """Elapsed time and an ETA for the whole demo, announced as each stage starts."""

    def __init__(self, cfg: DemoConfig, names: list[str]):
        scale = {"pretrain": cfg.pretrain_steps / 600, "sft": cfg.sft_conversations / 8000}
        self.expected = {n: MEASURED_SECONDS.get(n, 30) * scale.get(n, 1.0) for n in names}
        self.start, self.ran_expected, self.ran_seconds = time.perf_counter(), 0.0, 0.0

    def line(self, todo: list[str]) -> str:
        elapsed = time.perf_counter() - self.start
        pace = self.ran_seconds / self.ran_expected if self.ran_expected else 1.0
        eta = pace * sum(self.expected[n] for n in todo)
        return f"{elapsed / 60:.1f} min elapsed, about {eta / 60:.1f} min to go"

    def ran(self, name: str, seconds: float) -> None:
        self.ran_expected += self.expected[name]
        self.ran_seconds += seconds


def run_demo(cfg: DemoConfig) -> dict:
    root = Path(cfg.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    timings: dict = {}
    fresh: set[str] = set()  # stages that ran in this invocation: their dependants are stale
    plan = stages(cfg, root)
    clock = PipelineClock(cfg, [s.name for s in plan])
    for i, stage in enumerate(plan, start=1):
        path = root / stage.name
        stale = cfg.overwrite or any(dep in fresh for dep in stage.deps)
        tick = time.perf_counter()
        if RunDir(path).is_complete() and not stale:
            timings[stage.name] = "skipped (complete)"
        else:
            # Once a stage has run, the ones after it will mostly run again (their inputs are new).
            todo = [s.name for s in plan[i - 1:] if fresh or s is stage or not RunDir(root / s.name).is_complete()]
            _announce(cfg, f"[{i}/{len(plan)}] {stage.name} · {clock.line(todo)}")
            # An interrupted training stage continues from its last checkpoint; stale inputs start it again.
            restart = {"overwrite": True, "resume": False} if stale else {"overwrite": False, "resume": True}
            timings[stage.name] = _timed(stage.run, restart if stage.resumable else {})
            fresh.add(stage.name)
        for key, fn in stage.evals:
            label = f"eval {key} ({stage.name})"
            if stage.name in fresh or key not in read_eval(path):
                _announce(cfg, label)
                timings[label] = _timed(fn)
            else:
                timings[label] = "skipped (complete)"
        if stage.name in fresh:
            clock.ran(stage.name, time.perf_counter() - tick)
    timings["report"] = _timed(_report, cfg, [str(root / s.name) for s in plan])
    summary = {"stages_seconds": timings,
               "total_seconds": round(sum(v for v in timings.values() if isinstance(v, float)), 1)}
    atomic_write_json(root / "demo.json", summary)
    if not cfg.quiet:
        print(f"demo finished in {summary['total_seconds']} s; report: {root / 'report.html'}")
    return summary


def _report(cfg: DemoConfig, runs: list[str]) -> None:
    from alignlab.report.compare import CompareConfig, run_compare
    from alignlab.report.html import ReportConfig, run_report

    run_compare(CompareConfig(runs=runs, quiet=cfg.quiet))
    run_report(ReportConfig(runs=runs, title="alignlab demo", quiet=cfg.quiet))


def _announce(cfg: DemoConfig, text: str) -> None:
    if not cfg.quiet:
        from rich.console import Console

        Console().rule(f"demo {text}")
