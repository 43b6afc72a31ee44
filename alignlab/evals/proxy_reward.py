"""Proxy reward of a policy's own answers, next to the gold reward of the same answers.

Held-out world prompts of the rated categories are sampled `samples_per_prompt` times; every answer gets
the proxy reward model's score and the world's gold score (the rater's taste, no biases: what the world
really values). Proxy against gold over training is the over-optimisation curve (Gao et al. 2023); here it
is one point per model, with the Spearman agreement of the two over the same answers. `alignlab eval
gold` measures the gold reward alone (and a win rate) on more prompts. Written to eval.json under
"proxy_reward" (the "reward" key belongs to the reward-model instrument, `alignlab eval reward`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alignlab.config import CommonConfig, option
from alignlab.evals import metrics
from alignlab.evals.sampling import PROMPT_FORMATS, sample_answers
from alignlab.evals.store import write_eval
from alignlab.models import load_causal_lm, load_tokenizer
from alignlab.models.reward_model import load_reward_model, score_texts
from alignlab.train.loop import seed_everything, set_threads
from alignlab.world.checks import PROBE_CATEGORIES

RATED = tuple(c for c in PROBE_CATEGORIES if c != "persona")  # the gold taste of a persona answer is always 0


@dataclass
class ProxyRewardConfig(CommonConfig):
    model: str = option("runs/ppo", "policy model directory")
    reward_model: str = option("runs/reward", "proxy reward model directory (full or LoRA adapter)")
    world: str | None = option(None, "world YAML spec; the built-in default when not given")
    output_dir: str | None = option(None, "where eval.json goes; the policy's directory by default")
    prompt_format: str = option("chat", "how prompts are shown to the policy", PROMPT_FORMATS)
    split: str = option("heldout", "prompt phrasings", ("heldout", "seen"))
    categories: list[str] = option(list(RATED), "prompt categories", PROBE_CATEGORIES)
    prompts_per_category: int = option(10, "distinct prompts per category")
    samples_per_prompt: int = option(4, "answers sampled per prompt")
    max_new_tokens: int = option(48, "tokens sampled per answer")
    temperature: float = option(1.0, "sampling temperature (1 = the policy's own distribution)")
    batch_size: int = option(64, "sequences per sampling / scoring batch")


def reward_summary(categories: list[str], gold: list[float], proxy: list[float] | None = None) -> dict:
    """Means (with standard errors) of the gold and proxy rewards, overall and per category, and their
    Spearman rank agreement over the answers (None when undefined, e.g. constant gold scores)."""
    out: dict = {"gold": metrics.mean_with_stderr(gold), "categories": {}}
    if proxy is not None:
        out["proxy"] = metrics.mean_with_stderr(proxy)
        out["spearman_proxy_gold"] = metrics.finite_or_none(metrics.spearman(proxy, gold))
    for c in dict.fromkeys(categories):
        idx = [i for i, ci in enumerate(categories) if ci == c]
        row = {"gold": float(np.mean([gold[i] for i in idx])), "n": len(idx)}
        if proxy is not None:
            row["proxy"] = float(np.mean([proxy[i] for i in idx]))
        out["categories"][c] = row
    return out


def run_proxy_reward(cfg: ProxyRewardConfig) -> dict:
    from alignlab.world import load_world

    set_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    model = load_causal_lm(cfg.model, what="--model").eval()
    tokenizer = load_tokenizer(cfg.model, what="--model")
    world = load_world(cfg.world)
    probes = world.behaviour_probes(cfg.split, cfg.seed, cfg.prompts_per_category, tuple(cfg.categories))
    jobs = [p for p in probes for _ in range(cfg.samples_per_prompt)]
    answers = sample_answers(model, tokenizer, [p.prompt for p in jobs], cfg.prompt_format,
                             max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, seed=cfg.seed,
                             batch_size=cfg.batch_size)
    del model  # the reward model may be as large: hold one at a time
    rater = world.rater()
    gold = [rater.components(p, a)["taste"] for p, a in zip(jobs, answers, strict=True)]
    rm = load_reward_model(cfg.reward_model)
    rm_tokenizer = load_tokenizer(cfg.reward_model, what="--reward_model")
    proxy = score_texts(rm, rm_tokenizer, [p.prompt for p in jobs], answers, cfg.batch_size).tolist()
    result = {"model": cfg.model, "reward_model": cfg.reward_model, "prompt_format": cfg.prompt_format,
              "temperature": cfg.temperature,
              **reward_summary([p.category for p in jobs], gold, proxy)}
    write_eval(Path(cfg.output_dir or cfg.model), "proxy_reward", result)
    if not cfg.quiet:
        print_proxy_reward(result)
    return result


def print_proxy_reward(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"reward of {result['model']}'s answers (proxy: {result['reward_model']})")
    for col in ("category", "n", "proxy", "gold"):
        table.add_column(col)
    for name, r in result["categories"].items():
        table.add_row(name, str(r["n"]), f"{r['proxy']:+.3f}", f"{r['gold']:+.3f}")
    table.add_row("all", str(result["gold"]["n"]), f"{result['proxy']['mean']:+.3f}", f"{result['gold']['mean']:+.3f}")
    Console().print(table)
    rho = result["spearman_proxy_gold"]
    Console().print(f"Spearman(proxy, gold) over the answers: {'undefined' if rho is None else f'{rho:.3f}'}")
