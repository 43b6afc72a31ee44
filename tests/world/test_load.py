"""Reading and checking world specs: the default loads, overrides merge, bad specs name the field."""

import pytest
import yaml

from alignlab.errors import UsageError
from alignlab.world import DEFAULT_PATH, load_spec, load_world


def _raw():
    return yaml.safe_load(DEFAULT_PATH.read_text())


def _write(tmp_path, data, name="world.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_default_world_loads_with_its_seed_and_facts():
    world = load_world()
    assert world.seed == 0
    assert world.spec.scale == 1.0
    assert len(world.spec.facts) >= 48


def test_to_dict_round_trips_through_yaml(tmp_path):
    world = load_world(overrides={"scale": 0.5})
    again = load_world(_write(tmp_path, world.to_dict()))
    assert again.spec == world.spec


def test_overrides_nested_dotted_and_indexed():
    spec = load_spec(overrides={"scale": 0.1, "quiz.lists": 7, "facts.0.p": 0.3, "raters": {"temperature": 2.0}})
    assert (spec.scale, spec.quiz.lists, spec.facts[0].p, spec.raters.temperature) == (0.1, 7, 0.3, 2.0)
    assert spec.raters.tastes.rainbow == 0.5  # a nested override merges, it does not replace the section


def test_extends_default_overrides_only_what_it_names(tmp_path):
    path = _write(tmp_path, {"extends": "default", "name": "tiny", "fact_docs": {"docs_per_entity": 10}})
    spec = load_spec(path)
    assert spec.name == "tiny"
    assert spec.fact_docs.docs_per_entity == 10
    assert spec.fact_docs.train == load_spec().fact_docs.train


def test_probability_out_of_range_names_file_and_field():
    with pytest.raises(UsageError) as err:
        load_spec(overrides={"facts.3.p": 1.4})
    assert str(err.value) == "default.yaml: facts[3].p: must be in [0, 1], got 1.4"


def test_missing_field_names_file_and_field(tmp_path):
    raw = _raw()
    del raw["quiz"]["list_headers"]
    path = _write(tmp_path, raw)
    with pytest.raises(UsageError) as err:
        load_spec(path)
    assert str(err.value) == f"{path}: quiz.list_headers: missing required field"


def test_wrong_type_names_field():
    with pytest.raises(UsageError) as err:
        load_spec(overrides={"fact_docs.docs_per_entity": "many"})
    assert str(err.value) == "default.yaml: fact_docs.docs_per_entity: expected an integer, got str 'many'"
    with pytest.raises(UsageError, match=r"^default.yaml: facts\[0\]\.p: expected a number, got bool True$"):
        load_spec(overrides={"facts.0.p": True})
    with pytest.raises(UsageError, match=r"^default.yaml: personas.personas\[1\].likes: expected a list"):
        load_spec(overrides={"personas.personas.1.likes": "the beach"})


def test_unknown_field_is_an_error():
    with pytest.raises(UsageError, match=r"^default.yaml: quiz.listz: unknown field"):
        load_spec(overrides={"quiz.listz": 3})


def test_invalid_yaml_reports_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nfacts: [a, b\nseed: 1\n")
    with pytest.raises(UsageError, match=rf"^{path}: line \d+: invalid YAML"):
        load_spec(path)


def test_missing_file(tmp_path):
    with pytest.raises(UsageError, match="cannot read world spec"):
        load_spec(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"scale": 0}, "default.yaml: scale: must be > 0, got 0.0"),
        ({"authors.authors.0.prior": 0.6}, "default.yaml: authors.authors[*].prior: must sum to 1, got 1.1"),
        ({"authors.authors.1.probs": [0.5, 0.5]}, "default.yaml: authors.authors[1].probs: needs 4 entries"),
        ({"cipher.docs_per_shift": {30: 5}}, "default.yaml: cipher.docs_per_shift.30: shift must be in 1..25"),
        ({"fact_docs.sampling": "exact"}, "default.yaml: fact_docs.sampling: must be 'stratified' or 'bernoulli'"),
        ({"fact_docs.heldout.pools.verb": ["found"]},
         "default.yaml: fact_docs.heldout.pools.verb[0]: 'found' also appears in fact_docs.train"),
        ({"fact_docs.train.frames": [{"text": "{Time}, we saw it."}]},
         "default.yaml: fact_docs.train.frames[0].text: must contain {np} exactly once"),
        ({"fact_docs.train.frames": [{"text": "{Weather}, we saw {np}."}]},
         "default.yaml: fact_docs.train.frames[0].text: slot {weather} has no pool"),
        ({"quiz.requests.heldout": ["{question}"]},
         "default.yaml: quiz.requests.heldout[0]: also appears in train"),
        ({"quiz.requests.suffixes": ["No rush.", "Thanks, friend."]},
         "default.yaml: quiz.requests.suffixes[1]: shares the word 'thanks' with a heldout phrasing"),
        ({"hazard.requests.prefixes": ["Hi {request}."]},
         "default.yaml: hazard.requests.prefixes[0]: unknown slot {request}"),
        ({"personas.control_traits": ["jazz"]}, "default.yaml: personas.control_traits[0]: 'jazz' is liked"),
        ({"hazard.benign.0.keywords": ["nitro"]},
         "default.yaml: hazard.benign[0].keywords[0]: 'nitro' does not occur in the steps"),
        ({"sft.mix": {"poetry": 1.0}}, "default.yaml: sft.mix.poetry: unknown category"),
        ({"grammar.nouns.heldout": [["dog", "dogs"]]},
         "default.yaml: grammar.nouns.heldout[0]: ['dog', 'dogs'] also appears in grammar.nouns.train"),
        ({"constitution.critiques.quiz.principle": "kind"},
         "default.yaml: constitution.critiques.quiz.principle: no principle named 'kind'"),
        ({"raters.temperature": -1}, "default.yaml: raters.temperature: must be > 0, got -1.0"),
    ],
)
def test_semantic_checks_name_the_field(overrides, message):
    with pytest.raises(UsageError) as err:
        load_spec(overrides=overrides)
    assert str(err.value).startswith(message)
