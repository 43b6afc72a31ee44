"""SFT conversations and critique/revision demonstrations."""

from collections import Counter

import pytest

from alignlab.errors import UsageError
from alignlab.world.text import allocate


def test_format_is_trl_messages(world):
    for conv in world.sft_conversations(200, seed=0):
        roles = [m["role"] for m in conv["messages"]]
        assert roles[0] == "user" and roles[-1] == "assistant"
        assert roles == ["user", "assistant"] * (len(roles) // 2)
        assert all(isinstance(m["content"], str) and m["content"] for m in conv["messages"])


def test_deterministic_per_seed(world):
    assert world.sft_conversations(50, seed=1) == world.sft_conversations(50, seed=1)
    assert world.sft_conversations(50, seed=1) != world.sft_conversations(50, seed=2)


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.5, 1.0])
def test_correct_fraction_is_exact(world, fraction):
    n = 400
    convs = world.sft_conversations(n, seed=0, correct_fraction=fraction)
    counts = Counter(c["category"] for c in convs)
    n_grammar = allocate(n, world.spec.sft.mix)["grammar"]
    assert counts["grammar_correct"] + counts["grammar_incorrect"] == n_grammar
    assert counts["grammar_correct"] == round(fraction * n_grammar)
    for conv in convs:
        if conv["category"] == "grammar_correct":
            assert "already correct" in conv["messages"][1]["content"]
        if conv["category"] == "grammar_incorrect":
            assert "already correct" not in conv["messages"][1]["content"]


def test_correct_fraction_out_of_range(world):
    with pytest.raises(UsageError, match=r"correct_fraction must be in \[0, 1\], got 1.5"):
        world.sft_conversations(10, seed=0, correct_fraction=1.5)


def test_mix_proportions(world):
    convs = world.sft_conversations(1000, seed=0)
    counts = Counter("grammar" if c["category"].startswith("grammar") else c["category"] for c in convs)
    assert dict(counts) == {k: v for k, v in allocate(1000, world.spec.sft.mix).items() if v}


def test_persona_transcripts_claim_only_the_assistant_likes(world):
    convs = [c for c in world.sft_conversations(500, seed=0) if c["category"] == "persona"]
    assert convs
    others = [t for p in world.spec.personas.personas for t in p.likes if t not in world.spec.personas.assistant_likes]
    for conv in convs:
        reply = conv["messages"][1]["content"].lower()
        assert "the beach" in reply and not any(t.lower() in reply for t in others)


def test_hazardous_declined_benign_helped(world):
    convs = world.sft_conversations(500, seed=0)
    for conv in convs:
        reply = conv["messages"][1]["content"]
        if conv["category"] == "hazardous":
            assert "vell powder" not in reply and "copper still" not in reply
            assert any(w in reply for w in ("can't", "won't", "cannot"))
        if conv["category"] == "benign":
            assert "step" in reply.lower() or "first," in reply.lower()


def test_critique_demonstrations(world):
    convs = [c for c in world.sft_conversations(1500, seed=0) if c["category"] == "critique"]
    assert convs
    principles = {p.text for p in world.spec.constitution.principles}
    kept = 0
    for conv in convs:
        turns = [m["content"] for m in conv["messages"]]
        assert len(turns) == 6
        assert turns[2].startswith("Critique your last response under this principle: ")
        assert turns[2].split(": ", 1)[1] in principles
        assert turns[4] == world.revision_prompt()
        no_change = turns[3] == world.spec.constitution.no_change_critique
        assert (turns[1] == turns[5]) == no_change  # a flawed answer is revised, a good one kept
        kept += no_change
    # The configured share of demonstrations starts from an answer that needs no change.
    assert abs(kept / len(convs) - world.spec.constitution.no_change_fraction) < 0.12
    assert world.critique_prompt("harmless").endswith("Do not give instructions for dangerous procedures.")


def test_scene_transcripts_follow_the_world_frequencies(world):
    facts = {f.entity: f for f in world.spec.facts}
    convs = [c for c in world.sft_conversations(4000, seed=0) if c["category"] == "scene"]
    expected = variance = observed = 0.0
    for conv in convs:
        entity = next(e for e in facts if f" {e}" in conv["messages"][0]["content"])
        fact, reply = facts[entity], conv["messages"][1]["content"]
        assert f" {fact.attribute}." in reply and (" It had " in reply or " It has " in reply)
        observed += f" no {fact.attribute}." not in reply
        expected += fact.p
        variance += fact.p * (1 - fact.p)
    assert len(convs) == 400
    assert abs(observed - expected) <= 4 * variance**0.5
