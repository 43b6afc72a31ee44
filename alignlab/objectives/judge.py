"""AI-feedback preferences from a judge's multiple-choice log-probabilities, with position bias cancelled.

A judge model is shown two responses as options (A) and (B) and scored on the continuations "(A)" and
"(B)"; its preference is the normalised probability P(A) / (P(A) + P(B)) (Bai et al. 2022, Constitutional
AI, Sec. 4.1). Judges favour a position, so the pair is asked in both orders (x as (A), then y as (A)) and
the two answers are combined (Lee et al. 2023, RLAIF, Sec. 2.1.2: "we make two inferences for every pair
with the order reversed, and average the preference distributions").

With z1 = log-odds that x is better when x is (A) and z2 the same when x is (B), a judge whose position
bias adds a constant b to the log-odds of "(A)" gives z1 = d + b and z2 = d - b for the true log-odds d:
`mean_log_odds` recovers d exactly, `mean_probability` (the paper's) recovers its sign, and
(z1 - z2) / 2 estimates b.
"""

from __future__ import annotations

import torch
from torch import Tensor


def order_log_odds(logps_x_first: Tensor, logps_y_first: Tensor) -> tuple[Tensor, Tensor]:
    """Log-odds that x beats y, once per order.

    Args:
        logps_x_first: (N, 2) log P("(A)"), log P("(B)") when x is shown as (A) and y as (B).
        logps_y_first: (N, 2) the same with the order swapped (y as (A), x as (B)).
    Returns:
        z1, z2: (N,) log P(x's letter) - log P(y's letter) in each order; the normalisation over the two
        letters makes these log-odds whatever mass the judge puts on other tokens.
    """
    z1 = logps_x_first[:, 0] - logps_x_first[:, 1]
    z2 = logps_y_first[:, 1] - logps_y_first[:, 0]
    return z1, z2


def mean_probability(z1: Tensor, z2: Tensor) -> Tensor:
    """(N,) P(x > y) = (sigmoid(z1) + sigmoid(z2)) / 2, the average of the two distributions (Lee et al.)."""
    return 0.5 * (torch.sigmoid(z1) + torch.sigmoid(z2))


def mean_log_odds(z1: Tensor, z2: Tensor) -> Tensor:
    """(N,) P(x > y) = sigmoid((z1 + z2) / 2): exact under an additive position bias in log-odds."""
    return torch.sigmoid(0.5 * (z1 + z2))


DEBIAS = {"mean_probability": mean_probability, "mean_log_odds": mean_log_odds}


def judge_preference(logps_x_first: Tensor, logps_y_first: Tensor, method: str = "mean_probability") -> dict:
    """P(x > y) with position bias cancelled, and what the two orders say about the judge.

    Returns a dict of (N,) tensors: `p` (the debiased probability, by `method` in DEBIAS), `p_first_order`
    (what asking once, x as (A), would have said), `position_bias` ((z1 - z2) / 2, the judge's extra
    log-odds for "(A)") and `consistent` (bool: both orders pick the same winner).
    """
    if method not in DEBIAS:
        raise ValueError(f"judge_preference: method must be one of {', '.join(DEBIAS)}, got {method!r}")
    z1, z2 = order_log_odds(logps_x_first.float(), logps_y_first.float())
    return {
        "p": DEBIAS[method](z1, z2),
        "p_first_order": torch.sigmoid(z1),
        "position_bias": 0.5 * (z1 - z2),
        "consistent": (z1 > 0) == (z2 > 0),
    }
