"""Policy-gradient pieces for RLHF: masked statistics, GAE, PPO, GRPO, RLOO, KL-penalised rewards.

Shapes: B sequences, T completion positions. `mask` (B, T) is 1 on completion tokens that count and 0 on
padding (and on the prompt, if the tensors include it). Per-token losses come back (B, T) and zeroed
where the mask is 0; the stage reduces them with `masked_mean` or a `GRPO_AGGREGATIONS` entry.
Group layouts follow TRL: a batch of P prompts x G completions is laid out prompt-major, i.e. the G
completions of a prompt are consecutive (`rewards.view(P, G)`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from alignlab.objectives.kl import KL_ESTIMATORS, kl_k3

# --- masked statistics -----------------------------------------------------------------------------


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of x over positions where mask is 1; 0 (not nan) where the mask is empty."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance of x over the masked positions (all dims), with Bessel's correction by default."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        n = mask.sum()
        if n < 2:
            raise ValueError(f"unbiased masked variance needs at least 2 unmasked values, got {int(n)}")
        var = var * n / (n - 1)
    return var


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """(x - mean) / std over the masked positions; 0 outside the mask.

    With shift_mean=False the mean is added back (only the scale is normalised), as PPO implementations
    do for rewards. The (unbiased) masked variance of the result is 1 up to eps.
    """
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(x.dtype)


# --- GAE and PPO -----------------------------------------------------------------------------------


def gae(
    rewards: Tensor, values: Tensor, mask: Tensor, *, gamma: float = 1.0, lam: float = 0.95
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation. Schulman et al. 2016, eqs. 11-16.

    A_t = sum_l (gamma lam)^l delta_{t+l},  delta_t = r_t + gamma V_{t+1} - V_t,  V = 0 after the last
    unmasked position (the episode ends with the completion). The mask must be one contiguous run of
    1s per row (padding before or after it), since a 0 is read as the end of the episode.

    Args: rewards, values, mask: (B, T). Returns: advantages (B, T), returns = advantages + values (B, T),
    both 0 outside the mask and both detached from `values`.
    """
    mask = mask.to(values.dtype)
    rewards, values = rewards * mask, values.detach() * mask
    T = rewards.size(1)
    advantages = torch.zeros_like(values)
    last = torch.zeros_like(values[:, 0])
    for t in reversed(range(T)):
        if t + 1 < T:
            next_mask, next_value = mask[:, t + 1], values[:, t + 1]  # next_value is 0 on padding
        else:
            next_mask = next_value = torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last * next_mask  # a 0 in the mask ends the episode
        advantages[:, t] = last
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def _clipped_surrogate(ratio: Tensor, advantages: Tensor, low: float, high: float) -> tuple[Tensor, Tensor]:
    """-min(ratio A, clip(ratio, 1-low, 1+high) A) and whether the clipped branch was the active one."""
    unclipped = -ratio * advantages
    clipped = -torch.clamp(ratio, 1 - low, 1 + high) * advantages
    return torch.maximum(unclipped, clipped), clipped > unclipped


def ppo_policy_loss(
    logps: Tensor,
    old_logps: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO clipped surrogate, per token. Schulman et al. 2017, eq. 7 (negated, to minimise).

    Args:
        logps: (B, T) log-probs of the sampled tokens under the current policy (with grad).
        old_logps: (B, T) the same under the policy that sampled them (no grad).
        advantages: (B, T), or (B,) for one advantage per sequence.
        clip_eps_high: upper clip range if asymmetric (DAPO's clip-higher); None means clip_eps.
    Returns:
        per_token_loss (B, T), 0 where masked.
        metrics: `clipfrac` (share of tokens where the clipped branch is active), `approx_kl` (k3 estimate
        of KL(pi_old || pi) on the sampled tokens), `ratio` (mean importance ratio).
    """
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)
    log_ratio = logps - old_logps.detach()
    ratio = torch.exp(log_ratio)
    high = clip_eps if clip_eps_high is None else clip_eps_high
    loss, was_clipped = _clipped_surrogate(ratio, advantages, clip_eps, high)
    with torch.no_grad():
        metrics = {
            "clipfrac": masked_mean(was_clipped.float(), mask),
            "approx_kl": masked_mean(torch.expm1(log_ratio) - log_ratio, mask),
            "ratio": masked_mean(ratio, mask),
        }
    return loss * mask.to(loss.dtype), metrics


def ppo_value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, *, clip_eps_value: float = 0.2
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped value loss 0.5 max((V - R)^2, (clip(V, V_old +- eps) - R)^2), per token.

    Not in the PPO paper (which uses plain squared error): it is the OpenAI baselines `ppo2` variant that
    TRL, OpenRLHF and torchtune use. Args: (B, T) each. Returns per-token loss (B, T), 0 where masked,
    and `vf_clipfrac` (share of tokens where the clipped term is the larger).
    """
    returns, old_values = returns.detach(), old_values.detach()
    clipped = old_values + torch.clamp(values - old_values, -clip_eps_value, clip_eps_value)
    loss_unclipped = (values - returns) ** 2
    loss_clipped = (clipped - returns) ** 2
    loss = 0.5 * torch.maximum(loss_unclipped, loss_clipped)
    with torch.no_grad():
        metrics = {"vf_clipfrac": masked_mean((loss_clipped > loss_unclipped).float(), mask)}
    return loss * mask.to(loss.dtype), metrics


# --- GRPO -----------------------------------------------------------------------------------------

_REWARD_SCALES = {
    # std over each group of G (TRL's default "group"), over the whole batch, or none (Dr. GRPO)
    "group": lambda grouped: grouped.std(dim=1, keepdim=True).expand_as(grouped),
    "batch": lambda grouped: grouped.std().expand_as(grouped),
    "none": None,
}


def grpo_advantages(
    rewards: Tensor, group_size: int, *, scale_rewards: str = "group", eps: float = 1e-4
) -> Tensor:
    """Group-normalised advantages (r - mean_group(r)) / (std + eps). Shao et al. 2024, Sec. 4.1.2.

    std is the unbiased (Bessel) standard deviation and eps = 1e-4, as TRL's GRPOTrainer. A group whose
    rewards are all equal gets advantage 0. Args: rewards (P*G,) prompt-major. Returns (P*G,).
    """
    if scale_rewards not in _REWARD_SCALES:
        raise ValueError(f"scale_rewards must be one of {sorted(_REWARD_SCALES)}, got {scale_rewards!r}")
    if group_size < 2 or rewards.numel() % group_size:
        raise ValueError(f"need group_size >= 2 dividing {rewards.numel()} rewards, got {group_size}")
    grouped = rewards.view(-1, group_size)
    advantages = grouped - grouped.mean(dim=1, keepdim=True)
    scale = _REWARD_SCALES[scale_rewards]
    if scale is not None:
        advantages = advantages / (scale(grouped) + eps)
    return advantages.reshape(-1)


def grpo_per_token_loss(
    logps: Tensor,
    old_logps: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    epsilon_low: float = 0.2,
    epsilon_high: float | None = None,
    beta: float = 0.0,
    ref_logps: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """GRPO's per-token objective: clipped surrogate + beta * k3 KL to the reference. Shao et al. 2024, eq. 3.

    Args:
        logps, old_logps, mask: (B, T); advantages: (B,) one per completion (`grpo_advantages`).
        epsilon_high: DAPO's clip-higher (Yu et al. 2025); None means epsilon_low.
        ref_logps: (B, T), required when beta != 0.
    Returns:
        per_token_loss (B, T) (0 where masked; reduce with `GRPO_AGGREGATIONS[loss_type]`).
        metrics: TRL's `clip_ratio/low_mean`, `clip_ratio/high_mean`, `clip_ratio/region_mean`, and `kl`.
    """
    high = epsilon_low if epsilon_high is None else epsilon_high
    adv = advantages.unsqueeze(1) if advantages.dim() == 1 else advantages
    ratio = torch.exp(logps - old_logps.detach())
    loss, _ = _clipped_surrogate(ratio, adv, epsilon_low, high)
    metrics: dict[str, Tensor] = {}
    if beta != 0.0:
        if ref_logps is None:
            raise ValueError("grpo_per_token_loss: ref_logps is required when beta != 0")
        per_token_kl = kl_k3(logps, ref_logps.detach())
        loss = loss + beta * per_token_kl
        metrics["kl"] = masked_mean(per_token_kl.detach(), mask)
    with torch.no_grad():
        low_clip = (ratio < 1 - epsilon_low) & (adv < 0)
        high_clip = (ratio > 1 + high) & (adv > 0)
        metrics["clip_ratio/low_mean"] = masked_mean(low_clip.float(), mask)
        metrics["clip_ratio/high_mean"] = masked_mean(high_clip.float(), mask)
        metrics["clip_ratio/region_mean"] = masked_mean((low_clip | high_clip).float(), mask)
    return loss * mask.to(loss.dtype), metrics


# Reductions of the (B, T) per-token loss to the scalar training loss, keyed by TRL's `loss_type`.
# All take the same arguments; each uses only what it needs.


def _aggregate_grpo(loss: Tensor, mask: Tensor, **_: object) -> Tensor:
    """Mean over each sequence's tokens, then over sequences (Shao et al. 2024, eq. 3)."""
    return masked_mean(loss, mask, dim=1).mean()


def _aggregate_bnpo(loss: Tensor, mask: Tensor, **_: object) -> Tensor:
    """Mean over all tokens of the local batch."""
    return masked_mean(loss, mask)


def _aggregate_dapo(
    loss: Tensor, mask: Tensor, *, num_items_in_batch: Tensor | float | None = None, **_: object
) -> Tensor:
    """Token-level sum divided by the token count of the whole optimiser step (Yu et al. 2025, DAPO).

    num_items_in_batch: the unmasked tokens in every micro-batch of the step; None means this batch's
    count (then identical to bnpo). Don't also divide by the accumulation steps; under DDP, which
    averages gradients over ranks, pass the global count / world size, as TRL does.
    """
    total = mask.sum() if num_items_in_batch is None else torch.as_tensor(num_items_in_batch)
    return (loss * mask).sum() / total.clamp(min=1)


def _aggregate_dr_grpo(
    loss: Tensor, mask: Tensor, *, max_completion_length: int | None = None, **_: object
) -> Tensor:
    """Sum over tokens / (B * max_completion_length), a constant (Liu et al. 2025, Dr. GRPO)."""
    length = loss.size(1) if max_completion_length is None else max_completion_length
    return (loss * mask).sum() / (loss.size(0) * length)


GRPO_AGGREGATIONS = {
    "grpo": _aggregate_grpo,
    "bnpo": _aggregate_bnpo,
    "dapo": _aggregate_dapo,  # TRL 1.16's default loss_type
    "dr_grpo": _aggregate_dr_grpo,
}


# --- RLOO and KL-shaped rewards -------------------------------------------------------------------


def rloo_advantages(rewards: Tensor, group_size: int) -> Tensor:
    """REINFORCE leave-one-out: r_i - mean_{j != i} r_j within each group of k = group_size samples.

    Ahmadian et al. 2024 (Sec. 3, after Kool et al. 2019). Args: rewards (P*k,) prompt-major.
    Returns (P*k,); the advantages of a group sum to 0.
    """
    if group_size < 2 or rewards.numel() % group_size:
        raise ValueError(f"need group_size >= 2 dividing {rewards.numel()} rewards, got {group_size}")
    grouped = rewards.view(-1, group_size)
    baseline = (grouped.sum(dim=1, keepdim=True) - grouped) / (group_size - 1)
    return (grouped - baseline).reshape(-1)


def last_token_index(mask: Tensor) -> Tensor:
    """(B,) index of the last 1 in each row of a (B, T) mask; ValueError if a row has none."""
    if not bool(mask.bool().any(dim=1).all()):
        raise ValueError("every row of the mask needs at least one unmasked token")
    T = mask.size(1)
    return (T - 1) - mask.bool().flip(1).int().argmax(dim=1)


def kl_penalized_rewards(
    scores: Tensor,
    logps: Tensor,
    ref_logps: Tensor,
    mask: Tensor,
    *,
    kl_coef: float,
    estimator: str = "k1",
) -> tuple[Tensor, Tensor]:
    """Per-token rewards -kl_coef * KL_t, plus the sequence score at the last unmasked token.

    Ziegler et al. 2019 eq. 2 / Stiennon et al. 2020 eq. 1, spread over tokens as in InstructGPT-style
    PPO (TRL, OpenRLHF). Args: scores (B,); logps, ref_logps, mask (B, T); estimator one of
    `KL_ESTIMATORS`. Returns rewards (B, T) and the per-token KL estimate (B, T), both 0 where masked
    and detached (rewards are data for GAE, not a differentiable loss).
    """
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"estimator must be one of {sorted(KL_ESTIMATORS)}, got {estimator!r}")
    kl = KL_ESTIMATORS[estimator](logps.detach(), ref_logps.detach(), mask.to(logps.dtype))
    rewards = -kl_coef * kl
    rows = torch.arange(rewards.size(0), device=rewards.device)
    rewards[rows, last_token_index(mask)] += scores.detach().to(rewards.dtype)
    return rewards, kl
