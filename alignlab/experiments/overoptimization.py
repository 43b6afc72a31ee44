"""`alignlab experiment overoptimization`: proxy reward against gold reward as a policy moves away from its
start, under best-of-n and under PPO (Gao et al. 2023, *Scaling Laws for Reward Model Overoptimization*).

The proxy is a trained reward model; the gold reward is the world rater's taste, which the proxy was fitted
to imitate from noisy preferences. Two ways to spend KL:
- best-of-n (`alignlab bon`), n = 1, 2, 4, ..., bon_max_n, from bon_max_n samples per prompt (the unbiased
  estimator gives every n from one set); x = d = sqrt(KL) with KL = log n - (n - 1)/n;
- PPO against the proxy (`alignlab ppo --reward_model`), one point per rollout: the rollout's mean proxy and
  gold reward, and its sampled per-sequence KL to the reference (clamped at 0).
Rewards are measured from the starting policy's (n = 1, first rollout), and fitted as Gao et al. do:
R_bon(d) = d (alpha - beta d) and R_RL(d) = d (alpha - beta log d), by least squares with R^2. A gold curve
that rises then falls while the proxy keeps rising is over-optimisation; beta > 0 for gold is its sign.

Writes overoptimization.json (points and fits) and overoptimization.png into output_dir; the bon and ppo
subdirectories are skipped when complete, so an interrupted experiment resumes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alignlab.config import CommonConfig, option
from alignlab.errors import UsageError
from alignlab.evals.store import read_eval
from alignlab.io import atomic_write_json
from alignlab.rundir import RunDir


@dataclass
class OveroptimizationConfig(CommonConfig):
    output_dir: str = option("runs/overoptimization", "where bon/, ppo/, overoptimization.json and .png go")
    model: str = option("runs/sft", "the starting policy (and best-of-n's sampler)")
    reward_model: str = option("runs/rm", "the proxy reward model")
    world: str | None = option(None, "world YAML spec; the built-in default when not given")
    max_new_tokens: int = option(32, "longest sampled completion")
    bon_prompts: int = option(12, "held-out world prompts for best-of-n")
    bon_max_n: int = option(128, "largest n (a power of 2); also the samples drawn per prompt")
    ppo_run: str | None = option(None, "an existing PPO run directory to read instead of training one")
    ppo_steps: int = option(64, "PPO optimiser steps against the proxy (0 = no RL curve)")
    ppo_batch_size: int = option(16, "PPO micro-batch; a rollout is 4 of them")
    ppo_learning_rate: float = option(3e-4, "PPO learning rate (high, to travel far in KL within minutes)")
    ppo_kl_coef: float = option(0.01, "PPO's KL penalty coefficient")
    overwrite: bool = option(False, "run the stages again even when their directories are complete")


# --- the fits (Gao et al. 2023, eqs. 1-2) -------------------------------------------------------------

def _least_squares(features: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, float]:
    """Coefficients of r ~ features @ c (no intercept) and R^2 = 1 - SS_res / SS_tot."""
    coef, *_ = np.linalg.lstsq(features, r, rcond=None)
    ss_res = float(((r - features @ coef) ** 2).sum())
    ss_tot = float(((r - r.mean()) ** 2).sum())
    return coef, (1.0 - ss_res / ss_tot) if ss_tot > 0 else math.nan


def fit_bon(d, r) -> dict:
    """R(d) = d (alpha - beta d): alpha, beta and R^2 of the least-squares fit."""
    d, r = np.asarray(d, float), np.asarray(r, float)
    (alpha, minus_beta), r2 = _least_squares(np.stack([d, d * d], axis=1), r)
    return {"alpha": float(alpha), "beta": float(-minus_beta), "r2": r2}


def fit_rl(d, r) -> dict:
    """R(d) = d (alpha - beta log d), with d log d = 0 at d = 0."""
    d, r = np.asarray(d, float), np.asarray(r, float)
    dlogd = np.where(d > 0, d * np.log(np.where(d > 0, d, 1.0)), 0.0)
    (alpha, minus_beta), r2 = _least_squares(np.stack([d, dlogd], axis=1), r)
    return {"alpha": float(alpha), "beta": float(-minus_beta), "r2": r2}


def curve(d: list[float], proxy: list[float], gold: list[float], fit) -> dict:
    """Points measured from the first one (the starting policy) and the fits of gold and proxy."""
    p0, g0 = proxy[0], gold[0]
    out = {"d": d, "proxy": [p - p0 for p in proxy], "gold": [g - g0 for g in gold]}
    if len(d) >= 3:
        out["fit_gold"], out["fit_proxy"] = fit(d, out["gold"]), fit(d, out["proxy"])
    return out


# --- the two curves ---------------------------------------------------------------------------------------

def bon_points(cfg: OveroptimizationConfig, root: Path) -> dict:
    from alignlab.evals.bon import BonConfig, run_bon

    if cfg.bon_max_n < 2 or cfg.bon_max_n & (cfg.bon_max_n - 1):
        raise UsageError(f"--bon_max_n: must be a power of 2 >= 2, got {cfg.bon_max_n}")
    out = root / "bon"
    result = read_eval(out).get("bon")
    if result is None or cfg.overwrite:
        ns = [2**k for k in range(int(math.log2(cfg.bon_max_n)) + 1)]
        result = run_bon(BonConfig(model=cfg.model, reward_model=cfg.reward_model, world=cfg.world,
                                   n_prompts=cfg.bon_prompts, n=ns, max_new_tokens=cfg.max_new_tokens,
                                   probes_per_fact=0, output_dir=str(out), seed=cfg.seed, quiet=True,
                                   num_threads=cfg.num_threads))
    rows = result["rows"]
    return curve([math.sqrt(r["kl_bound"]) for r in rows], [r["reward"] for r in rows],
                 [r["gold"] for r in rows], fit_bon) | {"n": [r["n"] for r in rows]}


def ppo_points(cfg: OveroptimizationConfig, root: Path) -> dict | None:
    from alignlab.train.ppo import PpoConfig, run_ppo

    run = Path(cfg.ppo_run) if cfg.ppo_run else root / "ppo"
    if cfg.ppo_run is None:
        if cfg.ppo_steps <= 0:
            return None
        if cfg.overwrite or not RunDir(run).is_complete():
            run_ppo(PpoConfig(output_dir=str(run), model_name_or_path=cfg.model, reward_model=cfg.reward_model,
                              world=cfg.world, max_steps=cfg.ppo_steps, per_device_train_batch_size=cfg.ppo_batch_size,
                              learning_rate=cfg.ppo_learning_rate, kl_coef=cfg.ppo_kl_coef,
                              max_new_tokens=cfg.max_new_tokens, logging_steps=1, overwrite=True, seed=cfg.seed,
                              quiet=cfg.quiet, num_threads=cfg.num_threads))
    rows = [r for r in RunDir(run).read_metrics() if {"reward", "gold", "kl"} <= set(r)]
    if not rows:
        raise UsageError(f"--ppo_run: {run}/metrics.jsonl has no rows with reward, gold and kl (a PPO run on "
                         "world prompts)")
    return curve([math.sqrt(max(r["kl"], 0.0)) for r in rows], [r["reward"] for r in rows],
                 [r["gold"] for r in rows], fit_rl) | {"step": [r["step"] for r in rows]}


def overoptimization_figure(curves: dict):
    """One panel per method: proxy and gold reward gain against d = sqrt(KL), with the fitted curves."""
    from alignlab.report.figures import plt  # with the Agg backend selected

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 4), squeeze=False)
    for ax, (name, c) in zip(axes[0], curves.items(), strict=True):
        d = np.asarray(c["d"])
        grid = np.linspace(0, d.max() if d.size else 1, 100)
        for key, colour in (("proxy", "tab:blue"), ("gold", "tab:orange")):
            ax.scatter(d, c[key], s=14, color=colour, alpha=0.6, label=f"{key} (measured)")
            fit = c.get(f"fit_{key}")
            if fit:
                shape = grid if name == "bon" else np.where(grid > 0, np.log(np.maximum(grid, 1e-12)), 0.0)
                ax.plot(grid, grid * (fit["alpha"] - fit["beta"] * shape), color=colour,
                        label=f"{key} fit, R² {fit['r2']:.2f}")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("d = sqrt(KL(π ‖ π_start)), nats^½")
        ax.set_ylabel("reward gain over the starting policy")
        ax.set_title("best-of-n" if name == "bon" else "PPO against the proxy")
        ax.legend(fontsize=8)
    return fig


def run_overoptimization(cfg: OveroptimizationConfig) -> dict:
    from alignlab.report.figures import save_figure

    root = Path(cfg.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    curves = {"bon": bon_points(cfg, root)}
    rl = ppo_points(cfg, root)
    if rl is not None:
        curves["rl"] = rl
    result = {"model": cfg.model, "reward_model": cfg.reward_model, **curves}
    atomic_write_json(root / "overoptimization.json", result)
    save_figure(overoptimization_figure(curves), root / "overoptimization.png")
    if not cfg.quiet:
        print(json.dumps({k: {f: c.get(f) for f in ("fit_gold", "fit_proxy")} for k, c in curves.items()}, indent=1))
    return result
