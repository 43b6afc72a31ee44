import math

import pytest
import torch

from alignlab.objectives.optimum import (
    best_of_n_distribution,
    best_of_n_kl_bound,
    kl_divergence,
    kl_optimum,
    kl_optimum_value,
    total_variation,
)

t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731


def test_kl_optimum_hand_value():
    beta = 0.5
    pi = kl_optimum(t([0.5, 0.5]), t([0.0, beta * math.log(3)]), beta)  # weights 1 : 3
    assert pi.tolist() == pytest.approx([0.25, 0.75])


def test_kl_optimum_limits_zero_mass_and_overflow():
    ref, r = t([0.2, 0.0, 0.8]), t([1.0, 50.0, 0.0])
    assert kl_optimum(ref, r, 1e6).tolist() == pytest.approx([0.2, 0.0, 0.8], abs=1e-5)  # beta -> inf: ref
    assert kl_optimum(ref, r, 1e-3).tolist() == pytest.approx([1.0, 0.0, 0.0])  # beta -> 0: best supported
    assert torch.isfinite(kl_optimum(ref, t([1e4, 0.0, 0.0]), 0.01)).all()
    with pytest.raises(ValueError, match="beta"):
        kl_optimum(ref, r, 0.0)


def test_kl_optimum_maximises_the_regularised_objective():
    torch.manual_seed(0)
    ref = torch.softmax(torch.randn(2, 6, dtype=torch.float64), -1)  # a batch of two prompts
    r, beta = torch.randn(2, 6, dtype=torch.float64), 0.3
    pi = kl_optimum(ref, r, beta)
    objective = lambda q: (q * r).sum(-1) - beta * kl_divergence(q, ref)  # noqa: E731
    torch.testing.assert_close(objective(pi), kl_optimum_value(ref, r, beta))
    for _ in range(5):
        other = torch.softmax(torch.log(pi) + 0.3 * torch.randn_like(pi), -1)
        assert (objective(other) < objective(pi)).all()


def test_total_variation_and_kl_hand_values():
    p, q = t([0.5, 0.5, 0.0]), t([0.25, 0.25, 0.5])
    assert total_variation(p, q).item() == pytest.approx(0.5)
    assert total_variation(p, p).item() == 0.0
    assert kl_divergence(p, q).item() == pytest.approx(math.log(2))
    assert kl_divergence(q, q).item() == 0.0


def test_best_of_n_hand_values():
    ref = t([0.5, 0.5])
    assert best_of_n_distribution(ref, t([0.0, 1.0]), 1).tolist() == pytest.approx([0.5, 0.5])
    assert best_of_n_distribution(ref, t([0.0, 1.0]), 2).tolist() == pytest.approx([0.25, 0.75])


def test_best_of_n_with_ties_splits_the_level_by_reference_mass():
    # level {0, 1} has mass 2/3: best is on it with prob 1 - (1/3)^2 = 8/9, split 4/9 + 4/9
    ref, r = t([1 / 3, 1 / 3, 1 / 3]), t([1.0, 1.0, 0.0])
    assert best_of_n_distribution(ref, r, 2).tolist() == pytest.approx([4 / 9, 4 / 9, 1 / 9])
    # unequal masses inside a tie: split 1 : 3
    pi = best_of_n_distribution(t([0.1, 0.3, 0.6]), r, 3)
    top = 1 - 0.6**3
    assert pi.tolist() == pytest.approx([top / 4, 3 * top / 4, 0.6**3])


def test_best_of_n_matches_simulation():
    torch.manual_seed(0)
    ref, r = t([0.1, 0.2, 0.3, 0.4]), t([2.0, 0.0, 2.0, 1.0])
    draws = torch.multinomial(ref, 60_000 * 3, replacement=True).view(-1, 3)
    best_reward = r[draws].max(dim=1).values
    first_best = torch.argmax((r[draws] == best_reward[:, None]).int(), dim=1)  # first tied sample wins
    chosen = draws[torch.arange(draws.size(0)), first_best]
    empirical = torch.bincount(chosen, minlength=4).double() / draws.size(0)
    torch.testing.assert_close(empirical, best_of_n_distribution(ref, r, 3), atol=6e-3, rtol=0)


def test_best_of_n_kl_stays_under_the_analytic_bound_and_approaches_it():
    assert best_of_n_kl_bound(1) == 0.0
    assert best_of_n_kl_bound(4) == pytest.approx(math.log(4) - 0.75)
    for K in (5, 1000):
        ref = torch.full((K,), 1.0 / K, dtype=torch.float64)
        kl = kl_divergence(best_of_n_distribution(ref, torch.arange(K, dtype=torch.float64), 4), ref).item()
        assert kl <= best_of_n_kl_bound(4)
    assert kl == pytest.approx(best_of_n_kl_bound(4), abs=1e-5)  # K = 1000: near-continuous
    with pytest.raises(ValueError, match="n must"):
        best_of_n_distribution(ref, ref, 0)
