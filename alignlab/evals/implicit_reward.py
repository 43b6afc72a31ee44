"""DPO's implicit reward on a preference file: r̂(x, y) = beta · log(pi(y|x) / pi_ref(y|x)).

DPO trains the policy so that this difference of log-probabilities is a Bradley–Terry reward (Rafailov et
al. 2023, eq. 5); this instrument reads it back. On every pair it scores chosen and rejected under the
policy and the reference, then reports the implicit pair accuracy (r̂_c > r̂_r), the mean margin, and,
when the file has the world rater's columns (`alignlab preferences` writes them), the Pearson and
Spearman correlation of the 2N implicit rewards with the gold scores (`gold_chosen` / `gold_rejected`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from alignlab.config import CommonConfig, option
from alignlab.data import PREFERENCE_KINDS, load_dataset, tokenize_preference
from alignlab.evals import metrics
from alignlab.evals.kl import check_same_tokenizer
from alignlab.evals.store import write_eval
from alignlab.generation.scoring import score_continuations
from alignlab.models import load_causal_lm, load_tokenizer
from alignlab.train.loop import seed_everything, set_threads
from alignlab.train.preferences import pair_columns


@dataclass
class ImplicitRewardConfig(CommonConfig):
    model: str = option("runs/dpo", "DPO-trained policy directory")
    ref_model: str = option("runs/sft", "the reference it was trained against (same tokenizer)")
    data: str = option("runs/preferences/heldout.jsonl", "preference file in any TRL preference format")
    beta: float = option(0.1, "the beta of the DPO run")
    output_dir: str | None = option(None, "where eval.json goes; the policy's directory by default")
    batch_size: int = option(32, "sequences scored per forward")


def implicit_rewards(policy_logps, ref_logps, beta: float) -> np.ndarray:
    """beta · (log pi − log pi_ref), elementwise over sequence log-probabilities."""
    return beta * (np.asarray(policy_logps, dtype=float) - np.asarray(ref_logps, dtype=float))


def summarise(chosen: np.ndarray, rejected: np.ndarray, gold: dict | None) -> dict:
    """Pair accuracy and margin of implicit rewards (N,) each; correlations with gold when given."""
    out = {"pairs": len(chosen), "accuracy": float(np.mean(chosen > rejected)),
           "margin": float(np.mean(chosen - rejected)), "reward_mean": float(np.mean(np.r_[chosen, rejected]))}
    if gold is not None:
        both, truth = np.r_[chosen, rejected], np.r_[gold["gold_chosen"], gold["gold_rejected"]]
        out["pearson_gold"] = metrics.finite_or_none(metrics.pearson(both, truth))
        out["spearman_gold"] = metrics.finite_or_none(metrics.spearman(both, truth))
    return out


def run_implicit_reward(cfg: ImplicitRewardConfig) -> dict:
    set_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    tokenizer = load_tokenizer(cfg.model, what="--model")
    check_same_tokenizer(tokenizer, load_tokenizer(cfg.ref_model, what="--ref_model"), "eval implicit_reward")
    records, kind = load_dataset(cfg.data, allowed=PREFERENCE_KINDS, purpose="alignlab eval implicit_reward")
    examples = tokenize_preference(records, tokenizer, None, None, path=cfg.data, kind=kind)
    prompts = [e.prompt_ids for e in examples] * 2
    completions = [e.chosen_ids for e in examples] + [e.rejected_ids for e in examples]
    logps = {}
    for name, path in (("policy", cfg.model), ("ref", cfg.ref_model)):
        model = load_causal_lm(path, what=f"--{'model' if name == 'policy' else 'ref_model'}").eval()
        with torch.inference_mode():
            logps[name] = score_continuations(model, prompts, completions, cfg.batch_size).numpy()
    rewards = implicit_rewards(logps["policy"], logps["ref"], cfg.beta)
    n = len(examples)
    has_gold = all("gold_chosen" in r and "gold_rejected" in r for r in records)
    gold = pair_columns(records, cfg.data, ("gold_chosen", "gold_rejected")) if has_gold else None
    result = {"model": cfg.model, "ref_model": cfg.ref_model, "data": cfg.data, "beta": cfg.beta,
              **summarise(rewards[:n], rewards[n:], gold)}
    write_eval(Path(cfg.output_dir or cfg.model), "implicit_reward", result)
    if not cfg.quiet:
        shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}
        print(f"implicit reward of {cfg.model}: {shown}")
    return result
