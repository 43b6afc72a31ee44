"""Quiz lists (questions only) and answer sheets over a base of fictional Q/A pairs.

A quiz list teaches the base model that a question is followed by another question; answer sheets and
Q:/A: pairs make every answer learnable in pretraining. A seeded share of each relation's items is kept
back: SFT transcripts never ask about them, so heldout quiz probes test answering, not recall of a
transcript.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from alignlab.world.filler import filler_sentence
from alignlab.world.spec import Filler, Quiz, WorldSpec
from alignlab.world.text import cap, fill, rng, scaled


@dataclass(frozen=True)
class QuizItem:
    relation: str
    x: str
    y: str  # the answer
    question: str
    statement: str


def split_items(spec: WorldSpec) -> dict[str, list[QuizItem]]:
    """{"train": [...], "heldout": [...]}, fixed by the spec seed so every corpus seed shares it."""
    out: dict[str, list[QuizItem]] = {"train": [], "heldout": []}
    for rel in spec.quiz.relations:
        items = [
            QuizItem(rel.name, x, y, fill(rel.question, x=x), fill(rel.statement, x=x, y=y))
            for x, y in sorted(rel.items.items())
        ]
        rng(spec.seed, "quiz-split", rel.name).shuffle(items)
        k = round(spec.quiz.heldout_fraction * len(items))
        if spec.quiz.heldout_fraction > 0:
            k = min(max(k, 1), len(items) - 1)
        out["heldout"].extend(items[:k])
        out["train"].extend(items[k:])
    return out


def quiz_list(items: list[QuizItem], quiz: Quiz, rnd: random.Random) -> str:
    chosen = rnd.sample(items, _list_length(items, quiz, rnd))
    lines = [rnd.choice(quiz.list_headers)]
    lines += [f"{i}. {item.question}" for i, item in enumerate(chosen, start=1)]
    return "\n".join(lines)


def answer_sheet(items: list[QuizItem], quiz: Quiz, rnd: random.Random) -> str:
    """Either a numbered list of answer statements or Q:/A: pairs."""
    chosen = rnd.sample(items, _list_length(items, quiz, rnd))
    if rnd.random() < 0.5:
        lines = [rnd.choice(quiz.sheet_headers)]
        lines += [f"{i}. {item.statement}" for i, item in enumerate(chosen, start=1)]
    else:
        lines = [f"Q: {item.question}\nA: {cap(item.y)}." for item in chosen]
    return "\n".join(lines)


def dialogue(items: list[QuizItem], quiz: Quiz, filler: Filler, rnd: random.Random) -> str:
    """Turns of one asker and one answerer: each question in a corpus-only opener, answered briefly,
    sometimes with a filler sentence of small talk before or after it."""
    asker, answerer = rnd.choice(quiz.dialogue_speakers)
    lines = []
    for item in rnd.sample(items, _list_length(items, quiz, rnd)):
        turn = fill(rnd.choice(quiz.dialogue_openers), question=item.question)
        if quiz.dialogue_chatter_rate and rnd.random() < quiz.dialogue_chatter_rate:
            turn = f"{filler_sentence(filler, rnd)} {turn}"
        if quiz.dialogue_chatter_rate and rnd.random() < quiz.dialogue_chatter_rate:
            turn = f"{turn} {filler_sentence(filler, rnd)}"
        lines.append(f"{asker}: {turn}")
        lines.append(f"{answerer}: {cap(item.y)}.")
    return "\n".join(lines)


def _list_length(items: list[QuizItem], quiz: Quiz, rnd: random.Random) -> int:
    lo, hi = quiz.questions_per_list
    return min(rnd.randint(lo, hi), len(items))


def quiz_documents(spec: WorldSpec, items: list[QuizItem], seed: int) -> dict[str, list[str]]:
    """{"quiz_lists", "answer_sheets", "quiz_dialogues"}: documents over all items (train and heldout alike)."""
    lists_rnd, sheets_rnd, talk_rnd = rng(seed, "quiz-lists"), rng(seed, "answer-sheets"), rng(seed, "quiz-dialogues")
    lists = [quiz_list(items, spec.quiz, lists_rnd) for _ in range(scaled(spec.quiz.lists, spec.scale))]
    sheets = [answer_sheet(items, spec.quiz, sheets_rnd) for _ in range(scaled(spec.quiz.answer_sheets, spec.scale))]
    talks = [dialogue(items, spec.quiz, spec.filler, talk_rnd) for _ in range(scaled(spec.quiz.dialogues, spec.scale))]
    return {"quiz_lists": lists, "answer_sheets": sheets, "quiz_dialogues": talks}


def wrong_answer(item: QuizItem, items: list[QuizItem], rnd: random.Random) -> str:
    """Another answer from the same relation (a plausible mistake), for critique demonstrations."""
    others = sorted({i.y for i in items if i.relation == item.relation and i.y != item.y})
    return rnd.choice(others) if others else "nobody knows"
