"""Diversity instrument: hand-computed entropy, unique share and distinct-n; a tiny run end to end."""

import json
import math

import pytest

from alignlab.cli import main
from alignlab.evals.diversity import answer_entropy, diversity_metrics, unique_fraction


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """These tests run on one thread (see tests/conftest.py)."""


def test_answer_entropy_by_hand():
    # Prompt 1: four identical answers (0 bits); prompt 2: a, a, b, c -> -(1/2 log 1/2 + 2 * 1/4 log 1/4) = 1.5 bits.
    groups = [["x y", "x  y", " x y", "x y"], ["a", "a", "b", "c"]]
    assert answer_entropy(groups) == pytest.approx((0 + 1.5) / 2)
    assert answer_entropy(groups, base=math.e) == pytest.approx(1.5 * math.log(2) / 2)
    assert unique_fraction(groups) == pytest.approx((1 / 4 + 3 / 4) / 2)  # whitespace does not make a new answer


def test_diversity_metrics_by_hand():
    # Unigrams: the cat sat / the cat ran -> 6 tokens, 4 distinct; bigrams: 4, 3 distinct (the cat twice).
    out = diversity_metrics([["the cat sat", "the cat ran"]])
    assert out["distinct_1"] == pytest.approx(4 / 6) and out["distinct_2"] == pytest.approx(3 / 4)
    assert out["answer_entropy_bits"] == pytest.approx(1.0) and out["max_entropy_bits"] == pytest.approx(1.0)
    assert out["unique_fraction"] == 1.0 and out["mean_words"] == 3.0
    assert out["prompts"] == 1 and out["samples"] == 2


def test_collapsed_model_has_zero_entropy():
    out = diversity_metrics([["same"] * 8, ["same"] * 8])
    assert out["answer_entropy_bits"] == 0.0 and out["distinct_1"] == pytest.approx(1 / 16)


def test_empty_input_is_an_error():
    with pytest.raises(ValueError, match="at least one prompt"):
        answer_entropy([])


def test_eval_diversity_end_to_end(base_dir, tmp_path):
    argv = ["eval", "diversity", "--model", str(base_dir), "--output_dir", str(tmp_path), "--prompts_per_category", "2",
            "--samples_per_prompt", "3", "--max_new_tokens", "4", "--prompt_format", "plain", "--quiet",
            "--num_threads", "1"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "eval.json").read_text())["diversity"]
    assert set(result["categories"]) == {"scene", "persona"}
    assert result["all"]["prompts"] == 4 and result["all"]["samples"] == 12
    assert 0 <= result["all"]["answer_entropy_bits"] <= math.log2(3) + 1e-9
    assert len(result["examples"]["scene"][0]["responses"]) == 3
