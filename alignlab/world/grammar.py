"""Subject-verb agreement: sentences whose only varying choice is the singular or plural verb.

"The keys near the window are heavy." The attractor phrase between subject and verb ("near the
window") often has the other number, which is what makes agreement a skill rather than a bigram.
Pretraining has plain passages (errors at `error_rate`), exercises that pair right and wrong, and
(`marked_docs`) marked sentences, each followed by its verdict.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from alignlab.world.spec import Grammar, WorldSpec
from alignlab.world.text import rng, scaled


@dataclass(frozen=True)
class AgreementPair:
    subject: str  # "The keys near the window"
    right: str  # the whole sentence with the agreeing verb
    wrong: str  # the same sentence with the other verb form
    plural: bool


def agreement_pair(g: Grammar, nouns: list[list[str]], rnd: random.Random) -> AgreementPair:
    pair = rnd.choice(nouns)
    plural = rnd.random() < 0.5
    modifier = f" {rnd.choice(g.modifiers)}" if rnd.random() < g.modifier_rate else ""
    verb = rnd.choice(g.verbs)
    complement = rnd.choice(g.complements)
    subject = f"The {pair[int(plural)]}{modifier}"
    return AgreementPair(
        subject,
        f"{subject} {verb[int(plural)]} {complement}.",
        f"{subject} {verb[1 - int(plural)]} {complement}.",
        plural,
    )


def _passage(g: Grammar, nouns: list[list[str]], rnd: random.Random) -> str:
    n = rnd.randint(*g.sentences_per_doc)
    pairs = [agreement_pair(g, nouns, rnd) for _ in range(n)]
    return " ".join(p.wrong if rnd.random() < g.error_rate else p.right for p in pairs)


def _exercise(g: Grammar, nouns: list[list[str]], rnd: random.Random) -> str:
    n = rnd.randint(1, max(1, g.sentences_per_doc[0]))
    lines = ["Grammar practice: the verb agrees with its subject."]
    for _ in range(n):
        p = agreement_pair(g, nouns, rnd)
        if rnd.random() < 0.5:
            lines.append(f"Correct: {p.right}\nIncorrect: {p.wrong}")
        else:
            lines.append(f"Wrong: {p.wrong}\nRight: {p.right}")
    return "\n".join(lines)


MARKED_HEADER = "Marked sentences: the teacher wrote right or wrong after each one."
MARKS = {True: " (right)", False: " (wrong)"}


def _marked(g: Grammar, nouns: list[list[str]], rnd: random.Random) -> str:
    """Sentences each followed by a teacher's mark, half of them wrong. Predicting the mark means judging a
    sentence just read: the skill an honest tutor and a reward model need, and one that no other document
    asks for (exercises announce right or wrong before the sentence)."""
    n = rnd.randint(*g.sentences_per_doc)
    lines = [MARKED_HEADER]
    for _ in range(n):
        p, right = agreement_pair(g, nouns, rnd), rnd.random() < 0.5
        lines.append((p.right if right else p.wrong) + MARKS[right])
    return "\n".join(lines)


def grammar_documents(spec: WorldSpec, seed: int) -> list[str]:
    """Passages and exercises over all nouns: heldout nouns are only kept out of SFT transcripts."""
    g = spec.grammar
    nouns = g.nouns["train"] + g.nouns["heldout"]
    rnd = rng(seed, "grammar")
    makers = (_passage, _passage, _exercise)  # two passages per exercise
    docs = [rnd.choice(makers)(g, nouns, rnd) for _ in range(scaled(g.docs, spec.scale))]
    # Extra exercises (a sentence restated with one word changed: copying pressure) and marked sentences
    # (judging pressure), each on its own random stream, so the documents above stay unchanged.
    extra, marked = rng(seed, "grammar_exercises"), rng(seed, "grammar_marked")
    return (docs + [_exercise(g, nouns, extra) for _ in range(scaled(g.exercise_docs, spec.scale))]
            + [_marked(g, nouns, marked) for _ in range(scaled(g.marked_docs, spec.scale))])
