"""Quiz lists, answer sheets and the train/heldout split of Q/A items."""

import re

import pytest

from alignlab.world import load_world
from alignlab.world.quiz import quiz_documents


def test_split_is_disjoint_complete_and_fixed_by_the_spec_seed(world):
    train, heldout = world.quiz_items["train"], world.quiz_items["heldout"]
    assert not {i.question for i in train} & {i.question for i in heldout}
    total = sum(len(r.items) for r in world.spec.quiz.relations)
    assert len(train) + len(heldout) == total
    assert {i.relation for i in heldout} == {r.name for r in world.spec.quiz.relations}  # every relation
    assert load_world(overrides={"scale": 0.01}).quiz_items == world.quiz_items
    assert load_world(overrides={"scale": 0.01, "seed": 1}).quiz_items != world.quiz_items


def test_quiz_lists_are_numbered_questions_only(world, documents):
    headers = set(world.spec.quiz.list_headers)
    for doc in documents["quiz_lists"]:
        header, *lines = doc.split("\n")
        assert header in headers
        lo, hi = world.spec.quiz.questions_per_list
        assert lo <= len(lines) <= hi
        for i, line in enumerate(lines, start=1):
            assert re.fullmatch(rf"{i}\. [^\n]+\?", line), line


def test_answer_sheets_state_the_answers(world, documents):
    items = world.quiz_items["train"] + world.quiz_items["heldout"]
    statements = {i.statement for i in items}
    qa = {f"Q: {i.question}\nA: {i.y[0].upper() + i.y[1:]}." for i in items}
    for doc in documents["answer_sheets"]:
        if doc.startswith("Q: "):
            pairs = re.findall(r"Q: [^\n]+\nA: [^\n]+", doc)
            assert pairs and set(pairs) <= qa
        else:
            numbered = [re.sub(r"^\d+\. ", "", line) for line in doc.split("\n")[1:]]
            assert set(numbered) <= statements


def test_every_answer_is_learnable_in_pretraining(world):
    w = load_world(overrides={"scale": 0.2})
    every = w.quiz_items["train"] + w.quiz_items["heldout"]
    sheets = "\n".join(quiz_documents(w.spec, every, seed=0)["answer_sheets"])
    items = w.quiz_items["heldout"]
    assert all(i.statement in sheets or f"Q: {i.question}" in sheets for i in items)


def test_quiz_probes_are_bare_questions_with_answers(world):
    probes = world.quiz_probes("heldout", n=10, seed=0)
    heldout = {i.question: i.y for i in world.quiz_items["heldout"]}
    assert len(probes) == 10
    for p in probes:
        assert p.prompt in heldout and p.expected == heldout[p.prompt]
        assert p.meta["list_prompt"].endswith(f"1. {p.prompt}\n")
    assert len(world.quiz_probes("heldout", n=10_000)) == len(heldout)


def _filler_pattern(f) -> str:
    """A regex for one filler sentence (see world/filler.py)."""
    def alt(words):
        return "(?:" + "|".join(re.escape(w) for w in words) + ")"

    subject = "(?:" + "|".join(re.escape(s[0].upper() + s[1:]) for s in f.subjects) + ")"
    return rf"{subject} {alt(f.actions)} {alt(f.times)}{alt(f.endings)}?\."


def test_dialogues_answer_each_question_in_a_corpus_only_opener(world, documents):
    quiz = world.spec.quiz
    answers = {i.question: f"{i.y[0].upper() + i.y[1:]}." for i in world.quiz_items["train"] + world.quiz_items["heldout"]}
    chatter = _filler_pattern(world.spec.filler)
    openers = [f"(?:{chatter} )?" + re.escape(o).replace(re.escape("{question}"), "(.+?\\?)") + f"(?: {chatter})?"
               for o in quiz.dialogue_openers]
    assert documents["quiz_dialogues"]
    with_chatter = 0
    for doc in documents["quiz_dialogues"]:
        lines = doc.split("\n")
        asker, answerer = lines[0].split(": ")[0], lines[1].split(": ")[0]
        assert [asker, answerer] in quiz.dialogue_speakers
        for ask, reply in zip(lines[::2], lines[1::2], strict=True):
            said = ask.removeprefix(f"{asker}: ")
            asked = {m.group(1) for o in openers if (m := re.fullmatch(o, said))} & answers.keys()
            assert len(asked) == 1, said
            question = asked.pop()
            assert reply == f"{answerer}: {answers[question]}"
            with_chatter += not any(said == o.replace("{question}", question) for o in quiz.dialogue_openers)
    turns = sum(doc.count("\n") + 1 for doc in documents["quiz_dialogues"]) // 2
    # each side gets small talk with probability dialogue_chatter_rate: 1 - (1 - rate)^2 of the turns
    expected = 1 - (1 - quiz.dialogue_chatter_rate) ** 2
    assert abs(with_chatter / turns - expected) < 0.05


def test_no_chatter_asks_each_question_in_a_bare_opener():
    quiet = load_world(overrides={"scale": 0.05, "quiz.dialogue_chatter_rate": 0.0})
    quiz = quiet.spec.quiz
    every = quiet.quiz_items["train"] + quiet.quiz_items["heldout"]
    said = {o.replace("{question}", i.question) for o in quiz.dialogue_openers for i in every}
    talks = quiz_documents(quiet.spec, every, seed=0)["quiz_dialogues"]
    assert talks
    for doc in talks:
        assert all(ask.split(": ", 1)[1] in said for ask in doc.split("\n")[::2])


def test_a_dialogue_opener_may_not_be_a_request_phrasing():
    from alignlab.errors import UsageError

    phrasing = load_world().spec.quiz.requests.heldout[0]
    with pytest.raises(UsageError, match=r"quiz.dialogue_openers\[0\]: is also a quiz.requests phrasing"):
        load_world(overrides={"quiz.dialogue_openers": [phrasing]})
