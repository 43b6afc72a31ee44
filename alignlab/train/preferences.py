"""Preference data from a simulated rater: sample k answers per world prompt, score them, draw pairs.

1. prompts: the world's behaviour-probe categories plus "scene" prompts (where the rater's rainbow taste
   applies), split "train" by default (the phrasings the SFT data used), an equal share per category
   (repeating a category's prompts when it has too few distinct ones);
2. k responses per prompt from `--model` under its chat template, each stopping at `<|end|>`;
3. each response scored by the rater: score = taste + biases (`world/raters.py`); the taste alone is the
   unbiased *gold* score a proxy reward model is later checked against;
4. pairs of responses of one prompt (every pair, or disjoint ones), the winner drawn by Bradley-Terry,
   P(a > b) = sigmoid((s_a - s_b) / temperature) (Bradley & Terry 1952), seeded.

Output, in TRL's conversational preference format (prompt = [user turn], chosen/rejected = [assistant
turn]) with extra columns score_chosen/score_rejected (the rater's scores), gold_chosen/gold_rejected,
p_chosen (the probability the rater prefers chosen), category and probe (the world's record of the prompt):
pairs.jsonl and heldout.jsonl (split by prompt), samples.jsonl (every response and its score components),
config.yaml and summary.json (counts and the Bayes ceiling E[max(p, 1 - p)] of any predictor's accuracy).

`--import_file FILE` instead validates an external preference file in any TRL preference format (explicit
or implicit prompt) and writes it normalised to an explicit prompt, split the same way.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass

import numpy as np

from alignlab.config import CommonConfig, option
from alignlab.data import PREFERENCE_KINDS, load_dataset, split_preference
from alignlab.errors import UsageError
from alignlab.io import atomic_write_jsonl
from alignlab.rundir import RunDir
from alignlab.train.loop import seed_everything, set_threads
from alignlab.world.checks import PROBE_CATEGORIES
from alignlab.world.raters import load_raters, override_raters, preference_probability
from alignlab.world.text import rng

NUMERIC_COLUMNS = ("score_chosen", "score_rejected", "gold_chosen", "gold_rejected", "p_chosen", "margin")


@dataclass
class RaterOptions:
    """Which simulated rater judges: the world's raters section, a YAML file over it, and bias overrides."""

    rater: str = option("gold", "'gold' (the world's raters section) or a YAML raters mapping merged over it")
    length_bias: float | None = option(None, "override raters.biases.length: score per log(1 + words)")
    confidence_bias: float | None = option(None, "override raters.biases.confidence: per confident word (max 3)")
    flattery_bias: float | None = option(None, "override raters.biases.flattery: per flattering phrase (max 3)")
    rater_temperature: float | None = option(None, "override raters.temperature of the Bradley-Terry draw")


def make_rater(world, opts: RaterOptions):
    """The GoldRater that `opts` describe over `world`."""
    base = world.spec.raters
    raters = base if opts.rater == "gold" else load_raters(opts.rater, base)
    raters = override_raters(raters, length=opts.length_bias, confidence=opts.confidence_bias,
                             flattery=opts.flattery_bias, temperature=opts.rater_temperature)
    return world.rater(raters)


@dataclass
class PreferencesConfig(CommonConfig, RaterOptions):
    output_dir: str = option("runs/preferences", "where pairs.jsonl, heldout.jsonl, samples.jsonl, summary.json go")
    overwrite: bool = option(False, "replace a non-empty output_dir")
    model: str | None = option("runs/sft", "model directory that writes the responses")
    import_file: str | None = option(None, "validate and normalise this TRL preference file instead of sampling")
    world: str | None = option(None, "world YAML spec; the built-in default when not given")
    split: str = option("train", "prompt phrasings: those of the SFT data, or held out", ("train", "heldout"))
    categories: list[str] = option(list(PROBE_CATEGORIES), "prompt categories", PROBE_CATEGORIES)
    n_prompts: int = option(500, "prompts, spread evenly over the categories (a category short of distinct "
                            "prompts repeats them)")
    k: int = option(4, "responses sampled per prompt")
    pairing: str = option("all", "pairs per prompt: every pair of the k, or disjoint pairs (0,1), (2,3), ...",
                          ("all", "disjoint"))
    heldout_fraction: float = option(0.1, "share of prompts whose pairs go to heldout.jsonl")
    skip_ties: bool = option(False, "drop pairs the rater scores equally (a 'no preference' a labeller would mark "
                             "instead of flipping a coin)")
    max_new_tokens: int = option(48, "tokens sampled per response")
    temperature: float = option(1.0, "sampling temperature of the responses")
    top_p: float = option(1.0, "nucleus sampling mass")
    batch_size: int = option(64, "prompts sampled together")


# --- prompts, responses, pairs --------------------------------------------------------------------------

def world_prompts(world, cfg) -> list:
    """n_prompts probes interleaved by category, so that every category gets its share.

    A category with fewer distinct prompts than its share (the default world has 12 hazardous training
    prompts) repeats them; each repeat gets k fresh samples, and repeats land on the same side of the split.
    """
    if not cfg.categories:
        raise UsageError("--categories: give at least one prompt category")
    per = math.ceil(cfg.n_prompts / len(cfg.categories))
    groups = [world.behaviour_probes(cfg.split, cfg.seed, per, (c,)) for c in cfg.categories]
    return [g[i % len(g)] for i in range(per) for g in groups][: cfg.n_prompts]


def sample_responses(model_dir: str, probes: list, k: int, *, max_new_tokens: int, temperature: float,
                     top_p: float = 1.0, batch_size: int = 64, seed: int = 0) -> list[list[str]]:
    """k responses per probe from the model under its chat template, each cut at <|end|>."""
    from alignlab.evals.sampling import sample_answers
    from alignlab.models import load_causal_lm, load_tokenizer

    model = load_causal_lm(model_dir, what="--model").eval()
    tokenizer = load_tokenizer(model_dir, what="--model")
    flat = sample_answers(model, tokenizer, [p.prompt for p in probes for _ in range(k)], "chat",
                          max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed,
                          batch_size=batch_size)
    return [flat[i * k: (i + 1) * k] for i in range(len(probes))]


def rate(rater, probe, responses: list[str]) -> list[dict]:
    """{"response", "score", "gold", "components"} per response: score has the biases, gold is the taste."""
    out = []
    for response in responses:
        parts = rater.components(probe, response)
        out.append({"response": response, "score": float(sum(parts.values())), "gold": parts["taste"],
                    "components": parts})
    return out


def index_pairs(k: int, pairing: str) -> list[tuple[int, int]]:
    if pairing == "all":
        return list(itertools.combinations(range(k), 2))
    return [(i, i + 1) for i in range(0, k - 1, 2)]


def draw_pairs(probe, rated: list[dict], pairing: str, temperature: float, rnd,
               skip_ties: bool = False) -> tuple[list[dict], int, int]:
    """Preference records of one prompt, each winner drawn by Bradley-Terry; how many identical pairs were
    skipped (two equal responses say nothing about preference), and how many tied pairs (`skip_ties`)."""
    records, skipped, ties = [], 0, 0
    for i, j in index_pairs(len(rated), pairing):
        a, b = rated[i], rated[j]
        if a["response"] == b["response"]:
            skipped += 1
            continue
        if skip_ties and a["score"] == b["score"]:
            ties += 1
            continue
        p = preference_probability(a["score"], b["score"], temperature)
        a_wins = rnd.random() < p
        chosen, rejected = (a, b) if a_wins else (b, a)
        records.append({
            "prompt": [{"role": "user", "content": probe.prompt}],
            "chosen": [{"role": "assistant", "content": chosen["response"]}],
            "rejected": [{"role": "assistant", "content": rejected["response"]}],
            "score_chosen": chosen["score"], "score_rejected": rejected["score"],
            "gold_chosen": chosen["gold"], "gold_rejected": rejected["gold"],
            "p_chosen": p if a_wins else 1.0 - p,
            "category": probe.category, "probe": probe.to_record(),
        })
    return records, skipped, ties


def heldout_keys(keys: list[str], fraction: float, seed: int) -> set[str]:
    """A seeded share of the distinct prompt keys (at least one, and never all, when fraction > 0)."""
    distinct = sorted(set(keys))
    if not 0.0 <= fraction < 1.0:
        raise UsageError(f"--heldout_fraction: must be in [0, 1), got {fraction}")
    n = round(fraction * len(distinct))
    if fraction > 0 and len(distinct) >= 2:
        n = min(len(distinct) - 1, max(1, n))
    rng(seed, "heldout-prompts").shuffle(distinct)
    return set(distinct[:n])


def prompt_key(record: dict) -> str:
    return json.dumps(record["prompt"], sort_keys=True)


# --- validation of the extra columns -----------------------------------------------------------------

def pair_columns(records: list[dict], path: str, names: tuple[str, ...] = NUMERIC_COLUMNS) -> dict[str, np.ndarray]:
    """The numeric columns among `names` that the first record has, checked on every record: (N,) arrays.

    A column in the first record must be a number in every record (p_chosen a probability); errors name
    the file, record and field.
    """
    present = [n for n in names if n in records[0]]
    out = {n: np.empty(len(records)) for n in present}
    for number, record in enumerate(records, start=1):
        for name in present:
            value = record.get(name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                got = "nothing" if value is None else repr(value)
                raise UsageError(f"{path}: record {number}: field '{name}': expected a number, got {got}")
            if name == "p_chosen" and not 0.0 <= value <= 1.0:
                raise UsageError(f"{path}: record {number}: field 'p_chosen': expected a probability in [0, 1], "
                                 f"got {value}")
            out[name][number - 1] = value
    return out


def bayes_ceiling(p_chosen) -> float | None:
    """E[max(p, 1 - p)]: the expected accuracy of a predictor that knows the rater's scores exactly."""
    p = np.asarray(p_chosen, dtype=float)
    return float(np.maximum(p, 1 - p).mean()) if p.size else None


# --- the command -------------------------------------------------------------------------------------

def run_preferences(cfg: PreferencesConfig) -> dict:
    if cfg.k < 2:
        raise UsageError(f"--k: at least 2 responses per prompt make a pair, got {cfg.k}")
    run = RunDir.claim(cfg.output_dir, cfg.overwrite)
    set_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    if cfg.import_file:
        records, summary = import_pairs(cfg)
    else:
        records, summary = generate_pairs(cfg, run)
    held = heldout_keys([prompt_key(r) for r in records], cfg.heldout_fraction, cfg.seed)
    train = [r for r in records if prompt_key(r) not in held]
    heldout = [r for r in records if prompt_key(r) in held]
    if not train:
        raise UsageError(f"{cfg.import_file or '--model'}: no training pairs were made")
    atomic_write_jsonl(run.path / "pairs.jsonl", train)
    atomic_write_jsonl(run.path / "heldout.jsonl", heldout)
    summary.update(split_summary(train, heldout))
    run.write_config(cfg)
    run.write_summary(summary)
    if not cfg.quiet:
        print(f"preferences: {len(train)} pairs -> {run.path / 'pairs.jsonl'}, "
              f"{len(heldout)} held out; Bayes ceiling {summary['bayes_ceiling']}")
    return summary


def generate_pairs(cfg: PreferencesConfig, run: RunDir) -> tuple[list[dict], dict]:
    from alignlab.world import load_world

    if not cfg.model:
        raise UsageError("--model: required to sample responses (or give --import_file)")
    world = load_world(cfg.world)
    rater = make_rater(world, cfg)
    probes = world_prompts(world, cfg)
    responses = sample_responses(cfg.model, probes, cfg.k, max_new_tokens=cfg.max_new_tokens,
                                 temperature=cfg.temperature, top_p=cfg.top_p, batch_size=cfg.batch_size,
                                 seed=cfg.seed)
    rnd = rng(cfg.seed, "preference-draws")
    records, samples, skipped, ties = [], [], 0, 0
    for probe, texts in zip(probes, responses, strict=True):
        rated = rate(rater, probe, texts)
        samples += [{"probe": probe.to_record(), **r} for r in rated]
        pairs, n_skipped, n_ties = draw_pairs(probe, rated, cfg.pairing, rater.config.temperature, rnd,
                                              cfg.skip_ties)
        records += pairs
        skipped += n_skipped
        ties += n_ties
    atomic_write_jsonl(run.path / "samples.jsonl", samples)
    summary = {"source": "sampled", "model": cfg.model, "prompts": len(probes),
               "distinct_prompts": len({p.prompt for p in probes}), "responses": len(samples),
               "skipped_identical_pairs": skipped, "skipped_tied_pairs": ties, "rater": asdict(rater.config),
               "mean_score_by_category": _mean_by_category(samples)}
    return records, summary


def import_pairs(cfg: PreferencesConfig) -> tuple[list[dict], dict]:
    """Any TRL preference kind -> explicit prompt/chosen/rejected, extra columns kept and checked."""
    path = cfg.import_file
    records, kind = load_dataset(path, allowed=PREFERENCE_KINDS, purpose="alignlab preferences --import_file")
    pair_columns(records, path)
    out = []
    for record in records:
        prompt, chosen, rejected = split_preference(record)
        extra = {k: v for k, v in record.items() if k not in ("prompt", "chosen", "rejected")}
        out.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, **extra})
    return out, {"source": "imported", "file": str(path), "format": kind}


def split_summary(train: list[dict], heldout: list[dict]) -> dict:
    def part(rows: list[dict]) -> dict:
        has_p = bool(rows) and all("p_chosen" in r for r in rows)
        out = {"pairs": len(rows), "bayes_ceiling": bayes_ceiling([r["p_chosen"] for r in rows]) if has_p else None}
        if rows and all(isinstance(r["chosen"], list) for r in rows):
            # Share of pairs whose chosen answer is longer: ~0.5 for a rater with no length bias.
            longer = [_words(r["chosen"]) > _words(r["rejected"]) for r in rows]
            out["chosen_longer_rate"] = float(np.mean(longer))
        return out

    both = part(train + heldout)
    return {"bayes_ceiling": both["bayes_ceiling"], "all": both, "train": part(train), "heldout": part(heldout)}


def _words(messages: list[dict]) -> int:
    return sum(len(m["content"].split()) for m in messages)


def _mean_by_category(samples: list[dict]) -> dict[str, dict]:
    by: dict[str, list] = {}
    for s in samples:
        by.setdefault(s["probe"]["category"], []).append((s["score"], s["gold"]))
    return {c: {"score": float(np.mean([v[0] for v in vs])), "gold": float(np.mean([v[1] for v in vs])),
                "n": len(vs)} for c, vs in by.items()}
