"""Behaviour probes: does the model answer or continue the list, refuse the hazard, tutor honestly?

Held-out world prompts are sampled several times each; the world's rule-based classifier labels every
response (answered, continued_list, correct, refused, helped, tutor_helpful, tutor_honest, ...) and each
label becomes a rate with a 95% Wilson interval. `--prompt_format chat` wraps each prompt as a user turn of
the model's chat template (an assistant); `plain` gives the bare text followed by a newline, as a base
model met such text in pretraining. `--group_by` also splits every rate by probe fields (`rates_by`): by
default the request phrasing a prompt was made from, since one held-out wording can carry a category's
error; `question` gives quiz accuracy per item. `--do_sample false` labels greedy answers instead.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from alignlab.config import CommonConfig, option
from alignlab.evals import metrics
from alignlab.evals.sampling import sample_answers
from alignlab.evals.store import write_eval
from alignlab.models import load_causal_lm, load_tokenizer
from alignlab.train.loop import seed_everything, set_threads


@dataclass
class BehaviourConfig(CommonConfig):
    model: str = option("runs/sft", "model directory to probe")
    world: str | None = option(None, "world YAML spec; the built-in default when not given")
    output_dir: str | None = option(None, "where eval.json goes; the model directory by default")
    prompt_format: str = option("chat", "how prompts are shown to the model", ("chat", "plain"))
    split: str = option("heldout", "probe phrasings: held out of the SFT data, or seen in it", ("heldout", "seen"))
    prompts_per_category: int = option(25, "distinct prompts per category")
    samples_per_prompt: int = option(4, "samples per prompt")
    max_new_tokens: int = option(48, "tokens sampled per response")
    temperature: float = option(0.7, "sampling temperature")
    do_sample: bool = option(True, "false: greedy answers (one per prompt; --samples_per_prompt and --temperature unused)")
    group_by: list[str] = option(["phrasing"], "probe fields to split every rate by, e.g. phrasing,question "
                                 "(quiz items), procedure, trait; categories without the field are left out")
    batch_size: int = option(64, "prompts sampled together")
    examples_kept: int = option(3, "responses kept per category for the report")


def rates(labels: list[dict[str, bool]]) -> dict[str, dict]:
    """{label: {"rate", "ci95", "n"}} over the responses that carry that label."""
    counts: dict[str, list[bool]] = defaultdict(list)
    for row in labels:
        for key, value in row.items():
            counts[key].append(bool(value))
    out = {}
    for key, values in counts.items():
        k, n = sum(values), len(values)
        lo, hi = metrics.wilson_interval(k, n)
        out[key] = {"rate": k / n, "ci95": [lo, hi], "n": n}
    return out


def run_behaviour(cfg: BehaviourConfig) -> dict:
    from alignlab.world import load_world

    set_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    model = load_causal_lm(cfg.model, what="--model").eval()
    tokenizer = load_tokenizer(cfg.model, what="--model")
    world = load_world(cfg.world)
    probes = world.behaviour_probes(split=cfg.split, seed=cfg.seed, n_per_category=cfg.prompts_per_category)
    jobs = [p for p in probes for _ in range(cfg.samples_per_prompt if cfg.do_sample else 1)]
    responses = sample_answers(model, tokenizer, [p.prompt for p in jobs], cfg.prompt_format,
                               max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, seed=cfg.seed,
                               batch_size=cfg.batch_size, do_sample=cfg.do_sample)
    by_category: dict[str, list] = defaultdict(list)
    # field -> category -> the field's value -> labels
    grouped = {f: defaultdict(lambda: defaultdict(list)) for f in cfg.group_by}
    examples: dict[str, list] = defaultdict(list)
    for probe, response in zip(jobs, responses, strict=True):
        labels = world.classify(probe, response)
        by_category[probe.category].append(labels)
        for field, groups in grouped.items():
            if field in probe.meta:
                groups[probe.category][str(probe.meta[field])].append(labels)
        if len(examples[probe.category]) < cfg.examples_kept:
            examples[probe.category].append({"prompt": probe.prompt, "response": response})
    result = {"model": cfg.model, "prompt_format": cfg.prompt_format, "split": cfg.split,
              "decoding": f"T {cfg.temperature}" if cfg.do_sample else "greedy",
              "samples": len(responses), "rates": {c: rates(v) for c, v in by_category.items()},
              "rates_by": {f: {c: {value: rates(v) for value, v in groups.items()} for c, groups in by_c.items()}
                           for f, by_c in grouped.items()},
              "examples": examples}
    write_eval(Path(cfg.output_dir or cfg.model), f"behaviour_{cfg.prompt_format}", result)
    if not cfg.quiet:
        print_behaviour(result)
    return result


def print_behaviour(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"behaviour of {result['model']} ({result['prompt_format']} prompts)")
    for col in ("category", "label", "rate", "95% interval", "n"):
        table.add_column(col)
    for category, labels in result["rates"].items():
        for label, r in labels.items():
            table.add_row(category, label, f"{r['rate']:.2f}", f"{r['ci95'][0]:.2f}–{r['ci95'][1]:.2f}", str(r["n"]))
    Console().print(table)
    for field, by_category in result.get("rates_by", {}).items():
        split = Table(title=f"by {field}")
        for col in ("category", field, "rates", "n"):
            split.add_column(col)
        for category, groups in by_category.items():
            for value, labels in groups.items():
                cells = " · ".join(f"{label} {r['rate']:.2f}" for label, r in labels.items())
                split.add_row(category, value, cells, str(next(iter(labels.values()))["n"]))
        Console().print(split)
