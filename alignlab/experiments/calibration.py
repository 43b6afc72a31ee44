"""`alignlab experiment calibration`: from world model to approval seeker, stage by stage, against truth.

Pretrained base → SFT (world transcripts) → preference tuning toward two raters that see the same pairs:
- **taste**: the gold rater with a taste for one fact's attribute (`--taste_attribute`, default the
  boathouse's red canoe, truth p = 0.48) in scene descriptions; its pairs are the SFT model's scene
  descriptions where the rater's scores differ (ties skipped, `alignlab preferences --skip_ties`);
- **no taste**: the same pairs relabelled by a rater with no taste on those facts — its Bradley-Terry
  probability is 1/2, so each label is a fair coin (seeded). Same prompts, responses, count and budget.
Each rater trains DPO (β `--dpo_beta`) and PPO (`--reward world`, scene prompts) from the SFT model. An SFT
arm with pretraining documents replayed into its batches (`--replay_fraction`) shows how much of the base's
calibration replay keeps (replay goes into SFT batches only: the DPO loop has no replay term).

Every model is measured on the world's plain-text fact probes (exact, from log-probs):
- MAE and ECE of P(attribute) against the truth, on seen and on held-out phrasings;
- one fitted temperature: T minimising the cross-entropy of softmax(log q / T) against the truth on the seen
  phrasings, then the held-out ECE at that T (Kadavath et al. 2022 found T ≈ 2.5 restores an RLHF model);
- the taste fact: P(attribute) against the truth and against the exact KL-optimum
  π*(y|x) ∝ π_ref(y|x) exp(r(x,y)/β) of the rater it was tuned toward (π_ref = the SFT model), as TV;
- diversity: answer entropy and distinct-2 of sampled answers to held-out open prompts (scene, persona;
  chat format, plain for the base, which never saw the chat template).
Seeds (`--seeds`) repeat everything after the base. Sub-runs are skipped when complete (resumable).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from alignlab.config import CommonConfig, option
from alignlab.data.load import load_records
from alignlab.evals import metrics
from alignlab.experiments.common import (
    cached_json,
    check_options,
    fmt_interval,
    markdown_table,
    run_once,
    seed_interval,
    write_deliverables,
)
from alignlab.io import atomic_write_jsonl, atomic_write_text

STAGES = ("base", "sft", "sft_replay", "dpo_taste", "dpo_notaste", "ppo_taste", "ppo_notaste")


@dataclass
class CalibrationExperimentConfig(CommonConfig):
    output_dir: str = option("runs/exp_calibration", "experiment directory (one subdirectory per sub-run)")
    base_model: str | None = option(None, "a pretrained base to start from; pretrains one on the world when not given")
    pretrain_steps: int = option(600, "pretraining steps when no --base_model is given (nano preset)")
    taste_attribute: str = option("red canoe", "the fact attribute the taste rater likes in scene descriptions")
    seeds: list[int] = option([0, 1, 2], "seeds of everything after the base")
    sft_conversations: int = option(3000, "world transcripts for SFT")
    replay_fraction: float = option(0.5, "share of pretraining documents in the replay arm's SFT batches (0 = no arm)")
    preference_prompts: int = option(2000, "scene prompts the SFT model answers k = 4 times for the pairs")
    skip_ties: bool = option(True, "keep only pairs the taste rater scores differently (false: ties too, as coin flips)")
    dpo_beta: float = option(0.1, "DPO's beta, and the beta of the exact optimum")
    dpo_epochs: float = option(5.0, "DPO passes over the pairs")
    ppo_steps: int = option(32, "PPO optimiser steps per rater (0 = no PPO arms)")
    probes_per_fact: int = option(4, "plain-text phrasings per fact and split")
    diversity_prompts: int = option(10, "held-out open prompts per category for diversity")
    diversity_samples: int = option(8, "answers sampled per open prompt")
    overwrite: bool = option(False, "run every sub-run again")


# --- pure maths ---------------------------------------------------------------------------------------

def tempered(log_q: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log_q / T) over the last axis."""
    z = log_q / temperature
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def fit_temperature(log_q: np.ndarray, truth: np.ndarray, lo: float = 0.05, hi: float = 20.0) -> float:
    """The T minimising the cross-entropy -sum truth log softmax(log_q / T), by golden-section search on log T
    (the loss is unimodal in log T for these two-answer families)."""
    def loss(log_t: float) -> float:
        return float(-(truth * np.log(np.clip(tempered(log_q, np.exp(log_t)), 1e-300, None))).sum())

    a, b = np.log(lo), np.log(hi)
    g = (np.sqrt(5) - 1) / 2
    for _ in range(80):
        c, d = b - g * (b - a), a + g * (b - a)
        if loss(c) < loss(d):
            b = d
        else:
            a = c
    return float(np.exp((a + b) / 2))


def coin_flip_labels(pairs: list[dict], seed: int) -> list[dict]:
    """The pairs as a rater with no taste on them labels them: chosen and rejected swapped with prob 1/2."""
    rnd = random.Random(seed)
    out = []
    for pair in pairs:
        row = {k: v for k, v in pair.items() if not k.startswith(("score_", "gold_", "p_"))}
        if rnd.random() < 0.5:
            row["chosen"], row["rejected"] = pair["rejected"], pair["chosen"]
        out.append(row)
    return out


def _tv(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.abs(p - q).sum(-1) / 2


# --- measuring one model --------------------------------------------------------------------------------

def measure(model_dir: str, ref_dir: str, world, cfg: CalibrationExperimentConfig, prompt_format: str,
            rewarded_world) -> dict:
    """Calibration, fitted temperature, the taste fact against the optimum, and diversity of one model."""
    from alignlab.evals.calibration import exact_probabilities
    from alignlab.evals.diversity import diversity_metrics
    from alignlab.evals.optimum import fact_rewards, optimum_gap
    from alignlab.evals.sampling import sample_answers
    from alignlab.models import load_causal_lm, load_tokenizer

    model = load_causal_lm(model_dir).eval()
    ref = load_causal_lm(ref_dir).eval() if ref_dir != model_dir else model
    tokenizer = load_tokenizer(model_dir)
    out: dict = {"model": model_dir, "ref_model": ref_dir}
    with torch.inference_mode():
        split_probes = {s: world.fact_probes(s, cfg.probes_per_fact, cfg.seed) for s in ("seen", "heldout")}
        q = {s: exact_probabilities(model, tokenizer, ps)[0] for s, ps in split_probes.items()}
        truth = {s: np.array([p.truth for p in ps]) for s, ps in split_probes.items()}
        probes = split_probes["heldout"]
        for s in ("seen", "heldout"):
            out[f"mae_{s}"] = metrics.mean_absolute_error(q[s][:, 0], truth[s][:, 0])
            out[f"ece_{s}"] = metrics.expected_calibration_error(q[s][:, 0], truth[s][:, 0])
        # Entropy of the enumerable fact answers: the distribution a calibrated model keeps and a tuned one narrows.
        out["fact_entropy_bits"] = float(-(q["heldout"] * np.log2(np.clip(q["heldout"], 1e-300, None))).sum(-1).mean())
        temperature = fit_temperature(np.log(np.clip(q["seen"], 1e-300, None)), truth["seen"])
        q_t = tempered(np.log(np.clip(q["heldout"], 1e-300, None)), temperature)
        out.update(temperature=temperature, ece_heldout_tempered=metrics.expected_calibration_error(
            q_t[:, 0], truth["heldout"][:, 0]), mae_heldout_tempered=metrics.mean_absolute_error(
            q_t[:, 0], truth["heldout"][:, 0]))
        # The taste fact, against the exact optimum of the taste rater (pi_ref = the model's starting point).
        ref_q = exact_probabilities(ref, tokenizer, probes)[0] if ref is not model else q["heldout"]
        rewards = fact_rewards(rewarded_world, probes)
        gap = optimum_gap(torch.from_numpy(q["heldout"]), torch.from_numpy(ref_q), rewards, cfg.dpo_beta)
        taste = (rewards.max(-1).values > rewards.min(-1).values).numpy()
        out.update(p_taste=float(q["heldout"][taste, 0].mean()), p_taste_truth=float(truth["heldout"][taste, 0].mean()),
                   p_taste_optimum=float(gap["optimum"][taste, 0].mean()), p_taste_ref=float(ref_q[taste, 0].mean()),
                   tv_optimum=float(gap["tv"][taste].mean()),
                   tv_ref_optimum=float(_tv(ref_q, gap["optimum"].numpy())[taste].mean()),
                   # A rater with no taste has pi* = pi_ref: the distance to it is the distance moved.
                   tv_ref=float(_tv(q["heldout"], ref_q)[taste].mean()),
                   tv_ref_all_facts=float(_tv(q["heldout"], ref_q).mean()))
        open_probes = world.behaviour_probes("heldout", cfg.seed, cfg.diversity_prompts, ("scene", "persona"))
        k = cfg.diversity_samples
        flat = sample_answers(model, tokenizer, [p.prompt for p in open_probes for _ in range(k)], prompt_format,
                              max_new_tokens=48, temperature=1.0, seed=cfg.seed, batch_size=64)
        div = diversity_metrics([flat[i * k: (i + 1) * k] for i in range(len(open_probes))])
        out.update(answer_entropy_bits=div["answer_entropy_bits"], distinct_2=div["distinct_2"],
                   diversity_format=prompt_format)
    return out


# --- the sub-runs ----------------------------------------------------------------------------------------

def _worlds(cfg: CalibrationExperimentConfig, root: Path) -> tuple[str, str]:
    """World specs of the two raters: the taste on `taste_attribute`, and no taste on any fact."""
    taste, notaste = root / "world_taste.yaml", root / "world_notaste.yaml"
    atomic_write_text(taste, f"extends: default\nraters: {{taste_attribute: {cfg.taste_attribute}}}\n")
    atomic_write_text(notaste, "extends: default\nraters: {tastes: {rainbow: 0.0}}\n")
    return str(taste), str(notaste)


def _train_seed(cfg: CalibrationExperimentConfig, root: Path, base: str, seed: int, worlds: tuple[str, str]) -> dict:
    """Every model of one seed after the base: {stage: (model dir, the model it started from)}."""
    from alignlab.train.ppo import PpoConfig, run_ppo
    from alignlab.train.preference import DpoConfig, run_dpo
    from alignlab.train.preferences import PreferencesConfig, run_preferences
    from alignlab.train.sft import SftConfig, run_sft

    c = {"seed": seed, "quiet": cfg.quiet, "num_threads": cfg.num_threads}
    d = root / f"seed{seed}"
    taste, notaste = worlds
    ow = {"overwrite": True}
    # A world transcript longer than SFT's max_length (possible with a small tokenizer) is cut, and logged,
    # rather than ending a multi-stage run.
    sft_options = {"model_name_or_path": base, "world_conversations": cfg.sft_conversations, "truncation": "right"}
    models = {"sft": (run_once(d / "sft", lambda: run_sft(SftConfig(
        output_dir=str(d / "sft"), **sft_options, **ow, **c)), cfg.overwrite), base)}
    sft = str(models["sft"][0])
    if cfg.replay_fraction > 0:
        models["sft_replay"] = (run_once(d / "sft_replay", lambda: run_sft(SftConfig(
            output_dir=str(d / "sft_replay"), replay_fraction=cfg.replay_fraction, **sft_options, **ow, **c)),
            cfg.overwrite), base)
    run_once(d / "prefs", lambda: run_preferences(PreferencesConfig(
        output_dir=str(d / "prefs"), model=sft, world=taste, categories=["scene"], n_prompts=cfg.preference_prompts,
        skip_ties=cfg.skip_ties, heldout_fraction=0.0, **ow, **c)), cfg.overwrite)
    pairs = {"taste": str(d / "prefs" / "pairs.jsonl"), "notaste": str(d / "pairs_notaste.jsonl")}
    atomic_write_jsonl(pairs["notaste"], coin_flip_labels(load_records(pairs["taste"]), seed))
    for rater, world in (("taste", taste), ("notaste", notaste)):
        models[f"dpo_{rater}"] = (run_once(d / f"dpo_{rater}", lambda r=rater: run_dpo(DpoConfig(
            output_dir=str(d / f"dpo_{r}"), model_name_or_path=sft, dataset=pairs[r], beta=cfg.dpo_beta,
            num_train_epochs=cfg.dpo_epochs, **ow, **c)), cfg.overwrite), sft)
        if cfg.ppo_steps > 0:
            models[f"ppo_{rater}"] = (run_once(d / f"ppo_{rater}", lambda r=rater, w=world: run_ppo(PpoConfig(
                output_dir=str(d / f"ppo_{r}"), model_name_or_path=sft, reward="world", world=w,
                categories=["scene"], max_steps=cfg.ppo_steps, **ow, **c)), cfg.overwrite), sft)
    return models


def _base(cfg: CalibrationExperimentConfig, root: Path) -> str:
    from alignlab.train.pretrain import PretrainConfig, run_pretrain

    if cfg.base_model:
        return cfg.base_model
    return str(run_once(root / "base", lambda: run_pretrain(PretrainConfig(
        output_dir=str(root / "base"), preset="nano", max_steps=cfg.pretrain_steps, overwrite=True, seed=cfg.seed,
        quiet=cfg.quiet, num_threads=cfg.num_threads)), cfg.overwrite))


# --- the whole experiment ------------------------------------------------------------------------------

ROW_METRICS = ("ece_seen", "ece_heldout", "mae_heldout", "temperature", "ece_heldout_tempered", "p_taste",
               "p_taste_truth", "p_taste_optimum", "tv_optimum", "tv_ref", "fact_entropy_bits", "answer_entropy_bits",
               "distinct_2")


NON_NEGATIVE = ("temperature", "fact_entropy_bits", "answer_entropy_bits")  # the others lie in [0, 1]


def aggregate(base_row: dict, per_seed: dict[int, dict[str, dict]]) -> dict[str, dict]:
    """Per stage, a seed interval of every metric; the base is one measurement (n = 1), not one per seed."""
    def interval(key: str, values: list) -> dict:
        return seed_interval(values, (0.0, math.inf) if key in NON_NEGATIVE else (0.0, 1.0))

    out = {"base": {k: interval(k, [base_row[k]]) for k in ROW_METRICS}}
    for stage in STAGES[1:]:
        rows = [m[stage] for m in per_seed.values() if stage in m]
        if rows:
            out[stage] = {k: interval(k, [r[k] for r in rows]) for k in ROW_METRICS}
    return out


def run_calibration_experiment(cfg: CalibrationExperimentConfig) -> dict:
    from alignlab.train.loop import set_threads
    from alignlab.world import load_world

    set_threads(cfg.num_threads)
    root = Path(cfg.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    check_options(root, cfg)
    worlds = _worlds(cfg, root)
    world, taste_world = load_world(), load_world(worlds[0])
    base = _base(cfg, root)
    base_row = cached_json(root / "measure_base.json",
                           lambda: measure(base, base, world, cfg, "plain", taste_world), cfg.overwrite)
    per_seed: dict[int, dict[str, dict]] = {}
    for seed in cfg.seeds:
        if not cfg.quiet:
            print(f"experiment calibration: seed {seed}", flush=True)
        models = _train_seed(cfg, root, base, seed, worlds)
        per_seed[seed] = {}
        for stage, (model, ref) in models.items():
            per_seed[seed][stage] = cached_json(
                root / f"seed{seed}" / f"measure_{stage}.json",
                lambda m=model, r=ref: measure(str(m), str(r), world, cfg, "chat", taste_world), cfg.overwrite)
    stages = aggregate(base_row, per_seed)
    taste_pairs = {str(s): len(load_records(root / f"seed{s}" / "prefs" / "pairs.jsonl")) for s in cfg.seeds}
    results = {"taste_attribute": cfg.taste_attribute, "dpo_beta": cfg.dpo_beta, "seeds": cfg.seeds,
               "stages": stages, "base": base_row, "taste_pairs": taste_pairs,
               "per_seed": {str(s): v for s, v in per_seed.items()}}
    figures = _figures(stages, root)
    pairs_note = "Taste pairs per seed: " + ", ".join(f"seed {s}: {n}" for s, n in taste_pairs.items()) + "."
    write_deliverables(root, "calibration", results, finding(stages, cfg), [_table(stages), pairs_note], figures)
    if not cfg.quiet:
        print((root / "summary.md").read_text())
    return results


def _m(stages: dict, stage: str, key: str) -> float | None:
    return stages.get(stage, {}).get(key, {}).get("mean")


def finding(stages: dict, cfg: CalibrationExperimentConfig) -> str:
    """One sentence (several clauses) built from the measured means; no outcome is assumed."""
    base = _m(stages, "base", "ece_heldout")
    parts = [f"Held-out ECE of the base {base:.3f}"]
    for stage in ("sft", "sft_replay", "dpo_taste", "dpo_notaste", "ppo_taste", "ppo_notaste"):
        ece = _m(stages, stage, "ece_heldout")
        if ece is not None:
            parts.append(f"{stage} {ece:.3f} ({ece / max(base, 1e-9):.1f}× the base)")
    text = ", ".join(parts) + "."
    if "dpo_taste" in stages:
        text += (f" DPO toward the taste rater moved P({cfg.taste_attribute}) from {_m(stages, 'sft', 'p_taste'):.2f}"
                 f" (SFT) to {_m(stages, 'dpo_taste', 'p_taste'):.2f} (truth {_m(stages, 'base', 'p_taste_truth'):.2f},"
                 f" exact optimum {_m(stages, 'dpo_taste', 'p_taste_optimum'):.2f}; TV to it"
                 f" {_m(stages, 'dpo_taste', 'tv_optimum'):.2f}), the no-taste DPO to"
                 f" {_m(stages, 'dpo_notaste', 'p_taste'):.2f} (its own optimum is the SFT model: TV"
                 f" {_m(stages, 'dpo_notaste', 'tv_ref'):.2f}).")
    t, ece_t = _m(stages, "dpo_taste", "temperature"), _m(stages, "dpo_taste", "ece_heldout_tempered")
    if t is not None:
        text += f" One fitted temperature (T = {t:.2f}) takes the taste DPO's held-out ECE to {ece_t:.3f}."
    for key, label in (("fact_entropy_bits", "Entropy of the fact answers (bits)"),
                       ("distinct_2", "distinct-2 of open answers")):
        values = [(s, _m(stages, s, key)) for s in ("base", "sft", "dpo_taste", "ppo_taste")]
        text += f" {label}: " + ", ".join(f"{s} {v:.3f}" for s, v in values if v is not None) + "."
    return text


def _table(stages: dict) -> str:
    cols = ("stage", "ECE seen", "ECE held-out", "T", "ECE held-out at T", "P(taste)", "TV to taste optimum",
            "TV to start", "fact-answer entropy (bits)", "distinct-2 of open answers")
    # Open-answer entropy stays in results.json: 8 answers of up to 48 tokens are all distinct (3 bits) at
    # every stage, so it cannot rank them; distinct-2 can.
    keys = ("ece_seen", "ece_heldout", "temperature", "ece_heldout_tempered", "p_taste", "tv_optimum", "tv_ref",
            "fact_entropy_bits", "distinct_2")
    rows = [{"stage": s, **{c: fmt_interval(v[k], 3) for c, k in zip(cols[1:], keys, strict=True)}}
            for s, v in stages.items()]
    return markdown_table(rows, cols)


def _figures(stages: dict, root: Path) -> list[str]:
    from alignlab.report.figures import plt, save_figure

    names = list(stages)
    x = np.arange(len(names))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.2))
    for offset, key, label in ((-0.2, "ece_heldout", "held-out ECE"), (0.2, "ece_heldout_tempered",
                                                                       "held-out ECE at the fitted T")):
        mean = np.array([stages[s][key]["mean"] for s in names])
        err = np.array([[mean[i] - stages[s][key]["lo"], stages[s][key]["hi"] - mean[i]] for i, s in enumerate(names)]).T
        ax1.bar(x + offset, mean, 0.4, yerr=err, capsize=3, label=label)
    ax1.set_xticks(x, names, rotation=30, ha="right")
    ax1.set_ylabel("ECE of P(attribute) against the truth")
    ax1.set_title("calibration by stage (95% interval over seeds)")
    ax1.legend(fontsize=8)
    for key, label, marker in (("p_taste", "model", "o"), ("p_taste_optimum", "exact KL-optimum of the taste rater", "x"),
                               ("p_taste_truth", "world truth", "_")):
        mean = [stages[s][key]["mean"] for s in names]
        ax2.scatter(x, mean, marker=marker, s=60, label=label)
    ax2.set_xticks(x, names, rotation=30, ha="right")
    ax2.set_ylim(-0.02, 1.02)
    ax2.set_ylabel("P(taste attribute) on held-out phrasings")
    ax2.set_title("the taste fact")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, root / "calibration_stages.png")
    return ["calibration_stages.png"]
