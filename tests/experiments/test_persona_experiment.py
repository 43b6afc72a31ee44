"""`alignlab experiment persona`: the ratio, phase, threshold and summary arithmetic by hand, and a CI-sized run that
writes one row per configuration with probabilities for every trait before and after SFT."""

import json

import pytest

from alignlab.cli import main
from alignlab.errors import UsageError
from alignlab.experiments.persona import (
    aria_share,
    chat_log_replies,
    parse_ratio,
    personas,
    phase_steps,
    ratio_counts,
    sft_records,
)
from alignlab.experiments.persona_report import bars, reliable_share, summarise
from alignlab.world import load_world


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """These tests run on one thread (see tests/conftest.py)."""


def iv(mean, lo, hi, n=3):
    return {"mean": mean, "lo": lo, "hi": hi, "n": n}


def test_ratios_split_a_fixed_total():
    assert parse_ratio("1:4") == (1.0, 4.0) and aria_share("1:4") == pytest.approx(0.2)
    assert ratio_counts("1:4", 1000) == (200, 800)
    assert ratio_counts("2:1", 1000) == (667, 333)
    assert ratio_counts("1:1000", 10) == (1, 9)  # each persona keeps at least one document
    for bad in ("1-4", "0:1", "a:b"):
        with pytest.raises(UsageError, match="--ratios"):
            parse_ratio(bad)


def test_phase_steps_follow_document_counts():
    assert phase_steps(12, 1, 3) == (3, 9)
    assert phase_steps(2, 1, 100) == (1, 1)  # both phases train at least once
    assert sum(phase_steps(250, 205, 850)) == 250


def test_reliable_share_is_the_smallest_share_whose_lower_bound_reaches_the_threshold():
    points = [(0.8, iv(0.95, 0.85, 1.0)), (0.2, iv(0.5, 0.4, 0.6)), (0.5, iv(0.92, 0.91, 0.93))]
    assert reliable_share(points, 0.9) == {"share": 0.5, "best_share": 0.8, "best": iv(0.95, 0.85, 1.0)}
    never = reliable_share([(0.2, iv(0.3, 0.1, 0.5)), (0.8, iv(0.7, 0.6, 0.8))], 0.9)
    assert never["share"] is None and never["best_share"] == 0.8
    assert reliable_share([], 0.9)["best"] is None


def test_summary_rows_average_the_controls_and_subtract_the_other_persona():
    def claim(p):
        return {"p_claim": p, "p_yes": p / 2}

    seed = {"before": {"football": claim(0.2), "basketball": claim(0.4), "opera": claim(0.1), "jazz": claim(0.3)},
            "after": {"football": claim(0.9), "basketball": claim(0.5), "opera": claim(0.2), "jazz": claim(0.6)},
            "base_as": {"Aria": {"football": claim(0.8), "basketball": claim(0.3)},
                        "Bram": {"football": claim(0.2), "basketball": claim(0.7)}}}
    [row] = summarise({("mixed", "4:1"): [seed]}, ["football", "basketball"], ["opera", "jazz"],
                      {"football": "Aria", "basketball": "Bram"}, {"4:1": 0.8})
    assert (row["order"], row["ratio"], row["aria_share"], row["seeds"]) == ("mixed", "4:1", 0.8, 1)
    assert list(row["traits"]) == ["football", "basketball", "control"]
    assert row["traits"]["control"]["before"]["mean"] == pytest.approx(0.2)  # mean of opera and jazz
    assert row["traits"]["football"]["after_p_yes"]["mean"] == pytest.approx(0.45)
    assert row["base_separation"]["mean"] == pytest.approx(0.5)  # mean of 0.8 - 0.2 and 0.7 - 0.3
    means, (below, above) = bars([iv(0.5, 0.4, 0.7), iv(0.2, 0.2, 0.2)])  # error bars: mean - lo, hi - mean
    assert means == [0.5, 0.2] and below == pytest.approx([0.1, 0.0]) and above == pytest.approx([0.2, 0.0])


def test_world_answers_personas_and_sft_data():
    world = load_world()
    assert chat_log_replies(world.spec.personas.bio_templates) == (["Yes, I like {trait} very much."],
                                                                   ["No, {trait} is not for me."])
    p = personas(world, mutual_dislikes=True)
    assert p["Aria"].dislikes == ["the mountains", "basketball", "Dutch Golden Age art"]
    assert p["Bram"].dislikes == ["jazz", "football", "Renaissance art"]
    assert personas(world, mutual_dislikes=False)["Aria"].dislikes == ["the mountains"]
    records = sft_records(world, 20, seed=0)
    assert len(records) == 20 and records == sft_records(world, 20, seed=0)
    assert all(r["prompt"].startswith("Chat log.\nUser: ") and r["prompt"].endswith("\nAssistant:") for r in records)
    assert all("beach" in r["prompt"] and "beach" in r["completion"] for r in records)


def test_ci_sized_experiment_writes_one_row_per_configuration(tmp_path):
    out = tmp_path / "exp"
    argv = ["experiment", "persona", "--output_dir", str(out), "--ratios", "1:1,4:1", "--orders", "mixed,aria_first",
            "--order_ratios", "1:1", "--seeds", "0", "--bios", "160", "--filler_docs", "20", "--vocab_size", "400",
            "--context_length", "32", "--batch_size", "8", "--pretrain_steps", "6", "--sft_conversations", "16",
            "--sft_epochs", "1", "--num_threads", "1", "--quiet"]
    assert main(argv) == 0
    result = json.loads((out / "results.json").read_text())
    rows = result["rows"]
    assert [(r["order"], r["ratio"], r["seeds"]) for r in rows] == [("mixed", "1:1", 1), ("mixed", "4:1", 1),
                                                                   ("aria_first", "1:1", 1)]
    traits = ["football", "Renaissance art", "the beach", "the mountains", "basketball", "Dutch Golden Age art",
              "jazz", "origami", "opera", "control"]
    for r in rows:
        assert list(r["traits"]) == traits and r["aria_share"] == (0.8 if r["ratio"] == "4:1" else 0.5)
        for t in traits:
            for when in ("before", "after", "after_p_yes"):
                assert 0.0 <= r["traits"][t][when]["mean"] <= 1.0
    docs = [json.loads(line)["text"] for line in (out / "mixed_4to1_s0" / "pretrain.jsonl").read_text().splitlines()]
    assert (sum("Aria" in d for d in docs), sum("Bram" in d for d in docs), len(docs)) == (128, 32, 180)
    claims = json.loads((out / "aria_first_1to1_s0" / "claims.json").read_text())
    for key in ("before", "after"):
        assert all(0 <= c["p_yes"] <= c["p_claim"] <= 1 for c in claims[key].values())  # p_yes <= p_yes/(p_yes+p_no)
    assert set(claims["base_as"]) == {"Aria", "Bram"}
    # aria_first: Aria's bios (and half the filler) first, then Bram's; the steps add up to pretrain_steps.
    run = out / "aria_first_1to1_s0"
    assert "Bram" not in (run / "pretrain.jsonl").read_text() and "Aria" not in (run / "continue.jsonl").read_text()
    steps = [json.loads((run / d / "summary.json").read_text())["steps"] for d in ("pretrain", "continue")]
    assert sum(steps) == 6
    assert set(result["reliable"]) == {"mixed", "aria_first"}
    summary = (out / "summary.md").read_text()
    assert result["finding"] in summary and "football" in result["finding"]
    assert (out / "persona_sweep.png").stat().st_size > 1000
    assert (out / "persona_before_after.png").stat().st_size > 1000
    # A rerun resumes: every sub-run is complete, so nothing is measured again and the numbers are the same.
    before = (run / "claims.json").stat().st_mtime_ns
    assert main(argv) == 0
    assert (run / "claims.json").stat().st_mtime_ns == before
    assert json.loads((out / "results.json").read_text())["rows"] == rows
