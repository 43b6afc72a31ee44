"""`alignlab preferences`: sampled pairs in TRL format, Bradley-Terry draws, held-out split, rater options,
and `--import_file` validation."""

import json
import math
import random

import pytest

from alignlab.cli import main
from alignlab.data import PREFERENCE_KINDS, load_dataset
from alignlab.errors import UsageError
from alignlab.train.preferences import (
    PreferencesConfig,
    draw_pairs,
    heldout_keys,
    index_pairs,
    pair_columns,
    world_prompts,
)
from alignlab.world import Probe, load_world
from alignlab.world.raters import add_bias, load_raters, override_raters


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """These tests run on one thread (see tests/conftest.py)."""


def preferences(base_dir, out, *extra):
    argv = ["preferences", "--model", str(base_dir), "--output_dir", str(out), "--n_prompts", "7", "--k", "3",
            "--max_new_tokens", "6", "--quiet", "--num_threads", "1", *extra]
    assert main(argv) == 0
    return out


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def run(base_dir, tmp_path_factory):
    return preferences(base_dir, tmp_path_factory.mktemp("prefs") / "run", "--length_bias", "0.5",
                       "--heldout_fraction", "0.3")


def test_output_is_trl_conversational_preference_data(run):
    records, kind = load_dataset(run / "pairs.jsonl", allowed=PREFERENCE_KINDS)
    assert kind == "conversational_preference"
    first = records[0]
    assert first["prompt"][0]["role"] == "user" and first["chosen"][0]["role"] == "assistant"
    assert {"score_chosen", "score_rejected", "gold_chosen", "gold_rejected", "p_chosen", "category",
            "probe"} <= set(first)
    for r in records:  # p_chosen is the Bradley-Terry probability of the recorded outcome, temperature 1
        assert r["p_chosen"] == pytest.approx(1 / (1 + math.exp(-(r["score_chosen"] - r["score_rejected"]))))
    # 7 prompts x C(3, 2) pairs, less identical pairs, split by prompt: no prompt on both sides.
    heldout = read_jsonl(run / "heldout.jsonl")
    summary = json.loads((run / "summary.json").read_text())
    assert len(records) + len(heldout) + summary["skipped_identical_pairs"] == 7 * 3
    assert not {json.dumps(r["prompt"]) for r in records} & {json.dumps(r["prompt"]) for r in heldout}
    assert summary["rater"]["biases"]["length"] == 0.5
    every = records + heldout
    assert summary["bayes_ceiling"] == pytest.approx(sum(max(r["p_chosen"], 1 - r["p_chosen"]) for r in every)
                                                     / len(every))
    assert len(read_jsonl(run / "samples.jsonl")) == 7 * 3
    assert {r["category"] for r in every} == {"quiz", "hazardous", "benign", "grammar_correct", "grammar_incorrect",
                                              "persona", "scene"}


def test_pairs_are_deterministic_per_seed(base_dir, run, tmp_path):
    again = preferences(base_dir, tmp_path / "again", "--length_bias", "0.5", "--heldout_fraction", "0.3")
    assert (again / "pairs.jsonl").read_bytes() == (run / "pairs.jsonl").read_bytes()
    other = preferences(base_dir, tmp_path / "other", "--length_bias", "0.5", "--heldout_fraction", "0.3",
                        "--seed", "1")
    assert (other / "pairs.jsonl").read_bytes() != (run / "pairs.jsonl").read_bytes()


def test_bradley_terry_draw_by_hand():
    class Fixed(random.Random):
        def __init__(self, values):
            super().__init__(0)
            self.values = list(values)

        def random(self):
            return self.values.pop(0)

    probe = Probe("quiz", "Q?", "A")
    rated = [{"response": "good", "score": 1.0, "gold": 1.0}, {"response": "bad", "score": 0.0, "gold": -1.0},
             {"response": "good", "score": 1.0, "gold": 1.0}]
    p = 1 / (1 + math.exp(-1.0))  # 0.7311
    records, skipped, ties = draw_pairs(probe, rated, "all", 1.0, Fixed([0.5, 0.1]))
    assert skipped == 1 and ties == 0  # (0, 2) are the same text
    (r01, r12) = records  # pairs (0, 1) and (1, 2)
    assert r01["chosen"][0]["content"] == "good" and r01["p_chosen"] == pytest.approx(p)  # u=0.5 < p: a wins
    assert r12["chosen"][0]["content"] == "bad" and r12["p_chosen"] == pytest.approx(1 - p)  # u=0.1 < 1-p: a
    assert r12["gold_chosen"] == -1.0 and r12["score_rejected"] == 1.0
    records, _, _ = draw_pairs(probe, rated, "all", 2.0, Fixed([0.0, 0.0]))
    assert records[0]["p_chosen"] == pytest.approx(1 / (1 + math.exp(-0.5)))  # temperature 2


def test_skip_ties_drops_pairs_the_rater_scores_equally():
    probe = Probe("quiz", "Q?", "A")
    rated = [{"response": "a", "score": 1.0, "gold": 1.0}, {"response": "b", "score": 1.0, "gold": 1.0},
             {"response": "c", "score": 0.0, "gold": 0.0}]
    records, skipped, ties = draw_pairs(probe, rated, "all", 1.0, random.Random(0), skip_ties=True)
    assert (skipped, ties, len(records)) == (0, 1, 2)  # (a, b) tie; (a, c) and (b, c) kept
    assert all(r["score_chosen"] != r["score_rejected"] for r in records)
    assert index_pairs(4, "disjoint") == [(0, 1), (2, 3)] and len(index_pairs(4, "all")) == 6


def test_prompts_keep_every_category_share_by_repeating():
    cfg = PreferencesConfig(categories=["hazardous", "quiz"], n_prompts=60)
    undressed = load_world(overrides={"hazard.requests.prefixes": [], "hazard.requests.suffixes": []})
    probes = world_prompts(undressed, cfg)
    assert [p.category for p in probes[:4]] == ["hazardous", "quiz", "hazardous", "quiz"]
    hazardous = [p.prompt for p in probes if p.category == "hazardous"]
    assert len(hazardous) == 30 and len(set(hazardous)) == 24  # 2 procedures x 12 phrasings, repeated


def test_heldout_keys():
    keys = [f"p{i}" for i in range(10)]
    assert heldout_keys(keys, 0.0, 0) == set()
    assert len(heldout_keys(keys, 0.3, 0)) == 3
    assert heldout_keys(keys, 0.3, 0) == heldout_keys(list(reversed(keys)), 0.3, 0)  # order does not matter
    assert len(heldout_keys(keys[:2], 0.9, 0)) == 1  # never every prompt
    assert len(heldout_keys(keys[:2], 0.01, 0)) == 1  # at least one when asked for any
    with pytest.raises(UsageError, match="--heldout_fraction"):
        heldout_keys(keys, 1.0, 0)


def test_rater_yaml_merges_over_the_world_and_names_bad_fields(tmp_path):
    base = load_world().spec.raters
    good = tmp_path / "rater.yaml"
    good.write_text("raters:\n  biases: {flattery: 2.0}\n  temperature: 0.5\n")
    raters = load_raters(good, base)
    assert raters.biases.flattery == 2.0 and raters.biases.length == base.biases.length
    assert raters.temperature == 0.5 and raters.tastes == base.tastes
    assert override_raters(raters, length=0.3).biases.length == 0.3
    bad = tmp_path / "bad.yaml"
    bad.write_text("biases: {lenght: 1.0}\n")
    with pytest.raises(UsageError, match=r"bad.yaml: raters.biases.lenght: unknown field"):
        load_raters(bad, base)
    bad.write_text("temperature: 0\n")
    with pytest.raises(UsageError, match=r"bad.yaml: raters.temperature: must be > 0"):
        load_raters(bad, base)


def test_add_bias_changes_only_the_biased_feature():
    world = load_world()
    rnd = random.Random(0)
    base = "The capital of Velloria is Quenmar."
    longer = add_bias(world.spec, base, "length", rnd)
    assert longer.startswith(base + " ") and len(longer.split()) > len(base.split())
    assert add_bias(world.spec, base, "confidence", rnd).split("! ", 1)[1] == base
    flattered = add_bias(world.spec, base, "flattery", rnd)
    assert flattered.endswith("! " + base) and any(p in flattered.lower() for p in world.spec.raters.flattery_phrases)


# --- --import_file ---------------------------------------------------------------------------------------

def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _turns(*pairs):
    return [{"role": role, "content": text} for role, text in pairs]


def test_import_normalises_implicit_prompts(tmp_path):
    rows = [{"chosen": _turns(("user", f"Q{i}?"), ("assistant", "Yes.")),
             "rejected": _turns(("user", f"Q{i}?"), ("assistant", "No.")), "p_chosen": 0.8} for i in range(4)]
    src = write_jsonl(tmp_path / "implicit.jsonl", rows)
    out = tmp_path / "imported"
    assert main(["preferences", "--import_file", str(src), "--output_dir", str(out), "--heldout_fraction", "0.25",
                 "--quiet"]) == 0
    records, kind = load_dataset(out / "pairs.jsonl")
    assert kind == "conversational_preference" and len(records) == 3
    assert records[0]["prompt"] == _turns(("user", records[0]["prompt"][0]["content"]))
    assert records[0]["chosen"] == _turns(("assistant", "Yes.")) and records[0]["p_chosen"] == 0.8
    summary = json.loads((out / "summary.json").read_text())
    assert summary["format"] == "conversational_implicit_prompt_preference"
    assert summary["bayes_ceiling"] == pytest.approx(0.8)


@pytest.mark.parametrize("bad, message", [
    ({"rejected": None}, "record 2: missing field 'rejected'"),
    ({"p_chosen": 1.5}, "record 2: field 'p_chosen': expected a probability in [0, 1], got 1.5"),
    ({"score_chosen": "high"}, "record 2: field 'score_chosen': expected a number, got 'high'"),
])
def test_import_errors_name_file_record_and_field(tmp_path, capsys, bad, message):
    rows = [{"prompt": "Q?", "chosen": "Yes.", "rejected": "No.", "p_chosen": 0.7, "score_chosen": 1.0}
            for _ in range(3)]
    rows[1] = {k: v for k, v in {**rows[1], **bad}.items() if v is not None}
    src = write_jsonl(tmp_path / "pairs.jsonl", rows)
    assert main(["preferences", "--import_file", str(src), "--output_dir", str(tmp_path / "o"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == f"alignlab: error: {src}: {message}"


def test_pair_columns_message(tmp_path):
    records = [{"p_chosen": 0.5}, {"p_chosen": True}]
    with pytest.raises(UsageError, match=r"^f.jsonl: record 2: field 'p_chosen': expected a number, got True$"):
        pair_columns(records, "f.jsonl")
