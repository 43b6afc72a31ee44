"""KL instrument: hand-computed estimator values, exact answer-set KL, zero for a model against itself."""

import json
import math

import pytest
import torch
import yaml

from alignlab.cli import main
from alignlab.evals.kl import answer_set_kl, sampled_kl
from alignlab.models import build_model, save_model
from alignlab.world import load_world


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_tokenizer):
    dirs = []
    for seed in (0, 1):
        path = tmp_path_factory.mktemp(f"model{seed}")
        save_model(build_model("nano", len(tiny_tokenizer), 256, seed=seed, tokenizer=tiny_tokenizer),
                   tiny_tokenizer, path)
        dirs.append(path)
    return dirs


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Quiz {i}. What is"}) + "\n" for i in range(3)))
    return path


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    """The default world cut to three facts, so the exact answer-set part stays quick."""
    spec = load_world().to_dict()
    spec["facts"] = [f for f in spec["facts"] if f["entity"] in ("waterfall", "castle", "village")]
    path = tmp_path_factory.mktemp("world") / "small.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_sampled_kl_estimators_by_hand():
    # log r = ref - policy: [-0.5, 0] and [0]; 3 tokens, 2 sequences.
    out = sampled_kl([torch.tensor([-1.0, -2.0]), torch.tensor([-0.5])],
                     [torch.tensor([-1.5, -2.0]), torch.tensor([-0.5])])
    k3_first = math.exp(-0.5) - 1 + 0.5
    assert out["sequences"] == 2 and out["tokens"] == 3
    assert out["k1"]["per_token_nats"] == pytest.approx(0.5 / 3)
    assert out["k1"]["per_sequence_nats"] == pytest.approx(0.25)
    assert out["k1"]["per_sequence_bits"] == pytest.approx(0.25 / math.log(2))
    assert out["k1"]["per_sequence_stderr_nats"] == pytest.approx(0.25)  # std of (0.5, 0) / sqrt 2
    assert out["k2"]["per_token_nats"] == pytest.approx(0.125 / 3)
    assert out["k3"]["per_sequence_nats"] == pytest.approx(k3_first / 2)
    assert out["k3"]["per_token_bits"] == pytest.approx(k3_first / 3 / math.log(2))


def test_answer_set_kl_by_hand():
    out = answer_set_kl(torch.tensor([[0.5, 0.5], [0.25, 0.75]]), torch.tensor([[0.25, 0.75], [0.25, 0.75]]))
    expected = 0.5 * math.log(2) + 0.5 * math.log(2 / 3)
    assert out["probes"] == 2
    assert out["max_nats"] == pytest.approx(expected)
    assert out["mean_nats"] == pytest.approx(expected / 2)
    assert out["mean_bits"] == pytest.approx(expected / 2 / math.log(2))


def run(models, world, prompts, out, policy, ref, *extra):
    argv = ["eval", "kl", "--model", str(models[policy]), "--ref_model", str(models[ref]), "--prompts", str(prompts),
            "--world", str(world), "--samples_per_prompt", "2", "--max_new_tokens", "6", "--probes_per_fact", "2",
            "--output_dir", str(out), "--num_threads", "1", "--quiet", *extra]
    assert main(argv) == 0
    return json.loads((out / "eval.json").read_text())["kl"]


def test_kl_of_a_model_against_itself_is_zero(models, small_world, prompts, tmp_path):
    result = run(models, small_world, prompts, tmp_path, 0, 0)
    assert result["sampled"]["sequences"] == 6 and result["sampled"]["tokens"] > 0
    for estimator in ("k1", "k2", "k3"):
        for key in ("per_token_nats", "per_sequence_nats", "per_token_bits", "per_sequence_bits"):
            assert result["sampled"][estimator][key] == 0.0
    assert result["answer_sets"]["probes"] == 6 and result["answer_sets"]["max_nats"] == pytest.approx(0.0, abs=1e-12)


def test_kl_between_different_models_is_positive_on_world_prompts(models, small_world, tmp_path):
    result = run(models, small_world, "world", tmp_path, 0, 1, "--n_prompts", "1")
    assert result["n_prompts"] == 6  # one per behaviour category
    assert result["sampled"]["k3"]["per_token_nats"] > 0 and result["sampled"]["k2"]["per_token_nats"] > 0
    assert result["answer_sets"]["mean_nats"] > 0
