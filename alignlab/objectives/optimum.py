"""Exact targets over an enumerable answer set: the KL-regularised optimum and best-of-n.

When a prompt's answers can be listed (K of them, with reference probabilities and rewards), the policy
that RLHF and DPO aim at has a closed form, and so does best-of-n sampling; the instruments compare a
trained policy against these. All functions take (..., K) tensors and work along the last dimension, so
a batch of prompts is one call.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from alignlab.objectives.kl import categorical_kl


def kl_optimum(ref_probs: Tensor, rewards: Tensor, beta: float) -> Tensor:
    """argmax_pi E_pi[r] - beta KL(pi || pi_ref) = pi_ref exp(r / beta) / Z.

    Rafailov et al. 2023 eq. 4 (after Peters & Schaal 2007; Korbak et al. 2022). Computed as a softmax
    of log pi_ref + r / beta, so large r / beta does not overflow; answers with pi_ref = 0 stay at 0.
    Args: ref_probs, rewards: (..., K); beta > 0. Returns: (..., K) probabilities.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if ref_probs.shape != rewards.shape:
        raise ValueError(f"ref_probs {tuple(ref_probs.shape)} and rewards {tuple(rewards.shape)} differ")
    return torch.softmax(torch.log(ref_probs) + rewards / beta, dim=-1)


def kl_optimum_value(ref_probs: Tensor, rewards: Tensor, beta: float) -> Tensor:
    """The optimal value max_pi E_pi[r] - beta KL(pi || pi_ref) = beta log Z; (..., K) -> (...)."""
    return beta * torch.logsumexp(torch.log(ref_probs) + rewards / beta, dim=-1)


def total_variation(p: Tensor, q: Tensor) -> Tensor:
    """TV(p, q) = 1/2 sum |p - q| along the last dim; (..., K) -> (...), in [0, 1]."""
    return 0.5 * (p - q).abs().sum(-1)


def kl_divergence(p: Tensor, q: Tensor) -> Tensor:
    """KL(p || q) in nats along the last dim (see `kl.categorical_kl` for the zero conventions)."""
    return categorical_kl(p, q, dim=-1)


def best_of_n_kl_bound(n: int) -> float:
    """log n - (n - 1)/n, the commonly quoted KL(pi_bon || pi_ref) of best-of-n (Gao et al. 2023).

    It is exact only in the limit where no answer carries noticeable pi_ref mass (continuous rewards);
    over a finite answer set, ties or not, the exact KL is below it (Beirami et al. 2024), so treat it
    as an upper bound and use `best_of_n_distribution` + `kl_divergence` for the exact value.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return math.log(n) - (n - 1) / n


def best_of_n_distribution(ref_probs: Tensor, rewards: Tensor, n: int) -> Tensor:
    """Exact distribution of the best of n i.i.d. samples from pi_ref, by reward, over K answers.

    With F_le(y) = P(r(Y) <= r(y)) and F_lt(y) = P(r(Y) < r(y)) under pi_ref, the best sample's reward
    level is r(y) with probability F_le^n - F_lt^n. Answers with equal reward (ties) share that mass in
    proportion to pi_ref, which is what any tie-break that does not look at the answer itself (first
    sample, uniform among the tied) gives:

        pi_bon(y) = pi_ref(y) / (F_le(y) - F_lt(y)) * (F_le(y)^n - F_lt(y)^n)

    Args: ref_probs, rewards: (..., K); n >= 1. Returns (..., K), O(K^2) memory (K is small here).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if ref_probs.shape != rewards.shape:
        raise ValueError(f"ref_probs {tuple(ref_probs.shape)} and rewards {tuple(rewards.shape)} differ")
    ref = ref_probs.to(torch.float64)  # F^n of masses near 1 loses precision in float32
    # le[..., y, j] = r_j <= r_y: (..., K, K)
    le = rewards.unsqueeze(-1) >= rewards.unsqueeze(-2)
    lt = rewards.unsqueeze(-1) > rewards.unsqueeze(-2)
    f_le = (le.to(ref.dtype) * ref.unsqueeze(-2)).sum(-1)
    f_lt = (lt.to(ref.dtype) * ref.unsqueeze(-2)).sum(-1)
    level_mass = f_le - f_lt  # pi_ref mass of y's reward level
    share = torch.where(level_mass > 0, ref / level_mass.clamp(min=1e-300), torch.zeros_like(ref))
    return (share * (f_le**n - f_lt**n)).to(ref_probs.dtype)


def best_of_n_weights(m: int, n: int) -> Tensor:
    """(m,) float64: the chance that the k-th lowest of m scores is the best of a random n-subset of them.

    w_k = C(k-1, n-1) / C(m, n) for k = 1..m (0 for k < n); they sum to 1. Weighting the sorted samples by
    w gives the unbiased estimator of a best-of-n expectation from m >= n i.i.d. samples that WebGPT
    (Nakano et al. 2021) and Gao et al. 2023 use, instead of drawing subsets at random.
    """
    if not 1 <= n <= m:
        raise ValueError(f"need 1 <= n <= m, got n={n}, m={m}")
    k = torch.arange(1, m + 1, dtype=torch.float64)
    log_c = torch.lgamma(k) - torch.lgamma((k - n + 1).clamp(min=1)) - math.lgamma(n)  # log C(k-1, n-1)
    log_total = math.lgamma(m + 1) - math.lgamma(n + 1) - math.lgamma(m - n + 1)  # log C(m, n)
    return torch.where(k >= n, torch.exp(log_c - log_total), torch.zeros_like(k))


def best_of_n_estimate(scores: Tensor, values: Tensor, n: int) -> Tensor:
    """Expected `values` of the best-of-n sample by `scores`, from m >= n samples per prompt; (P, m) -> (P,).

    Unbiased for i.i.d. samples (see `best_of_n_weights`). Samples with tied scores share their weights
    equally, as a tie-break blind to the sample would in expectation. E.g. scores = a proxy reward model's,
    values = the gold reward: the gold reward of best-of-n by the proxy for every n <= m from one set.
    """
    if scores.shape != values.shape or scores.dim() != 2:
        raise ValueError(f"scores {tuple(scores.shape)} and values {tuple(values.shape)} must be equal (P, m)")
    weights = best_of_n_weights(scores.size(1), n)
    order = torch.argsort(scores, dim=1, stable=True)
    sorted_scores = scores.gather(1, order).double()
    sorted_values = values.gather(1, order).double()
    out = torch.empty(scores.size(0), dtype=torch.float64)
    for p in range(scores.size(0)):
        # ties: average the weights over each run of equal scores
        _, group, counts = torch.unique_consecutive(sorted_scores[p], return_inverse=True, return_counts=True)
        shared = torch.zeros(len(counts), dtype=torch.float64).index_add(0, group, weights) / counts
        out[p] = (shared[group] * sorted_values[p]).sum()
    return out
