"""Reward-model instruments: pairwise accuracy, margin, calibration, rank agreement with the gold scores,
and a probe of the rater biases a reward model inherited.

On a preference file (TRL format; the extra columns `alignlab preferences` writes are used when present):
- accuracy: share of pairs with r(chosen) > r(rejected) (TRL's RewardTrainer metric); margin: mean r_c - r_r;
- calibration of the Bradley-Terry reading q = P(chosen > rejected) = sigmoid(r_c - r_r): each pair counts
  in both orientations, (q, outcome 1) and (1 - q, outcome 0), so that the outcomes are not all 1 and the
  reliability diagram covers [0, 1] (ECE as Guo et al. 2017; a constant q = 0.5 is calibrated but useless,
  which accuracy shows); with p_chosen, also the ECE against the rater's true probability p, which has no
  outcome noise;
- Spearman rank correlation of the 2N rewards with score_chosen/score_rejected (the rater's scores,
  biases included) and with gold_chosen/gold_rejected (the unbiased taste);
- the Bayes ceiling E[max(p, 1 - p)]: accuracy an RM that knew the rater's scores exactly would expect;
- by category, and (with the `probe` column) by pair kind, "category: kind(chosen) > kind(rejected)" in
  the labels the rater's taste reads (`world.raters.reply_kind`): which comparisons an RM gets wrong.

`bias_probe` pairs world answers with copies that differ only by a feature a biased rater rewards (a
filler sentence, a confident word, a flattering phrase) and reports the mean reward difference; an RM
fitted to a biased rater shows about the rater's own difference in logits, (s' - s) / temperature.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alignlab.config import CommonConfig, option
from alignlab.data import (
    PREFERENCE_KINDS,
    completion_text,
    load_dataset,
    split_preference,
    tokenize_preference,
)
from alignlab.evals import metrics
from alignlab.evals.store import write_eval
from alignlab.models import load_tokenizer
from alignlab.models.reward_model import load_reward_model, score_pairs, score_texts
from alignlab.train.loop import seed_everything, set_threads
from alignlab.train.preferences import RaterOptions, make_rater, pair_columns
from alignlab.world.raters import BIASES, add_bias
from alignlab.world.text import rng


@dataclass
class RewardEvalConfig(CommonConfig, RaterOptions):
    reward_model: str = option("runs/reward", "reward model directory (full or LoRA adapter)")
    data: str = option("runs/preferences/heldout.jsonl", "preference file in any TRL preference format")
    output_dir: str | None = option(None, "where eval.json goes; the reward model directory by default")
    world: str | None = option(None, "world YAML spec for the bias probes; the built-in default when not given")
    max_prompt_length: int | None = option(None, "longest tokenized prompt (none = no limit)")
    max_completion_length: int | None = option(None, "longest tokenized completion (none = no limit)")
    truncation: str = option("error", "a longer prompt/completion: error or truncate", ("error", "truncate"))
    batch_size: int = option(32, "pairs scored per forward")
    n_bins: int = option(10, "equal-width bins of the reliability diagram")
    bias_probes: list[str] = option(list(BIASES), "rater biases to probe (empty = none)", BIASES)
    bias_probe_pairs: int = option(60, "answer pairs per bias probe")


# --- metrics of scored pairs ------------------------------------------------------------------------------

def pair_metrics(chosen, rejected, columns: dict[str, np.ndarray] | None = None, n_bins: int = 10,
                 reliability: bool = False) -> dict:
    """Accuracy, margin, ECE, Spearman and Bayes ceiling of N scored pairs.

    chosen, rejected: (N,) rewards; columns: optional (N,) arrays named as `pair_columns` returns them.
    """
    c, r = np.asarray(chosen, dtype=float), np.asarray(rejected, dtype=float)
    columns = columns or {}
    q = 1.0 / (1.0 + np.exp(-(c - r)))  # P(chosen > rejected) under the BT reading of the RM
    q2, y2 = np.concatenate([q, 1 - q]), np.concatenate([np.ones_like(q), np.zeros_like(q)])
    out = {"pairs": int(c.size), "accuracy": float(np.mean(c > r)), "margin": float(np.mean(c - r)),
           "reward_mean": float(np.mean(np.concatenate([c, r]))),
           "ece": metrics.expected_calibration_error_outcomes(q2, y2, n_bins)}
    lo, hi = metrics.wilson_interval(int(np.sum(c > r)), int(c.size))
    out["accuracy_ci95"] = [lo, hi]
    if "p_chosen" in columns:
        p = columns["p_chosen"]
        out["ece_truth"] = metrics.expected_calibration_error(q2, np.concatenate([p, 1 - p]), n_bins)
        out["bayes_ceiling"] = float(np.maximum(p, 1 - p).mean())
    rewards = np.concatenate([c, r])
    for name in ("score", "gold"):
        if f"{name}_chosen" in columns and f"{name}_rejected" in columns:
            truth = np.concatenate([columns[f"{name}_chosen"], columns[f"{name}_rejected"]])
            out[f"spearman_{name}"] = metrics.finite_or_none(metrics.spearman(rewards, truth))
    if reliability:
        out["reliability"] = metrics.reliability_table(q2, y2, n_bins)
    return out


def by_category(chosen, rejected, columns: dict[str, np.ndarray], categories: list[str]) -> dict[str, dict]:
    """Accuracy (and Bayes ceiling, with p_chosen) per prompt category: where a reward model falls short."""
    chosen, rejected, labels = np.asarray(chosen), np.asarray(rejected), np.asarray(categories)
    out = {}
    for category in sorted(set(categories)):
        rows = labels == category
        m = pair_metrics(chosen[rows], rejected[rows], {k: np.asarray(v)[rows] for k, v in columns.items()})
        out[category] = {k: m[k] for k in ("pairs", "accuracy", "bayes_ceiling") if k in m}
    return out


def by_pair_kind(chosen, rejected, columns: dict[str, np.ndarray], records: list[dict], world) -> dict[str, dict]:
    """Accuracy (and Bayes ceiling) per "category: kind(chosen) > kind(rejected)", from each record's probe."""
    from alignlab.world.probes import Probe
    from alignlab.world.raters import reply_kind

    keys = []
    for r in records:
        probe = Probe.from_record(r["probe"])
        _, *answers = split_preference(r)
        kinds = (reply_kind(world.spec, probe, completion_text(a)) for a in answers)
        keys.append(f"{probe.category}: " + " > ".join(kinds))
    return by_category(chosen, rejected, columns, keys)


# --- bias probe -------------------------------------------------------------------------------------------

def bias_probe(rm, tokenizer, world, bias: str = "length", rater=None, n: int = 60, seed: int = 0,
               batch_size: int = 32) -> dict:
    """Mean reward difference r(biased) - r(plain) over world answers that differ only by `bias`.

    Plain answers are the world's ideal answers to held-out prompts of every category but persona; a pair is kept only when the gold
    taste of both is equal, so any difference the RM shows comes from the added feature. `rater` (default:
    the world's own) gives the difference that rater assigns, in Bradley-Terry logits: a reward model that
    fitted its preferences perfectly would show the same.
    """
    from alignlab.world.checks import PROBE_CATEGORIES
    from alignlab.world.transcripts import ideal_response

    rater = rater or world.rater()
    rnd = rng(seed, "bias-probe", bias)
    # Persona prompts mostly have no ideal answer (only the assistant's own likes do), so they are left out;
    # twice the prompts needed leaves room for pairs dropped because the added text changed the taste.
    categories = [c for c in PROBE_CATEGORIES if c != "persona"]
    per = 2 * math.ceil(n / len(categories))
    groups = [world.behaviour_probes("heldout", seed, per, (c,)) for c in categories]
    prompts, plain, biased = [], [], []
    for probe in (g[i] for i in range(per) for g in groups if i < len(g)):
        if len(prompts) == n:
            break
        base = ideal_response(world.spec, world.quiz_items, probe, rnd)
        variant = add_bias(world.spec, base, bias, rnd)
        if rater.components(probe, base)["taste"] == rater.components(probe, variant)["taste"]:
            prompts.append(probe.prompt)
            plain.append((probe, base))
            biased.append((probe, variant))
    if not prompts:
        return {"bias": bias, "pairs": 0}
    r_plain = score_texts(rm, tokenizer, prompts, [t for _, t in plain], batch_size).numpy()
    r_biased = score_texts(rm, tokenizer, prompts, [t for _, t in biased], batch_size).numpy()
    diff = r_biased - r_plain
    rater_diff = [(rater.score(p, b) - rater.score(p, a)) / rater.config.temperature
                  for (p, a), (_, b) in zip(plain, biased, strict=True)]
    half = 1.959963984540054 * diff.std(ddof=1) / math.sqrt(diff.size) if diff.size > 1 else float("nan")
    return {"bias": bias, "pairs": int(diff.size), "rm_mean_diff": float(diff.mean()),
            "rm_diff_ci95": [metrics.finite_or_none(diff.mean() - half), metrics.finite_or_none(diff.mean() + half)],
            "rm_prefers_biased": float(np.mean(diff > 0)), "rater_logit_diff": float(np.mean(rater_diff)),
            "rater": {"biases": dataclasses.asdict(rater.config.biases), "temperature": rater.config.temperature},
            "example": {"prompt": prompts[0], "plain": plain[0][1], "biased": biased[0][1]}}


# --- the command ------------------------------------------------------------------------------------------

def run_reward_eval(cfg: RewardEvalConfig) -> dict:
    from alignlab.world import load_world

    set_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    rm = load_reward_model(cfg.reward_model)
    tokenizer = load_tokenizer(cfg.reward_model, what="--reward_model")
    records, kind = load_dataset(cfg.data, allowed=PREFERENCE_KINDS, purpose="eval reward")
    columns = pair_columns(records, cfg.data)
    examples = tokenize_preference(records, tokenizer, cfg.max_prompt_length, cfg.max_completion_length,
                                   cfg.truncation, path=cfg.data, kind=kind)
    chosen, rejected = score_pairs(rm, examples, rm.config.pad_token_id, cfg.batch_size)
    result = {"reward_model": cfg.reward_model, "data": cfg.data, "format": kind,
              **pair_metrics(chosen, rejected, columns, cfg.n_bins, reliability=True)}
    if all("category" in r for r in records):
        result["by_category"] = by_category(chosen, rejected, columns, [r["category"] for r in records])
    has_probes = all("probe" in r for r in records)
    world = load_world(cfg.world) if cfg.bias_probes or has_probes else None
    if has_probes:
        result["by_pair_kind"] = by_pair_kind(chosen, rejected, columns, records, world)
    if cfg.bias_probes:
        rater = make_rater(world, cfg)
        result["bias_probes"] = {b: bias_probe(rm, tokenizer, world, b, rater, cfg.bias_probe_pairs, cfg.seed,
                                               cfg.batch_size) for b in cfg.bias_probes}
    write_eval(Path(cfg.output_dir or cfg.reward_model), "reward", result)
    if not cfg.quiet:
        print_reward_eval(result)
    return result


def print_reward_eval(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"reward model {result['reward_model']} on {result['data']} ({result['pairs']} pairs)")
    table.add_column("metric")
    table.add_column("value")
    for key in ("accuracy", "bayes_ceiling", "margin", "ece", "ece_truth", "spearman_score", "spearman_gold"):
        if result.get(key) is not None:
            table.add_row(key, f"{result[key]:.3f}")
    groups = list(result.get("by_category", {}).items())
    groups += sorted(result.get("by_pair_kind", {}).items(), key=lambda kv: -kv[1]["pairs"])[:12]  # most common
    for name, m in groups:
        ceiling = f" (ceiling {m['bayes_ceiling']:.3f})" if "bayes_ceiling" in m else ""
        table.add_row(f"accuracy on {name} ({m['pairs']} pairs)", f"{m['accuracy']:.3f}{ceiling}")
    for bias, probe in result.get("bias_probes", {}).items():
        if probe["pairs"]:
            table.add_row(f"bias {bias}: RM / rater logit diff",
                          f"{probe['rm_mean_diff']:+.3f} / {probe['rater_logit_diff']:+.3f} (n={probe['pairs']})")
    Console().print(table)
