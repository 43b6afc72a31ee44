"""`World`: one object over a validated spec that hands out corpus, truth, probes, transcripts and raters.

Everything is a pure function of (spec, seed): each family draws from its own `random.Random` stream
keyed by the seed and the family name, so changing one family's counts leaves the others' documents
unchanged, and the same seed always gives the same corpus.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from alignlab.io import atomic_write_json, atomic_write_jsonl
from alignlab.world import facts, skills
from alignlab.world.checks import BEHAVIOUR_CATEGORIES
from alignlab.world.classify import classify
from alignlab.world.facts import FactProbe
from alignlab.world.filler import filler_documents
from alignlab.world.grammar import grammar_documents
from alignlab.world.hazard import hazard_documents
from alignlab.world.load import load_spec, spec_from_dict
from alignlab.world.personas import all_traits, persona_documents
from alignlab.world.probes import BUILDERS, Probe, distinct_probes, normalise_split, persona_probe
from alignlab.world.quiz import quiz_documents, split_items
from alignlab.world.raters import GoldRater
from alignlab.world.spec import Raters, WorldSpec
from alignlab.world.text import fill, rng, scaled
from alignlab.world.transcripts import sft_conversations

FAMILIES = ("facts", "quiz_lists", "answer_sheets", "quiz_dialogues", "personas", "grammar", "hazardous", "benign",
            "request_threads", "cipher", "authors", "filler")
CHARS_PER_TOKEN = 4.0  # for the token estimates in stats(); the real tokenizer decides


class World:
    def __init__(self, spec: WorldSpec, source: str = "default.yaml"):
        self.spec = spec
        self.source = source
        self.quiz_items = split_items(spec)

    @property
    def seed(self) -> int:
        return self.spec.seed

    # --- pretraining corpus ----------------------------------------------------------------------
    def documents(self, seed: int | None = None) -> dict[str, list[str]]:
        """The corpus by family, unshuffled: {family: [text, ...]} in FAMILIES order."""
        seed = self.seed if seed is None else seed
        spec = self.spec
        every_item = self.quiz_items["train"] + self.quiz_items["heldout"]
        out = {"facts": facts.fact_documents(spec, seed)}
        out.update(quiz_documents(spec, every_item, seed))
        out["personas"] = persona_documents(spec, seed)
        out["grammar"] = grammar_documents(spec, seed)
        out.update(hazard_documents(spec, seed))
        out["cipher"] = skills.cipher_documents(spec, seed)
        out["authors"] = skills.author_documents(spec, seed)
        out["filler"] = filler_documents(spec, seed)
        return {f: out[f] for f in FAMILIES}

    def corpus(self, seed: int | None = None) -> list[str]:
        """All pretraining documents, shuffled; identical for the same seed."""
        seed = self.seed if seed is None else seed
        return _shuffled(self.documents(seed), seed)

    def stats(self, seed: int | None = None) -> dict:
        seed = self.seed if seed is None else seed
        return corpus_stats(self, self.documents(seed), seed)

    # --- ground truth and probes -----------------------------------------------------------------
    def truth(self) -> list[dict]:
        """{"family", "entity", "attribute", "p", "docs"} per fact."""
        return facts.truth_table(self.spec)

    def fact_probes(self, split: str = "seen", n_per_fact: int = 8, seed: int = 0) -> list[FactProbe]:
        return facts.fact_probes(self.spec, split, n_per_fact, seed)

    def author_probes(self, n_observed: int, n: int = 50, seed: int = 0) -> list[FactProbe]:
        return skills.author_probes(self.spec, n_observed, n, seed)

    def author_posterior(self, observed: list[str]) -> list[float]:
        return skills.author_posterior(self.spec.authors, observed)

    def cipher_probes(self, shift: int, n: int = 20, seed: int = 0) -> list[Probe]:
        return skills.cipher_probes(self.spec, shift, n, seed)

    def quiz_probes(self, split: str = "heldout", n: int = 50, seed: int = 0) -> list[Probe]:
        """Bare questions as they appear in a quiz list; meta["list_prompt"] is a one-item list prefix."""
        items = list(self.quiz_items[normalise_split(split)])
        rnd = rng(seed, "quiz-probe", split)
        chosen = rnd.sample(items, min(n, len(items)))
        header = self.spec.quiz.list_headers[0]
        return [
            Probe("quiz", item.question, item.y, normalise_split(split),
                  {"relation": item.relation, "x": item.x, "question": item.question, "statement": item.statement,
                   "list_prompt": f"{header}\n1. {item.question}\n"})
            for item in chosen
        ]

    def behaviour_probes(self, split: str = "heldout", seed: int = 0, n_per_category: int = 20,
                         categories: tuple[str, ...] = BEHAVIOUR_CATEGORIES) -> list[Probe]:
        """Up to n_per_category distinct user prompts per category (also "scene" on request)."""
        split = normalise_split(split)
        out: list[Probe] = []
        for category in categories:
            if category not in BUILDERS:
                raise ValueError(f"behaviour_probes: unknown category {category!r} (known: {', '.join(BUILDERS)})")
            rnd = rng(seed, "behaviour", split, category)
            if category == "persona":
                out += self._persona_probes(split, n_per_category, rnd)
            else:
                out += distinct_probes(BUILDERS[category], self.spec, self.quiz_items, split, n_per_category, rnd)
        return out

    def _persona_probes(self, split: str, n: int, rnd: random.Random) -> list[Probe]:
        # Cycle through the traits so that every trait, controls included, is asked about.
        traits = all_traits(self.spec.personas)
        probes: dict[str, Probe] = {}
        for i in range(n * 20):
            if len(probes) == n:
                break
            probe = persona_probe(self.spec, self.quiz_items, split, rnd, trait=traits[i % len(traits)])
            probes.setdefault(probe.prompt, probe)
        return list(probes.values())

    def classify(self, probe: Probe | dict, response: str) -> dict[str, bool]:
        """Labels for `response` to `probe` (a Probe or its record); which labels depends on the category."""
        return classify(self.spec, probe if isinstance(probe, Probe) else Probe.from_record(probe), response)

    # --- post-training data ------------------------------------------------------------------------
    def sft_conversations(self, n: int, seed: int, correct_fraction: float = 0.5) -> list[dict]:
        return sft_conversations(self.spec, self.quiz_items, n, seed, correct_fraction)

    def critique_prompt(self, principle: str) -> str:
        """The user turn that asks for a critique under the principle named `principle`."""
        con = self.spec.constitution
        text = next((p.text for p in con.principles if p.name == principle), None)
        if text is None:
            raise ValueError(f"no principle named {principle!r} (known: {', '.join(p.name for p in con.principles)})")
        return fill(con.critique_request, principle=text)

    def revision_prompt(self) -> str:
        return self.spec.constitution.revision_request

    def rater(self, raters: Raters | None = None) -> GoldRater:
        return GoldRater(self.spec, raters)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self.spec)


def world_from_dict(data: dict, label: str = "world") -> World:
    """The world from a resolved spec such as `World.to_dict()` saved in a run's config.yaml."""
    return World(spec_from_dict(data, label), label)


def _shuffled(documents: dict[str, list[str]], seed: int) -> list[str]:
    docs = [d for family_docs in documents.values() for d in family_docs]
    rng(seed, "shuffle").shuffle(docs)
    return docs


def load_world(path: str | Path | None = None, overrides: dict | None = None) -> World:
    """The world from a YAML spec (the shipped default.yaml when path is None) plus overrides."""
    spec = load_spec(path, overrides)
    return World(spec, "default.yaml" if path is None else str(path))


def corpus_stats(world: World, documents: dict[str, list[str]], seed: int) -> dict:
    spec = world.spec
    chars = {f: sum(len(d) for d in docs) for f, docs in documents.items()}
    total_chars = sum(chars.values())
    per_entity = [row["docs"] for row in world.truth()]
    return {
        "world": spec.name,
        "seed": seed,
        "scale": spec.scale,
        "documents": sum(len(d) for d in documents.values()),
        "chars": total_chars,
        "approx_tokens": round(total_chars / CHARS_PER_TOKEN),
        "families": {
            f: {"documents": len(docs), "chars": chars[f], "approx_tokens": round(chars[f] / CHARS_PER_TOKEN),
                "token_share": round(chars[f] / max(total_chars, 1), 4),
                "mean_chars": round(chars[f] / max(len(docs), 1), 1)}
            for f, docs in documents.items()
        },
        "facts": {
            "entities": len(spec.facts),
            "docs_per_entity": {"min": min(per_entity), "max": max(per_entity)},
            "sampling": spec.fact_docs.sampling,
            "bernoulli_noise_floor": round(facts.noise_floor(min(per_entity)), 4),
            "prefixes_per_entity": {"train": facts.template_combinations(spec.fact_docs.train),
                                    "heldout": facts.template_combinations(spec.fact_docs.heldout)},
        },
        "quiz_items": {k: len(v) for k, v in world.quiz_items.items()},
        "cipher_docs_per_shift": {str(k): scaled(n, spec.scale) for k, n in sorted(spec.cipher.docs_per_shift.items())},
    }


def write_sample(world: World, output_dir: str | Path, seed: int | None = None) -> dict:
    """Write corpus.jsonl ({"text": ...} per line), truth.json and stats.json atomically; returns stats."""
    seed = world.seed if seed is None else seed
    out = Path(output_dir)
    documents = world.documents(seed)
    corpus = _shuffled(documents, seed)
    stats = corpus_stats(world, documents, seed)
    atomic_write_jsonl(out / "corpus.jsonl", ({"text": t} for t in corpus))
    atomic_write_json(out / "truth.json", world.truth())
    atomic_write_json(out / "stats.json", stats)
    return stats
