import math

import pytest
import torch

from alignlab.objectives.rl import (
    GRPO_AGGREGATIONS,
    gae,
    grpo_advantages,
    grpo_per_token_loss,
    kl_penalized_rewards,
    last_token_index,
    masked_mean,
    masked_var,
    masked_whiten,
    ppo_policy_loss,
    ppo_value_loss,
    rloo_advantages,
)

t = torch.tensor


def test_masked_mean_hand_value_and_empty_mask():
    x, mask = t([[1.0, 2.0, 100.0], [3.0, 100.0, 100.0]]), t([[1, 1, 0], [1, 0, 0]])
    assert masked_mean(x, mask).item() == pytest.approx(2.0)
    assert masked_mean(x, mask, dim=1).tolist() == pytest.approx([1.5, 3.0])
    assert masked_mean(x, torch.zeros_like(mask)).item() == 0.0


def test_whiten_gives_mean_zero_variance_one_under_the_mask():
    torch.manual_seed(0)
    x = torch.randn(4, 7) * 5 + 3
    mask = torch.ones(4, 7)
    mask[0, 5:] = 0
    mask[2, 2:] = 0
    w = masked_whiten(x, mask)
    assert masked_mean(w, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert masked_var(w, mask).item() == pytest.approx(1.0, abs=1e-5)
    assert w[2, 2:].abs().max().item() == 0.0
    kept = masked_whiten(x, mask, shift_mean=False)
    assert masked_mean(kept, mask).item() == pytest.approx(masked_mean(x, mask).item(), abs=1e-5)


def test_gae_with_gamma_lambda_one_is_reward_to_go_minus_values():
    rewards = t([[0.0, 1.0, 2.0, 9.0], [1.0, 3.0, 9.0, 9.0]])
    values = t([[0.5, 0.2, 0.1, 9.0], [0.3, 0.4, 9.0, 9.0]])
    mask = t([[1, 1, 1, 0], [1, 1, 0, 0]])  # right padding holds junk that must be ignored
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    reward_to_go = t([[3.0, 3.0, 2.0, 0.0], [4.0, 3.0, 0.0, 0.0]])
    torch.testing.assert_close(ret, reward_to_go)
    torch.testing.assert_close(adv, (reward_to_go - values) * mask)


def test_gae_hand_value_with_discounting():
    rewards, values, mask = t([[0.0, 1.0]]), t([[0.5, 0.25]]), t([[1, 1]])
    adv, _ = gae(rewards, values, mask, gamma=0.5, lam=0.5)
    d1 = 1.0 - 0.25  # last step: V after the end is 0
    d0 = 0.0 + 0.5 * 0.25 - 0.5
    assert adv.tolist()[0] == pytest.approx([d0 + 0.25 * d1, d1])
    adv0, _ = gae(rewards, values, mask, gamma=0.5, lam=0.0)  # lambda = 0: one-step TD errors
    assert adv0.tolist()[0] == pytest.approx([d0, d1])


def test_gae_with_left_padding_starts_the_episode_late():
    adv, ret = gae(t([[7.0, 0.0, 1.0]]), t([[7.0, 0.0, 0.0]]), t([[0, 1, 1]]), gamma=1.0, lam=1.0)
    assert ret.tolist()[0] == pytest.approx([0.0, 1.0, 1.0])


def test_ppo_policy_loss_clipping_and_metrics():
    lp_old = torch.zeros(1, 3)
    lp = torch.log(t([[1.0, 1.5, 0.5]]))
    adv = t([2.0])  # one advantage per sequence
    loss, m = ppo_policy_loss(lp, lp_old, adv, torch.ones(1, 3), clip_eps=0.2)
    # ratio 1 -> -2; ratio 1.5 > 1.2 with A > 0 -> clipped -1.2 * 2; ratio 0.5 with A > 0 -> unclipped -1
    assert loss.tolist()[0] == pytest.approx([-2.0, -2.4, -1.0])
    assert m["clipfrac"].item() == pytest.approx(1 / 3)
    expected_kl = sum(r - 1 - math.log(r) for r in (1.0, 1.5, 0.5)) / 3
    assert m["approx_kl"].item() == pytest.approx(expected_kl)


def test_ppo_policy_loss_negative_advantage_and_mask():
    loss, m = ppo_policy_loss(torch.log(t([[0.5, 1.5]])), torch.zeros(1, 2), t([[-1.0, -1.0]]), t([[1, 0]]))
    # ratio 0.5 < 0.8 with A < 0 -> clipped: -0.8 * -1 = 0.8; second token masked
    assert loss.tolist()[0] == pytest.approx([0.8, 0.0])
    assert m["clipfrac"].item() == 1.0


def test_ppo_value_loss_hand_values():
    values, old, returns = t([[1.0, 0.5]]), t([[0.5, 0.5]]), t([[0.0, 1.0]])
    loss, m = ppo_value_loss(values, old, returns, torch.ones(1, 2), clip_eps_value=0.2)
    # token 0: unclipped (1-0)^2 = 1, clipped V = 0.7 -> 0.49; max 1 -> 0.5. token 1: 0.25 both
    assert loss.tolist()[0] == pytest.approx([0.5, 0.125])
    assert m["vf_clipfrac"].item() == 0.0


def test_grpo_advantages_hand_values():
    adv = grpo_advantages(t([1.0, 0.0, 0.0, 1.0, 5.0, 5.0]), group_size=2)
    s = math.sqrt(0.5)  # unbiased std of {0, 1}
    a = 0.5 / (s + 1e-4)
    assert adv.tolist() == pytest.approx([a, -a, -a, a, 0.0, 0.0])
    assert grpo_advantages(t([1.0, 3.0]), 2, scale_rewards="none").tolist() == [-1.0, 1.0]
    with pytest.raises(ValueError, match="scale_rewards"):
        grpo_advantages(t([1.0, 3.0]), 2, scale_rewards="global")
    with pytest.raises(ValueError, match="group_size"):
        grpo_advantages(t([1.0, 3.0, 4.0]), 2)


def test_rloo_leave_one_out_baseline():
    adv = rloo_advantages(t([1.0, 2.0, 3.0, 0.0, 0.0, 6.0]), group_size=3)
    assert adv.tolist() == pytest.approx([-1.5, 0.0, 1.5, -3.0, -3.0, 6.0])


def test_grpo_on_policy_loss_is_minus_advantage_and_kl_adds():
    lp = torch.log(t([[0.5, 0.2], [0.4, 0.4]]))
    loss, m = grpo_per_token_loss(lp, lp.clone(), t([1.0, -2.0]), torch.ones(2, 2))
    torch.testing.assert_close(loss, t([[-1.0, -1.0], [2.0, 2.0]]))
    assert m["clip_ratio/region_mean"].item() == 0.0 and "kl" not in m
    ref = torch.log(t([[0.25, 0.2], [0.4, 0.4]]))  # one token with log r = -log 2
    loss, m = grpo_per_token_loss(lp, lp.clone(), t([1.0, -2.0]), torch.ones(2, 2), beta=0.1, ref_logps=ref)
    k3 = 0.5 - 1 + math.log(2)
    assert loss[0, 0].item() == pytest.approx(-1.0 + 0.1 * k3)
    assert m["kl"].item() == pytest.approx(k3 / 4)


def test_grpo_needs_ref_when_beta_is_set():
    with pytest.raises(ValueError, match="ref_logps"):
        grpo_per_token_loss(torch.zeros(1, 1), torch.zeros(1, 1), t([1.0]), torch.ones(1, 1), beta=0.1)


def test_grpo_aggregations_hand_values():
    loss, mask = t([[1.0, 3.0, 0.0], [6.0, 0.0, 0.0]]), t([[1, 1, 0], [1, 0, 0]])
    agg = GRPO_AGGREGATIONS
    assert agg["grpo"](loss, mask).item() == pytest.approx((2.0 + 6.0) / 2)
    assert agg["bnpo"](loss, mask).item() == pytest.approx(10.0 / 3)
    assert agg["dapo"](loss, mask).item() == pytest.approx(10.0 / 3)
    assert agg["dapo"](loss, mask, num_items_in_batch=t(5.0)).item() == pytest.approx(2.0)
    assert agg["dr_grpo"](loss, mask).item() == pytest.approx(10.0 / 6)
    assert agg["dr_grpo"](loss, mask, max_completion_length=5).item() == pytest.approx(1.0)


def test_last_token_index_any_padding_side():
    assert last_token_index(t([[1, 1, 0, 0], [0, 0, 1, 1], [1, 1, 1, 1]])).tolist() == [1, 3, 3]
    with pytest.raises(ValueError, match="at least one"):
        last_token_index(t([[0, 0]]))


def test_kl_penalized_rewards_put_the_score_on_the_last_token():
    lp = torch.log(t([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]))
    ref = torch.log(t([[0.25, 0.5, 0.5], [0.5, 0.5, 0.5]]))
    mask = t([[1, 1, 0], [0, 1, 1]])
    rewards, kl = kl_penalized_rewards(t([1.0, 2.0]), lp, ref, mask, kl_coef=0.1)
    assert kl.tolist()[0] == pytest.approx([math.log(2), 0.0, 0.0])
    torch.testing.assert_close(rewards, t([[-0.1 * math.log(2), 1.0, 0.0], [0.0, 0.0, 2.0]]))
