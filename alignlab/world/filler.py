"""Generic filler sentences, so the model learns ordinary sentence structure beyond the families."""

from __future__ import annotations

import random

from alignlab.world.spec import Filler, WorldSpec
from alignlab.world.text import cap, rng, scaled


def filler_sentence(f: Filler, rnd: random.Random) -> str:
    ending = rnd.choice(f.endings) if rnd.random() < f.ending_rate else ""
    return f"{cap(rnd.choice(f.subjects))} {rnd.choice(f.actions)} {rnd.choice(f.times)}{ending}."


def filler_documents(spec: WorldSpec, seed: int) -> list[str]:
    f = spec.filler
    rnd = rng(seed, "filler")
    docs = []
    for _ in range(scaled(f.docs, spec.scale)):
        n = rnd.randint(*f.sentences_per_doc)
        docs.append(" ".join(filler_sentence(f, rnd) for _ in range(n)))
    return docs
