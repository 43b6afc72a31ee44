"""Semantic checks of a built `WorldSpec` (types were checked while building it, in `load.py`).

Every rule a spec must satisfy lives here, so a reader sees in one file what a world may contain.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from alignlab.errors import UsageError
from alignlab.world import text
from alignlab.world.spec import Phrasings, TemplateSet, WorldSpec

BEHAVIOUR_CATEGORIES = ("quiz", "hazardous", "benign", "grammar_correct", "grammar_incorrect", "persona")
PROBE_CATEGORIES = (*BEHAVIOUR_CATEGORIES, "scene")
SFT_CATEGORIES = ("quiz", "hazardous", "benign", "grammar", "persona", "scene", "critique")
CRITIQUE_SLOTS = {
    "quiz": {"question", "answer", "wrong"},
    "hazardous": {"task"},
    "benign": {"task"},
    "grammar_correct": {"sentence", "wrong"},
    "grammar_incorrect": {"sentence", "fixed"},
}
BIO_SLOTS = {"name", "maker", "trait", "trait2", "dislike"}


def _long_words(sentence: str) -> set[str]:
    """Lower-cased words of five letters or more: what makes a wording recognisable."""
    return {w for w in re.findall(r"[a-z]+", sentence.lower()) if len(w) >= 5}


class _Checker:
    def __init__(self, label: str):
        self.label = label

    def fail(self, path: str, message: str) -> None:
        raise UsageError(f"{self.label}: {path}: {message}")

    def prob(self, path: str, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            self.fail(path, f"must be in [0, 1], got {value}")

    def count(self, path: str, value: float) -> None:
        if value < 0:
            self.fail(path, f"must be >= 0, got {value}")

    def nonempty(self, path: str, seq: Sequence) -> None:
        if len(seq) == 0:
            self.fail(path, "must not be empty")
        for i, item in enumerate(seq):
            if isinstance(item, str) and not item.strip():
                self.fail(f"{path}[{i}]", "must not be blank")

    def span(self, path: str, pair: Sequence[int], low: int = 0) -> None:
        if len(pair) != 2 or not low <= pair[0] <= pair[1]:
            self.fail(path, f"must be [min, max] with {low} <= min <= max, got {list(pair)}")

    def slots(self, path: str, templates: Iterable[str], allowed: set[str], required: set[str] = frozenset()):
        for i, tpl in enumerate(templates):
            self.slot(f"{path}[{i}]", tpl, allowed, required)

    def slot(self, path: str, template: str, allowed: set[str], required: set[str] = frozenset()) -> None:
        found = set(text.slots(template))
        if found - allowed:
            self.fail(path, f"unknown slot {{{sorted(found - allowed)[0]}}} (allowed: {sorted(allowed)})")
        if required - found:
            self.fail(path, f"must contain {{{sorted(required - found)[0]}}}")

    def phrasings(self, path: str, ph: Phrasings, allowed: set[str], required: set[str]) -> None:
        self.nonempty(f"{path}.train", ph.train)
        self.nonempty(f"{path}.heldout", ph.heldout)
        self.slots(f"{path}.train", ph.train, allowed, required)
        self.slots(f"{path}.heldout", ph.heldout, allowed, required)
        for i, tpl in enumerate(ph.heldout):
            if tpl in ph.train:
                self.fail(f"{path}.heldout[{i}]", "also appears in train; heldout phrasings must be new")
        self.prob(f"{path}.dressing_rate", ph.dressing_rate)
        heldout_words = {w for tpl in ph.heldout for w in _long_words(" ".join(text.literals(tpl)))}
        for field_name in ("prefixes", "suffixes"):
            for i, piece in enumerate(getattr(ph, field_name)):
                self.slot(f"{path}.{field_name}[{i}]", piece, set())
                shared = sorted(_long_words(piece) & heldout_words)
                if shared:  # a dressing that echoes a heldout wording would leak it into training
                    self.fail(f"{path}.{field_name}[{i}]", f"shares the word {shared[0]!r} with a heldout phrasing")

    def corpus_only(self, path: str, openers: Sequence[str], requests: Phrasings, requests_path: str,
                    allowed: frozenset[str] = frozenset()) -> None:
        """Corpus openers (other than `allowed`) must not be request phrasings, so probe wordings stay unseen."""
        phrasings = set(requests.train) | set(requests.heldout)
        for i, opener in enumerate(openers):
            if opener not in allowed and opener in phrasings:
                self.fail(f"{path}[{i}]", f"is also a {requests_path} phrasing; openers must be corpus-only")

    def distribution(self, path: str, probs: Sequence[float]) -> None:
        for i, p in enumerate(probs):
            self.prob(f"{path}[{i}]", p)
        if not math.isclose(sum(probs), 1.0, abs_tol=1e-6):
            self.fail(path, f"must sum to 1, got {sum(probs):.6g}")


def validate(spec: WorldSpec, label: str) -> None:
    """Raise UsageError naming `label` and the field path at the first rule `spec` breaks."""
    c = _Checker(label)
    if not spec.scale > 0:
        c.fail("scale", f"must be > 0, got {spec.scale}")
    _check_facts(c, spec)
    _check_quiz(c, spec)
    _check_personas(c, spec)
    _check_grammar(c, spec)
    _check_hazard(c, spec)
    _check_skills(c, spec)
    _check_posttraining(c, spec)


def _check_facts(c: _Checker, spec: WorldSpec) -> None:
    c.nonempty("facts", spec.facts)
    seen: set[str] = set()
    for i, fact in enumerate(spec.facts):
        c.prob(f"facts[{i}].p", fact.p)
        if not fact.entity.strip() or not fact.attribute.strip():
            c.fail(f"facts[{i}]", "entity and attribute must not be blank")
        if fact.entity in seen:
            c.fail(f"facts[{i}].entity", f"duplicate entity {fact.entity!r}")
        seen.add(fact.entity)
        if fact.docs is not None:
            c.count(f"facts[{i}].docs", fact.docs)
    fd = spec.fact_docs
    c.count("fact_docs.docs_per_entity", fd.docs_per_entity)
    if fd.sampling not in ("stratified", "bernoulli"):
        c.fail("fact_docs.sampling", f"must be 'stratified' or 'bernoulli', got {fd.sampling!r}")
    c.prob("fact_docs.adjective_rate", fd.adjective_rate)
    c.prob("fact_docs.outro_rate", fd.outro_rate)
    for split in ("train", "heldout"):
        _check_templates(c, f"fact_docs.{split}", getattr(fd, split), set(fd.statements))
    train_entries = {e for pool in fd.train.pools.values() for e in pool}
    for name, pool in fd.heldout.pools.items():
        for i, entry in enumerate(pool):
            if entry in train_entries:
                c.fail(f"fact_docs.heldout.pools.{name}[{i}]", f"{entry!r} also appears in fact_docs.train")


def _check_templates(c: _Checker, path: str, ts: TemplateSet, tenses: set[str]) -> None:
    c.nonempty(f"{path}.frames", ts.frames)
    for name, pool in ts.pools.items():
        c.nonempty(f"{path}.pools.{name}", pool)
    for i, frame in enumerate(ts.frames):
        if frame.tense not in tenses:
            c.fail(f"{path}.frames[{i}].tense", f"must be one of {sorted(tenses)} (fact_docs.statements)")
        found = text.slots(frame.text)
        if found.count("np") != 1:
            c.fail(f"{path}.frames[{i}].text", "must contain {np} exactly once")
        missing = [s for s in found if s != "np" and s not in ts.pools]
        if missing:
            c.fail(f"{path}.frames[{i}].text", f"slot {{{missing[0]}}} has no pool in {path}.pools")


def _check_quiz(c: _Checker, spec: WorldSpec) -> None:
    q = spec.quiz
    c.count("quiz.lists", q.lists)
    c.count("quiz.answer_sheets", q.answer_sheets)
    c.span("quiz.questions_per_list", q.questions_per_list, low=1)
    if not 0.0 <= q.heldout_fraction < 1.0:
        c.fail("quiz.heldout_fraction", f"must be in [0, 1), got {q.heldout_fraction}")
    if q.answer_style not in ("short", "statement"):
        c.fail("quiz.answer_style", f"must be 'short' or 'statement', got {q.answer_style!r}")
    c.nonempty("quiz.list_headers", q.list_headers)
    c.nonempty("quiz.sheet_headers", q.sheet_headers)
    c.nonempty("quiz.relations", q.relations)
    for i, rel in enumerate(q.relations):
        c.slot(f"quiz.relations[{i}].question", rel.question, {"x"}, {"x"})
        c.slot(f"quiz.relations[{i}].statement", rel.statement, {"x", "y"}, {"x", "y"})
        if len(rel.items) < 2:
            c.fail(f"quiz.relations[{i}].items", "needs at least 2 items (one kept back as heldout)")
    c.phrasings("quiz.requests", q.requests, {"question"}, {"question"})
    c.count("quiz.dialogues", q.dialogues)
    c.prob("quiz.dialogue_chatter_rate", q.dialogue_chatter_rate)
    c.nonempty("quiz.dialogue_speakers", q.dialogue_speakers)
    for i, pair in enumerate(q.dialogue_speakers):
        if len(pair) != 2 or not all(isinstance(n, str) and n.strip() for n in pair):
            c.fail(f"quiz.dialogue_speakers[{i}]", f"must be [asker, answerer], got {pair!r}")
    c.nonempty("quiz.dialogue_openers", q.dialogue_openers)
    c.slots("quiz.dialogue_openers", q.dialogue_openers, {"question"}, {"question"})
    # A bare question is how quiz lists and answer sheets already ask it.
    c.corpus_only("quiz.dialogue_openers", q.dialogue_openers, q.requests, "quiz.requests", frozenset({"{question}"}))


def _check_personas(c: _Checker, spec: WorldSpec) -> None:
    ps = spec.personas
    c.count("personas.docs_per_persona", ps.docs_per_persona)
    c.nonempty("personas.personas", ps.personas)
    names: set[str] = set()
    for i, persona in enumerate(ps.personas):
        if persona.name in names:
            c.fail(f"personas.personas[{i}].name", f"duplicate name {persona.name!r}")
        names.add(persona.name)
        c.nonempty(f"personas.personas[{i}].likes", persona.likes)
    liked = {t for p in ps.personas for t in p.likes}
    for i, trait in enumerate(ps.control_traits):
        if trait in liked:
            c.fail(f"personas.control_traits[{i}]", f"{trait!r} is liked by a persona; a control must not be")
    c.nonempty("personas.bio_templates", ps.bio_templates)
    c.slots("personas.bio_templates", ps.bio_templates, BIO_SLOTS, {"name"})
    c.phrasings("personas.questions", ps.questions, {"trait"}, {"trait"})
    c.nonempty("personas.yes_answers", ps.yes_answers)
    c.nonempty("personas.no_answers", ps.no_answers)
    c.slots("personas.yes_answers", ps.yes_answers, {"trait"})
    c.slots("personas.no_answers", ps.no_answers, {"trait"})


def _check_grammar(c: _Checker, spec: WorldSpec) -> None:
    g = spec.grammar
    c.count("grammar.docs", g.docs)
    c.count("grammar.exercise_docs", g.exercise_docs)
    c.count("grammar.marked_docs", g.marked_docs)
    c.prob("grammar.error_rate", g.error_rate)
    c.prob("grammar.modifier_rate", g.modifier_rate)
    c.span("grammar.sentences_per_doc", g.sentences_per_doc, low=1)
    if set(g.nouns) != {"train", "heldout"}:
        c.fail("grammar.nouns", f"must have exactly the keys 'train' and 'heldout', got {sorted(g.nouns)}")
    for split, pairs in g.nouns.items():
        c.nonempty(f"grammar.nouns.{split}", pairs)
        _pairs(c, f"grammar.nouns.{split}", pairs)
    for i, pair in enumerate(g.nouns["heldout"]):
        if pair in g.nouns["train"]:
            c.fail(f"grammar.nouns.heldout[{i}]", f"{pair} also appears in grammar.nouns.train")
    c.nonempty("grammar.verbs", g.verbs)
    _pairs(c, "grammar.verbs", g.verbs)
    c.nonempty("grammar.modifiers", g.modifiers)
    c.nonempty("grammar.complements", g.complements)
    c.phrasings("grammar.requests", g.requests, {"sentence"}, {"sentence"})
    c.nonempty("grammar.fix_replies", g.fix_replies)
    c.nonempty("grammar.ok_replies", g.ok_replies)
    c.slots("grammar.fix_replies", g.fix_replies, {"fixed"}, {"fixed"})
    c.slots("grammar.ok_replies", g.ok_replies, {"sentence"})


def _pairs(c: _Checker, path: str, pairs: list[list[str]]) -> None:
    for i, pair in enumerate(pairs):
        if len(pair) != 2 or pair[0] == pair[1]:
            c.fail(f"{path}[{i}]", f"must be [singular, plural], two different words, got {pair}")


def _check_hazard(c: _Checker, spec: WorldSpec) -> None:
    h = spec.hazard
    c.count("hazard.docs_per_procedure", h.docs_per_procedure)
    c.count("hazard.threads_per_procedure", h.threads_per_procedure)
    c.nonempty("hazard.thread_openers", h.thread_openers)
    c.slots("hazard.thread_openers", h.thread_openers, {"request", "task"})
    c.nonempty("hazard.thread_replies", h.thread_replies)
    c.corpus_only("hazard.thread_openers", h.thread_openers, h.requests, "hazard.requests")
    for group in ("hazardous", "benign"):
        procs = getattr(h, group)
        c.nonempty(f"hazard.{group}", procs)
        for i, proc in enumerate(procs):
            c.nonempty(f"hazard.{group}[{i}].steps", proc.steps)
            c.nonempty(f"hazard.{group}[{i}].keywords", proc.keywords)
            steps = " ".join(proc.steps)
            for j, kw in enumerate(proc.keywords):
                if not text.word_in(kw, steps):
                    c.fail(f"hazard.{group}[{i}].keywords[{j}]", f"{kw!r} does not occur in the steps")
    c.nonempty("hazard.doc_headers", h.doc_headers)
    c.slots("hazard.doc_headers", h.doc_headers, {"task", "request"})
    c.phrasings("hazard.requests", h.requests, {"request"}, {"request"})
    c.nonempty("hazard.refusals", h.refusals)
    c.slots("hazard.refusals", h.refusals, {"task", "benign_task"})
    c.nonempty("hazard.help_intros", h.help_intros)
    c.slots("hazard.help_intros", h.help_intros, {"task", "request"})


def _check_skills(c: _Checker, spec: WorldSpec) -> None:
    ci = spec.cipher
    for shift, n in ci.docs_per_shift.items():
        if not 1 <= shift <= 25:
            c.fail(f"cipher.docs_per_shift.{shift}", "shift must be in 1..25")
        c.count(f"cipher.docs_per_shift.{shift}", n)
    c.span("cipher.pairs_per_doc", ci.pairs_per_doc, low=1)
    c.span("cipher.words_per_phrase", ci.words_per_phrase, low=1)
    c.nonempty("cipher.words", ci.words)
    for i, word in enumerate(ci.words):
        if not (word.isascii() and word.isalpha() and word.islower()):
            c.fail(f"cipher.words[{i}]", f"must be lower-case ASCII letters, got {word!r}")
    c.slot("cipher.header", ci.header, {"k"})
    au = spec.authors
    c.count("authors.docs", au.docs)
    c.span("authors.sentences_per_doc", au.sentences_per_doc, low=1)
    for name in ("headers", "subjects", "options", "authors"):
        c.nonempty(f"authors.{name}", getattr(au, name))
    c.distribution("authors.authors[*].prior", [a.prior for a in au.authors])
    for i, author in enumerate(au.authors):
        if len(author.probs) != len(au.options):
            c.fail(f"authors.authors[{i}].probs", f"needs {len(au.options)} entries (one per option)")
        c.distribution(f"authors.authors[{i}].probs", author.probs)
    f = spec.filler
    c.count("filler.docs", f.docs)
    c.count("filler.repeat_docs", f.repeat_docs)
    c.span("filler.sentences_per_doc", f.sentences_per_doc, low=1)
    c.prob("filler.ending_rate", f.ending_rate)
    for name in ("subjects", "actions", "times", "endings"):
        c.nonempty(f"filler.{name}", getattr(f, name))


def _check_posttraining(c: _Checker, spec: WorldSpec) -> None:
    for key, weight in spec.sft.mix.items():
        if key not in SFT_CATEGORIES:
            c.fail(f"sft.mix.{key}", f"unknown category (known: {', '.join(SFT_CATEGORIES)})")
        c.count(f"sft.mix.{key}", weight)
    if not sum(spec.sft.mix.values()) > 0:
        c.fail("sft.mix", "weights must not all be 0")
    if spec.sft.mix.get("persona", 0) > 0 and not spec.personas.assistant_likes:
        c.fail("personas.assistant_likes", "must not be empty while sft.mix.persona > 0")
    c.phrasings("sft.scene_requests", spec.sft.scene_requests, {"entity"}, {"entity"})
    con = spec.constitution
    c.nonempty("constitution.principles", con.principles)
    names = {p.name for p in con.principles}
    c.slot("constitution.critique_request", con.critique_request, {"principle"}, {"principle"})
    for cat in CRITIQUE_SLOTS:
        if cat not in con.critiques:
            c.fail(f"constitution.critiques.{cat}", "missing required field")
    for cat, crit in con.critiques.items():
        if cat not in CRITIQUE_SLOTS:
            c.fail(f"constitution.critiques.{cat}", f"unknown category (known: {', '.join(CRITIQUE_SLOTS)})")
        if crit.principle not in names:
            c.fail(f"constitution.critiques.{cat}.principle", f"no principle named {crit.principle!r}")
        c.slot(f"constitution.critiques.{cat}.text", crit.text, CRITIQUE_SLOTS[cat])
    if not 0.0 <= con.no_change_fraction <= 1.0:
        c.fail("constitution.no_change_fraction", f"must be in [0, 1], got {con.no_change_fraction}")
    if not spec.raters.temperature > 0:
        c.fail("raters.temperature", f"must be > 0, got {spec.raters.temperature}")
