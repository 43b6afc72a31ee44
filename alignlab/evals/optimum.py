"""Distance to the exact KL-regularised optimum: what RLHF/DPO at strength beta should converge to.

On the world's fact probes the answers are enumerable (" a rainbow." / " no rainbow."), so for every probe
the target of the KL-regularised objective max_pi E_pi[r] - beta KL(pi || pi_ref) has the closed form
pi*(y|x) = pi_ref(y|x) exp(r(x, y) / beta) / Z(x) (Rafailov et al. 2023, eq. 4; `objectives.optimum`).
The instrument computes pi_ref and the policy's pi exactly (summed continuation log-probs, normalised over
each probe's answer set, as the calibration instrument does), takes r from the world's gold rater, and
reports how far pi is from pi*:

- `tv`: total variation TV(pi, pi*), in [0, 1];
- `kl_policy_optimum`: KL(pi || pi*), which is exactly the policy's shortfall on the objective in units of
  beta: J(pi*) - J(pi) = beta KL(pi || pi*), reported as `regret` (reward units);
- `kl_optimum_policy`: KL(pi* || pi), the mass-covering direction;
plus the objective's parts (expected gold reward, KL to the reference) for pi_ref, pi and pi*.

The fact probes are rated as "scene" responses, so with the default world only the taste attribute
(a rainbow) is rewarded: on every other fact pi* = pi_ref. Hence two summaries: over all probes, and
over the "rewarded" probes, whose answers do not all get the same reward. Set the world's raters (tastes
and biases) in a `--world` spec to reward other answers.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from alignlab.config import CommonConfig, option
from alignlab.evals.calibration import exact_probabilities
from alignlab.evals.kl import check_same_tokenizer
from alignlab.evals.store import write_eval
from alignlab.models import load_causal_lm, load_tokenizer
from alignlab.objectives.optimum import kl_divergence, kl_optimum, kl_optimum_value, total_variation
from alignlab.train.loop import seed_everything, set_threads

GAP_METRICS = ("tv", "kl_policy_optimum", "kl_optimum_policy", "regret")


@dataclass
class OptimumConfig(CommonConfig):
    model: str = option("runs/dpo", "policy model directory")
    ref_model: str = option("runs/sft", "reference model directory (same tokenizer)")
    beta: float = option(0.1, "KL strength of the objective whose optimum the policy is compared with")
    world: str | None = option(None, "world YAML spec (facts, raters); the built-in default when not given")
    split: str = option("heldout", "fact-probe phrasings", ("seen", "heldout"))
    probes_per_fact: int = option(4, "phrasings per fact")
    output_dir: str | None = option(None, "where eval.json goes; the policy's directory by default")


def optimum_gap(policy: Tensor, ref: Tensor, rewards: Tensor, beta: float) -> dict[str, Tensor]:
    """Per-probe distances of a policy from the exact optimum, and the objective's parts.

    Args: policy, ref: (N, K) answer distributions (rows sum to 1); rewards: (N, K); beta > 0.
    Returns (N,) float64 tensors: tv, kl_policy_optimum, kl_optimum_policy, regret (= beta KL(pi || pi*)
    = J(pi*) - J(pi)), reward_{policy,ref,optimum}, kl_ref_{policy,optimum}, objective_{policy,optimum};
    and "optimum" (N, K).
    """
    policy, ref, rewards = policy.double(), ref.double(), rewards.double()
    opt = kl_optimum(ref, rewards, beta)
    kl_pi = kl_divergence(policy, opt)
    out = {
        "optimum": opt,
        "tv": total_variation(policy, opt),
        "kl_policy_optimum": kl_pi,
        "kl_optimum_policy": kl_divergence(opt, policy),
        "regret": beta * kl_pi,
        "reward_policy": (policy * rewards).sum(-1),
        "reward_ref": (ref * rewards).sum(-1),
        "reward_optimum": (opt * rewards).sum(-1),
        "kl_ref_policy": kl_divergence(policy, ref),
        "kl_ref_optimum": kl_divergence(opt, ref),
    }
    out["objective_policy"] = out["reward_policy"] - beta * out["kl_ref_policy"]
    out["objective_optimum"] = kl_optimum_value(ref, rewards, beta)
    return out


def summarise_gap(gap: dict[str, Tensor], select: Tensor) -> dict:
    """Mean and max over the selected probes of each distance; means of the objective's parts."""
    n = int(select.sum())
    out: dict = {"probes": n}
    if n == 0:
        return out
    for name in GAP_METRICS:
        values = gap[name][select]
        out[name] = {"mean": float(values.mean()), "max": float(values.max())}
    for name in ("reward_policy", "reward_ref", "reward_optimum", "kl_ref_policy", "kl_ref_optimum",
                 "objective_policy", "objective_optimum"):
        out[name] = float(gap[name][select].mean())
    return out


def fact_rewards(world, probes) -> Tensor:
    """(N, K) gold-rater score of each continuation, the probe rated as a "scene" request about its entity."""
    from alignlab.world import Probe

    attributes = {(t["family"], t["entity"]): (t["attribute"], t["p"]) for t in world.truth()}
    rater = world.rater()
    rows = []
    for fp in probes:
        attribute, p = attributes[(fp.family, fp.entity)]
        scene = Probe("scene", fp.prompt, None, fp.split, {"entity": fp.entity, "attribute": attribute, "p": p})
        rows.append([rater.score(scene, c) for c in fp.continuations])
    return torch.tensor(rows, dtype=torch.float64)


def per_fact_rows(probes, gap: dict[str, Tensor], policy: Tensor, ref: Tensor) -> list[dict]:
    """Per fact, means over its phrasings of the first answer's probability under pi_ref, pi and pi*."""
    groups = defaultdict(list)
    for i, fp in enumerate(probes):
        groups[(fp.family, fp.entity, fp.truth[0])].append(i)
    rows = []
    for (family, entity, truth), idx in groups.items():
        ix = torch.tensor(idx)
        rows.append({"family": family, "entity": entity, "truth": truth,
                     "ref": float(ref[ix, 0].mean()), "policy": float(policy[ix, 0].mean()),
                     "optimum": float(gap["optimum"][ix, 0].mean()), "tv": float(gap["tv"][ix].mean())})
    return rows


def run_optimum(cfg: OptimumConfig) -> dict:
    from alignlab.world import load_world

    set_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    policy_model = load_causal_lm(cfg.model, what="--model").eval()
    ref_model = load_causal_lm(cfg.ref_model, what="--ref_model").eval()
    tokenizer = load_tokenizer(cfg.model, what="--model")
    check_same_tokenizer(tokenizer, load_tokenizer(cfg.ref_model, what="--ref_model"), "--ref_model")
    world = load_world(cfg.world)
    probes = world.fact_probes(split=cfg.split, n_per_fact=cfg.probes_per_fact, seed=cfg.seed)
    with torch.inference_mode():
        policy = torch.from_numpy(exact_probabilities(policy_model, tokenizer, probes)[0])
        ref = torch.from_numpy(exact_probabilities(ref_model, tokenizer, probes)[0])
    rewards = fact_rewards(world, probes)
    gap = optimum_gap(policy, ref, rewards, cfg.beta)
    rewarded = rewards.max(-1).values > rewards.min(-1).values
    result = {"model": cfg.model, "ref_model": cfg.ref_model, "beta": cfg.beta, "split": cfg.split,
              "all": summarise_gap(gap, torch.ones_like(rewarded)), "rewarded": summarise_gap(gap, rewarded),
              "facts": per_fact_rows(probes, gap, policy, ref)}
    write_eval(Path(cfg.output_dir or cfg.model), "optimum", result)
    if not cfg.quiet:
        print_optimum(result)
    return result


def print_optimum(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result['model']} vs the beta={result['beta']} optimum over {result['ref_model']}")
    for col in ("probes", "n", "TV mean", "TV max", "KL(pi||pi*) mean", "KL(pi*||pi) mean", "regret mean"):
        table.add_column(col)
    for name in ("all", "rewarded"):
        r = result[name]
        if r["probes"] == 0:
            table.add_row(name, "0", *["-"] * 5)
            continue
        table.add_row(name, str(r["probes"]), f"{r['tv']['mean']:.4g}", f"{r['tv']['max']:.4g}",
                      f"{r['kl_policy_optimum']['mean']:.4g}", f"{r['kl_optimum_policy']['mean']:.4g}",
                      f"{r['regret']['mean']:.4g}")
    Console().print(table)
