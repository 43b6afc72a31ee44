"""Fact documents with known frequencies, the probes that read calibration off them, and the truth table.

A fact document is one composed scene sentence, the statement ("It had" / "It has"), then " a rainbow."
or " no rainbow." drawn with probability p, then sometimes an outro sentence. The prompt for a probe is
everything up to and including the statement, so both continuations follow the identical prompt and,
in the corpus, nothing but those two ever follows a statement.

Held-out calibration needs template variety (see NOTES-calibration.md): the prefix is composed from
pools (time x place x subject x verb x adjective ...), and a disjoint set of pools and frames is kept
back for "heldout" probes. Those never occur in the corpus.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from alignlab.errors import UsageError
from alignlab.world.spec import Fact, FactDocs, TemplateSet, WorldSpec
from alignlab.world.text import Template, article, rng, scaled, slots, with_article

PROBE_SPLITS = {"seen": "train", "heldout": "heldout"}


@dataclass
class FactProbe:
    """An enumerable next-text question: P(continuations[i] | prompt) should equal truth[i]."""

    family: str
    entity: str
    prompt: str
    continuations: list[str]
    truth: list[float]  # sums to 1
    split: str = "seen"
    components: dict[str, str] = field(default_factory=dict)  # slot -> pool entry used in the prompt


class FactWriter:
    """Composes fact prefixes and documents from one template set (train or heldout)."""

    def __init__(self, fd: FactDocs, templates: TemplateSet):
        self.fd = fd
        self.pools = templates.pools
        self.frames = [(Template(f.text), fd.statements[f.tense], f.tense) for f in templates.frames]
        self.adjectives = templates.pools.get("adjective", [])

    def prefix(self, entity: str, rnd: random.Random, record: dict | None = None) -> tuple[str, str]:
        """(scene text + " " + statement, tense); `record` collects slot -> entry when given."""
        template, statement, tense = rnd.choice(self.frames)

        def lookup(slot: str) -> str:
            if slot == "np":
                value = self._noun_phrase(entity, rnd, record)
            else:
                value = rnd.choice(self.pools[slot])
                if record is not None:
                    record[slot] = value
            return value

        return f"{template.fill(lookup)} {statement}", tense

    def _noun_phrase(self, entity: str, rnd: random.Random, record: dict | None) -> str:
        if self.adjectives and rnd.random() < self.fd.adjective_rate:
            adjective = rnd.choice(self.adjectives)
            if record is not None:
                record["adjective"] = adjective
            return f"{article(adjective)} {adjective} {entity}"
        return with_article(entity)

    def document(self, fact: Fact, present: bool, rnd: random.Random) -> str:
        prefix, tense = self.prefix(fact.entity, rnd)
        present_text, absent_text = continuations(fact, self.fd)
        doc = prefix + (present_text if present else absent_text)
        outros = self.pools.get(f"outro_{tense}")
        if outros and rnd.random() < self.fd.outro_rate:
            doc = f"{doc} {rnd.choice(outros)}"
        return doc


def continuations(fact: Fact, fd: FactDocs) -> tuple[str, str]:
    """(' a rainbow.', ' no rainbow.'): the attribute present, then absent."""
    return f" {with_article(fact.attribute)}.", f" {fd.negation} {fact.attribute}."


def docs_for(fact: Fact, spec: WorldSpec) -> int:
    count = fact.docs if fact.docs is not None else spec.fact_docs.docs_per_entity
    return scaled(count, spec.scale)


def attribute_flags(p: float, n: int, sampling: str, rnd: random.Random) -> list[bool]:
    """Which of n documents state the attribute. "stratified": exactly round(p*n) of them, in random
    order, so the corpus frequency is p up to 1/(2n) and calibration is not blurred by the ~0.31/sqrt(n)
    sampling noise of independent draws; "bernoulli": n independent draws."""
    if sampling == "bernoulli":
        return [rnd.random() < p for _ in range(n)]
    k = round(p * n)
    flags = [True] * k + [False] * (n - k)
    rnd.shuffle(flags)
    return flags


def fact_documents(spec: WorldSpec, seed: int) -> list[str]:
    writer = FactWriter(spec.fact_docs, spec.fact_docs.train)
    docs: list[str] = []
    for fact in spec.facts:
        rnd = rng(seed, "facts", fact.entity)
        flags = attribute_flags(fact.p, docs_for(fact, spec), spec.fact_docs.sampling, rnd)
        docs.extend(writer.document(fact, flag, rnd) for flag in flags)
    return docs


def fact_probes(spec: WorldSpec, split: str, n_per_fact: int, seed: int) -> list[FactProbe]:
    """n_per_fact distinct prompts per fact (fewer if the templates cannot make that many)."""
    if split not in PROBE_SPLITS:
        raise UsageError(f"fact_probes: split must be 'seen' or 'heldout', got {split!r}")
    writer = FactWriter(spec.fact_docs, getattr(spec.fact_docs, PROBE_SPLITS[split]))
    probes = []
    for fact in spec.facts:
        rnd = rng(seed, "fact-probe", split, fact.entity)
        present, absent = continuations(fact, spec.fact_docs)
        seen: set[str] = set()
        for _ in range(n_per_fact * 20):
            if len(seen) == n_per_fact:
                break
            record: dict[str, str] = {}
            prompt, _ = writer.prefix(fact.entity, rnd, record)
            if prompt in seen:
                continue
            seen.add(prompt)
            probes.append(FactProbe(fact.family, fact.entity, prompt, [present, absent], [fact.p, 1.0 - fact.p],
                                    split, record))
    return probes


def truth_table(spec: WorldSpec) -> list[dict]:
    return [
        {"family": f.family, "entity": f.entity, "attribute": f.attribute, "p": f.p, "docs": docs_for(f, spec)}
        for f in spec.facts
    ]


def template_combinations(templates: TemplateSet) -> int:
    """How many distinct prefixes a template set can make for one entity (adjective or none)."""
    total = 0
    for frame in templates.frames:
        count = 1
        for slot in slots(frame.text):
            pool = templates.pools.get("adjective", []) if slot == "np" else templates.pools[slot]
            count *= len(pool) + (1 if slot == "np" else 0)
        total += count
    return total


def noise_floor(n_docs: int) -> float:
    """Expected |empirical - p| averaged over p ~ U(0, 1) for n Bernoulli draws: ~0.31/sqrt(n)
    (mean abs of a normal is sqrt(2/pi)*sigma; E[sqrt(p(1-p))] = pi/8)."""
    return math.sqrt(2 / math.pi) * (math.pi / 8) / math.sqrt(max(n_docs, 1))
