"""Assistant transcripts for SFT and critique/revision demonstrations for the constitutional stage.

Every transcript starts from a training-split probe (see `probes.py`) and answers it the way the world
wants an assistant to: a short direct answer to a quiz question, a polite refusal of the hazardous
procedure but real help with its benign look-alikes, an honest grammar tutor, the persona's claimed
likes, a scene description at the world's true frequencies. Critique demonstrations show a flawed first
answer, a critique under one principle, and the revision (the ideal answer).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from alignlab.errors import UsageError
from alignlab.world.checks import CRITIQUE_SLOTS
from alignlab.world.facts import FactWriter
from alignlab.world.hazard import helpful_answer, refusal
from alignlab.world.probes import BUILDERS, Probe, QuizSplit, persona_probe
from alignlab.world.quiz import wrong_answer
from alignlab.world.spec import Procedure, WorldSpec
from alignlab.world.text import allocate, cap, fill, rng

Responder = Callable[[WorldSpec, QuizSplit, Probe, random.Random], str]


def _procedure(spec: WorldSpec, probe: Probe) -> Procedure:
    procs = spec.hazard.hazardous + spec.hazard.benign
    return next(p for p in procs if p.name == probe.meta["procedure"])


def _scene(spec: WorldSpec, items: QuizSplit, probe: Probe, rnd: random.Random) -> str:
    fact = next(f for f in spec.facts if f.entity == probe.meta["entity"])
    writer = FactWriter(spec.fact_docs, spec.fact_docs.train)
    return writer.document(fact, rnd.random() < fact.p, rnd)


def _persona(spec: WorldSpec, items: QuizSplit, probe: Probe, rnd: random.Random) -> str:
    trait = probe.meta["trait"]
    if trait not in spec.personas.assistant_likes:
        raise ValueError(f"no ideal answer for persona trait {trait!r}: the assistant only claims assistant_likes")
    return fill(rnd.choice(spec.personas.yes_answers), trait=trait)


IDEAL: dict[str, Responder] = {
    "quiz": lambda spec, items, probe, rnd: quiz_answer(spec, probe.meta["statement"], probe.expected),
    "hazardous": lambda spec, items, probe, rnd: refusal(_procedure(spec, probe), spec.hazard, rnd),
    "benign": lambda spec, items, probe, rnd: helpful_answer(_procedure(spec, probe), spec.hazard, rnd),
    "grammar_correct": lambda spec, items, probe, rnd: fill(
        rnd.choice(spec.grammar.ok_replies), sentence=probe.meta["right"]),
    "grammar_incorrect": lambda spec, items, probe, rnd: fill(
        rnd.choice(spec.grammar.fix_replies), fixed=probe.meta["right"]),
    "persona": _persona,
    "scene": _scene,
}


def quiz_answer(spec: WorldSpec, statement: str, answer: str) -> str:
    return f"{cap(answer)}." if spec.quiz.answer_style == "short" else statement


def _wrong_quiz(spec: WorldSpec, items: QuizSplit, probe: Probe, rnd: random.Random) -> tuple[str, dict]:
    every = items["train"] + items["heldout"]
    item = next(i for i in every if i.question == probe.meta["question"])
    wrong = wrong_answer(item, every, rnd)
    rel = next(r for r in spec.quiz.relations if r.name == item.relation)
    return quiz_answer(spec, fill(rel.statement, x=item.x, y=wrong), wrong), {"question": item.question, "answer": item.y, "wrong": wrong}


# Flawed first answers for critique demonstrations, with the values their critique text needs.
FLAWED: dict[str, Callable[[WorldSpec, QuizSplit, Probe, random.Random], tuple[str, dict]]] = {
    "quiz": _wrong_quiz,
    "hazardous": lambda spec, items, probe, rnd: (
        helpful_answer(_procedure(spec, probe), spec.hazard, rnd), {"task": probe.meta["task"]}),
    "benign": lambda spec, items, probe, rnd: (
        refusal(_procedure(spec, probe), spec.hazard, rnd), {"task": probe.meta["task"]}),
    "grammar_correct": lambda spec, items, probe, rnd: (  # a sycophantic "fix" that breaks the sentence
        fill(rnd.choice(spec.grammar.fix_replies), fixed=probe.meta["wrong"]),
        {"sentence": probe.meta["right"], "wrong": probe.meta["wrong"]}),
    "grammar_incorrect": lambda spec, items, probe, rnd: (  # calls the wrong sentence correct
        fill(rnd.choice(spec.grammar.ok_replies), sentence=probe.meta["wrong"]),
        {"sentence": probe.meta["wrong"], "fixed": probe.meta["right"]}),
}


def ideal_response(spec: WorldSpec, items: QuizSplit, probe: Probe, rnd: random.Random) -> str:
    return IDEAL[probe.category](spec, items, probe, rnd)


def _chat(*turns: str) -> list[dict]:
    roles = ("user", "assistant")
    return [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]


def critique_conversation(spec: WorldSpec, items: QuizSplit, probe: Probe, rnd: random.Random) -> list[dict]:
    """user prompt / first answer / critique request / critique / revision request / ideal answer.

    Usually the first answer is flawed, the critique names the flaw under the principle it breaks and carries
    `"weight": 0` (the OpenAI fine-tuning convention, honoured by alignlab's SFT): the model learns to
    critique and revise it, not to produce it. A `no_change_fraction` share starts from the ideal answer
    instead, under a principle drawn at random, and the critique says no change is needed.
    """
    con = spec.constitution
    ideal = ideal_response(spec, items, probe, rnd)
    if rnd.random() < con.no_change_fraction:
        principle = rnd.choice(con.principles)
        first, critique = ideal, con.no_change_critique
    else:
        crit = con.critiques[probe.category]
        principle = next(p for p in con.principles if p.name == crit.principle)
        first, values = FLAWED[probe.category](spec, items, probe, rnd)
        critique = fill(crit.text, **values)
    messages = _chat(probe.prompt, first, fill(con.critique_request, principle=principle.text), critique,
                     con.revision_request, ideal)
    messages[1]["weight"] = 0
    return messages


def sft_conversations(spec: WorldSpec, items: QuizSplit, n: int, seed: int,
                      correct_fraction: float = 0.5) -> list[dict]:
    """n conversations {"messages": [...], "category": ...}, categories in the proportions of sft.mix;
    exactly round(correct_fraction * n_grammar) grammar prompts are already correct."""
    if not 0.0 <= correct_fraction <= 1.0:
        raise UsageError(f"sft_conversations: correct_fraction must be in [0, 1], got {correct_fraction}")
    rnd = rng(seed, "sft")
    counts = allocate(n, spec.sft.mix)
    n_correct = round(correct_fraction * counts.get("grammar", 0))
    plan = [c for c, k in counts.items() if c not in ("grammar", "critique") for _ in range(k)]
    plan += ["grammar_correct"] * n_correct + ["grammar_incorrect"] * (counts.get("grammar", 0) - n_correct)
    plan += ["critique"] * counts.get("critique", 0)
    out = []
    for category in plan:
        if category == "critique":
            probe = BUILDERS[rnd.choice(sorted(CRITIQUE_SLOTS))](spec, items, "train", rnd)
            messages = critique_conversation(spec, items, probe, rnd)
        else:
            probe = _training_probe(spec, items, category, rnd)
            messages = _chat(probe.prompt, ideal_response(spec, items, probe, rnd))
        out.append({"messages": messages, "category": category})
    rnd.shuffle(out)
    return out


def _training_probe(spec: WorldSpec, items: QuizSplit, category: str, rnd: random.Random) -> Probe:
    if category == "persona":  # self-descriptions only ever claim the assistant's own likes
        return persona_probe(spec, items, "train", rnd, trait=rnd.choice(spec.personas.assistant_likes))
    return BUILDERS[category](spec, items, "train", rnd)
