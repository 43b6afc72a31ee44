"""DPO's implicit reward: hand-computed values, and a policy identical to its reference."""

import json

import numpy as np
import pytest

from alignlab.cli import main
from alignlab.evals.implicit_reward import implicit_rewards, summarise


def test_implicit_reward_is_beta_times_the_log_ratio():
    assert implicit_rewards([-1.0, -3.0], [-2.0, -2.0], 0.1) == pytest.approx([0.1, -0.1])


def test_summary_counts_pairs_and_correlates_with_gold():
    chosen, rejected = np.array([0.3, 0.1, -0.2]), np.array([0.1, 0.2, -0.4])
    gold = {"gold_chosen": np.array([1.0, 0.0, 1.0]), "gold_rejected": np.array([0.0, 1.0, -1.0])}
    out = summarise(chosen, rejected, gold)
    assert out["accuracy"] == pytest.approx(2 / 3) and out["margin"] == pytest.approx((0.2 - 0.1 + 0.2) / 3)
    assert out["pearson_gold"] == pytest.approx(np.corrcoef(np.r_[chosen, rejected], [1, 0, 1, 0, 1, -1])[0, 1])
    assert "pearson_gold" not in summarise(chosen, rejected, None)


def test_a_policy_equal_to_its_reference_has_zero_implicit_reward(base_dir, tmp_path, one_thread):
    data = tmp_path / "pairs.jsonl"
    rows = [{"prompt": f"What is {i}?", "chosen": f" It is {i}.", "rejected": " No idea.",
             "gold_chosen": 1.0, "gold_rejected": float(i % 2)} for i in range(4)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = ["eval", "implicit_reward", "--model", str(base_dir), "--ref_model", str(base_dir), "--data", str(data),
            "--output_dir", str(tmp_path), "--quiet", "--num_threads", "1"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "eval.json").read_text())["implicit_reward"]
    assert result["pairs"] == 4 and result["margin"] == 0.0 and result["accuracy"] == 0.0
    assert result["pearson_gold"] is None  # constant rewards correlate with nothing
