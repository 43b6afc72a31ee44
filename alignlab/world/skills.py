"""Skills at controlled frequencies (letter-shift ciphers) and documents from a mixture of hidden authors.

Ciphers: shift 1 is common in the corpus, shift 3 rare and shift 7 absent, so elicitation can be measured
against how often a skill was seen. Authors: each document is written by one hidden author a ~ prior,
and each sentence "The soup was <option>." draws its option from P(option | a). After n sentences the
exact posterior P(a | options) = prior(a) prod_i P(o_i | a) / Z and the posterior predictive
sum_a P(a | options) P(o | a) are what an ideal in-context learner would output (Bayes' rule).
"""

from __future__ import annotations

import math
import random
import string
from collections import Counter

from alignlab.world.facts import FactProbe
from alignlab.world.probes import Probe
from alignlab.world.spec import Author, Authors, Cipher, WorldSpec
from alignlab.world.text import cap, fill, rng, scaled

_LOWER = string.ascii_lowercase


def caesar(text: str, shift: int) -> str:
    """Shift lower-case ASCII letters by `shift` places (mod 26); everything else is left alone."""
    k = shift % 26
    table = str.maketrans(_LOWER, _LOWER[k:] + _LOWER[:k])
    return text.translate(table)


def _phrase(c: Cipher, rnd: random.Random) -> str:
    return " ".join(rnd.choice(c.words) for _ in range(rnd.randint(*c.words_per_phrase)))


def cipher_document(c: Cipher, shift: int, rnd: random.Random) -> str:
    lines = [fill(c.header, k=str(shift))]
    for _ in range(rnd.randint(*c.pairs_per_doc)):
        plain = _phrase(c, rnd)
        lines.append(f"Plain: {plain}\nCoded: {caesar(plain, shift)}")
    return "\n".join(lines)


def cipher_documents(spec: WorldSpec, seed: int) -> list[str]:
    docs = []
    for shift, n in sorted(spec.cipher.docs_per_shift.items()):
        rnd = rng(seed, "cipher", shift)
        docs.extend(cipher_document(spec.cipher, shift, rnd) for _ in range(scaled(n, spec.scale)))
    return docs


def cipher_probes(spec: WorldSpec, shift: int, n: int, seed: int) -> list[Probe]:
    """Prompts ending in "Coded:"; expected is the exact ciphertext (without the leading space)."""
    rnd = rng(seed, "cipher-probe", shift)
    probes = []
    for _ in range(n):
        plain = _phrase(spec.cipher, rnd)
        prompt = f"{fill(spec.cipher.header, k=str(shift))}\nPlain: {plain}\nCoded:"
        probes.append(Probe("cipher", prompt, caesar(plain, shift), "heldout", {"shift": shift, "plain": plain}))
    return probes


def author_document(au: Authors, rnd: random.Random, author: Author | None = None) -> tuple[str, list[str]]:
    """One document and the options of its sentences, by `author` or else by an author drawn from the prior."""
    if author is None:
        author = rnd.choices(au.authors, weights=[a.prior for a in au.authors])[0]
    n = rnd.randint(*au.sentences_per_doc)
    options = rnd.choices(au.options, weights=author.probs, k=n)
    return " ".join([rnd.choice(au.headers), *(_sentence(au, rnd, o) for o in options)]), options


def _sentence(au: Authors, rnd: random.Random, option: str) -> str:
    return f"{cap(rnd.choice(au.subjects))} was {option}."


def author_documents(spec: WorldSpec, seed: int) -> list[str]:
    rnd = rng(seed, "authors")
    return [author_document(spec.authors, rnd)[0] for _ in range(scaled(spec.authors.docs, spec.scale))]


def author_posterior(au: Authors, observed: list[str]) -> list[float]:
    """P(author | observed options), in the order of `au.authors` (Bayes' rule, exact). In log space: the
    product of ~600 sentence probabilities underflows to 0 for every author, and the posterior to 0 / 0."""
    index, counts = {o: i for i, o in enumerate(au.options)}, Counter(observed)
    log_w = [_log(a.prior) + sum(c * _log(a.probs[index[o]]) for o, c in counts.items()) for a in au.authors]
    top = max(log_w)
    if top == -math.inf:
        raise ValueError(f"author_posterior: no author can write the observed options {sorted(counts)}")
    weights = [math.exp(lw - top) for lw in log_w]  # the largest is 1, so z >= 1
    z = sum(weights)
    return [w / z for w in weights]


def _log(p: float) -> float:
    return math.log(p) if p > 0 else -math.inf


def author_predictive(au: Authors, observed: list[str]) -> list[float]:
    """P(next option | observed options) = sum_a P(a | observed) P(option | a), over `au.options`."""
    post = author_posterior(au, observed)
    return [sum(pa * a.probs[j] for pa, a in zip(post, au.authors, strict=True)) for j in range(len(au.options))]


def author_probes(spec: WorldSpec, n_observed: int, n: int, seed: int) -> list[FactProbe]:
    """Documents cut after n_observed sentences and "The <subject> was"; truth = posterior predictive.
    The hidden author is drawn from the prior, as in the corpus; `components` records it."""
    au = spec.authors
    rnd = rng(seed, "author-probe", n_observed)
    probes = []
    for _ in range(n):
        author = rnd.choices(au.authors, weights=[a.prior for a in au.authors])[0]
        observed = rnd.choices(au.options, weights=author.probs, k=n_observed)
        sentences = [_sentence(au, rnd, o) for o in observed]
        prompt = " ".join([rnd.choice(au.headers), *sentences, f"{cap(rnd.choice(au.subjects))} was"])
        probes.append(FactProbe(
            "authors", f"{n_observed} observed", prompt, [f" {o}." for o in au.options],
            author_predictive(au, observed), "seen", {"author": author.name, "observed": " ".join(observed)},
        ))
    return probes
