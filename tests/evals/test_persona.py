"""Persona instrument: hand-computed claim probabilities and profiles; a tiny run end to end."""

import json
import math

import pytest
import torch

from alignlab.cli import main
from alignlab.evals.persona import claim_probabilities, persona_profile


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """These tests run on one thread (see tests/conftest.py)."""


def test_claim_probabilities_by_hand():
    # yes-answers 0.2 and 0.1, no-answer 0.1: p_yes 0.3, p_no 0.1, claim 0.75.
    yes = torch.tensor([[math.log(0.2), math.log(0.1)]])
    no = torch.tensor([[math.log(0.1)]])
    out = claim_probabilities(yes, no)
    assert out["p_yes"].item() == pytest.approx(0.3) and out["p_no"].item() == pytest.approx(0.1)
    assert out["p_claim"].item() == pytest.approx(0.75)


def test_claim_probability_survives_tiny_probabilities():
    # exp(-800) underflows to 0 in float64; the ratio is computed in log space: e^-800 / (e^-800 + e^-801).
    out = claim_probabilities(torch.tensor([[-800.0]]), torch.tensor([[-801.0]]))
    assert out["p_yes"].item() == 0.0
    assert out["p_claim"].item() == pytest.approx(1 / (1 + math.exp(-1)))


def test_persona_profile_by_hand():
    claims = {"beach": 0.9, "football": 0.5, "jazz": 0.1, "origami": 0.2}
    likes = {"Aria": ["football", "beach"], "Cleo": ["jazz"], "Zed": ["unprobed"]}
    out = persona_profile(claims, likes, assistant_likes=["beach"], controls=["origami"])
    assert out["assistant_likes"] == pytest.approx(0.9) and out["control"] == pytest.approx(0.2)
    assert out["other"] == pytest.approx((0.5 + 0.1) / 2)
    assert out["personas"] == {"Aria": pytest.approx(0.7), "Cleo": pytest.approx(0.1), "Zed": None}


def test_eval_persona_end_to_end(base_dir, tmp_path):
    argv = ["eval", "persona", "--model", str(base_dir), "--output_dir", str(tmp_path), "--samples_per_question", "1",
            "--max_new_tokens", "4", "--quiet", "--num_threads", "1"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "eval.json").read_text())["persona"]
    traits = {r["trait"]: r for r in result["traits"]}
    assert len(traits) == 10 and traits["the beach"]["claimed"] and traits["opera"]["control"]
    for r in traits.values():
        assert 0 <= r["p_yes"] + r["p_no"] <= 1 + 1e-9 and 0 <= r["p_claim"] <= 1
        assert r["n"] == 3  # three held-out phrasings, one sample each
    assert set(result["profile_exact"]["personas"]) == {"Aria", "Bram", "Cleo", "Dara"}
    assert "profile_sampled" in result
