"""KL divergence: per-token sample estimators and the exact value between categorical distributions.

Estimators follow Schulman 2020, "Approximating KL divergence" (http://joschu.net/blog/kl-approx.html),
with the sign convention of OpenRLHF's `compute_approx_kl`: the tokens were sampled from the policy
q = pi, the reference is p = pi_ref, and we estimate KL(pi || pi_ref) = E_pi[log pi - log pi_ref]. With
log r = log pi_ref - log pi (per token):

    k1 = -log r                 unbiased, high variance, can be negative
    k2 = (log r)^2 / 2          biased (exact to second order), always >= 0
    k3 = (r - 1) - log r        unbiased and always >= 0 (Schulman's recommendation)

Unlike some implementations, no clamping of log r is applied: callers who fear overflow in exp can clamp
log-probs themselves. GRPO's KL term (Shao et al. 2024, eq. 4) is k3.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _log_ratio(logps: Tensor, ref_logps: Tensor, mask: Tensor | None) -> Tensor:
    if logps.shape != ref_logps.shape:
        raise ValueError(f"logps {tuple(logps.shape)} and ref_logps {tuple(ref_logps.shape)} differ")
    log_r = ref_logps - logps
    return log_r if mask is None else log_r * mask


def kl_k1(logps: Tensor, ref_logps: Tensor, mask: Tensor | None = None) -> Tensor:
    """k1 = log pi - log pi_ref per token. (B, T) x 2 [+ mask (B, T)] -> (B, T), 0 where masked."""
    return -_log_ratio(logps, ref_logps, mask)


def kl_k2(logps: Tensor, ref_logps: Tensor, mask: Tensor | None = None) -> Tensor:
    """k2 = (log pi_ref - log pi)^2 / 2 per token. Shapes as `kl_k1`."""
    return _log_ratio(logps, ref_logps, mask) ** 2 / 2


def kl_k3(logps: Tensor, ref_logps: Tensor, mask: Tensor | None = None) -> Tensor:
    """k3 = exp(log r) - 1 - log r per token, log r = log pi_ref - log pi. Shapes as `kl_k1`.

    expm1 keeps it accurate (and exactly >= 0 in practice) when the ratio is close to 1.
    """
    log_r = _log_ratio(logps, ref_logps, mask)  # masked entries are 0 -> k3 = 0 there
    return torch.expm1(log_r) - log_r


KL_ESTIMATORS = {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3}


def categorical_kl(p: Tensor, q: Tensor, dim: int = -1) -> Tensor:
    """Exact KL(p || q) = sum_i p_i log(p_i / q_i) along `dim`, in nats.

    Terms with p_i = 0 contribute 0; a p_i > 0 where q_i = 0 gives +inf, as it should.
    Args: p, q: probability tensors of the same shape (..., K). Returns: (...).
    """
    if p.shape != q.shape:
        raise ValueError(f"p {tuple(p.shape)} and q {tuple(q.shape)} differ")
    support = p > 0
    # substitute 1 off the support so neither branch of `where` holds a nan (its gradient would leak)
    log_p = torch.log(torch.where(support, p, torch.ones_like(p)))
    log_q = torch.log(torch.where(support, q, torch.ones_like(q)))
    return torch.where(support, p * (log_p - log_q), torch.zeros_like(p)).sum(dim)


def categorical_kl_from_logits(logits_p: Tensor, logits_q: Tensor, dim: int = -1) -> Tensor:
    """Exact KL(softmax(logits_p) || softmax(logits_q)) along `dim`; (..., V) -> (...).

    Works in log space, so it is the per-position full-vocabulary KL between two models' next-token
    distributions (e.g. policy vs reference at every position of a sequence).
    """
    logp = torch.log_softmax(logits_p.float(), dim=dim)
    logq = torch.log_softmax(logits_q.float(), dim=dim)
    p = logp.exp()
    # where p = 0 (a -inf logit) the term is 0, not 0 * (-inf) = nan
    return torch.where(p > 0, p * (logp - logq), torch.zeros_like(p)).sum(dim)
