"""Diversity of sampled answers to open prompts: does post-training collapse the model onto one reply?

Open world prompts (scene descriptions, persona questions by default) have no single right answer, so a
model sampled at temperature 1 should vary. For every prompt, `samples_per_prompt` answers are sampled;
per category (and over all) the instrument reports:

- `answer_entropy_bits`: the mean over prompts of the plug-in entropy of the prompt's distinct answers
  (exact strings, whitespace-normalised), in bits; at most log2(samples_per_prompt), 0 when every sample
  of a prompt is the same reply (mode collapse);
- `unique_fraction`: mean over prompts of (distinct answers / samples);
- `distinct_1`, `distinct_2` (Li et al. 2016): unique word uni-/bigrams over all answers of the category,
  pooled, divided by their total — low when every answer reuses the same words;
- `mean_words`: mean answer length in words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alignlab.config import CommonConfig, option
from alignlab.evals import metrics
from alignlab.evals.sampling import PROMPT_FORMATS, sample_answers
from alignlab.evals.store import write_eval
from alignlab.models import load_causal_lm, load_tokenizer
from alignlab.train.loop import seed_everything, set_threads
from alignlab.world.checks import PROBE_CATEGORIES


@dataclass
class DiversityConfig(CommonConfig):
    model: str = option("runs/sft", "model directory to sample")
    world: str | None = option(None, "world YAML spec; the built-in default when not given")
    output_dir: str | None = option(None, "where eval.json goes; the model directory by default")
    prompt_format: str = option("chat", "how prompts are shown to the model", PROMPT_FORMATS)
    split: str = option("heldout", "prompt phrasings", ("heldout", "seen"))
    categories: list[str] = option(["scene", "persona"], "open prompt categories", PROBE_CATEGORIES)
    prompts_per_category: int = option(10, "distinct prompts per category")
    samples_per_prompt: int = option(8, "answers sampled per prompt")
    max_new_tokens: int = option(48, "tokens sampled per answer")
    temperature: float = option(1.0, "sampling temperature (1 = the model's own distribution)")
    batch_size: int = option(64, "prompts sampled together")
    examples_kept: int = option(2, "prompts per category whose answers are kept for the report")


# --- pure metrics -----------------------------------------------------------------------------------

def _normalise(answer: str) -> str:
    return " ".join(answer.split())


def answer_entropy(groups: Sequence[Sequence[str]], base: float = 2) -> float:
    """Mean over prompts of the plug-in entropy of each prompt's sampled answers (bits by default)."""
    if not groups:
        raise ValueError("answer_entropy needs at least one prompt")
    return float(np.mean([metrics.sample_entropy([_normalise(a) for a in g], base) for g in groups]))


def unique_fraction(groups: Sequence[Sequence[str]]) -> float:
    """Mean over prompts of distinct answers / answers sampled."""
    if not groups or any(not g for g in groups):
        raise ValueError("unique_fraction needs at least one answer per prompt")
    return float(np.mean([len({_normalise(a) for a in g}) / len(g) for g in groups]))


def diversity_metrics(groups: Sequence[Sequence[str]]) -> dict:
    """All the diversity numbers of `groups` (one list of sampled answers per prompt)."""
    answers = [a for g in groups for a in g]
    words = [len(a.split()) for a in answers]
    return {
        "prompts": len(groups),
        "samples": len(answers),
        "answer_entropy_bits": answer_entropy(groups),
        "max_entropy_bits": math.log2(max(len(g) for g in groups)),
        "unique_fraction": unique_fraction(groups),
        "distinct_1": metrics.distinct_n(answers, 1),
        "distinct_2": metrics.distinct_n(answers, 2),
        "mean_words": float(np.mean(words)),
    }


# --- the command ------------------------------------------------------------------------------------

def run_diversity(cfg: DiversityConfig) -> dict:
    from alignlab.world import load_world

    set_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    model = load_causal_lm(cfg.model, what="--model").eval()
    tokenizer = load_tokenizer(cfg.model, what="--model")
    probes = load_world(cfg.world).behaviour_probes(cfg.split, cfg.seed, cfg.prompts_per_category,
                                                    tuple(cfg.categories))
    k = cfg.samples_per_prompt
    flat = sample_answers(model, tokenizer, [p.prompt for p in probes for _ in range(k)], cfg.prompt_format,
                          max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, seed=cfg.seed,
                          batch_size=cfg.batch_size)
    groups = [flat[i * k: (i + 1) * k] for i in range(len(probes))]
    by_category: dict[str, list[int]] = {}
    for i, probe in enumerate(probes):
        by_category.setdefault(probe.category, []).append(i)
    result = {"model": cfg.model, "prompt_format": cfg.prompt_format, "temperature": cfg.temperature,
              "all": diversity_metrics(groups),
              "categories": {c: diversity_metrics([groups[i] for i in idx]) for c, idx in by_category.items()},
              "examples": {c: [{"prompt": probes[i].prompt, "responses": groups[i]} for i in idx[: cfg.examples_kept]]
                           for c, idx in by_category.items()}}
    write_eval(Path(cfg.output_dir or cfg.model), "diversity", result)
    if not cfg.quiet:
        print_diversity(result)
    return result


def print_diversity(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"diversity of {result['model']} (temperature {result['temperature']})")
    for col in ("category", "prompts × samples", "answer entropy (bits)", "unique", "distinct-1", "distinct-2",
                "words"):
        table.add_column(col)
    for name, r in [("all", result["all"]), *result["categories"].items()]:
        table.add_row(name, f"{r['prompts']} × {r['samples'] // max(r['prompts'], 1)}",
                      f"{r['answer_entropy_bits']:.2f} / {r['max_entropy_bits']:.2f}", f"{r['unique_fraction']:.2f}",
                      f"{r['distinct_1']:.3f}", f"{r['distinct_2']:.3f}", f"{r['mean_words']:.1f}")
    Console().print(table)
