"""The calibration instrument: does the model's probability of each fact match the world's frequency?

For every fact probe (a prompt whose continuations are enumerable, e.g. " a rainbow." / " no rainbow."),
the model's probability of each continuation is computed exactly from summed log-probs and normalised over
the enumerable set; that q is compared with the world's truth p (MAE, ECE, Brier against truth). The same
prompts are also sampled at temperature 1 and the sampled frequency of each continuation is checked against
its 95% binomial interval. Both training phrasings ("seen") and phrasings kept out of the corpus
("heldout") are measured, so the figure is about the world model, not memorised templates.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from alignlab.config import CommonConfig, option
from alignlab.evals import metrics
from alignlab.evals.store import write_eval
from alignlab.generation import SamplingConfig, sample, score_continuations
from alignlab.models import load_causal_lm, load_tokenizer
from alignlab.train.loop import seed_everything, set_threads


@dataclass
class CalibrationConfig(CommonConfig):
    model: str = option("runs/pretrain", "model directory to measure")
    world: str | None = option(None, "world YAML spec; the built-in default when not given")
    output_dir: str | None = option(None, "where eval.json and the figure go; the model directory by default")
    splits: list[str] = option(["seen", "heldout"], "phrasings to measure", ("seen", "heldout"))
    probes_per_fact: int = option(8, "phrasings per fact and split (exact probabilities)")
    samples_per_fact: int = option(400, "temperature-1 samples per fact on the seen split (0 = skip)")
    bins: int = option(10, "equal-width bins of the ECE and the reliability diagram")
    batch_size: int = option(256, "sequences per forward pass")


def exact_probabilities(model, tokenizer, probes) -> tuple[np.ndarray, np.ndarray]:
    """q (N, K) normalised over each probe's continuations, and the mass (N,) the model puts on the set."""
    # In pretraining every document follows an eos (alignlab's bos): start the probe the same way.
    prefix = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    prompt_ids, cont_ids = [], []
    for probe in probes:
        p_ids = prefix + tokenizer(probe.prompt, add_special_tokens=False)["input_ids"]
        for cont in probe.continuations:
            prompt_ids.append(p_ids)
            cont_ids.append(tokenizer(cont, add_special_tokens=False)["input_ids"])
    logps = score_continuations(model, prompt_ids, cont_ids).double()
    k = len(probes[0].continuations)
    logps = logps.view(len(probes), k)  # every probe of a split has the same number of continuations
    mass = logps.exp().sum(-1)
    q = torch.softmax(logps, dim=-1)
    return q.numpy(), mass.numpy()


def sampled_frequencies(model, tokenizer, probes, samples_per_fact: int, seed: int, batch_size: int) -> dict:
    """Sample each fact's prompts at temperature 1; count which continuation each sample starts with."""
    by_fact = defaultdict(list)
    for probe in probes:
        by_fact[(probe.family, probe.entity)].append(probe)
    prefix = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    prompts, owners = [], []
    for key, fact_probes in by_fact.items():
        for j in range(samples_per_fact):
            probe = fact_probes[j % len(fact_probes)]
            prompts.append(prefix + tokenizer(probe.prompt, add_special_tokens=False)["input_ids"])
            owners.append(key)
    longest = max(len(tokenizer(c, add_special_tokens=False)["input_ids"]) for p in probes for c in p.continuations)
    cfg = SamplingConfig(max_new_tokens=longest, temperature=1.0, do_sample=True, seed=seed)
    texts = []
    for i in range(0, len(prompts), batch_size):
        out = sample(model, prompts[i : i + batch_size], cfg, pad_token_id=tokenizer.pad_token_id)
        texts += tokenizer.batch_decode(out.tokens, skip_special_tokens=True)
    counts = {key: np.zeros(len(fp[0].continuations) + 1) for key, fp in by_fact.items()}  # last = other
    for key, text in zip(owners, texts, strict=True):
        conts = by_fact[key][0].continuations
        hit = next((k for k, c in enumerate(conts) if text.startswith(c)), len(conts))
        counts[key][hit] += 1
    rows = []
    for (family, entity), c in counts.items():
        truth = by_fact[(family, entity)][0].truth[0]
        n = int(c.sum())
        lo, hi = metrics.wilson_interval(int(c[0]), n)
        rows.append({"family": family, "entity": entity, "p": truth, "n": n, "frequency": c[0] / n,
                     "ci95": [lo, hi], "other": c[-1] / n, "inside": bool(lo <= truth <= hi)})
    return {"facts": rows, "samples": len(prompts),
            "fraction_inside_ci95": float(np.mean([r["inside"] for r in rows]))}


def summarise(probes, q: np.ndarray, mass: np.ndarray, bins: int) -> dict:
    """Metrics of the first continuation's probability (the attribute present) against the truth."""
    p = np.array([probe.truth[0] for probe in probes])
    q1 = q[:, 0]
    per_fact = defaultdict(list)
    for probe, qi in zip(probes, q1, strict=True):
        per_fact[(probe.family, probe.entity, probe.truth[0])].append(qi)
    fact_rows = [{"family": f, "entity": e, "p": pt, "q_mean": float(np.mean(qs)), "q_min": float(np.min(qs)),
                  "q_max": float(np.max(qs))} for (f, e, pt), qs in per_fact.items()]
    return {
        "n_probes": len(probes),
        "mae": float(metrics.mean_absolute_error(q1, p)),
        "ece": float(metrics.expected_calibration_error(q1, p, n_bins=bins)),
        "brier_vs_truth": float(metrics.brier_truth(q1, p)),
        "mae_of_fact_means": float(np.mean([abs(r["q_mean"] - r["p"]) for r in fact_rows])),
        "mass_on_answers_mean": float(mass.mean()),
        "reliability": metrics.reliability_table(q1, p, n_bins=bins),
        "facts": fact_rows,
    }


def run_calibration(cfg: CalibrationConfig) -> dict:
    from alignlab.world import load_world

    set_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    model = load_causal_lm(cfg.model, what="--model").eval()
    tokenizer = load_tokenizer(cfg.model, what="--model")
    world = load_world(cfg.world)
    result = {"model": cfg.model}
    with torch.inference_mode():
        for split in cfg.splits:
            probes = world.fact_probes(split=split, n_per_fact=cfg.probes_per_fact, seed=cfg.seed)
            q, mass = exact_probabilities(model, tokenizer, probes)
            result[split] = summarise(probes, q, mass, cfg.bins)
        if cfg.samples_per_fact > 0:
            probes = world.fact_probes(split="seen", n_per_fact=cfg.probes_per_fact, seed=cfg.seed)
            result["sampled"] = sampled_frequencies(model, tokenizer, probes, cfg.samples_per_fact, cfg.seed,
                                                    cfg.batch_size)
    out_dir = Path(cfg.output_dir or cfg.model)
    from alignlab.report.figures import reliability_diagram

    reliability_diagram({s: result[s]["reliability"] for s in cfg.splits}, out_dir / "reliability.png",
                        title=f"Calibration of {Path(cfg.model).name}")
    write_eval(out_dir, "calibration", result)
    if not cfg.quiet:
        print_calibration(result, cfg.splits)
    return result


def print_calibration(result: dict, splits: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"calibration of {result['model']}")
    for col in ("split", "probes", "MAE", "ECE", "Brier vs truth", "mass on answers"):
        table.add_column(col)
    for s in splits:
        r = result[s]
        table.add_row(s, str(r["n_probes"]), f"{r['mae']:.4f}", f"{r['ece']:.4f}", f"{r['brier_vs_truth']:.5f}",
                      f"{r['mass_on_answers_mean']:.3f}")
    Console().print(table)
    if "sampled" in result:
        s = result["sampled"]
        Console().print(f"sampled: {s['samples']} samples, {s['fraction_inside_ci95']:.0%} of facts inside the 95% interval")
