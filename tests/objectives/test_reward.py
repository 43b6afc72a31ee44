import math

import pytest
import torch

from alignlab.objectives.reward import bradley_terry_loss, bt_bayes_accuracy, bt_preference_prob

t = torch.tensor


def test_equal_rewards_give_log_2():
    losses, metrics = bradley_terry_loss(t([0.3, -2.0]), t([0.3, -2.0]))
    assert losses.tolist() == pytest.approx([math.log(2)] * 2)
    assert metrics["accuracy"].item() == 0.0 and metrics["margin"].item() == 0.0


def test_margin_shifts_the_comparison():
    losses, metrics = bradley_terry_loss(t([2.0]), t([0.5]), margin=t([1.5]))
    assert losses.item() == pytest.approx(math.log(2))
    assert metrics["margin"].item() == pytest.approx(1.5)  # logged margin is the raw reward gap


def test_centring_term_hand_value():
    losses, _ = bradley_terry_loss(t([1.0]), t([1.0]), center_rewards_coefficient=0.01)
    assert losses.item() == pytest.approx(math.log(2) + 0.01 * 4.0)


def test_hand_value_and_accuracy():
    losses, metrics = bradley_terry_loss(t([math.log(3), 0.0]), t([0.0, 1.0]))
    # sigmoid(log 3) = 3/4 -> -log(3/4); second pair: -log sigmoid(-1)
    assert losses.tolist() == pytest.approx([-math.log(0.75), math.log1p(math.e)])
    assert metrics["accuracy"].item() == 0.5


def test_bayes_accuracy_hand_values():
    assert bt_bayes_accuracy(t([0.0]), t([0.0])).item() == pytest.approx(0.5)
    assert bt_bayes_accuracy(t([math.log(3), 0.0]), t([0.0, math.log(3)])).item() == pytest.approx(0.75)
    # temperature 2 halves the logit: sigmoid(log 3 / 2) = sqrt(3) / (1 + sqrt(3))
    expected = math.sqrt(3) / (1 + math.sqrt(3))
    assert bt_bayes_accuracy(t([math.log(3)]), t([0.0]), temperature=2.0).item() == pytest.approx(expected)
    assert bt_bayes_accuracy(t([1.0]), t([0.0]), temperature=1e-3).item() == pytest.approx(1.0)


def test_preference_prob_rejects_bad_temperature():
    with pytest.raises(ValueError, match="temperature"):
        bt_preference_prob(t([0.0]), t([0.0]), temperature=0.0)
