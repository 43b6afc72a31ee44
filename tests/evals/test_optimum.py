"""Optimum instrument: a hand-made two-answer case, the gold rewards of fact answers, an end-to-end run."""

import json
import math

import pytest
import torch
import yaml

from alignlab.cli import main
from alignlab.evals.optimum import fact_rewards, optimum_gap, summarise_gap
from alignlab.models import build_model, save_model
from alignlab.world import load_world


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_optimum_gap_on_a_hand_made_case():
    # pi_ref = (1/2, 1/2), r = (1, 0), beta = 1: pi* = (sigmoid(1), sigmoid(-1)), log Z = log((e + 1) / 2).
    ref = torch.tensor([[0.5, 0.5], [0.5, 0.5]], dtype=torch.float64)
    rewards = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    opt = torch.tensor([sigmoid(1), sigmoid(-1)], dtype=torch.float64)
    policy = torch.stack([ref[0], opt])  # probe 0: the policy never moved; probe 1: it reached the optimum
    gap = optimum_gap(policy, ref, rewards, beta=1.0)
    kl_ref_opt = 0.5 * math.log(0.5 / sigmoid(1)) + 0.5 * math.log(0.5 / sigmoid(-1))
    assert gap["tv"].tolist() == pytest.approx([sigmoid(1) - 0.5, 0.0], abs=1e-12)
    assert gap["kl_policy_optimum"].tolist() == pytest.approx([kl_ref_opt, 0.0], abs=1e-12)
    assert gap["objective_optimum"].tolist() == pytest.approx([math.log((math.e + 1) / 2)] * 2)
    # The shortfall on the objective is exactly beta KL(pi || pi*): J(pi*) - J(pi_ref) = log Z - 1/2.
    assert gap["regret"][0].item() == pytest.approx(math.log((math.e + 1) / 2) - 0.5)
    torch.testing.assert_close(gap["objective_optimum"] - gap["objective_policy"], gap["regret"])
    summary = summarise_gap(gap, torch.tensor([True, True]))
    assert summary["probes"] == 2
    assert summary["tv"] == {"mean": pytest.approx((sigmoid(1) - 0.5) / 2), "max": pytest.approx(sigmoid(1) - 0.5)}
    assert summary["reward_optimum"] == pytest.approx(sigmoid(1))


def test_gold_rater_rewards_only_the_taste_attribute():
    world = load_world()
    probes = [p for p in world.fact_probes("heldout", 1, 0) if p.entity in ("waterfall", "castle")]
    rewards = fact_rewards(world, probes)
    by_entity = {p.entity: rewards[i].tolist() for i, p in enumerate(probes)}
    tastes = world.spec.raters.tastes
    assert by_entity == {"waterfall": [tastes.rainbow, 0.0], "castle": [0.0, 0.0]}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_tokenizer):
    model_dir = tmp_path_factory.mktemp("model")
    save_model(build_model("nano", len(tiny_tokenizer), 256, seed=0, tokenizer=tiny_tokenizer), tiny_tokenizer,
               model_dir)
    spec = load_world().to_dict()
    spec["facts"] = [f for f in spec["facts"] if f["entity"] in ("waterfall", "castle")]
    world = tmp_path_factory.mktemp("world") / "small.yaml"
    world.write_text(yaml.safe_dump(spec))
    return model_dir, world


def test_run_optimum_of_the_reference_itself(setup, tmp_path):
    model_dir, world = setup
    argv = ["eval", "optimum", "--model", str(model_dir), "--ref_model", str(model_dir), "--world", str(world),
            "--beta", "0.25", "--probes_per_fact", "2", "--output_dir", str(tmp_path), "--num_threads", "1", "--quiet"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "eval.json").read_text())["optimum"]
    assert result["all"]["probes"] == 4 and result["rewarded"]["probes"] == 2  # the waterfall's two phrasings
    assert result["all"]["kl_ref_policy"] == pytest.approx(0.0, abs=1e-12)
    # pi = pi_ref: the regret is beta KL(pi_ref || pi*) > 0 on the rewarded probes, 0 on the others.
    rewarded = result["rewarded"]
    assert rewarded["regret"]["mean"] > 0 and rewarded["tv"]["mean"] > 0
    assert rewarded["objective_optimum"] - rewarded["objective_policy"] == pytest.approx(rewarded["regret"]["mean"])
    assert result["all"]["regret"]["mean"] == pytest.approx(rewarded["regret"]["mean"] / 2)
    castle = next(f for f in result["facts"] if f["entity"] == "castle")
    assert castle["optimum"] == pytest.approx(castle["ref"]) and castle["policy"] == pytest.approx(castle["ref"])
