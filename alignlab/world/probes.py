"""Prompt records: one builder per category turns the spec into a user prompt plus what it expects.

The same builders make SFT prompts (split "train") and heldout probes (split "heldout"); the split picks
the phrasings and items, which are disjoint by construction (checked in `checks.py`), so a heldout
prompt never appears in a training transcript.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from alignlab.errors import UsageError
from alignlab.world.grammar import agreement_pair
from alignlab.world.personas import all_traits, trait_meta
from alignlab.world.quiz import QuizItem
from alignlab.world.spec import Phrasings, WorldSpec
from alignlab.world.text import fill, with_article

SPLITS = {"train": "train", "seen": "train", "heldout": "heldout"}


@dataclass
class Probe:
    """A user prompt with what a good answer contains (None when no single answer is right)."""

    category: str
    prompt: str
    expected: str | None
    split: str = "heldout"
    meta: dict = field(default_factory=dict)

    def to_record(self) -> dict:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict) -> Probe:
        return cls(record["category"], record["prompt"], record.get("expected"),
                   record.get("split", "heldout"), dict(record.get("meta") or {}))


QuizSplit = dict[str, list[QuizItem]]
Builder = Callable[[WorldSpec, QuizSplit, str, random.Random], Probe]


def normalise_split(split: str) -> str:
    if split not in SPLITS:
        raise UsageError(f"split must be 'train' (or 'seen') or 'heldout', got {split!r}")
    return SPLITS[split]


def _prompt(phrasings: Phrasings, split: str, rnd: random.Random, **slots: str) -> tuple[str, str]:
    """(the prompt, the request phrasing it was made from): a phrasing of the split filled with `slots`;
    train phrasings may be dressed with an opening and a closing sentence, and the undressed phrasing is what
    probe results are grouped by."""
    phrasing = template = rnd.choice(getattr(phrasings, split))
    if split == "train":
        if phrasings.prefixes and rnd.random() < phrasings.dressing_rate:
            template = f"{rnd.choice(phrasings.prefixes)} {template}"
        if phrasings.suffixes and rnd.random() < phrasings.dressing_rate:
            template = f"{template} {rnd.choice(phrasings.suffixes)}"
    return fill(template, **slots), phrasing


def quiz_probe(spec: WorldSpec, items: QuizSplit, split: str, rnd: random.Random) -> Probe:
    item = rnd.choice(items[split])
    prompt, phrasing = _prompt(spec.quiz.requests, split, rnd, question=item.question)
    meta = {"relation": item.relation, "x": item.x, "question": item.question, "statement": item.statement,
            "phrasing": phrasing}
    return Probe("quiz", prompt, item.y, split, meta)


def _procedure_probe(category: str) -> Builder:
    def build(spec: WorldSpec, items: QuizSplit, split: str, rnd: random.Random) -> Probe:
        proc = rnd.choice(getattr(spec.hazard, category))
        prompt, phrasing = _prompt(spec.hazard.requests, split, rnd, request=proc.request)
        return Probe(category, prompt, None, split, {"procedure": proc.name, "task": proc.task, "phrasing": phrasing})

    return build


def _grammar_probe(correct: bool) -> Builder:
    def build(spec: WorldSpec, items: QuizSplit, split: str, rnd: random.Random) -> Probe:
        pair = agreement_pair(spec.grammar, spec.grammar.nouns[split], rnd)
        shown = pair.right if correct else pair.wrong
        prompt, phrasing = _prompt(spec.grammar.requests, split, rnd, sentence=shown)
        meta = {"sentence": shown, "right": pair.right, "wrong": pair.wrong, "phrasing": phrasing}
        return Probe("grammar_correct" if correct else "grammar_incorrect", prompt, pair.right, split, meta)

    return build


def persona_probe(spec: WorldSpec, items: QuizSplit, split: str, rnd: random.Random,
                  trait: str | None = None) -> Probe:
    ps = spec.personas
    trait = trait if trait is not None else rnd.choice(all_traits(ps))
    prompt, phrasing = _prompt(ps.questions, split, rnd, trait=trait)
    meta = {**trait_meta(ps, trait), "phrasing": phrasing}
    return Probe("persona", prompt, "yes" if trait in ps.assistant_likes else None, split, meta)


def scene_probe(spec: WorldSpec, items: QuizSplit, split: str, rnd: random.Random) -> Probe:
    fact = rnd.choice(spec.facts)
    prompt, phrasing = _prompt(spec.sft.scene_requests, split, rnd, entity=with_article(fact.entity))
    meta = {"entity": fact.entity, "attribute": fact.attribute, "p": fact.p, "phrasing": phrasing}
    return Probe("scene", prompt, None, split, meta)


BUILDERS: dict[str, Builder] = {
    "quiz": quiz_probe,
    "hazardous": _procedure_probe("hazardous"),
    "benign": _procedure_probe("benign"),
    "grammar_correct": _grammar_probe(True),
    "grammar_incorrect": _grammar_probe(False),
    "persona": persona_probe,
    "scene": scene_probe,
}


def distinct_probes(build: Builder, spec: WorldSpec, items: QuizSplit, split: str, n: int,
                    rnd: random.Random) -> list[Probe]:
    """Up to n probes with distinct prompts (fewer when the category has fewer distinct prompts)."""
    out: dict[str, Probe] = {}
    for _ in range(n * 20):
        if len(out) == n:
            break
        probe = build(spec, items, split, rnd)
        out.setdefault(probe.prompt, probe)
    return list(out.values())
