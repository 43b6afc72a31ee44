"""`alignlab experiment calibration`: the fitted temperature, the no-taste relabelling, seed intervals, and a
CI-sized run that writes every stage's measurements, the summary and the figure."""

import json
import math

import numpy as np
import pytest

from alignlab.cli import main
from alignlab.experiments.calibration import STAGES, coin_flip_labels, fit_temperature, tempered
from alignlab.experiments.common import fmt_interval, seed_interval


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """These tests run on one thread (see tests/conftest.py)."""


def test_fit_temperature_recovers_the_temperature_that_made_the_truth():
    logits = np.random.default_rng(0).normal(0, 3, size=(40, 2))
    truth = tempered(logits, 2.5)
    assert fit_temperature(logits, truth) == pytest.approx(2.5, rel=1e-4)
    assert fit_temperature(logits, tempered(logits, 1.0)) == pytest.approx(1.0, rel=1e-4)


def test_tempered_is_a_softmax_of_scaled_log_probs():
    q = np.array([[0.8, 0.2]])
    t2 = tempered(np.log(q), 2.0)
    assert t2[0, 0] == pytest.approx(math.sqrt(0.8) / (math.sqrt(0.8) + math.sqrt(0.2)))
    assert tempered(np.log(q), 1.0) == pytest.approx(q)


def test_coin_flip_labels_swap_about_half_and_drop_the_raters_scores():
    pairs = [{"prompt": f"p{i}", "chosen": "a", "rejected": "b", "score_chosen": 1.0, "gold_chosen": 1.0,
              "p_chosen": 0.7, "category": "scene"} for i in range(400)]
    flipped = coin_flip_labels(pairs, seed=0)
    swapped = sum(r["chosen"] == "b" for r in flipped)
    assert 160 < swapped < 240  # Binomial(400, 1/2): mean 200, sd 10
    assert all({r["chosen"], r["rejected"]} == {"a", "b"} for r in flipped)
    assert all(set(r) == {"prompt", "chosen", "rejected", "category"} for r in flipped)
    assert coin_flip_labels(pairs, seed=0) == flipped


def test_seed_interval_is_a_t_interval():
    iv = seed_interval([1.0, 2.0, 3.0])
    half = 4.303 * 1.0 / math.sqrt(3)
    assert iv == {"mean": 2.0, "lo": pytest.approx(2.0 - half), "hi": pytest.approx(2.0 + half), "n": 3}
    assert seed_interval([0.5]) == {"mean": 0.5, "lo": 0.5, "hi": 0.5, "n": 1}
    assert seed_interval([None, float("nan")])["n"] == 0
    assert fmt_interval(iv) == "2.00 [-0.48, 4.48]"


def test_ci_sized_experiment_measures_every_stage(base_dir, tmp_path):
    out = tmp_path / "exp"
    assert main(["experiment", "calibration", "--base_model", str(base_dir), "--output_dir", str(out),
                 "--seeds", "0", "--sft_conversations", "24", "--preference_prompts", "8", "--skip_ties", "false",
                 "--dpo_epochs", "1", "--ppo_steps", "1", "--probes_per_fact", "1", "--diversity_prompts", "1",
                 "--diversity_samples", "2", "--num_threads", "1", "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["stages"]) == list(STAGES)
    for stage, row in results["stages"].items():
        assert 0 <= row["ece_heldout"]["mean"] <= 1 and 0 <= row["p_taste"]["mean"] <= 1, stage
        assert 0 <= row["tv_optimum"]["mean"] <= 1 and row["temperature"]["mean"] > 0, stage
    assert results["stages"]["base"]["tv_ref"]["mean"] == 0.0  # the base is its own reference
    assert results["stages"]["base"]["p_taste_truth"]["mean"] == pytest.approx(0.48)
    assert results["finding"].startswith("Held-out ECE of the base")
    assert "| dpo_taste |" in (out / "summary.md").read_text()
    assert (out / "calibration_stages.png").stat().st_size > 1000
    pairs = (out / "seed0" / "prefs" / "pairs.jsonl").read_text().splitlines()
    assert len((out / "seed0" / "pairs_notaste.jsonl").read_text().splitlines()) == len(pairs)
    # A second run finds every sub-run complete and measures nothing again.
    before = (out / "seed0" / "measure_sft.json").stat().st_mtime_ns
    assert main(["experiment", "calibration", "--base_model", str(base_dir), "--output_dir", str(out),
                 "--seeds", "0", "--sft_conversations", "24", "--preference_prompts", "8", "--skip_ties", "false",
                 "--dpo_epochs", "1", "--ppo_steps", "1", "--probes_per_fact", "1", "--diversity_prompts", "1",
                 "--diversity_samples", "2", "--num_threads", "1", "--quiet"]) == 0
    assert (out / "seed0" / "measure_sft.json").stat().st_mtime_ns == before


def test_seed_interval_bounds_clip_to_the_range():
    iv = seed_interval([0.02, 0.1, 0.3], bounds=(0.0, 1.0))
    assert iv["lo"] == 0.0 and 0.3 < iv["hi"] < 1.0
    assert seed_interval([0.9, 0.95, 1.0], bounds=(0.0, 1.0))["hi"] == 1.0


def test_an_experiment_directory_refuses_other_scalar_options_but_takes_a_new_grid(tmp_path):
    from alignlab.errors import UsageError
    from alignlab.experiments.calibration import CalibrationExperimentConfig
    from alignlab.experiments.common import check_options

    check_options(tmp_path, CalibrationExperimentConfig(output_dir=str(tmp_path), seeds=[0]))
    check_options(tmp_path, CalibrationExperimentConfig(output_dir="elsewhere", seeds=[0, 1, 2], num_threads=1))
    with pytest.raises(UsageError, match=r"dpo_beta: 0.1 -> 0.5"):
        check_options(tmp_path, CalibrationExperimentConfig(output_dir=str(tmp_path), dpo_beta=0.5))
    check_options(tmp_path, CalibrationExperimentConfig(output_dir=str(tmp_path), dpo_beta=0.5, overwrite=True))
    check_options(tmp_path, CalibrationExperimentConfig(output_dir=str(tmp_path), dpo_beta=0.5))
