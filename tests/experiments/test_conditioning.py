"""`alignlab experiment conditioning`: the exact Bayes maths and the implied-posterior fit against hand-computed
values, and a CI-sized run whose posteriors, bits and files obey the pipeline's invariants."""

import json
import math

import numpy as np
import pytest
import torch

from alignlab.cli import main
from alignlab.experiments.bayes import (
    FLOOR,
    bits_of_evidence,
    evidence_log_likelihood,
    implied_posterior,
    kl_divergence,
    kl_optimum,
    kl_regularised_loss,
    log2_odds,
    log_posterior,
    total_variation,
)
from alignlab.experiments.conditioning import (
    author_tables,
    evidence_pool,
    option_counts,
    option_logprobs,
    verdict,
)
from alignlab.world import load_world
from alignlab.world.skills import author_posterior, author_predictive


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """These tests run on one thread (see tests/conftest.py)."""


@pytest.fixture(scope="module")
def au():
    return load_world().spec.authors


def test_log_posterior_is_the_worlds_bayes_rule_and_survives_long_evidence(au):
    log_prior, probs = author_tables(au)
    for observed in ([], ["dreadful"], ["dreadful", "dull", "splendid", "dreadful"]):
        counts = np.array([observed.count(o) for o in au.options], dtype=float)
        assert np.exp(log_posterior(log_prior, probs, counts)) == pytest.approx(author_posterior(au, observed))
    # 2,000 sentences: the product of probabilities underflows, the log-space posteriors do not.
    counts = np.array([200.0, 1000.0, 200.0, 600.0])
    post = np.exp(log_posterior(log_prior, probs, counts))
    assert post.sum() == pytest.approx(1.0) and post[1] == pytest.approx(1.0)
    long_observed = [o for o, c in zip(au.options, counts, strict=True) for _ in range(int(c))]
    assert author_posterior(au, long_observed) == pytest.approx(post, abs=1e-12)


def test_bits_of_evidence_by_hand():
    # odds of author 1: 0.3 / 0.7 before, 0.6 / 0.4 after -> log2(1.5 / (3/7)) = log2(3.5).
    before, after = np.log([0.5, 0.3, 0.2]), np.log([0.2, 0.6, 0.2])
    assert log2_odds(after, 1) == pytest.approx(math.log2(1.5))
    assert bits_of_evidence(after, before, 1) == pytest.approx(math.log2(3.5))
    assert bits_of_evidence(before, before, 1) == 0.0


def test_implied_posterior_recovers_a_mixture_and_caps_a_vertex(au):
    _, probs = author_tables(au)
    w = np.array([0.6, 0.3, 0.1])
    fitted, misfit = implied_posterior(w @ probs, probs)
    assert fitted == pytest.approx(w, abs=1e-6) and misfit == pytest.approx(0.0, abs=1e-10)
    vertex, _ = implied_posterior(probs[1], probs)
    assert vertex[1] == pytest.approx(1.0, abs=3 * FLOOR) and vertex.min() >= FLOOR * 0.99
    # A predictive past the grumpy author (more dreadful than any mixture) projects onto that vertex.
    beyond, misfit = implied_posterior(np.array([0.05, 0.55, 0.05, 0.35]), probs)
    assert beyond[1] == pytest.approx(1.0, abs=3 * FLOOR) and misfit > 0.005
    assert sum(beyond) == pytest.approx(1.0)


def test_evidence_likelihood_by_hand_and_the_kl_optimum_is_the_posterior_predictive(au):
    # Two authors, two options, evidence = one o0: P(E | o0) = 0.8 * 2/3 + 0.4 * 1/3, P(E | o1) = 0.8/4 + 0.4 * 3/4.
    log_prior, probs = np.log([0.5, 0.5]), np.array([[0.8, 0.2], [0.4, 0.6]])
    assert np.exp(evidence_log_likelihood(log_prior, probs, np.array([1.0, 0.0]))) == pytest.approx([2 / 3, 0.5])
    log_prior, probs = author_tables(au)
    counts = np.array([1.0, 3.0, 0.0, 2.0])
    observed = ["splendid"] + ["dreadful"] * 3 + ["dull"] * 2
    for beta in (0.1, 5.0):
        reward = beta * evidence_log_likelihood(log_prior, probs, counts)
        assert kl_optimum(np.exp(log_prior) @ probs, reward, beta) == pytest.approx(author_predictive(au, observed))


def test_kl_regularised_loss_is_minimised_at_the_optimum_with_value_minus_log_z():
    ref = torch.tensor([[0.4, 0.3, 0.2, 0.1]], dtype=torch.float64)
    reward, beta = torch.tensor([0.0, 1.0, -1.0, 0.5], dtype=torch.float64), 0.5
    star = torch.as_tensor(kl_optimum(ref.numpy(), reward.numpy(), beta))
    log_z = torch.logsumexp(ref.log() + reward / beta, -1).item()
    assert kl_regularised_loss(star.log(), ref.log(), reward, beta).item() == pytest.approx(-log_z)
    for other in (ref, torch.full((1, 4), 0.25, dtype=torch.float64)):
        assert kl_regularised_loss(other.log(), ref.log(), reward, beta).item() > -log_z


def test_distances_and_verdicts_by_hand():
    assert total_variation([0.5, 0.5], [1.0, 0.0]) == 0.5
    assert kl_divergence([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3))
    assert kl_divergence([1.0, 0.0], [0.5, 0.5]) == pytest.approx(math.log(2))
    assert verdict({"lo": 0.1, "hi": 2.0}, capped=False) == "over"
    assert verdict({"lo": -3.0, "hi": -1.0}, capped=False) == "under"
    assert verdict({"lo": -3.0, "hi": -1.0}, capped=True) == "saturated"
    assert verdict({"lo": -1.0, "hi": 1.0}, capped=False) == "matches"


def test_evidence_pool_is_the_authors_and_larger_pools_extend_smaller_ones(au):
    grumpy = au.authors[1]
    pool = evidence_pool(au, grumpy, 6, seed=3)
    assert evidence_pool(au, grumpy, 2, seed=3) == pool[:2] and evidence_pool(au, grumpy, 6, seed=4) != pool
    for doc in pool:
        assert doc["text"].startswith(tuple(au.headers))
        assert all(f" was {o}." in doc["text"] for o in doc["options"])
    assert option_counts(au, pool, 3).sum() == sum(len(d["options"]) for d in pool[:3])


def test_option_logprobs_agree_with_the_scorer(base_dir, tiny_tokenizer):
    from alignlab.generation import score_continuations
    from alignlab.models import load_causal_lm

    model = load_causal_lm(str(base_dir))
    prompts = [tiny_tokenizer("What is the capital", add_special_tokens=False)["input_ids"],
               tiny_tokenizer("The waterfall had a", add_special_tokens=False)["input_ids"]]
    conts = [tiny_tokenizer(c, add_special_tokens=False)["input_ids"] for c in (" rainbow.", " beach", " of Zorbia?")]
    ours = option_logprobs(model, prompts, conts)
    theirs = score_continuations(model, [p for p in prompts for _ in conts], [c for _ in prompts for c in conts])
    assert ours.requires_grad and ours.detach().flatten() == pytest.approx(theirs, abs=1e-4)


def test_ci_sized_experiment_writes_posteriors_bits_and_figure(tmp_path):
    out = tmp_path / "exp"
    argv = ["experiment", "conditioning", "--output_dir", str(out), "--pretrain_docs", "300", "--filler_docs", "40",
            "--pretrain_steps", "4", "--vocab_size", "320", "--n", "1,4", "--seeds", "0", "--learning_rates", "1e-3",
            "--epochs", "1", "--probes", "6", "--icl_k", "0,2", "--kl_n", "4", "--kl_steps", "3", "--kl_prompts", "4",
            "--num_threads", "1", "--quiet"]
    assert main(argv) == 0
    result = json.loads((out / "results.json").read_text())
    assert [(r["lr"], r["epochs"], r["n"]) for r in result["rows"]] == [(1e-3, 1, 1), (1e-3, 1, 4)]
    assert [r["k"] for r in result["base"]["in_context"]] == [0, 2]
    for w in [result["base"]["implied"]] + [json.loads(p.read_text())["implied"] for p in out.glob("sft/*/*/measure.json")]:
        assert sum(w) == pytest.approx(1.0) and all(0 <= x <= 1 for x in w)
    assert len(list(out.glob("sft/*/*/measure.json"))) == 2 and not list(out.glob("sft/*/*/model.safetensors"))
    for row in result["rows"]:
        seed = row["per_seed"][0]
        assert 0 <= seed["bayes_p"] <= 1 and 0 <= seed["model_p"] <= 1 and 0 <= seed["tv"] <= 1
        assert row["verdict"] in {"over", "under", "saturated", "matches"} and row["steps"] == 1
    assert result["rows"][-1]["bayes_bits"]["mean"] > 0  # four grumpy documents are evidence for grumpy
    (kl,) = result["kl"]
    assert kl["n"] == 4 and 0 <= kl["tv_exact"]["mean"] <= 1 and set(kl["sft_tv"]) == {"lr 0.001, 1 ep"}
    summary = (out / "summary.md").read_text()
    assert "grumpy documents" in summary and "| 0.001 | 1 | 4 |" in summary
    assert (out / "conditioning.png").stat().st_size > 1000 and (out / "base" / "summary.json").is_file()
    # A rerun resumes: every sub-run is skipped and the numbers are the same.
    stamp = (out / "sft" / "lr0.001_ep1" / "seed0_n1" / "summary.json").stat().st_mtime_ns
    assert main(argv) == 0
    assert json.loads((out / "results.json").read_text()) == result
    assert (out / "sft" / "lr0.001_ep1" / "seed0_n1" / "summary.json").stat().st_mtime_ns == stamp
