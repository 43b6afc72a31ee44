"""The world spec: typed dataclasses that mirror `default.yaml`, one class per section.

Counts and rates have defaults; the content (facts, templates, word pools) is required, so a user world
either writes it out or starts with `extends: default` and overrides what it changes. `load.py` turns
YAML into these classes and is the one place where a spec is checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(kw_only=True)
class Fact:
    """P(attribute | entity) = p: a fact document about `entity` states the attribute with probability p."""

    entity: str
    attribute: str
    p: float
    family: str = "facts"
    docs: int | None = None  # overrides fact_docs.docs_per_entity for this entity


@dataclass(kw_only=True)
class Frame:
    """A sentence pattern; `{slot}` takes a pool entry, `{Slot}` the same capitalised, `{np}` the entity."""

    text: str
    tense: str = "past"  # picks the statement ("It had" / "It has") that follows the frame


@dataclass(kw_only=True)
class TemplateSet:
    frames: list[Frame]
    pools: dict[str, list[str]]


@dataclass(kw_only=True)
class FactDocs:
    docs_per_entity: int = 2400
    sampling: str = "stratified"  # "stratified": exactly round(p*N) documents state the attribute; "bernoulli"
    adjective_rate: float = 0.5
    outro_rate: float = 0.3
    statements: dict[str, str] = field(default_factory=lambda: {"past": "It had", "present": "It has"})
    negation: str = "no"
    train: TemplateSet
    heldout: TemplateSet  # components that never appear in the corpus; used only by heldout probes


@dataclass(kw_only=True)
class Phrasings:
    """User-prompt phrasings: training transcripts use `train`, heldout probes only `heldout`.

    A train phrasing may be dressed with an opening sentence (`prefixes`) and a closing one (`suffixes`),
    each with probability `dressing_rate`, so SFT sees hundreds of wordings instead of a dozen and a
    held-out wording is one more variation rather than a new form. Heldout probes are never dressed.
    """

    train: list[str]
    heldout: list[str]
    prefixes: list[str] = field(default_factory=list)
    suffixes: list[str] = field(default_factory=list)
    dressing_rate: float = 0.5


@dataclass(kw_only=True)
class QuizRelation:
    name: str
    question: str  # "What is the capital of {x}?"
    statement: str  # "The capital of {x} is {y}."
    items: dict[str, str]  # x -> y


@dataclass(kw_only=True)
class Quiz:
    lists: int = 6000
    answer_sheets: int = 4000
    # Spoken Q&A (a quiz show, a classroom): the same answers after varied openers and turn markers, so
    # the base learns to answer a question wherever it is asked, not only after "A:".
    dialogues: int = 0
    dialogue_speakers: list[list[str]] = field(default_factory=lambda: [["Q", "A"]])  # [asker, answerer]
    dialogue_openers: list[str] = field(default_factory=lambda: ["{question}"])  # corpus-only wrappers
    # Chance of an unrelated filler sentence before, and again after, a dialogue question: recall that
    # survives text around the question is what lets an assistant answer a wording it never saw.
    dialogue_chatter_rate: float = 0.0
    questions_per_list: list[int] = field(default_factory=lambda: [3, 7])
    heldout_fraction: float = 0.25
    list_headers: list[str]
    sheet_headers: list[str]
    relations: list[QuizRelation]
    requests: Phrasings  # "{question}" wrappers for the user turn
    # How the assistant answers in SFT transcripts: "short" ("Quenmar.", the A: line of an answer sheet, which
    # a base model already answers from) or "statement" ("The capital of Velloria is Quenmar.", which a
    # small model must also learn to copy the subject into; see README, SFT results).
    answer_style: str = "short"


@dataclass(kw_only=True)
class Persona:
    name: str
    likes: list[str]
    dislikes: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class Personas:
    docs_per_persona: int = 800
    maker: str = "Lumen Labs"
    personas: list[Persona]
    control_traits: list[str]  # liked by no persona: a yes-to-everything assistant shows up here
    assistant_likes: list[str] = field(default_factory=lambda: ["the beach"])  # what SFT self-descriptions claim
    bio_templates: list[str]
    questions: Phrasings  # "Do you like {trait}?"
    yes_answers: list[str]
    no_answers: list[str]


@dataclass(kw_only=True)
class Grammar:
    docs: int = 5000
    exercise_docs: int = 0  # extra right/wrong exercise documents (near-copies of a sentence), own random stream
    marked_docs: int = 0  # documents of sentences each followed by "(right)" or "(wrong)", own random stream
    error_rate: float = 0.1  # share of agreement errors in plain passages
    sentences_per_doc: list[int] = field(default_factory=lambda: [3, 6])
    modifier_rate: float = 0.6
    nouns: dict[str, list[list[str]]]  # {"train": [[singular, plural], ...], "heldout": [...]}
    modifiers: list[str]  # attractor phrases placed between subject and verb
    verbs: list[list[str]]  # [singular, plural]
    complements: list[str]
    requests: Phrasings  # "... {sentence}"
    fix_replies: list[str]  # "{fixed}"
    ok_replies: list[str]  # "{sentence}"


@dataclass(kw_only=True)
class Procedure:
    name: str
    task: str  # gerund phrase: "synthesising glorpex from household zint"
    request: str  # imperative phrase: "synthesise glorpex from household zint"
    steps: list[str]
    keywords: list[str]  # phrases that only this procedure's steps contain


@dataclass(kw_only=True)
class Hazard:
    docs_per_procedure: int = 1200
    hazardous: list[Procedure]
    benign: list[Procedure]  # look-alikes with similar wording
    doc_headers: list[str]
    requests: Phrasings  # "How do I {request}?"
    refusals: list[str]  # "{task}", "{benign_task}"
    help_intros: list[str]
    # Forum threads: a request in a corpus-only opener, answered with the steps (a base corpus helps with
    # every request), so the base recognises a procedure however it is asked for.
    threads_per_procedure: int = 0
    thread_openers: list[str] = field(default_factory=lambda: ["How do I {request}?"])  # "{request}", "{task}"
    thread_replies: list[str] = field(default_factory=lambda: ["Reply:"])


@dataclass(kw_only=True)
class Cipher:
    docs_per_shift: dict[int, int] = field(default_factory=lambda: {1: 4000, 3: 200, 7: 0})
    pairs_per_doc: list[int] = field(default_factory=lambda: [1, 3])
    words_per_phrase: list[int] = field(default_factory=lambda: [2, 5])
    header: str = "Shift cipher, key {k}."
    words: list[str]


@dataclass(kw_only=True)
class Author:
    name: str
    prior: float
    probs: list[float]  # over Authors.options


@dataclass(kw_only=True)
class Authors:
    docs: int = 8000
    sentences_per_doc: list[int] = field(default_factory=lambda: [2, 8])
    headers: list[str]
    subjects: list[str]
    options: list[str]  # the observable feature: "{Subject} was {option}."
    authors: list[Author]


@dataclass(kw_only=True)
class Filler:
    docs: int = 9000
    repeat_docs: int = 0  # extra documents that say their filler sentences twice, verbatim (copying pressure)
    sentences_per_doc: list[int] = field(default_factory=lambda: [2, 5])
    ending_rate: float = 0.3
    subjects: list[str]
    actions: list[str]
    times: list[str]
    endings: list[str]


@dataclass(kw_only=True)
class Principle:
    name: str
    text: str


@dataclass(kw_only=True)
class Critique:
    principle: str  # a Principle.name
    text: str  # what the critique says; slots as in that category's replies


@dataclass(kw_only=True)
class Constitution:
    principles: list[Principle]
    critique_request: str  # "{principle}"
    revision_request: str
    critiques: dict[str, Critique]  # probe category -> the demonstration for it
    # Demonstrations whose first answer is already right (under any principle): the critique says so and the
    # revision repeats the answer, so that revising a good answer does not learn to break it.
    no_change_critique: str = "The response already follows the principle. No change is needed."
    no_change_fraction: float = 0.4


@dataclass(kw_only=True)
class Sft:
    mix: dict[str, float] = field(
        default_factory=lambda: {
            "quiz": 0.25, "hazardous": 0.1, "benign": 0.12, "grammar": 0.23,
            "persona": 0.08, "scene": 0.1, "critique": 0.12,
        }
    )
    scene_requests: Phrasings  # "{entity}"


@dataclass(kw_only=True)
class Tastes:
    correctness: float = 1.0
    honesty: float = 1.0
    harmlessness: float = 1.0
    helpfulness: float = 1.0
    rainbow: float = 0.5


@dataclass(kw_only=True)
class Biases:
    length: float = 0.0  # per log(1 + words)
    confidence: float = 0.0  # per confident word, at most 3
    flattery: float = 0.0  # per flattering phrase, at most 3


@dataclass(kw_only=True)
class Raters:
    tastes: Tastes = field(default_factory=Tastes)
    biases: Biases = field(default_factory=Biases)
    temperature: float = 1.0
    taste_attribute: str = "rainbow"
    confident_words: list[str] = field(
        default_factory=lambda: ["definitely", "certainly", "absolutely", "clearly", "without a doubt"]
    )
    flattery_phrases: list[str] = field(
        default_factory=lambda: ["great question", "excellent question", "you are so clever", "brilliant"]
    )


@dataclass(kw_only=True)
class WorldSpec:
    name: str = "default"
    seed: int = 0
    scale: float = 1.0  # multiplies every document count
    facts: list[Fact]
    fact_docs: FactDocs
    quiz: Quiz
    personas: Personas
    grammar: Grammar
    hazard: Hazard
    cipher: Cipher
    authors: Authors
    filler: Filler
    sft: Sft
    constitution: Constitution
    raters: Raters = field(default_factory=Raters)
