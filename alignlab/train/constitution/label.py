"""`alignlab constitution label`: AI feedback (RLAIF) — a judge model picks the better of two responses.

Bai et al. 2022 (Constitutional AI, Sec. 4.1) and Lee et al. 2023 (RLAIF): two responses to a prompt are
put to a judge as options (A) and (B) under a principle drawn at random from the constitution; the
preference is the judge's normalised probability of "(A)" vs "(B)", asked in both orders so that a
preference for a position cancels (`objectives/judge.py`). The judge is any local HF chat model — the
policy itself by default.

The pairs come from sampling `k` responses per prompt from `--model` (the world's probes or a TRL prompt
file), or from an existing TRL preference file (`--pairs`, whose chosen/rejected labels are ignored and
relabelled). Output in TRL's conversational preference format, as `alignlab preferences` writes it, so
`alignlab reward` and `alignlab dpo` train on it: pairs.jsonl / heldout.jsonl with p_chosen (the judge's
debiased probability) and, for world prompts, the gold rater's gold_chosen / gold_rejected, whose agreement
with the judge summary.json reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from alignlab.config import CommonConfig, option
from alignlab.data import PREFERENCE_KINDS, completion_text, load_dataset, split_preference
from alignlab.errors import UsageError
from alignlab.evals.metrics import wilson_interval
from alignlab.io import atomic_write_jsonl
from alignlab.objectives.judge import DEBIAS, judge_preference
from alignlab.rundir import RunDir
from alignlab.train.constitution.chat import (
    ChatModel,
    PromptItem,
    PromptOptions,
    SamplingOptions,
    as_messages,
    load_prompts,
    prompt_text,
    record_probe,
    turn,
)
from alignlab.train.constitution.principles import CHOICES, Constitution, draw_principles, load_constitution
from alignlab.train.loop import seed_everything, set_threads
from alignlab.train.preferences import heldout_keys, index_pairs, prompt_key
from alignlab.world.text import rng


@dataclass
class LabelConfig(SamplingOptions, PromptOptions, CommonConfig):
    model: str = option("runs/sft", "local chat model that writes the responses to compare")
    judge: str | None = option(None, "local chat model that judges; the --model itself when not given")
    pairs: str | None = option(None, "relabel this TRL preference file's chosen/rejected instead of sampling")
    split: str = option("train", "world probe phrasings: those of the SFT data (for reward/DPO training data), "
                        "or held out", ("train", "heldout"))
    constitution: str | None = option(None, "constitution .yaml/.md; the world's constitution section when not given")
    principles: list[str] = option([], "names of the principles to draw from (all when empty)")
    k: int = option(2, "responses sampled per prompt")
    pairing: str = option("all", "pairs per prompt: every pair of the k, or disjoint pairs", ("all", "disjoint"))
    debias: str = option("mean_probability", "how the two orders combine: average the probabilities (Lee et al. "
                         "2023) or the log-odds", tuple(DEBIAS))
    judge_batch_size: int = option(32, "judge prompts scored together")
    heldout_fraction: float = option(0.1, "share of prompts whose pairs go to heldout.jsonl")
    output_dir: str = option("runs/rlaif", "where pairs.jsonl, heldout.jsonl and summary.json go")
    overwrite: bool = option(False, "replace a non-empty output_dir")


@dataclass
class Candidate:
    item: PromptItem
    x: str
    y: str


class ModelJudge:
    """`choice_logps(requests) -> (N, 2)`: log P("(A)"), log P("(B)") as the assistant's answer to each
    request (a single user turn under the judge's chat template)."""

    def __init__(self, model, tokenizer, batch_size: int = 32):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size

    def choice_logps(self, requests: list[str]) -> torch.Tensor:
        from alignlab.data.chat import render_ids
        from alignlab.generation import score_continuations

        prompts = [render_ids(self.tokenizer, [turn("user", r)], True, where="--judge") for r in requests]
        choices = [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in CHOICES]
        logps = score_continuations(self.model, [p for p in prompts for _ in choices], choices * len(prompts),
                                    self.batch_size)
        return logps.view(len(requests), len(choices))


def judge_candidates(judge, constitution: Constitution, candidates: list[Candidate], principles: list,
                     method: str) -> dict:
    """Ask `judge` about every candidate in both orders; judge_preference's tensors, P(x > y) as `p`."""
    texts = [prompt_text(c.item.messages) for c in candidates]
    x_first = [constitution.comparison(p, t, c.x, c.y) for p, t, c in zip(principles, texts, candidates, strict=True)]
    y_first = [constitution.comparison(p, t, c.y, c.x) for p, t, c in zip(principles, texts, candidates, strict=True)]
    both = judge.choice_logps(x_first + y_first)
    return judge_preference(both[: len(candidates)], both[len(candidates):], method)


def sampled_candidates(cfg: LabelConfig, chat: ChatModel) -> tuple[list[Candidate], int]:
    """k responses per prompt from the policy, paired; and how many identical pairs were skipped."""
    if cfg.k < 2:
        raise UsageError(f"--k: at least 2 responses per prompt make a pair, got {cfg.k}")
    items = load_prompts(cfg, cfg.seed)
    flat = chat.reply([it.messages for it in items for _ in range(cfg.k)], rng(cfg.seed, "label").getrandbits(32))
    out, skipped = [], 0
    for n, item in enumerate(items):
        responses = flat[n * cfg.k: (n + 1) * cfg.k]
        for i, j in index_pairs(cfg.k, cfg.pairing):
            if responses[i] == responses[j]:
                skipped += 1
            else:
                out.append(Candidate(item, responses[i], responses[j]))
    return out, skipped


def file_candidates(path: str, seed: int) -> list[Candidate]:
    """The pairs of a TRL preference file, each shown in a seeded random order (its label is not used)."""
    records, _ = load_dataset(path, allowed=PREFERENCE_KINDS, purpose="constitution label --pairs")
    rnd = rng(seed, "label-order")
    out = []
    for record in records:
        prompt, chosen, rejected = split_preference(record)
        a, b = completion_text(chosen), completion_text(rejected)
        item = PromptItem(as_messages(prompt), record_probe(record))
        out.append(Candidate(item, *((a, b) if rnd.random() < 0.5 else (b, a))))
    return out


def preference_records(world, candidates: list[Candidate], principles: list, verdict: dict) -> list[dict]:
    """TRL conversational preference records: the judge's winner as chosen, p_chosen = P(chosen > rejected)."""
    rater = world.rater() if world is not None else None
    out = []
    for n, (c, principle) in enumerate(zip(candidates, principles, strict=True)):
        p, p1 = float(verdict["p"][n]), float(verdict["p_first_order"][n])
        x_wins = p >= 0.5
        chosen, rejected = (c.x, c.y) if x_wins else (c.y, c.x)
        record = {**c.item.record(), "chosen": [turn("assistant", chosen)], "rejected": [turn("assistant", rejected)],
                  "p_chosen": p if x_wins else 1.0 - p, "p_chosen_first_order": p1 if x_wins else 1.0 - p1,
                  "position_bias": float(verdict["position_bias"][n]), "orders_agree": bool(verdict["consistent"][n]),
                  "principle": principle.name}
        if rater is not None and c.item.probe is not None:
            record["gold_chosen"] = rater.components(c.item.probe, chosen)["taste"]
            record["gold_rejected"] = rater.components(c.item.probe, rejected)["taste"]
        out.append(record)
    return out


def gold_agreement(records: list[dict], p_column: str = "p_chosen") -> dict | None:
    """How often the judge's pick (p_column > 0.5 picks chosen) has the higher gold score, over pairs whose
    gold scores differ; overall and by category. None without gold scores."""
    decisive = [r for r in records if "gold_chosen" in r and r["gold_chosen"] != r["gold_rejected"]]
    if not any("gold_chosen" in r for r in records):
        return None

    def agreement(rows: list[dict]) -> dict:
        k = sum((r[p_column] > 0.5) == (r["gold_chosen"] > r["gold_rejected"]) for r in rows)
        return {"rate": k / len(rows) if rows else None, "ci95": list(wilson_interval(k, len(rows))), "n": len(rows)}

    categories = sorted({r["category"] for r in decisive if "category" in r})
    return {**agreement(decisive), "ties": sum("gold_chosen" in r for r in records) - len(decisive),
            "by_category": {c: agreement([r for r in decisive if r.get("category") == c]) for c in categories}}


def load_judge(cfg: LabelConfig, chat: ChatModel | None) -> ModelJudge:
    """The --judge model, sharing the policy's weights when it is the same directory."""
    from alignlab.models import load_causal_lm, load_tokenizer

    path = cfg.judge or cfg.model
    if chat is not None and path == cfg.model:
        return ModelJudge(chat.model, chat.tokenizer, cfg.judge_batch_size)
    return ModelJudge(load_causal_lm(path, what="--judge").eval(), load_tokenizer(path, what="--judge"),
                      cfg.judge_batch_size)


def label_summary(cfg: LabelConfig, records: list[dict], n_train: int, verdict: dict, skipped: int) -> dict:
    # The labels are the judge's argmax, not draws from p, so preferences' Bayes ceiling does not apply here.
    longer = [len(r["chosen"][0]["content"].split()) > len(r["rejected"][0]["content"].split()) for r in records]
    return {"stage": "constitution label", "model": None if cfg.pairs else cfg.model,
            "judge": cfg.judge or cfg.model, "pairs_file": cfg.pairs, "debias": cfg.debias,
            "skipped_identical_pairs": skipped, "position_bias_log_odds": float(verdict["position_bias"].mean()),
            "orders_agree_rate": float(verdict["consistent"].float().mean()),
            "gold_agreement": gold_agreement(records),
            "gold_agreement_first_order_only": gold_agreement(records, "p_chosen_first_order"),
            "pairs": n_train, "heldout_pairs": len(records) - n_train, "chosen_longer_rate": sum(longer) / len(longer)}


def run_label(cfg: LabelConfig) -> dict:
    from alignlab.world import load_world

    run = RunDir.claim(cfg.output_dir, cfg.overwrite)
    set_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    constitution = load_constitution(cfg.constitution, cfg.world)
    pool = constitution.named(cfg.principles)
    skipped, chat = 0, None
    if cfg.pairs:
        candidates = file_candidates(cfg.pairs, cfg.seed)
    else:
        chat = ChatModel(cfg.model, "--model", cfg)
        candidates, skipped = sampled_candidates(cfg, chat)
    if not candidates:
        raise UsageError(f"{cfg.pairs or '--model'}: no pairs of different responses to label")
    principles = [d[0] for d in draw_principles(pool, len(candidates), 1, cfg.seed)]
    verdict = judge_candidates(load_judge(cfg, chat), constitution, candidates, principles, cfg.debias)
    has_gold = any(c.item.probe is not None for c in candidates)
    records = preference_records(load_world(cfg.world) if has_gold else None, candidates, principles, verdict)
    held = heldout_keys([prompt_key(r) for r in records], cfg.heldout_fraction, cfg.seed)
    train = [r for r in records if prompt_key(r) not in held]
    atomic_write_jsonl(run.path / "pairs.jsonl", train)
    atomic_write_jsonl(run.path / "heldout.jsonl", [r for r in records if prompt_key(r) in held])
    summary = {**label_summary(cfg, records, len(train), verdict, skipped), "constitution": constitution.source}
    run.write_config(cfg)
    run.write_summary(summary)
    if not cfg.quiet:
        agree = summary["gold_agreement"]
        gold = f"; agrees with gold {agree['rate']:.2f} (n={agree['n']})" if agree and agree["n"] else ""
        print(f"label: {len(records)} pairs -> {run.path / 'pairs.jsonl'}; position bias "
              f"{summary['position_bias_log_odds']:+.2f} log-odds for (A); orders agree "
              f"{summary['orders_agree_rate']:.2f}{gold}")
    return summary
