"""Reward-model objective (Bradley-Terry) and the accuracy ceiling of a Bradley-Terry rater.

Bradley & Terry 1952; as a reward-model loss, Ouyang et al. 2022 eq. 1 (one pair per comparison here,
not all K-choose-2 pairs of a prompt). The optional margin follows Llama 2 (Touvron et al. 2023, eq. 2)
and the centring term follows TRL's RewardTrainer (Eisenstein et al. 2023 motivate it: it pins the
otherwise free offset of a BT reward near 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def bradley_terry_loss(
    chosen_rewards: Tensor,
    rejected_rewards: Tensor,
    *,
    margin: Tensor | None = None,
    center_rewards_coefficient: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-pair BT loss -log sigmoid(r_c - r_r - margin) [+ c (r_c + r_r)^2].

    Args:
        chosen_rewards, rejected_rewards: (B,) scalar rewards from the reward model.
        margin: (B,) optional required gap (e.g. from graded preferences); None means 0.
        center_rewards_coefficient: TRL's name; None or 0 disables the centring term.
    Returns:
        losses: (B,); losses.mean() equals TRL's RewardTrainer loss.
        metrics: detached `accuracy` (r_c > r_r) and `margin` (mean r_c - r_r), TRL's names.
    """
    diff = chosen_rewards - rejected_rewards
    if margin is not None:
        diff = diff - margin
    losses = -F.logsigmoid(diff)
    if center_rewards_coefficient:
        losses = losses + center_rewards_coefficient * (chosen_rewards + rejected_rewards) ** 2
    with torch.no_grad():
        metrics = {
            "accuracy": (chosen_rewards > rejected_rewards).float().mean(),
            "margin": (chosen_rewards - rejected_rewards).mean(),
        }
    return losses, metrics


def bt_preference_prob(score_a: Tensor, score_b: Tensor, temperature: float = 1.0) -> Tensor:
    """P(a preferred over b) = sigmoid((s_a - s_b) / temperature), elementwise."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return torch.sigmoid((score_a - score_b) / temperature)


def bt_bayes_accuracy(score_a: Tensor, score_b: Tensor, temperature: float = 1.0) -> Tensor:
    """Best achievable agreement with a noisy BT rater: E[max(p, 1 - p)], p = P(a > b).

    Even a reward model that knows the gold scores exactly predicts the rater's (random) label only
    with this probability, so it is the ceiling for held-out preference accuracy.
    Args: (N,) gold scores of the two sides of N pairs. Returns: () scalar in [0.5, 1].
    """
    p = bt_preference_prob(score_a, score_b, temperature)
    return torch.maximum(p, 1 - p).mean()
