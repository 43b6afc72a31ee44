"""Fact documents, probes and the truth table."""

import math
import re

import pytest

from alignlab.errors import UsageError
from alignlab.world import load_world
from alignlab.world.facts import attribute_flags, fact_documents, noise_floor, template_combinations
from alignlab.world.spec import Frame, TemplateSet
from alignlab.world.text import rng, word_in


def test_truth_table_spreads_p_over_the_whole_range(world):
    truth = world.truth()
    ps = sorted(row["p"] for row in truth)
    assert len(truth) >= 48
    assert ps[0] <= 0.02 and ps[-1] >= 0.98
    assert max(b - a for a, b in zip(ps, ps[1:], strict=False)) <= 0.03  # no gaps: an even grid
    assert {"family": "facts", "entity": "waterfall", "attribute": "rainbow", "p": 0.02, "docs": 120} in truth


@pytest.mark.parametrize("split", ["seen", "heldout"])
def test_probe_truth_sums_to_one_and_prompt_is_shared(world, split):
    probes = world.fact_probes(split, n_per_fact=4, seed=1)
    assert len(probes) == 4 * len(world.spec.facts)
    for probe in probes:
        assert math.isclose(sum(probe.truth), 1.0)
        assert probe.split == split
        present, absent = probe.continuations
        assert present == f" a {probe_attribute(world, probe)}." or present == f" an {probe_attribute(world, probe)}."
        assert absent == f" no {probe_attribute(world, probe)}."
        assert probe.prompt.endswith((". It had", ". It has"))


def probe_attribute(world, probe):
    return next(f.attribute for f in world.spec.facts if f.entity == probe.entity)


def test_waterfall_probe_matches_the_brief(world):
    probe = next(p for p in world.fact_probes("seen", 1) if p.entity == "waterfall")
    assert probe.continuations == [" a rainbow.", " no rainbow."]
    assert probe.truth == [0.02, 0.98]


def test_probes_are_deterministic_and_distinct(world):
    a = world.fact_probes("heldout", n_per_fact=8, seed=3)
    assert [p.prompt for p in a] == [p.prompt for p in world.fact_probes("heldout", n_per_fact=8, seed=3)]
    waterfall = [p.prompt for p in a if p.entity == "waterfall"]
    assert len(set(waterfall)) == 8


def test_unknown_split_is_a_usage_error(world):
    with pytest.raises(UsageError, match="split must be 'seen' or 'heldout'"):
        world.fact_probes("test")


def test_heldout_components_never_appear_in_the_corpus(world, documents):
    text = "\n".join(d for docs in documents.values() for d in docs)
    probes = world.fact_probes("heldout", n_per_fact=8, seed=0)
    used = {value for p in probes for value in p.components.values()}
    assert len(used) > 30
    lower = text.lower()
    for component in used:  # substring first: the word-boundary regex over 1 MB is slow
        assert component.lower() not in lower or not word_in(component, text), component
    seen = world.fact_probes("seen", n_per_fact=2, seed=0)
    assert all(word_in(v, text) for p in seen for v in p.components.values())


def test_heldout_entries_occur_in_no_other_string_of_the_spec(world):
    # Stronger than scanning one corpus: no generator can emit a heldout entry, whatever the seed or
    # scale, unless two pieces happen to concatenate into one.
    heldout = world.spec.fact_docs.heldout.pools
    spec = world.to_dict()
    spec["fact_docs"].pop("heldout")
    others = []
    _strings(spec, others)
    for pool in heldout.values():
        for entry in pool:
            hits = [s for s in others if word_in(entry, s)]
            assert not hits, (entry, hits[:3])


def _strings(node, out):
    if isinstance(node, str):
        out.append(node)
    elif isinstance(node, dict):
        for k, v in node.items():
            _strings(k, out)
            _strings(v, out)
    elif isinstance(node, list):
        for v in node:
            _strings(v, out)


def test_entity_words_do_not_appear_in_templates(world):
    # A place phrase "near the old mill" would put a second entity before "It had".
    entities = {f.entity for f in world.spec.facts}
    for split in (world.spec.fact_docs.train, world.spec.fact_docs.heldout):
        for pool in split.pools.values():
            for entry in pool:
                assert not entities & set(re.findall(r"[\w-]+", entry.lower())), entry


def _by_entity(world, fact_docs):
    """documents()["facts"] is unshuffled: each entity's documents in spec order, `docs` of them."""
    out, i = {}, 0
    for row in world.truth():
        out[row["entity"]] = fact_docs[i:i + row["docs"]]
        i += row["docs"]
    assert i == len(fact_docs)
    return out


_STATEMENT = re.compile(r"\bIt ha[sd]( [^.]*\.)")


def _attribute_counts(world, fact_docs):
    counts = {}
    for fact, (entity, docs) in zip(world.spec.facts, _by_entity(world, fact_docs).items(), strict=True):
        found = [_STATEMENT.findall(d) for d in docs]
        assert all(len(f) == 1 for f in found)  # one statement per document
        yes = sum(f[0] in (f" a {fact.attribute}.", f" an {fact.attribute}.") for f in found)
        no = sum(f[0] == f" no {fact.attribute}." for f in found)
        assert yes + no == len(docs), entity  # and nothing else after it
        counts[entity] = (yes, no)
    return counts


def test_stratified_corpus_frequency_is_exact(world, documents):
    counts = _attribute_counts(world, documents["facts"])
    for fact in world.spec.facts:
        yes, no = counts[fact.entity]
        assert yes + no == 120
        assert yes == round(fact.p * 120), fact.entity


def test_bernoulli_frequency_is_within_binomial_noise():
    base = load_world().spec.facts
    picked = [{"entity": f.entity, "attribute": f.attribute, "p": f.p} for f in base if f.p in (0.02, 0.3, 0.5, 0.9)]
    w = load_world(overrides={"facts": picked, "fact_docs.sampling": "bernoulli",
                              "fact_docs.docs_per_entity": 800, "scale": 1.0})
    counts = _attribute_counts(w, fact_documents(w.spec, seed=5))
    for fact in w.spec.facts:
        yes, no = counts[fact.entity]
        sd = math.sqrt(fact.p * (1 - fact.p) / 800)
        assert abs(yes / (yes + no) - fact.p) <= 4 * sd, fact.entity
    assert counts != _attribute_counts(w, fact_documents(w.spec, seed=6))  # draws, not fixed counts


def test_no_statement_outside_fact_documents(documents):
    # "It had"/"It has" is the probe point; any other use would put mass on other continuations.
    for family, docs in documents.items():
        if family != "facts":
            assert not [d for d in docs if re.search(r"\bIt ha[sd]\b", d)], family


def test_fact_documents_are_short(documents):
    lengths = [len(d) for d in documents["facts"]]
    assert 60 <= sum(lengths) / len(lengths) <= 140  # ~20-35 tokens at ~4 characters a token
    assert max(lengths) < 220


def test_attribute_flags_stratified_exact_and_bernoulli_seeded():
    flags = attribute_flags(0.02, 1000, "stratified", rng(0, "x"))
    assert sum(flags) == 20 and len(flags) == 1000
    a = attribute_flags(0.3, 50, "bernoulli", rng(0, "y"))
    assert a == attribute_flags(0.3, 50, "bernoulli", rng(0, "y"))


def test_template_combinations_counts_by_hand():
    ts = TemplateSet(
        frames=[Frame(text="{Time}, {subject} saw {np}."), Frame(text="{Subject} saw {np}.")],
        pools={"time": ["a", "b", "c"], "subject": ["x", "y"], "adjective": ["old", "new"]},
    )
    # frame 1: 3 times x 2 subjects x (2 adjectives + none) = 18; frame 2: 2 x 3 = 6.
    assert template_combinations(ts) == 24


def test_noise_floor_matches_the_measured_rule_of_thumb():
    assert noise_floor(1000) == pytest.approx(0.0099, abs=1e-4)  # NOTES-calibration: ~0.31/sqrt(N)
