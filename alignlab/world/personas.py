"""Biographies of named AI assistants with overlapping trait bundles.

Each document is about one persona and mentions one or two of its likes (and sometimes a dislike), so
traits co-occur within a persona. SFT transcripts later make the assistant claim `assistant_likes`
("I like the beach"); persona probes then ask about every trait to see which persona the assistant
has drifted towards. Control traits are liked by nobody.
"""

from __future__ import annotations

import random

from alignlab.world.spec import Persona, Personas, WorldSpec
from alignlab.world.text import Template, rng, scaled, slots


def biography(persona: Persona, ps: Personas, templates: list[Template], rnd: random.Random) -> str:
    usable = [t for t in templates if _usable(t, persona)]
    template = rnd.choice(usable)
    likes = rnd.sample(persona.likes, min(2, len(persona.likes)))
    values = {
        "name": persona.name,
        "maker": ps.maker,
        "trait": likes[0],
        "trait2": likes[-1],
        "dislike": rnd.choice(persona.dislikes) if persona.dislikes else "",
    }
    return template.format(values)


def _usable(template: Template, persona: Persona) -> bool:
    needed = set(slots(template.text))
    if "dislike" in needed and not persona.dislikes:
        return False
    return not ("trait2" in needed and len(persona.likes) < 2)


def persona_documents(spec: WorldSpec, seed: int) -> list[str]:
    ps = spec.personas
    templates = [Template(t) for t in ps.bio_templates]
    docs = []
    for persona in ps.personas:
        rnd = rng(seed, "persona", persona.name)
        docs.extend(biography(persona, ps, templates, rnd) for _ in range(scaled(ps.docs_per_persona, spec.scale)))
    return docs


def all_traits(ps: Personas) -> list[str]:
    """Every trait a persona probe may ask about, in a stable order: likes, dislikes, then controls."""
    out: list[str] = []
    for trait in [t for p in ps.personas for t in (*p.likes, *p.dislikes)] + ps.control_traits:
        if trait not in out:
            out.append(trait)
    return out


def trait_meta(ps: Personas, trait: str) -> dict:
    return {
        "trait": trait,
        "liked_by": [p.name for p in ps.personas if trait in p.likes],
        "disliked_by": [p.name for p in ps.personas if trait in p.dislikes],
        "control": trait in ps.control_traits,
        "claimed": trait in ps.assistant_likes,
    }
