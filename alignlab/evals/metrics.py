"""Numeric metrics for the instruments (numpy): calibration, intervals, correlation, diversity, entropy.

Calibration here has two flavours because the synthetic world knows the *true* probability p of each
event, not just an outcome: the "truth" metrics compare a prediction q with p directly (no sampling
noise), the "outcome" metrics compare q with 0/1 outcomes as one would on real data. Bins are
equal-width on q in [0, 1]; q = 1 falls in the last bin. Pure functions; inputs are array-likes of
equal length, and a mismatch raises ValueError.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence

import numpy as np


def _pair(a: Iterable[float], b: Iterable[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"length mismatch: {x.size} vs {y.size}")
    if x.size == 0:
        raise ValueError("empty input")
    return x, y


def _probabilities(q: np.ndarray, name: str = "q") -> np.ndarray:
    if np.any((q < 0) | (q > 1)) or np.any(np.isnan(q)):
        raise ValueError(f"{name} must be probabilities in [0, 1]")
    return q


def _outcomes(y: np.ndarray) -> np.ndarray:
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("outcomes must be 0 or 1")
    return y


def mean_absolute_error(q: Iterable[float], p: Iterable[float]) -> float:
    """mean |q - p|: how far predicted probabilities are from the true ones."""
    q, p = _pair(q, p)
    return float(np.mean(np.abs(q - p)))


def _bin_index(q: np.ndarray, n_bins: int) -> np.ndarray:
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    return np.minimum((q * n_bins).astype(np.int64), n_bins - 1)


def reliability_table(q: Iterable[float], target: Iterable[float], n_bins: int = 10) -> list[dict]:
    """Reliability-diagram rows, one per non-empty equal-width bin of q.

    `target` is the true probability p or a 0/1 outcome. Each row: bin_lo, bin_hi, count, mean_pred
    (mean q in the bin), mean_target (mean p or observed frequency), gap = |mean_pred - mean_target|.
    """
    q, t = _pair(q, target)
    _probabilities(q)
    idx = _bin_index(q, n_bins)
    rows = []
    for b in np.unique(idx):
        sel = idx == b
        mean_pred, mean_target = float(q[sel].mean()), float(t[sel].mean())
        rows.append(
            {
                "bin_lo": b / n_bins,
                "bin_hi": (b + 1) / n_bins,
                "count": int(sel.sum()),
                "mean_pred": mean_pred,
                "mean_target": mean_target,
                "gap": abs(mean_pred - mean_target),
            }
        )
    return rows


def expected_calibration_error(q: Iterable[float], p: Iterable[float], n_bins: int = 10) -> float:
    """ECE against true probabilities: sum_bins (n_b / N) |mean q_b - mean p_b| (Naeini et al. 2015).

    A predictor with q = p everywhere has ECE 0.
    """
    q, p = _pair(q, p)
    _probabilities(p, "p")
    rows = reliability_table(q, p, n_bins)
    return float(sum(r["count"] * r["gap"] for r in rows) / q.size)


def expected_calibration_error_outcomes(
    q: Iterable[float], outcomes: Iterable[float], n_bins: int = 10
) -> float:
    """ECE against 0/1 outcomes, the usual empirical form (Guo et al. 2017, eq. 3).

    Sampling noise keeps it above 0 even for a perfect predictor: about sqrt(p(1-p)/n_b) per bin.
    """
    q, y = _pair(q, outcomes)
    _outcomes(y)
    rows = reliability_table(q, y, n_bins)
    return float(sum(r["count"] * r["gap"] for r in rows) / q.size)


def brier_score(q: Iterable[float], outcomes: Iterable[float]) -> float:
    """mean (q - y)^2 against 0/1 outcomes (Brier 1950)."""
    q, y = _pair(q, outcomes)
    _outcomes(y)
    return float(np.mean((_probabilities(q) - y) ** 2))


def brier_truth(q: Iterable[float], p: Iterable[float]) -> float:
    """E[(q - p)^2] against true probabilities: the Brier score minus its irreducible part.

    E_y[(q - y)^2] = (q - p)^2 + p(1 - p), so this is brier_score's expectation less mean p(1 - p).
    """
    q, p = _pair(q, p)
    return float(np.mean((_probabilities(q) - _probabilities(p, "p")) ** 2))


def finite_or_none(x: float) -> float | None:
    """x, or None for NaN/inf: JSON has no NaN, and a correlation of constant inputs is undefined."""
    return float(x) if math.isfinite(x) else None


def mean_with_stderr(values) -> dict:
    """{"mean", "stderr", "n"}; the standard error is None for fewer than two values."""
    x = np.asarray(values, dtype=np.float64)
    stderr = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else None
    return {"mean": float(x.mean()), "stderr": stderr, "n": int(x.size)}


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927); 95% by default.

    Better behaved than the normal approximation near 0 and 1 and for small n; (0, 1) when n = 0.
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    phat = successes / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def pearson(x: Iterable[float], y: Iterable[float]) -> float:
    """Pearson correlation; nan if either input is constant (the correlation is undefined)."""
    x, y = _pair(x, y)
    dx, dy = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(np.dot(dx, dx)) * float(np.dot(dy, dy)))
    return float(np.dot(dx, dy) / denom) if denom > 0 else float("nan")


def rank_average(x: Iterable[float]) -> np.ndarray:
    """1-based ranks with ties given their average rank (as scipy.stats.rankdata 'average')."""
    x = np.asarray(x, dtype=np.float64).ravel()
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    ranks = np.empty(x.size, dtype=np.float64)
    start = 0
    while start < x.size:  # walk runs of equal values
        end = start
        while end + 1 < x.size and sorted_x[end + 1] == sorted_x[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(x: Iterable[float], y: Iterable[float]) -> float:
    """Spearman rank correlation: Pearson on average ranks (handles ties)."""
    x, y = _pair(x, y)
    return pearson(rank_average(x), rank_average(y))


def _tokens(seq: str | Sequence[Hashable]) -> Sequence[Hashable]:
    return seq.split() if isinstance(seq, str) else seq


def distinct_n(sequences: Iterable[str | Sequence[Hashable]], n: int) -> float:
    """Distinct-n (Li et al. 2016): unique n-grams / total n-grams across all sequences.

    A string is split on whitespace; any other sequence is taken as tokens. 0 if there is no n-gram.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    grams: Counter = Counter()
    for seq in sequences:
        toks = list(_tokens(seq))
        grams.update(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0


def entropy(p: Iterable[float], base: float | None = None) -> float:
    """Shannon entropy of a distribution given as probabilities or counts (normalised here).

    Nats by default; base=2 for bits. 0 log 0 = 0.
    """
    p = np.asarray(p, dtype=np.float64).ravel()
    if p.size == 0 or np.any(p < 0) or p.sum() <= 0:
        raise ValueError("entropy needs non-negative weights with a positive sum")
    p = p / p.sum()
    nz = p[p > 0]
    h = float(-(nz * np.log(nz)).sum())
    return h / math.log(base) if base is not None else h


def sample_entropy(samples: Iterable[Hashable], base: float | None = None) -> float:
    """Plug-in entropy of the empirical distribution of samples (biased low for few samples)."""
    counts = Counter(samples)
    if not counts:
        raise ValueError("sample_entropy needs at least one sample")
    return entropy(list(counts.values()), base)
