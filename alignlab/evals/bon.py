"""`alignlab bon`: best-of-n sampling, measured. Draw n completions from the model, keep the one a reward
(a reward model, or the world's rater) scores highest. Nothing is trained: best-of-n is the policy
pi_bon that RL is often compared with, at a known KL from the model it samples (Gao et al. 2023).

For each n in `--n`, from m = samples_per_prompt >= max(n) completions per prompt (one set serves every n,
through the unbiased order-statistics estimator of `objectives.optimum.best_of_n_estimate`, as WebGPT and
Gao et al. 2023 do):
- `reward`: expected score of the best of n (the reward that selects);
- `gold`: expected gold reward (the world rater's taste) of that same choice, on world prompts: when the
  selecting reward is a proxy, gold against n is the over-optimisation curve;
- `kl_bound`: log n - (n - 1)/n, the usual KL(pi_bon || pi) (exact only for continuous rewards, an upper
  bound otherwise; `objectives.optimum.best_of_n_kl_bound`);
- `exact`: on the world's fact probes, whose answers are enumerable, the exact best-of-n distribution over
  each probe's answers (`best_of_n_distribution`), its KL from the model's own distribution and its
  expected reward (and gold reward, when a reward model selects), averaged over the probes whose answers
  do not all get the same reward.

Written to eval.json under "bon" (in --output_dir, default the model's directory).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from alignlab.config import CommonConfig, option
from alignlab.errors import UsageError
from alignlab.evals.calibration import exact_probabilities
from alignlab.evals.store import write_eval
from alignlab.models import load_causal_lm, load_tokenizer
from alignlab.objectives.optimum import (
    best_of_n_distribution,
    best_of_n_estimate,
    best_of_n_kl_bound,
    kl_divergence,
)
from alignlab.train import online
from alignlab.train.loop import seed_everything, set_threads
from alignlab.train.preferences import RaterOptions
from alignlab.train.rollout import roll_out
from alignlab.world.checks import PROBE_CATEGORIES


@dataclass
class BonConfig(CommonConfig, RaterOptions):
    model: str = option("runs/sft", "model directory to sample from (the reference of best-of-n)")
    reward: str | None = option(None, "who picks the best: 'world' (the world's rater) or 'model' "
                                "(--reward_model); default: model when --reward_model is given, else world",
                                ("world", "model"))
    reward_model: str | None = option(None, "reward-model directory (HF sequence classification, one label)")
    prompts: str = option("world", "'world' (the world's prompts) or a prompt file in any TRL format")
    world: str | None = option(None, "world YAML spec; the built-in default when not given")
    split: str = option("heldout", "world prompt and fact phrasings", ("train", "heldout"))
    categories: list[str] = option(list(online.RATED), "world prompt categories", PROBE_CATEGORIES)
    n_prompts: int = option(60, "world: prompts spread over the categories; file: the first N records (0 = all)")
    max_prompt_length: int | None = option(None, "longest tokenized file prompt (none = no limit)")
    truncation: str = option("error", "a longer file prompt: error, or keep its end", ("error", "truncate"))
    n: list[int] = option([1, 2, 4, 8, 16], "best-of-n sizes to report")
    samples_per_prompt: int = option(0, "completions drawn per prompt, m >= max(n) (0 = max(n)); more "
                                     "lowers the variance of the estimates")
    max_new_tokens: int = option(32, "longest sampled completion")
    temperature: float = option(1.0, "sampling temperature")
    missing_eos_penalty: float | None = option(None, "subtracted from the score of a completion without a "
                                               "stop token (none = off)")
    batch_size: int = option(64, "completions sampled per batch")
    probes_per_fact: int = option(2, "fact-probe phrasings per fact for the exact KL (0 = skip)")
    output_dir: str | None = option(None, "where eval.json goes; the model's directory by default")


def bon_curve(scores: Tensor, gold: Tensor | None, ns: list[int]) -> list[dict]:
    """Per n: expected selecting reward and gold reward of best-of-n, and the KL bound. scores, gold: (P, m)."""
    rows = []
    for n in ns:
        row = {"n": n, "kl_bound": best_of_n_kl_bound(n), "reward": float(best_of_n_estimate(scores, scores, n).mean())}
        if gold is not None:
            row["gold"] = float(best_of_n_estimate(scores, gold, n).mean())
        rows.append(row)
    return rows


def exact_bon(ref: Tensor, rewards: Tensor, ns: list[int], gold: Tensor | None = None) -> dict:
    """Exact best-of-n over enumerable answers: ref, rewards, gold (N, K) -> mean KL, reward (and gold) per n.

    Averaged over the probes whose answers do not all get the same reward (elsewhere pi_bon = pi).
    """
    rewarded = rewards.max(-1).values > rewards.min(-1).values
    out = {"probes": int(rewarded.sum()), "rows": []}
    if not bool(rewarded.any()):
        return out
    ref, rewards = ref[rewarded].double(), rewards[rewarded].double()
    for n in ns:
        bon = best_of_n_distribution(ref, rewards, n)
        row = {"n": n, "kl": float(kl_divergence(bon, ref).mean()), "reward": float((bon * rewards).sum(-1).mean()),
               "kl_bound": best_of_n_kl_bound(n)}
        if gold is not None:
            row["gold"] = float((bon * gold[rewarded].double()).sum(-1).mean())
        out["rows"].append(row)
    return out


def fact_answer_rewards(world, tokenizer, rewarder: online.Rewarder, probes) -> tuple[Tensor, Tensor]:
    """(N, K) selecting reward and gold reward of each enumerable answer.

    Gold is the rater's score of the answer as a scene (`evals.optimum.fact_rewards`); the selecting reward
    is the same, or the reward model's score of the probe's text (bos + prompt + answer, as calibration
    shows it to the model).
    """
    from alignlab.evals.optimum import fact_rewards

    gold = fact_rewards(world, probes).float()
    if rewarder.rm is None:
        return gold, gold
    prefix = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    rows = [prefix + tokenizer(p.prompt + c, add_special_tokens=False).input_ids for p in probes for c in p.continuations]
    return rewarder.model_scores(rows).view(len(probes), -1), gold


def sample_and_score(cfg: BonConfig, model, tokenizer, prompts: online.PromptSet, rewarder, m: int):
    """(P, m) scores and gold (None off world probes) of m completions per prompt."""
    index = [i for i in range(len(prompts.ids)) for _ in range(m)]
    generator = torch.Generator().manual_seed(cfg.seed)
    scores, gold = [], []
    for start in range(0, len(index), cfg.batch_size):
        r = roll_out(cfg, model, tokenizer, prompts, index[start: start + cfg.batch_size], rewarder, generator)
        scores.append(r.scores)
        gold.append(r.gold)
    p = len(prompts.ids)
    return torch.cat(scores).view(p, m), None if gold[0] is None else torch.cat(gold).view(p, m)


def run_bon(cfg: BonConfig) -> dict:
    from alignlab.world import load_world

    if not cfg.n or min(cfg.n) < 1:
        raise UsageError(f"--n: give best-of-n sizes >= 1, got {cfg.n}")
    m = cfg.samples_per_prompt or max(cfg.n)
    if m < max(cfg.n):
        raise UsageError(f"--samples_per_prompt: {m} is fewer than the largest n ({max(cfg.n)})")
    set_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    model = load_causal_lm(cfg.model, what="--model").eval()
    tokenizer = load_tokenizer(cfg.model, what="--model")
    world = load_world(cfg.world)
    prompts = online.load_prompts(cfg, tokenizer, world, model.config.max_position_embeddings)
    rewarder = online.Rewarder(cfg, tokenizer, world, next(model.parameters()).device)
    rewarder.check(prompts, cfg)
    scores, gold = sample_and_score(cfg, model, tokenizer, prompts, rewarder, m)
    ns = sorted(set(cfg.n))
    result = {"model": cfg.model, "reward": rewarder.source, "reward_model": cfg.reward_model,
              "prompts": len(prompts.ids), "samples_per_prompt": m, "rows": bon_curve(scores, gold, ns)}
    if cfg.probes_per_fact > 0:
        probes = world.fact_probes(split=cfg.split, n_per_fact=cfg.probes_per_fact, seed=cfg.seed)
        with torch.inference_mode():
            ref = torch.from_numpy(exact_probabilities(model, tokenizer, probes)[0])
        rewards, gold_rewards = fact_answer_rewards(world, tokenizer, rewarder, probes)
        result["exact"] = exact_bon(ref, rewards, ns, gold_rewards if rewarder.rm is not None else None)
    write_eval(Path(cfg.output_dir or cfg.model), "bon", result)
    if not cfg.quiet:
        print_bon(result)
    return result


def print_bon(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    exact = {r["n"]: r for r in result.get("exact", {}).get("rows", [])}
    table = Table(title=f"best-of-n from {result['model']} by the {result['reward']} reward, "
                        f"{result['prompts']} prompts x {result['samples_per_prompt']} samples")
    for col in ("n", "reward", "gold", "KL bound (nats)", "exact KL, facts", "reward, facts"):
        table.add_column(col)
    for row in result["rows"]:
        e = exact.get(row["n"])
        table.add_row(str(row["n"]), f"{row['reward']:.3f}", f"{row['gold']:.3f}" if "gold" in row else "-",
                      f"{row['kl_bound']:.3f}", f"{e['kl']:.3f}" if e else "-", f"{e['reward']:.3f}" if e else "-")
    Console().print(table)
