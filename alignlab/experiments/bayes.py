"""Exact Bayes over a mixture of A authors with K options, and the fits the conditioning experiment makes.

probs (A, K) = P(o | a), log_prior (A,) = log prior(a); evidence E = option counts c (K,).
- Posterior (in log space: ~1,300 sentences of probability ~0.5 underflow a product):
      log P(a | E) = log prior(a) + sum_o c_o log P(o | a) - log Z.
- Bits of evidence for the target author t: log2 odds(t | after) - log2 odds(t | before).
- Implied posterior of a predictive q (K,): w = argmin_{w in simplex} KL(q || w @ probs), exact (the objective
  is convex: the stationary point of every face is found), floored at FLOOR; the minimum KL is the misfit.
- KL-regularised optimum: reward r(o) = beta log P(E | o) with P(E | o) = sum_a P(E | a) P(a | o) and
  P(a | o) = prior(a) P(o | a) / P(o). The maximiser of E_pi[r] - beta KL(pi || pi_ref) is
  pi*(o) = pi_ref(o) exp(r(o) / beta) / Z = pi_ref(o) P(E | o) / Z, and by Bayes' rule
  P(o) P(E | o) = P(E) P(o | E): with pi_ref the prior predictive P(o), pi* IS the exact posterior
  predictive P(o | E) (beta cancels). Its loss sum_o pi(o) [log pi(o) - log pi_ref(o) - r(o) / beta]
  = KL(pi || pi*) - log Z is minimal, -log Z, at pi = pi*.
"""

from __future__ import annotations

import math

import numpy as np
import torch

FLOOR = 1e-6  # smallest implied weight: a fit on a face of the simplex would otherwise give infinite bits

# alignlab.objectives.optimum has torch kl_optimum / kl_divergence / total_variation, but they are no drop-in:
# they take same-shape tensors (kl_optimum refuses the (P, K) pi_ref against (K,) reward used here) and return
# tensors, while these take numpy arrays or lists and return float64 floats, so the numbers stay as they were.


def _logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.exp(x - m).sum(axis))


def log_posterior(log_prior: np.ndarray, probs: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """log P(a | E) (A,) for evidence with option counts (K,); probs (A, K) = P(o | a)."""
    logw = log_prior + np.log(probs) @ counts
    return logw - _logsumexp(logw)


def log2_odds(log_p: np.ndarray, target: int) -> float:
    """log2 P(target) / P(not target), from log-probabilities (finite even when P(target) rounds to 1)."""
    return float((log_p[target] - _logsumexp(np.delete(log_p, target))) / math.log(2))


def bits_of_evidence(log_after: np.ndarray, log_before: np.ndarray, target: int) -> float:
    return log2_odds(log_after, target) - log2_odds(log_before, target)


def cap_bits(base_implied: list[float], target: int) -> float:
    """The most bits the model can show: every other author at FLOOR, measured from the base's odds."""
    w = np.full(len(base_implied), FLOOR)
    w[target] = 1 - FLOOR * (len(w) - 1)
    return bits_of_evidence(np.log(w), np.log(base_implied), target)


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    p, q = np.asarray(p, float), np.asarray(q, float)
    return float(np.sum(np.where(p > 0, p * (np.log(np.where(p > 0, p, 1)) - np.log(q)), 0.0)))


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    return 0.5 * float(np.abs(np.asarray(p, float) - np.asarray(q, float)).sum())


def _face_optimum(q: np.ndarray, m: np.ndarray) -> np.ndarray | None:
    """argmin of -sum_o q_o log (w @ m)_o over the plane sum(w) = 1 (w may go negative while every mixture
    probability stays positive): damped Newton on the KKT system; strictly convex when m (S, K) has full rank."""
    k = m.shape[0]
    w, f = np.full(k, 1.0 / k), lambda v: -float(q @ np.log(v @ m))
    for _ in range(100):
        mix = w @ m
        g, h = -(m @ (q / mix)), (m * (q / mix**2)) @ m.T  # gradient (S,), Hessian (S, S)
        kkt = np.block([[h, np.ones((k, 1))], [np.ones((1, k)), np.zeros((1, 1))]])
        try:
            step = np.linalg.solve(kkt, np.append(-g, 0.0))[:k]
        except np.linalg.LinAlgError:
            return None
        t = 1.0  # backtrack: stay where every mixture probability is positive, and descend (Armijo)
        while t > 1e-12 and (np.any((w + t * step) @ m <= 0) or f(w + t * step) > f(w) + 1e-4 * t * (g @ step)):
            t /= 2
        w = w + t * step
        if np.abs(t * step).max() < 1e-15:
            break
    return w


def implied_posterior(q: np.ndarray, probs: np.ndarray, floor: float = FLOOR) -> tuple[np.ndarray, float]:
    """The mixture weights w (A,) minimising KL(q || w @ probs) over the simplex, floored at `floor`, and that
    KL (the misfit: 0 when q is a mixture of the authors). Exact: the objective is convex, so its minimum is
    the stationary point of the face whose relative interior holds it; every face's stationary point is found
    (2^A - 1 faces) and the best one inside the simplex wins."""
    q, probs = np.asarray(q, np.float64), np.asarray(probs, np.float64)
    best, best_kl = None, math.inf
    for mask in range(1, 2 ** len(probs)):
        face = [a for a in range(len(probs)) if mask >> a & 1]
        w_face = _face_optimum(q, probs[face])
        if w_face is None or w_face.min() < -1e-12:
            continue
        w = np.zeros(len(probs))
        w[face] = np.maximum(w_face, 0.0)
        if (value := kl_divergence(q, w @ probs)) < best_kl:
            best, best_kl = w, value
    w = np.maximum(best / best.sum(), floor)
    return w / w.sum(), kl_divergence(q, w @ probs)


def evidence_log_likelihood(log_prior: np.ndarray, probs: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """log P(E | o) (K,): the evidence's probability given that the next sentence's option is o,
    sum_a P(E | a) P(a | o) with P(a | o) = prior(a) P(o | a) / P(o)."""
    log_joint = log_prior[:, None] + np.log(probs)  # (A, K): log prior(a) P(o | a)
    log_a_given_o = log_joint - _logsumexp(log_joint, axis=0)[None, :]
    return _logsumexp((np.log(probs) @ counts)[:, None] + log_a_given_o, axis=0)


def kl_optimum(pi_ref: np.ndarray, reward: np.ndarray, beta: float) -> np.ndarray:
    """pi*(o) = pi_ref(o) exp(r(o) / beta) / Z over the last axis (pi_ref (..., K), reward (K,))."""
    logits = np.log(pi_ref) + reward / beta
    return np.exp(logits - _logsumexp(logits)[..., None])


def kl_regularised_loss(log_pi: torch.Tensor, log_ref: torch.Tensor, reward: torch.Tensor,
                        beta: float) -> torch.Tensor:
    """mean over prompts of sum_o pi(o) [log pi(o) - log pi_ref(o) - r(o) / beta] = KL(pi || pi*) - log Z.
    log_pi, log_ref (P, K) normalised over the K options; reward (K,). Minimum -log Z, at pi = pi*."""
    return (log_pi.exp() * (log_pi - log_ref - reward / beta)).sum(-1).mean()
