"""Two-order judge preferences: hand-computed values and exact cancellation of an additive position bias."""

import math

import pytest
import torch

from alignlab.objectives.judge import judge_preference, mean_log_odds, mean_probability, order_log_odds


def sigmoid(z):
    return 1 / (1 + math.exp(-z))


def test_order_log_odds_by_hand():
    # x first: log P(A) = -0.5, log P(B) = -2.0 -> z1 = 1.5; y first: log P(A) = -1.0, log P(B) = -0.25 -> z2 = 0.75
    z1, z2 = order_log_odds(torch.tensor([[-0.5, -2.0]]), torch.tensor([[-1.0, -0.25]]))
    assert z1.item() == pytest.approx(1.5) and z2.item() == pytest.approx(0.75)
    assert mean_probability(z1, z2).item() == pytest.approx((sigmoid(1.5) + sigmoid(0.75)) / 2)
    assert mean_log_odds(z1, z2).item() == pytest.approx(sigmoid(1.125))


@pytest.mark.parametrize("d", [-2.0, -0.3, 0.0, 0.7, 3.0])
@pytest.mark.parametrize("bias", [0.0, 1.0, 4.0])
def test_an_additive_position_bias_cancels(d, bias):
    # A judge that adds `bias` to the log-odds of "(A)": z1 = d + bias, z2 = d - bias.
    x_first = torch.tensor([[0.5 * (d + bias), -0.5 * (d + bias)]]) - 3.0  # any common offset normalises away
    y_first = torch.tensor([[0.5 * (-d + bias), -0.5 * (-d + bias)]]) - 1.0
    out = judge_preference(x_first, y_first, "mean_log_odds")
    assert out["p"].item() == pytest.approx(sigmoid(d), abs=1e-6)
    assert out["position_bias"].item() == pytest.approx(bias, abs=1e-6)
    assert out["p_first_order"].item() == pytest.approx(sigmoid(d + bias), abs=1e-6)
    p = judge_preference(x_first, y_first, "mean_probability")["p"].item()
    assert p == pytest.approx((sigmoid(d + bias) + sigmoid(d - bias)) / 2, abs=1e-6)
    assert (p > 0.5) == (d > 0) and (p < 0.5) == (d < 0)  # the direction is always recovered
    assert out["consistent"].item() == ((d + bias > 0) == (d - bias > 0))


def test_unknown_method_is_an_error():
    with pytest.raises(ValueError, match="method must be one of mean_probability, mean_log_odds"):
        judge_preference(torch.zeros(1, 2), torch.zeros(1, 2), "median")
