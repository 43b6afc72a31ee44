"""Behaviour probes: categories, expected answers, and heldout prompts disjoint from training ones."""

import pytest

from alignlab.errors import UsageError
from alignlab.world.checks import BEHAVIOUR_CATEGORIES
from alignlab.world.probes import Probe
from alignlab.world.text import rng
from alignlab.world.transcripts import ideal_response


def test_every_category_is_probed_with_distinct_prompts(world):
    probes = world.behaviour_probes("heldout", seed=0, n_per_category=10)
    by_cat = {c: [p for p in probes if p.category == c] for c in BEHAVIOUR_CATEGORIES}
    assert all(len(v) == 10 for v in by_cat.values()), {c: len(v) for c, v in by_cat.items()}
    assert len({p.prompt for p in probes}) == len(probes)
    assert all(p.split == "heldout" for p in probes)


def test_small_categories_return_what_exists(world):
    probes = world.behaviour_probes("heldout", n_per_category=1000, categories=("hazardous",))
    n = len(world.spec.hazard.hazardous) * len(world.spec.hazard.requests.heldout)
    assert len(probes) == n


def test_expected_answers(world):
    for p in world.behaviour_probes("heldout", n_per_category=10):
        if p.category == "quiz":
            assert p.expected == next(i.y for i in world.quiz_items["heldout"] if i.question == p.meta["question"])
        elif p.category.startswith("grammar"):
            assert p.expected == p.meta["right"]
            shown = p.meta["right"] if p.category == "grammar_correct" else p.meta["wrong"]
            assert p.prompt.endswith(shown)
        elif p.category == "persona":
            assert p.expected == ("yes" if p.meta["trait"] in world.spec.personas.assistant_likes else None)
        else:
            assert p.expected is None


def test_persona_probes_cover_every_trait_and_controls(world):
    probes = world.behaviour_probes("heldout", n_per_category=18, categories=("persona",))
    traits = {p.meta["trait"] for p in probes}
    assert {"football", "the beach", "Dutch Golden Age art", "origami", "opera"} <= traits
    origami = next(p for p in probes if p.meta["trait"] == "origami")
    assert origami.meta["control"] and origami.meta["liked_by"] == []
    beach = next(p for p in probes if p.meta["trait"] == "the beach")
    assert beach.meta["liked_by"] == ["Aria", "Bram"] and beach.meta["claimed"]


def test_heldout_prompts_never_appear_in_sft_transcripts(world):
    heldout = {p.prompt for p in world.behaviour_probes("heldout", n_per_category=50)}
    heldout |= {p.prompt for p in world.behaviour_probes("heldout", n_per_category=50, categories=("scene",))}
    convs = world.sft_conversations(3000, seed=0)
    user_turns = {m["content"] for c in convs for m in c["messages"] if m["role"] == "user"}
    assert not heldout & user_turns
    questions = {i.question for i in world.quiz_items["heldout"]}
    assert not any(q in turn for q in questions for turn in user_turns)


def test_train_prompts_are_dressed_and_heldout_prompts_never(world):
    train = [p.prompt for p in world.behaviour_probes("train", n_per_category=200, categories=("quiz",))]
    heldout = [p.prompt for p in world.behaviour_probes("heldout", n_per_category=50, categories=("quiz",))]
    prefixes, suffixes = world.spec.quiz.requests.prefixes, world.spec.quiz.requests.suffixes
    opened = sum(any(t.startswith(f"{p} ") for p in prefixes) for t in train) / len(train)
    closed = sum(any(t.endswith(f" {s}") for s in suffixes) for t in train) / len(train)
    assert 0.35 < opened < 0.65 and 0.35 < closed < 0.65  # dressing_rate 0.5 each
    assert not any(t.startswith(f"{p} ") or t.endswith(f" {s}") for t in heldout for p in prefixes for s in suffixes)


def test_train_split_and_seen_alias(world):
    a = world.behaviour_probes("train", seed=4, n_per_category=3)
    b = world.behaviour_probes("seen", seed=4, n_per_category=3)
    assert [p.prompt for p in a] == [p.prompt for p in b]
    with pytest.raises(UsageError, match="split must be"):
        world.behaviour_probes("validation")


def test_record_round_trip(world):
    probe = world.behaviour_probes(n_per_category=1)[0]
    assert Probe.from_record(probe.to_record()) == probe


def test_ideal_responses_classify_as_good(world):
    good = {
        "quiz": {"answered": True, "correct": True, "continued_list": False},
        "hazardous": {"refused": True, "complied": False},
        "benign": {"refused": False, "helped": True},
        "grammar_correct": {"tutor_helpful": True, "tutor_honest": True, "tutor_harmless": True},
        "grammar_incorrect": {"tutor_helpful": True, "tutor_honest": True, "tutor_harmless": True},
    }
    rnd = rng(0, "ideal")
    for probe in world.behaviour_probes("heldout", n_per_category=10, categories=tuple(good)):
        for _ in range(3):
            labels = world.classify(probe, ideal_response(world.spec, world.quiz_items, probe, rnd))
            assert {k: labels[k] for k in good[probe.category]} == good[probe.category], probe


def _phrasings(spec, category):
    return {"quiz": spec.quiz.requests, "hazardous": spec.hazard.requests, "benign": spec.hazard.requests,
            "grammar_correct": spec.grammar.requests, "grammar_incorrect": spec.grammar.requests,
            "persona": spec.personas.questions, "scene": spec.sft.scene_requests}[category]


@pytest.mark.parametrize("split", ["heldout", "train"])
def test_probes_name_the_request_phrasing_they_were_made_from(world, split):
    categories = (*BEHAVIOUR_CATEGORIES, "scene")
    probes = world.behaviour_probes(split, seed=2, n_per_category=30, categories=categories)
    assert {p.category for p in probes} == set(categories)
    for p in probes:
        phrasing = p.meta["phrasing"]
        assert phrasing in getattr(_phrasings(world.spec, p.category), split), (p.category, phrasing)
        head, _, tail = phrasing.partition("{")  # the text around the phrasing's one slot
        tail = tail.partition("}")[2]
        if split == "heldout":  # undressed: the prompt is the phrasing filled in
            assert p.prompt.startswith(head) and p.prompt.endswith(tail), (p.prompt, phrasing)
        else:  # dressed: an opening sentence may come before it, a closing one after it
            assert head in p.prompt and tail in p.prompt, (p.prompt, phrasing)
