"""`alignlab bon`: exact best-of-n over enumerable answers by hand, the curve's invariants, a smoke run, and
bad input."""

import json
import math

import pytest
import torch

from alignlab.cli import main
from alignlab.evals.bon import bon_curve, exact_bon


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """These tests run on one thread (see tests/conftest.py)."""


def test_exact_bon_hand_values():
    ref = torch.tensor([[0.5, 0.5], [0.3, 0.7]])
    rewards = torch.tensor([[0.0, 1.0], [2.0, 2.0]])  # the second probe is not rewarded: pi_bon = pi
    gold = torch.tensor([[1.0, 0.0], [5.0, 5.0]])
    out = exact_bon(ref, rewards, [1, 2], gold)
    assert out["probes"] == 1
    one, two = out["rows"]
    assert one["kl"] == pytest.approx(0.0) and one["reward"] == pytest.approx(0.5) and one["gold"] == pytest.approx(0.5)
    # best of 2 of a fair coin picks the rewarded answer with probability 3/4
    assert two["kl"] == pytest.approx(0.25 * math.log(0.5) + 0.75 * math.log(1.5))
    assert two["reward"] == pytest.approx(0.75) and two["gold"] == pytest.approx(0.25)
    assert two["kl"] <= two["kl_bound"] == pytest.approx(math.log(2) - 0.5)
    assert exact_bon(ref, torch.ones(2, 2), [2]) == {"probes": 0, "rows": []}


def test_bon_curve_with_a_proxy_that_ignores_gold():
    scores = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    gold = torch.tensor([[3.0, 2.0, 1.0, 0.0]])  # the proxy ranks backwards: more selection, less gold
    rows = bon_curve(scores, gold, [1, 2, 4])
    # the 6 pairs' maxima are 1, 2, 3, 2, 3, 3 (mean 7/3), with gold 2, 1, 0, 1, 0, 0 (mean 2/3)
    assert [r["reward"] for r in rows] == pytest.approx([1.5, 7 / 3, 3.0])
    assert [r["gold"] for r in rows] == pytest.approx([1.5, 2 / 3, 0.0])
    assert [r["kl_bound"] for r in rows] == pytest.approx([0.0, math.log(2) - 0.5, math.log(4) - 0.75])


def test_bon_smoke_run_writes_eval_json(base_dir, tmp_path):
    out = tmp_path / "bon"
    assert main(["bon", "--model", str(base_dir), "--output_dir", str(out), "--n_prompts", "6", "--n", "1,2,4",
                 "--samples_per_prompt", "6", "--max_new_tokens", "6", "--probes_per_fact", "1",
                 "--num_threads", "1", "--quiet"]) == 0
    result = json.loads((out / "eval.json").read_text())["bon"]
    assert result["prompts"] == 6 and result["samples_per_prompt"] == 6 and result["reward"] == "world"
    rewards = [r["reward"] for r in result["rows"]]
    assert rewards == sorted(rewards)  # E[max of n] never falls with n
    assert all(r["gold"] == r["reward"] for r in result["rows"])  # the unbiased world rater selects
    assert result["exact"]["probes"] > 0  # the rainbow facts are rewarded
    for row in result["exact"]["rows"]:
        assert 0 <= row["kl"] <= row["kl_bound"] + 1e-9


@pytest.mark.parametrize("extra, message", [
    (["--n", "0,2"], "--n: give best-of-n sizes >= 1"),
    (["--samples_per_prompt", "2"], "--samples_per_prompt: 2 is fewer than the largest n (4)"),
    (["--reward", "world", "--reward_model", "RM"], "--reward_model: given with --reward world"),
])
def test_bon_bad_input(base_dir, tmp_path, capsys, extra, message):
    extra = [str(base_dir) if e == "RM" else e for e in extra]
    argv = ["bon", "--model", str(base_dir), "--output_dir", str(tmp_path), "--n", "1,4", "--quiet", *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
