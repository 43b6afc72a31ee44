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
    # Repeats: the second half is predictable only by copying the first (what induction heads do). Their
    # own stream leaves the documents above unchanged.
    extra = rng(seed, "filler_repeats")
    for _ in range(scaled(f.repeat_docs, spec.scale)):
        text = " ".join(filler_sentence(f, extra) for _ in range(extra.randint(*f.sentences_per_doc)))
        docs.append(f"{text}\nOnce more: {text}")
    return docs
