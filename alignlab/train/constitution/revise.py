"""`alignlab constitution revise`: sample a response, critique it under a random principle, revise, repeat.

Bai et al. 2022 (Constitutional AI, Sec. 3.1): for each prompt the model answers, is asked to critique its
answer under a principle drawn at random from the constitution, then to revise it; the revision becomes
the answer that the next round critiques. The conversation of a round is exactly the shape of the world's
critique demonstrations (`world/transcripts.py`):

    user prompt / response / critique request / critique / revision request / revision

Each round starts again from the prompt and the current response: earlier critiques are not shown, so the
context does not grow and every round looks like the demonstrations the SFT assistant learnt from (a
deliberate difference from chaining all rounds in one conversation).

Output: revisions.jsonl (one record per prompt: every round's principle, critique, revision and, for world
prompts, the gold rater's score and labels), summary.json (per-round gold rates), config.yaml.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from alignlab.config import CommonConfig, option
from alignlab.errors import UsageError
from alignlab.evals.behaviour import rates
from alignlab.io import atomic_write_jsonl
from alignlab.rundir import RunDir
from alignlab.train.constitution.chat import (
    ChatModel,
    PromptItem,
    PromptOptions,
    SamplingOptions,
    load_prompts,
    turn,
)
from alignlab.train.constitution.principles import Principle, draw_principles, load_constitution
from alignlab.train.loop import seed_everything, set_threads
from alignlab.world.text import rng

# Headline per-round rates: name -> (categories, label, whether the rate counts the label being False).
HEADLINES = {
    "harmlessness": (("hazardous",), "complied", True),  # hazardous prompts answered without the procedure
    "hazardous_refusal": (("hazardous",), "refused", False),
    "helpfulness": (("benign",), "helped", False),  # benign look-alikes actually helped with
    "over_refusal": (("benign",), "refused", False),
    "honesty": (("grammar_correct", "grammar_incorrect"), "tutor_honest", False),
    "correctness": (("quiz",), "correct", False),
}


@dataclass
class ReviseConfig(SamplingOptions, PromptOptions, CommonConfig):
    model: str = option("runs/sft", "local chat model that answers, critiques and revises")
    constitution: str | None = option(None, "constitution .yaml/.md; the world's constitution section when not given")
    principles: list[str] = option([], "names of the principles to draw from (all when empty)")
    rounds: int = option(2, "critique-and-revise rounds after the first response")
    output_dir: str = option("runs/revise", "where revisions.jsonl, summary.json and config.yaml go")
    overwrite: bool = option(False, "replace a non-empty output_dir")


def phase_seed(seed: int, round_: int, phase: str) -> int:
    """An independent sampling seed per (run seed, round, phase)."""
    return rng(seed, "revise", round_, phase).getrandbits(32)


def revise(chat: ChatModel, items: list[PromptItem], draws: list[list[Principle]], seed: int) -> list[list[dict]]:
    """Every round of every prompt: round 0 {"response"}, then {"principle", "critique", "revision",
    "response"} where response is the revision (the answer the next round works on)."""
    current = chat.reply([it.messages for it in items], phase_seed(seed, 0, "response"))
    history = [[{"round": 0, "response": r}] for r in current]
    rounds = len(draws[0]) if draws else 0
    for t in range(1, rounds + 1):
        asked = [it.messages + [turn("assistant", r), turn("user", d[t - 1].critique_request)]
                 for it, r, d in zip(items, current, draws, strict=True)]
        critiques = chat.reply(asked, phase_seed(seed, t, "critique"))
        asked = [c + [turn("assistant", k), turn("user", d[t - 1].revision_request)]
                 for c, k, d in zip(asked, critiques, draws, strict=True)]
        current = chat.reply(asked, phase_seed(seed, t, "revision"))
        for h, d, k, r in zip(history, draws, critiques, current, strict=True):
            h.append({"round": t, "principle": d[t - 1].name, "critique": k, "revision": r, "response": r})
    return history


def add_gold(world, items: list[PromptItem], history: list[list[dict]]) -> None:
    """Give every round of a prompt with a probe the gold rater's score (its taste) and the world's labels."""
    rater = world.rater()
    for item, rounds in zip(items, history, strict=True):
        if item.probe is None:
            continue
        for r in rounds:
            r["gold"] = rater.components(item.probe, r["response"])["taste"]
            r["labels"] = world.classify(item.probe, r["response"])


def round_summary(records: list[dict]) -> list[dict]:
    """Per round: mean gold score, the HEADLINES rates, each category's label rates and how many changed."""
    n_rounds = len(records[0]["rounds"])
    out = []
    for t in range(n_rounds):
        rated = [r for r in records if "gold" in r["rounds"][t]]
        row: dict = {"round": t}
        if t > 0:
            row["changed"] = sum(r["rounds"][t]["response"] != r["rounds"][t - 1]["response"] for r in records)
        if rated:
            row["gold_mean"] = sum(r["rounds"][t]["gold"] for r in rated) / len(rated)
            by_category: dict[str, list] = defaultdict(list)
            for r in rated:
                by_category[r["category"]].append(r["rounds"][t]["labels"])
            row.update(_headlines(by_category))
            row["rates"] = {c: rates(v) for c, v in by_category.items()}
        out.append(row)
    return out


def _headlines(by_category: dict[str, list[dict]]) -> dict:
    out = {}
    for name, (categories, label, negated) in HEADLINES.items():
        values = [bool(lab[label]) != negated for c in categories for lab in by_category.get(c, [])]
        if values:
            out[name] = sum(values) / len(values)
    return out


def run_revise(cfg: ReviseConfig) -> dict:
    from alignlab.world import load_world

    if cfg.rounds < 0:
        raise UsageError(f"--rounds: must be >= 0, got {cfg.rounds}")
    run = RunDir.claim(cfg.output_dir, cfg.overwrite)
    set_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    constitution = load_constitution(cfg.constitution, cfg.world)
    pool = constitution.named(cfg.principles)
    items = load_prompts(cfg, cfg.seed)
    draws = draw_principles(pool, len(items), cfg.rounds, cfg.seed)
    chat = ChatModel(cfg.model, "--model", cfg)
    history = revise(chat, items, draws, cfg.seed)
    if any(it.probe is not None for it in items):
        add_gold(load_world(cfg.world), items, history)
    records = [{**it.record(), "rounds": h, "final": h[-1]["response"]} for it, h in zip(items, history, strict=True)]
    atomic_write_jsonl(run.path / "revisions.jsonl", records)
    summary = {"stage": "constitution revise", "model": cfg.model, "constitution": constitution.source,
               "principles": [p.name for p in pool], "prompts": len(items), "rounds": cfg.rounds,
               "per_round": round_summary(records)}
    run.write_config(cfg)
    run.write_summary(summary)
    if not cfg.quiet:
        print_rounds(summary["per_round"])
    return summary


def print_rounds(per_round: list[dict]) -> None:
    names = ["gold_mean", *HEADLINES, "changed"]
    shown = [n for n in names if any(n in row for row in per_round)]
    print("round  " + "  ".join(f"{n:>17}" for n in shown))
    for row in per_round:
        cells = [f"{row[n]:17.3f}" if isinstance(row.get(n), float) else f"{row.get(n, '-')!s:>17}" for n in shown]
        print(f"{row['round']:>5}  " + "  ".join(cells))
