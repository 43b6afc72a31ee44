"""Adaptive KL coefficient, token entropy, explained variance, and the best-of-n order-statistics estimator:
hand-computed values and a brute-force check."""

import itertools
import math

import pytest
import torch

from alignlab.objectives.online import (
    adaptive_kl_coef,
    explained_variance,
    masked_sequence_sum,
    token_entropy,
)
from alignlab.objectives.optimum import best_of_n_estimate, best_of_n_weights

t = torch.tensor


def test_adaptive_kl_coef_hand_values():
    # KL 9 vs target 6: error 0.5 clipped to 0.2; 64 sequences over a horizon of 10000 -> x (1 + 0.2 * 0.0064)
    assert adaptive_kl_coef(0.1, 9.0, 6.0, 64, 10000) == pytest.approx(0.100128)
    # KL 5.4: error -0.1 -> x (1 - 0.1 * 0.0064)
    assert adaptive_kl_coef(0.1, 5.4, 6.0, 64, 10000) == pytest.approx(0.099936)
    assert adaptive_kl_coef(0.1, 0.0, 6.0, 100, 100) == pytest.approx(0.08)  # clipped at -0.2, K = 1
    assert adaptive_kl_coef(0.1, 6.0, 6.0, 64, 10) == 0.1  # on target: unchanged
    with pytest.raises(ValueError, match="target and horizon"):
        adaptive_kl_coef(0.1, 1.0, 0.0, 1, 1)


def test_token_entropy_hand_values():
    logits = t([[0.0, 0.0], [0.0, -math.inf], [0.0, math.log(3.0)]])
    expected = [math.log(2), 0.0, -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))]
    assert token_entropy(logits).tolist() == pytest.approx(expected, abs=1e-6)
    assert token_entropy(torch.zeros(2, 3, 7)).shape == (2, 3)


def test_explained_variance_hand_values():
    returns = t([[1.0, 2.0, 3.0, 99.0]])
    mask = t([[1.0, 1.0, 1.0, 0.0]])  # the padded 99 must not count
    assert explained_variance(returns, returns, mask) == pytest.approx(1.0)
    assert explained_variance(torch.full_like(returns, 5.0), returns, mask) == pytest.approx(0.0)
    # residual (0, 0, -1): population variance 2/9; returns' variance 2/3 -> 1 - 1/3
    assert explained_variance(t([[1.0, 2.0, 4.0, 0.0]]), returns, mask) == pytest.approx(2 / 3)
    assert math.isnan(explained_variance(returns, torch.ones_like(returns), mask))


def test_masked_sequence_sum():
    assert masked_sequence_sum(t([[1.0, 2.0, 4.0], [1.0, 1.0, 1.0]]), t([[1, 1, 0], [1, 0, 0]])).tolist() == [3.0, 1.0]


def test_best_of_n_weights_hand_values():
    assert best_of_n_weights(3, 2).tolist() == pytest.approx([0.0, 1 / 3, 2 / 3])
    assert best_of_n_weights(4, 1).tolist() == pytest.approx([0.25] * 4)  # best of 1 = the mean
    assert best_of_n_weights(5, 5).tolist() == pytest.approx([0, 0, 0, 0, 1.0])
    for n in (1, 7, 64, 256):
        assert float(best_of_n_weights(256, n).sum()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="1 <= n <= m"):
        best_of_n_weights(3, 4)


def test_best_of_n_estimate_equals_the_average_over_every_subset():
    """E[value of the best of a uniformly drawn n-subset], ties among the best split evenly."""
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (3, 6), generator=g).float()  # few levels: plenty of ties
    values = torch.randn(3, 6, generator=g)
    for n in (1, 2, 3, 6):
        got = best_of_n_estimate(scores, values, n)
        for p in range(3):
            subsets = list(itertools.combinations(range(6), n))
            total = 0.0
            for s in subsets:
                top = max(scores[p, i] for i in s)
                best = [i for i in s if scores[p, i] == top]
                total += sum(float(values[p, i]) for i in best) / len(best)
            assert float(got[p]) == pytest.approx(total / len(subsets), abs=1e-9)


def test_best_of_n_estimate_hand_value_and_shapes():
    scores, values = t([[1.0, 3.0, 2.0]]), t([[10.0, 30.0, 20.0]])
    assert best_of_n_estimate(scores, values, 2).tolist() == pytest.approx([20 / 3 + 20])  # 20/3 + 2/3 * 30
    with pytest.raises(ValueError, match="must be equal"):
        best_of_n_estimate(scores, values[:, :2], 1)
