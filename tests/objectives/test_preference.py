import inspect
import math

import pytest
import torch

from alignlab.objectives.preference import (
    LOSS_HPARAMS,
    LOSSES,
    PairedLogps,
    cdpo_loss,
    dpo_sigmoid_loss,
    hinge_loss,
    ipo_loss,
    kto_kl_reference,
    kto_loss,
    kto_metrics,
    orpo_log_odds_ratio,
    orpo_loss,
    preference_metrics,
    robust_dpo_loss,
    rpo_loss,
    simpo_loss,
)

t = torch.tensor


def pairs(pc, pr, rc=None, rr=None, lc=None, lr=None):
    opt = lambda v: None if v is None else t(v, dtype=torch.float64)  # noqa: E731
    return PairedLogps(opt(pc), opt(pr), opt(rc), opt(rr), opt(lc), opt(lr))


def log_sigmoid(x):
    return -math.log1p(math.exp(-x))


def test_dpo_at_policy_equal_reference_is_log_2():
    b = pairs([-3.0, -10.0], [-4.0, -1.0], [-3.0, -10.0], [-4.0, -1.0])
    out = dpo_sigmoid_loss(b, beta=0.1)
    torch.testing.assert_close(out.losses, torch.full((2,), math.log(2), dtype=torch.float64))
    assert out.chosen_rewards.abs().max() == 0 and out.rejected_rewards.abs().max() == 0


def test_dpo_hand_value_and_rewards():
    # h = (-1 - -2) - (-3 - -2) = 1 - (-1) = 2; beta = 0.5 -> -log sigmoid(1)
    b = pairs([-1.0], [-3.0], [-2.0], [-2.0])
    out = dpo_sigmoid_loss(b, beta=0.5)
    assert out.losses.item() == pytest.approx(-log_sigmoid(1.0))
    assert out.chosen_rewards.item() == pytest.approx(0.5) and out.rejected_rewards.item() == pytest.approx(
        -0.5
    )


def test_ipo_at_equality_is_one_over_four_beta_squared():
    b = pairs([-5.0], [-7.0], [-5.0], [-7.0], [3], [4])
    assert ipo_loss(b, beta=0.1).losses.item() == pytest.approx(1 / (4 * 0.1**2))  # = 25


def test_ipo_normalises_log_ratios_by_length():
    # chosen log-ratio 4 over 2 tokens = 2, rejected -2 over 4 tokens = -0.5 -> h_avg 2.5; 1/(2 beta) = 1
    b = pairs([0.0], [0.0], [-4.0], [2.0], [2], [4])
    assert ipo_loss(b, beta=0.5).losses.item() == pytest.approx(1.5**2)


def test_ipo_without_lengths_names_the_missing_field():
    with pytest.raises(ValueError, match="chosen_lengths"):
        ipo_loss(pairs([0.0], [0.0], [0.0], [0.0]), beta=0.1)


def test_hinge_is_zero_past_the_margin_and_one_at_zero():
    b = pairs([0.0, 0.0], [0.0, -20.0], [0.0, 0.0], [0.0, 0.0])  # h = 0 and h = 20
    assert hinge_loss(b, beta=0.1).losses.tolist() == pytest.approx([1.0, 0.0])


def test_cdpo_and_robust_reduce_to_dpo_without_noise():
    b = pairs([-1.0, -2.0], [-3.0, -1.0], [-2.0, -2.5], [-2.0, -0.5])
    dpo = dpo_sigmoid_loss(b, beta=0.3).losses
    torch.testing.assert_close(cdpo_loss(b, beta=0.3, label_smoothing=0.0).losses, dpo)
    torch.testing.assert_close(robust_dpo_loss(b, beta=0.3, label_smoothing=0.0).losses, dpo)


def test_cdpo_hand_value():
    b = pairs([0.0], [0.0], [-1.0], [1.0])  # h = 2, beta = 1
    expected = -0.9 * log_sigmoid(2.0) - 0.1 * log_sigmoid(-2.0)
    assert cdpo_loss(b, beta=1.0, label_smoothing=0.1).losses.item() == pytest.approx(expected)


def test_robust_dpo_is_unbiased_under_label_flips():
    # E over a flip with probability eps of the rDPO loss equals the clean DPO loss (Chowdhury et al.)
    eps, beta = 0.2, 0.7
    b = pairs([-1.0, -4.0], [-3.0, -1.0], [-2.0, -2.0], [-2.0, -2.0])
    flipped = PairedLogps(b.policy_rejected, b.policy_chosen, b.ref_rejected, b.ref_chosen)
    expected = (1 - eps) * robust_dpo_loss(b, beta=beta, label_smoothing=eps).losses + eps * robust_dpo_loss(
        flipped, beta=beta, label_smoothing=eps
    ).losses
    torch.testing.assert_close(expected, dpo_sigmoid_loss(b, beta=beta).losses)


def test_robust_dpo_rejects_half_noise():
    with pytest.raises(ValueError, match="label_smoothing"):
        robust_dpo_loss(pairs([0.0], [0.0], [0.0], [0.0]), beta=0.1, label_smoothing=0.5)


def test_simpo_hand_value_is_reference_free():
    # averages -1 and -2, beta 2, gamma 0.5 -> -log sigmoid(2 * 1 - 0.5)
    out = simpo_loss(pairs([-3.0], [-8.0], lc=[3], lr=[4]), beta=2.0, simpo_gamma=0.5)
    assert out.losses.item() == pytest.approx(-log_sigmoid(1.5))
    assert out.chosen_rewards.item() == pytest.approx(-2.0) and out.rejected_rewards.item() == pytest.approx(
        -4.0
    )


def test_orpo_hand_value():
    # average probabilities 1/2 and 1/4: odds 1 and 1/3, odds ratio 3
    b = pairs([2 * math.log(0.5)], [3 * math.log(0.25)], lc=[2], lr=[3])
    assert orpo_log_odds_ratio(b).item() == pytest.approx(math.log(3))
    # NLL of chosen (per token) = log 2; ratio term = log sigmoid(log 3) = log(3/4)
    assert orpo_loss(b, beta=0.1).losses.item() == pytest.approx(math.log(2) - 0.1 * math.log(0.75))


def test_rpo_adds_length_normalised_nll_of_chosen():
    b = pairs([-6.0], [-2.0], [-6.0], [-2.0], [3], [1])  # policy = reference, chosen NLL = 2 per token
    assert rpo_loss(b, beta=0.1, rpo_alpha=0.5).losses.item() == pytest.approx(math.log(2) + 0.5 * 2.0)


def test_gradients_reach_the_policy_only_and_rewards_are_detached():
    pc = torch.tensor([-2.0, -3.0], requires_grad=True)
    pr = torch.tensor([-2.5, -1.0], requires_grad=True)
    b = PairedLogps(pc, pr, torch.tensor([-2.0, -2.0]), torch.tensor([-2.0, -2.0]), t([2, 2]), t([3, 1]))
    for name, fn in LOSSES.items():
        hp = {"label_smoothing": 0.1, "rpo_alpha": 1.0, "simpo_gamma": 0.5}
        out = fn(b, beta=0.1, **{k: hp[k] for k in LOSS_HPARAMS[name]})
        assert out.losses.shape == (2,), name
        assert not out.chosen_rewards.requires_grad and not out.rejected_rewards.requires_grad, name
        out.losses.sum().backward()
        assert pc.grad is not None and torch.isfinite(pc.grad).all(), name
        pc.grad = pr.grad = None


def test_loss_hparams_name_exactly_the_keyword_arguments():
    assert LOSSES.keys() == LOSS_HPARAMS.keys()
    for name, fn in LOSSES.items():
        params = inspect.signature(fn).parameters
        assert set(params) == {"b", "beta", *LOSS_HPARAMS[name]}, name


def test_preference_metrics_use_trl_names():
    b = pairs([-1.0, -2.0], [-3.0, -1.0], [-2.0, -2.0], [-2.0, -2.0])
    m = preference_metrics(dpo_sigmoid_loss(b, beta=1.0), b)
    assert m == pytest.approx(
        {
            "rewards/chosen": 0.5,  # (1 + 0) / 2
            "rewards/rejected": 0.0,  # (-1 + 1) / 2
            "rewards/accuracies": 0.5,
            "rewards/margins": 0.5,
            "logps/chosen": -1.5,
            "logps/rejected": -2.0,
        }
    )


def test_kto_hand_values_and_weights():
    policy, ref = t([0.0, 0.0]), t([-1.0, 1.0])  # log-ratios +1 (desirable) and -1 (undesirable)
    out = kto_loss(
        policy, ref, t([True, False]), t(0.5), beta=1.0, desirable_weight=2.0, undesirable_weight=3.0
    )
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert out.losses.tolist() == pytest.approx([2 * (1 - sig(0.5)), 3 * (1 - sig(1.5))])
    assert out.rewards.tolist() == pytest.approx([1.0, -1.0])
    m = kto_metrics(out, policy, t([True, False]))
    assert m["rewards/margins"] == pytest.approx(2.0) and m["kl"] == pytest.approx(0.5)


def test_kto_metrics_skip_an_empty_side():
    out = kto_loss(t([0.0]), t([0.0]), t([True]), t(0.0), beta=0.1)
    assert "rewards/rejected" not in kto_metrics(out, t([0.0]), t([True]))


def test_kto_kl_reference_is_clamped_mean_without_grad():
    p = torch.tensor([-1.0, -3.0], requires_grad=True)
    assert kto_kl_reference(p, t([0.0, 0.0])).item() == 0.0  # mean -2 clamps to 0
    z = kto_kl_reference(p, t([-2.0, -4.0]))
    assert z.item() == pytest.approx(1.0) and not z.requires_grad
