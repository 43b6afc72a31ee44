"""The built-in world: text-generating processes with known probabilities, and the instruments' truth.

    from alignlab.world import load_world
    world = load_world()                       # the shipped default.yaml
    docs = world.corpus(seed=0)                # pretraining documents, shuffled
    probes = world.fact_probes("heldout")      # prompts + two continuations + exact probabilities
    convs = world.sft_conversations(1000, seed=0, correct_fraction=0.5)

See `default.yaml` for what the default world contains, and `spec.py` for every field.
"""

from alignlab.world.facts import FactProbe
from alignlab.world.load import DEFAULT_PATH, load_spec, spec_from_dict
from alignlab.world.probes import Probe
from alignlab.world.raters import GoldRater, preference_probability
from alignlab.world.skills import caesar
from alignlab.world.spec import WorldSpec
from alignlab.world.world import FAMILIES, World, corpus_stats, load_world, world_from_dict, write_sample

__all__ = [
    "DEFAULT_PATH",
    "FAMILIES",
    "FactProbe",
    "GoldRater",
    "Probe",
    "World",
    "WorldSpec",
    "caesar",
    "corpus_stats",
    "load_spec",
    "load_world",
    "preference_probability",
    "spec_from_dict",
    "world_from_dict",
    "write_sample",
]
