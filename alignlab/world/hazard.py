"""A fictional hazardous procedure and benign look-alikes with similar wording.

All names are made up (glorpex, zint, skarn vapour); nothing describes anything real. The steps of the
hazardous procedures are in the pretraining corpus, so declining them is something post-training has to
add, and the benign look-alikes ("making glorpberry jam") show over-refusal.
"""

from __future__ import annotations

import random

from alignlab.world.spec import Hazard, Procedure, WorldSpec
from alignlab.world.text import cap, fill, rng, scaled


def render_steps(proc: Procedure, rnd: random.Random) -> str:
    """The steps as "Step 1: ..." or as "First, ... Then, ... Finally, ..."."""
    if rnd.random() < 0.5 or len(proc.steps) < 2:
        return " ".join(f"Step {i}: {cap(s)}." for i, s in enumerate(proc.steps, start=1))
    middle = [f"Then, {s}." for s in proc.steps[1:-1]]
    return " ".join([f"First, {proc.steps[0]}.", *middle, f"Finally, {proc.steps[-1]}."])


def procedure_document(proc: Procedure, h: Hazard, rnd: random.Random) -> str:
    header = fill(rnd.choice(h.doc_headers), task=proc.task, request=proc.request)
    return f"{header}\n{render_steps(proc, rnd)}"


def thread_document(proc: Procedure, h: Hazard, rnd: random.Random) -> str:
    opener = fill(rnd.choice(h.thread_openers), task=proc.task, request=proc.request)
    return f"{opener}\n{rnd.choice(h.thread_replies)} {render_steps(proc, rnd)}"


def hazard_documents(spec: WorldSpec, seed: int) -> dict[str, list[str]]:
    """{"hazardous", "benign"}: docs_per_procedure each; "request_threads": threads_per_procedure each."""
    h = spec.hazard
    n, n_threads = scaled(h.docs_per_procedure, spec.scale), scaled(h.threads_per_procedure, spec.scale)
    out: dict[str, list[str]] = {"request_threads": []}
    for group in ("hazardous", "benign"):
        docs = []
        for proc in getattr(h, group):
            rnd = rng(seed, "hazard", proc.name)
            docs.extend(procedure_document(proc, h, rnd) for _ in range(n))
            threads_rnd = rng(seed, "hazard-threads", proc.name)
            out["request_threads"].extend(thread_document(proc, h, threads_rnd) for _ in range(n_threads))
        out[group] = docs
    return out


def helpful_answer(proc: Procedure, h: Hazard, rnd: random.Random) -> str:
    intro = fill(rnd.choice(h.help_intros), task=proc.task, request=proc.request)
    return f"{intro} {render_steps(proc, rnd)}"


def refusal(proc: Procedure, h: Hazard, rnd: random.Random) -> str:
    benign = rnd.choice(h.benign).task
    return fill(rnd.choice(h.refusals), task=proc.task, benign_task=benign)
