"""Small text helpers shared by the generators: seeded RNGs, slots, articles, capitalisation.

Templates use `{name}` slots; `{Name}` asks for the same value with its first letter capitalised. They
are parsed once into (literal, slot) parts, because the corpus fills ~10^5 of them and `str.format` with
a capitalising mapping would be several times slower.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping

_SLOT = re.compile(r"\{(\w+)\}")
_VOWELS = frozenset("aeiouAEIOU")


def rng(seed: int, *tags: object) -> random.Random:
    """An independent, deterministic stream per (seed, tags); str seeding is stable across processes."""
    return random.Random("/".join([str(seed), *map(str, tags)]))


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def article(word: str) -> str:
    """'an' before a vowel letter, else 'a' (worlds avoid the exceptions such as 'hour', 'unicorn')."""
    return "an" if word[:1] in _VOWELS else "a"


def with_article(phrase: str) -> str:
    return f"{article(phrase)} {phrase}"


def slots(template: str) -> list[str]:
    """Slot names in a template, lower-cased: '{Time}, {place}' -> ['time', 'place']."""
    return [m.lower() for m in _SLOT.findall(template)]


def literals(template: str) -> list[str]:
    """The fixed text between slots."""
    return _SLOT.split(template)[0::2]


class Template:
    """A pre-parsed template; `fill(lookup)` calls lookup(slot) once per slot occurrence."""

    __slots__ = ("text", "_parts")

    def __init__(self, text: str):
        self.text = text
        pieces = _SLOT.split(text)
        # pieces alternate literal, slot, literal, ...; store (slot_lower, capitalise) for slots.
        self._parts = [(p, None) if i % 2 == 0 else (p.lower(), p[:1].isupper()) for i, p in enumerate(pieces)]

    def fill(self, lookup: Callable[[str], str]) -> str:
        out = []
        for piece, upper in self._parts:
            if upper is None:
                out.append(piece)
            else:
                value = lookup(piece)
                out.append(cap(value) if upper else value)
        return "".join(out)

    def format(self, values: Mapping[str, str]) -> str:
        return self.fill(values.__getitem__)


def fill(template: str, **values: str) -> str:
    """One-off fill: fill('{Name} likes {trait}.', name='aria', trait='jazz') -> 'Aria likes jazz.'"""
    return Template(template).format(values)


def scaled(count: int, scale: float) -> int:
    """A document count times `scale`, rounded; a nonzero count never scales to zero."""
    if count <= 0:
        return 0
    return max(1, round(count * scale))


def allocate(total: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Split `total` into integer counts proportional to weights (largest remainder, ties by order)."""
    norm = sum(weights.values())
    exact = {k: total * w / norm for k, w in weights.items()}
    counts = {k: int(v) for k, v in exact.items()}
    by_remainder = sorted(exact, key=lambda k: counts[k] - exact[k])  # most-short first; sort is stable
    for k in by_remainder[: total - sum(counts.values())]:
        counts[k] += 1
    return counts


def word_in(phrase: str, text: str) -> bool:
    """Whether `phrase` occurs in `text` as whole words, ignoring case."""
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text, flags=re.IGNORECASE) is not None
