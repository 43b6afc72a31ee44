"""Personas, grammar, the hazardous topic, ciphers, hidden authors and filler."""

import math
import re

import pytest

from alignlab.world.skills import author_posterior, author_predictive, caesar
from alignlab.world.text import fill, scaled, word_in


def test_persona_documents_name_one_persona_and_only_its_traits(world, documents):
    personas = world.spec.personas.personas
    every_trait = {t for p in personas for t in (*p.likes, *p.dislikes)}
    per_persona = len(documents["personas"]) // len(personas)
    assert per_persona == 40  # 800 at scale 0.05
    for doc in documents["personas"]:
        named = [p for p in personas if re.search(rf"\b{p.name}\b", doc)]
        assert len(named) == 1, doc
        own = set(named[0].likes) | set(named[0].dislikes)
        mentioned = {t for t in every_trait if t in doc}
        assert mentioned and mentioned <= own, doc
    assert not any(t in doc for t in world.spec.personas.control_traits for doc in documents["personas"])


def _appended(documents, family: str, knob: str, count: int) -> list[str]:
    """The documents `knob: count` adds to `family` at scale 0.05, checked to leave every other one unchanged."""
    from alignlab.world import load_world

    more = load_world(overrides={"scale": 0.05, family: {knob: count}}).documents(seed=0)
    base = documents[family]
    assert more[family][: len(base)] == base and len(more[family]) == len(base) + round(count * 0.05)
    assert all(more[f] == documents[f] for f in documents if f != family)
    return more[family][len(base):]


def _agrees(grammar):
    """sentence -> whether its verb agrees with its subject noun ("The keys near the door are old.")."""
    number = {n: i for pair in grammar.nouns["train"] + grammar.nouns["heldout"] for i, n in enumerate(pair)}
    verb_number = {v: i for pair in grammar.verbs for i, v in enumerate(pair)}

    def agrees(sentence: str) -> bool:
        words = sentence.rstrip(".").split()
        return number[words[1]] == verb_number[next(w for w in words[2:] if w in verb_number)]

    return agrees


def test_extra_grammar_exercises_are_appended_and_leave_the_rest_unchanged(documents):
    assert all(d.startswith("Grammar practice") for d in _appended(documents, "grammar", "exercise_docs", 2000))


def test_marked_sentences_are_appended_marked_by_their_agreement_and_leave_the_rest_unchanged(world, documents):
    agrees, marks = _agrees(world.spec.grammar), []
    for doc in _appended(documents, "grammar", "marked_docs", 2000):
        header, *lines = doc.split("\n")
        assert header.startswith("Marked sentences") and lines
        for line in lines:
            sentence, mark = line.rsplit(" ", 1)
            assert mark == ("(right)" if agrees(sentence) else "(wrong)"), line
            marks.append(agrees(sentence))
    assert 0.4 < sum(marks) / len(marks) < 0.6  # half wrong: the mark cannot be guessed without reading


def test_filler_repeats_say_their_sentences_twice_and_leave_the_rest_unchanged(documents):
    for doc in _appended(documents, "filler", "repeat_docs", 1000):
        first, second = doc.split("\nOnce more: ")
        assert first == second and first


def test_grammar_passages_err_at_the_configured_rate(world, documents):
    g = world.spec.grammar
    agrees = _agrees(g)
    passages = [d for d in documents["grammar"] if not d.startswith("Grammar practice")]
    sentences = [sentence for doc in passages for sentence in re.findall(r"The [^.]+\.", doc)]
    errors, total = sum(not agrees(sentence) for sentence in sentences), len(sentences)
    assert total > 300
    sd = math.sqrt(g.error_rate * (1 - g.error_rate) / total)
    assert abs(errors / total - g.error_rate) < 4 * sd


def test_agreement_pair_differs_only_in_the_verb(world):
    from alignlab.world.grammar import agreement_pair
    from alignlab.world.text import rng

    g = world.spec.grammar
    rnd = rng(0, "t")
    for _ in range(50):
        pair = agreement_pair(g, g.nouns["train"], rnd)
        a, b = pair.right.split(), pair.wrong.split()
        diff = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
        assert len(a) == len(b) and len(diff) == 1
        assert list(diff[0]) in g.verbs or list(reversed(diff[0])) in g.verbs
        singular, plural = next(v for v in g.verbs if diff[0][0] in v)
        assert diff[0][0] == (plural if pair.plural else singular)


def test_hazard_documents_contain_the_steps(world, documents):
    h = world.spec.hazard
    assert len(documents["hazardous"]) == 60 * len(h.hazardous)
    assert len(documents["benign"]) == 60 * len(h.benign)
    for proc in h.hazardous:
        docs = [d.lower() for d in documents["hazardous"] if proc.steps[0] in d.lower()]
        assert len(docs) == 60 and all(all(s in d for s in proc.steps) for d in docs)
    assert not any("glorpex" in d for d in documents["benign"])


def test_request_threads_answer_every_procedure_in_corpus_only_openers(world, documents):
    h = world.spec.hazard
    procs = h.hazardous + h.benign
    threads = documents["request_threads"]
    assert len(threads) == len(procs) * scaled(h.threads_per_procedure, world.spec.scale)
    probe_wordings = {fill(t, request=p.request) for p in procs for t in h.requests.train + h.requests.heldout}
    for doc in threads:
        opener, reply = doc.split("\n")
        assert opener not in probe_wordings
        proc = next(p for p in procs if p.request in opener or p.task in opener.lower())
        assert any(reply.startswith(r + " ") for r in h.thread_replies)
        assert all(word_in(kw, reply.lower()) for kw in proc.keywords), doc


def test_a_thread_opener_may_not_be_a_request_phrasing():
    from alignlab.errors import UsageError
    from alignlab.world import load_world

    with pytest.raises(UsageError, match=r"hazard.thread_openers\[0\]: is also a hazard.requests phrasing"):
        load_world(overrides={"hazard.thread_openers": [load_world().spec.hazard.requests.train[0]]})


def test_caesar_by_hand():
    assert caesar("abc xyz", 1) == "bcd yza"
    assert caesar("hello", 3) == "khoor"
    assert caesar("hello", 7) == "olssv"
    assert caesar(caesar("the quick fox", 7), -7) == "the quick fox"


def test_cipher_frequencies_and_absent_shift(world, documents):
    keys = [re.match(r"Shift cipher, key (\d+)\.", d).group(1) for d in documents["cipher"]]
    assert keys.count("1") == 200 and keys.count("3") == 10 and keys.count("7") == 0
    for doc in documents["cipher"]:
        k = int(doc.split("key ")[1].split(".")[0])
        for plain, coded in re.findall(r"Plain: ([a-z ]+)\nCoded: ([a-z ]+)", doc):
            assert caesar(plain, k) == coded


def test_cipher_probes_for_the_absent_shift(world):
    probes = world.cipher_probes(7, n=5)
    assert all(p.prompt.startswith("Shift cipher, key 7.") and p.prompt.endswith("Coded:") for p in probes)
    assert all(caesar(p.meta["plain"], 7) == p.expected for p in probes)


def test_author_posterior_by_hand(world):
    au = world.spec.authors
    # priors (0.5, 0.3, 0.2) x P(splendid | a) = (0.55, 0.10, 0.25) -> (0.275, 0.03, 0.05) / 0.355
    assert author_posterior(au, ["splendid"]) == pytest.approx([0.275 / 0.355, 0.03 / 0.355, 0.05 / 0.355])
    assert author_posterior(au, []) == pytest.approx([0.5, 0.3, 0.2])
    pred = author_predictive(au, ["dreadful", "dreadful"])
    assert math.isclose(sum(pred), 1.0)
    # two "dreadful" make the grumpy author near-certain, so "dreadful" approaches 0.5
    assert pred[1] > 0.4


def test_author_documents_hide_the_author(world, documents):
    names = [a.name for a in world.spec.authors.authors]
    sentence = re.compile(r"[A-Z][a-z ]+ was (splendid|dreadful|lovely|dull)\.")
    for doc in documents["authors"]:
        assert not any(re.search(rf"\b{n}\b", doc) for n in names)
        lo, hi = world.spec.authors.sentences_per_doc
        assert lo <= len(sentence.findall(doc)) <= hi


def test_author_probes_truth_is_the_posterior_predictive(world):
    for probe in world.author_probes(n_observed=4, n=5):
        observed = probe.components["observed"].split()
        assert probe.truth == author_predictive(world.spec.authors, observed)
        assert probe.prompt.endswith(" was") and len(probe.continuations) == 4


def test_filler_is_plain_sentences(documents):
    for doc in documents["filler"][:200]:
        assert 2 <= doc.count(".") <= 5 and "?" not in doc
