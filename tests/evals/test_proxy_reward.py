"""Proxy reward instrument: hand-computed summaries; proxy and gold reward of a tiny model's answers."""

import json

import pytest
import torch

from alignlab.cli import main
from alignlab.evals.metrics import mean_with_stderr
from alignlab.evals.proxy_reward import reward_summary
from alignlab.models import build_model, save_model
from alignlab.models.reward_model import build_reward_model


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """These tests run on one thread (see tests/conftest.py)."""


def test_reward_summary_by_hand():
    out = reward_summary(["quiz", "quiz", "scene", "scene"], [1.0, -1.0, 0.5, 0.0], [3.0, 1.0, 2.0, 0.0])
    assert out["gold"]["mean"] == pytest.approx(0.125) and out["gold"]["n"] == 4
    # sample std of (1, -1, 0.5, 0): mean 0.125, squares 0.765625 + 1.265625 + 0.140625 + 0.015625 = 2.1875
    assert out["gold"]["stderr"] == pytest.approx((2.1875 / 3) ** 0.5 / 2)
    assert out["proxy"]["mean"] == pytest.approx(1.5)
    assert out["categories"] == {"quiz": {"gold": 0.0, "proxy": 2.0, "n": 2},
                                 "scene": {"gold": 0.25, "proxy": 1.0, "n": 2}}
    assert out["spearman_proxy_gold"] == pytest.approx(0.8)  # proxy ranks (4, 2, 3, 1), gold (4, 1, 3, 2)


def test_reward_summary_without_proxy_and_with_constant_gold():
    out = reward_summary(["scene"] * 2, [0.0, 0.0], [1.0, 2.0])
    assert out["spearman_proxy_gold"] is None  # undefined, stored as null rather than NaN
    gold_only = reward_summary(["scene"], [0.5], None)
    assert "proxy" not in gold_only and gold_only["gold"]["stderr"] is None
    assert mean_with_stderr([1.0, 3.0]) == {"mean": 2.0, "stderr": pytest.approx(1.0), "n": 2}


@pytest.fixture(scope="module")
def policy_and_rm(tmp_path_factory, tiny_tokenizer):
    policy = tmp_path_factory.mktemp("policy")
    save_model(build_model("nano", len(tiny_tokenizer), 512, seed=0, tokenizer=tiny_tokenizer), tiny_tokenizer, policy)
    torch.manual_seed(0)
    rm = build_reward_model(str(policy), tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        torch.nn.init.normal_(rm.score.weight)
    rm_dir = tmp_path_factory.mktemp("rm")
    save_model(rm, tiny_tokenizer, rm_dir)
    return policy, rm_dir


def test_eval_proxy_reward_end_to_end(policy_and_rm, tmp_path):
    policy, rm_dir = policy_and_rm
    argv = ["eval", "proxy_reward", "--model", str(policy), "--reward_model", str(rm_dir), "--output_dir",
            str(tmp_path), "--categories", "quiz,scene", "--prompts_per_category", "2", "--samples_per_prompt", "2",
            "--max_new_tokens", "4", "--quiet", "--num_threads", "1"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "eval.json").read_text())["proxy_reward"]
    assert result["gold"]["n"] == 8 and result["proxy"]["n"] == 8
    assert set(result["categories"]) == {"quiz", "scene"}
    # A random model never answers a quiz question correctly: the gold taste is -1 on each.
    assert result["categories"]["quiz"]["gold"] == -1.0
