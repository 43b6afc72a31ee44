"""Gold reward and win rate: what the world's gold rater thinks of a policy, alone and against a baseline.

On the world's prompts (held-out phrasings and quiz items by default, an equal share per category) each
model answers `k` times under its chat template with the same sampling seed; the gold rater scores every
answer by its tastes alone (no biases: the gold score is what a proxy reward model is checked against).

- gold reward: mean gold score, overall and per category, with a 95% normal interval;
- win rate against `--baseline` (answers paired by prompt and sample index): P(model's answer scores
  higher) + 0.5·P(tie), with a Wilson interval over the non-tied pairs, and the expected Bradley-Terry
  preference mean sigmoid((g_model - g_base) / T) the rater would show at its temperature T;
- the win-rate ceiling against that baseline: the win rate of a policy whose every answer gets the best
  score its category allows. It wins wherever the baseline fell short and ties wherever the baseline was
  already best, so no policy can do better: against a baseline right on a share a of the prompts, 1 − a/2.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alignlab.config import CommonConfig, option
from alignlab.evals import metrics
from alignlab.evals.store import write_eval
from alignlab.train.loop import seed_everything, set_threads
from alignlab.train.preferences import world_prompts
from alignlab.world.checks import PROBE_CATEGORIES
from alignlab.world.raters import best_taste, preference_probability


@dataclass
class GoldConfig(CommonConfig):
    model: str = option("runs/dpo", "policy model directory")
    baseline: str | None = option(None, "model directory to compute the win rate against (e.g. the SFT model)")
    world: str | None = option(None, "world YAML spec; the built-in default when not given")
    output_dir: str | None = option(None, "where eval.json goes; the model directory by default")
    split: str = option("heldout", "prompt phrasings and quiz items: held out of SFT, or seen", ("heldout", "train"))
    categories: list[str] = option(list(PROBE_CATEGORIES), "prompt categories", PROBE_CATEGORIES)
    n_prompts: int = option(280, "prompts, spread evenly over the categories")
    k: int = option(4, "answers sampled per prompt")
    max_new_tokens: int = option(48, "tokens sampled per answer")
    temperature: float = option(0.7, "sampling temperature")
    batch_size: int = option(64, "prompts sampled together")


def win_rate(model_scores, baseline_scores) -> dict:
    """Share of paired answers where the model scores higher, ties counting a half; Wilson interval over
    the decided (non-tied) pairs, mapped back onto the same scale."""
    m, b = np.asarray(model_scores, dtype=float), np.asarray(baseline_scores, dtype=float)
    wins, losses = int((m > b).sum()), int((m < b).sum())
    ties = len(m) - wins - losses
    rate = (wins + 0.5 * ties) / len(m) if len(m) else float("nan")
    decided = wins + losses
    lo, hi = metrics.wilson_interval(wins, decided) if decided else (0.0, 1.0)
    share = decided / len(m) if len(m) else 0.0
    return {"rate": rate, "wins": wins, "losses": losses, "ties": ties,
            "ci95": [lo * share + 0.5 * (1 - share), hi * share + 0.5 * (1 - share)],
            "decided_win_rate": wins / decided if decided else None}


def win_rate_ceiling(baseline_scores, best_scores) -> float:
    """The best win rate any policy can reach against these baseline answers: 1 where a baseline answer
    scores below the best possible score (`best_scores`, paired), 1/2 where it already reaches it."""
    b, best = np.asarray(baseline_scores, dtype=float), np.asarray(best_scores, dtype=float)
    return float(np.where(b < best, 1.0, 0.5).mean()) if len(b) else float("nan")


def mean_with_interval(values) -> dict:
    """{"mean", "ci95", "n"}: the normal 95% interval mean ± 1.96 standard errors (None below two values)."""
    m = metrics.mean_with_stderr(values)
    se = m["stderr"]
    return {"mean": m["mean"], "ci95": None if se is None else [m["mean"] - 1.96 * se, m["mean"] + 1.96 * se],
            "n": m["n"]}


def gold_scores(world, rater, model_dir: str, probes: list, cfg: GoldConfig) -> list[list[float]]:
    from alignlab.train.preferences import sample_responses

    answers = sample_responses(model_dir, probes, cfg.k, max_new_tokens=cfg.max_new_tokens,
                               temperature=cfg.temperature, batch_size=cfg.batch_size, seed=cfg.seed)
    return [[rater.components(p, a)["taste"] for a in texts] for p, texts in zip(probes, answers, strict=True)]


def summarise(probes: list, scores: list[list[float]]) -> dict:
    by: dict[str, list[float]] = defaultdict(list)
    for probe, row in zip(probes, scores, strict=True):
        by[probe.category] += row
    flat = [s for row in scores for s in row]
    return {"overall": mean_with_interval(flat), "by_category": {c: mean_with_interval(v) for c, v in by.items()}}


def run_gold(cfg: GoldConfig) -> dict:
    from alignlab.world import load_world

    set_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    world = load_world(cfg.world)
    rater = world.rater()
    probes = world_prompts(world, cfg)
    scores = gold_scores(world, rater, cfg.model, probes, cfg)
    result = {"model": cfg.model, "split": cfg.split, "prompts": len(probes), "k": cfg.k,
              "gold_reward": summarise(probes, scores)}
    if cfg.baseline:
        base = gold_scores(world, rater, cfg.baseline, probes, cfg)
        m, b = np.ravel(scores), np.ravel(base)
        result["baseline"] = {"model": cfg.baseline, "gold_reward": summarise(probes, base)}
        result["win_rate"] = win_rate(m, b)
        result["win_rate"]["bt_preference"] = float(np.mean(
            preference_probability(m, b, rater.config.temperature)))
        cats = np.repeat([p.category for p in probes], cfg.k)
        best_of = {c: best_taste(c, rater.config.tastes) for c in set(cats)}
        best = np.array([best_of[c] for c in cats])
        result["win_rate"]["ceiling"] = win_rate_ceiling(b, best)
        result["win_rate_by_category"] = {}
        for c in sorted(set(cats)):
            rows = cats == c
            result["win_rate_by_category"][c] = {**win_rate(m[rows], b[rows]),
                                                 "ceiling": win_rate_ceiling(b[rows], best[rows])}
    write_eval(Path(cfg.output_dir or cfg.model), "gold", result)
    if not cfg.quiet:
        print_gold(result)
    return result


def print_gold(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"gold reward of {result['model']} ({result['split']} prompts)")
    base = result.get("baseline")
    for col in ["category", "gold reward"] + (["baseline", "win rate", "ceiling"] if base else []):
        table.add_column(col)
    rows = [("all", result["gold_reward"]["overall"], base and base["gold_reward"]["overall"],
             result.get("win_rate"))]
    rows += [(c, g, base and base["gold_reward"]["by_category"][c], result.get("win_rate_by_category", {}).get(c))
             for c, g in result["gold_reward"]["by_category"].items()]
    for name, g, b, w in rows:
        cells = [name, f"{g['mean']:+.3f}"]
        if base:
            cells += [f"{b['mean']:+.3f}", f"{w['rate']:.2f} ({w['wins']}-{w['ties']}-{w['losses']})",
                      f"{w['ceiling']:.2f}"]
        table.add_row(*cells)
    Console().print(table)
