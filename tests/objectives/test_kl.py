import math

import pytest
import torch

from alignlab.objectives.kl import (
    KL_ESTIMATORS,
    categorical_kl,
    categorical_kl_from_logits,
    kl_k1,
    kl_k2,
    kl_k3,
)


def test_estimators_vanish_for_identical_models():
    lp = torch.log(torch.rand(3, 5))
    for name, fn in KL_ESTIMATORS.items():
        assert fn(lp, lp.clone()).abs().max().item() == 0.0, name


def test_hand_values():
    lp, ref = torch.tensor([[math.log(0.5)]]), torch.tensor([[math.log(0.25)]])  # log r = -log 2
    assert kl_k1(lp, ref).item() == pytest.approx(math.log(2))
    assert kl_k2(lp, ref).item() == pytest.approx(math.log(2) ** 2 / 2)
    assert kl_k3(lp, ref).item() == pytest.approx(0.5 - 1 + math.log(2))


def test_k2_k3_nonnegative_and_mask_zeroes():
    torch.manual_seed(0)
    lp, ref = torch.randn(4, 6) * 3, torch.randn(4, 6) * 3
    mask = torch.ones(4, 6)
    mask[:, 4:] = 0
    for fn in (kl_k2, kl_k3):
        assert (fn(lp, ref) >= 0).all()
    for fn in KL_ESTIMATORS.values():
        assert fn(lp, ref, mask)[:, 4:].abs().max().item() == 0.0


def test_k1_and_k3_are_unbiased_for_the_exact_kl():
    torch.manual_seed(0)
    q, p = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.2, 0.5, 0.3])  # sample from q = policy
    idx = torch.multinomial(q, 200_000, replacement=True)
    lq, lp = torch.log(q)[idx], torch.log(p)[idx]
    exact = categorical_kl(q, p).item()
    assert kl_k1(lq, lp).mean().item() == pytest.approx(exact, abs=5e-3)
    assert kl_k3(lq, lp).mean().item() == pytest.approx(exact, abs=5e-3)


def test_categorical_kl_hand_value_zero_and_infinite_cases():
    p, q = torch.tensor([0.5, 0.5]), torch.tensor([0.25, 0.75])
    assert categorical_kl(p, q).item() == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3))
    assert categorical_kl(p, p).item() == 0.0
    assert categorical_kl(torch.tensor([0.0, 1.0]), torch.tensor([0.5, 0.5])).item() == pytest.approx(
        math.log(2)
    )
    assert categorical_kl(torch.tensor([0.5, 0.5]), torch.tensor([0.0, 1.0])).item() == math.inf


def test_categorical_kl_gradient_is_finite_with_zero_mass():
    p = torch.tensor([0.0, 0.4, 0.6], requires_grad=True)
    q = torch.tensor([0.0, 0.5, 0.5], requires_grad=True)
    categorical_kl(p, q).backward()
    assert torch.isfinite(p.grad).all() and torch.isfinite(q.grad).all()


def test_kl_from_logits_matches_probabilities_and_batches():
    torch.manual_seed(0)
    a, b = torch.randn(2, 3, 7), torch.randn(2, 3, 7)
    expected = categorical_kl(torch.softmax(a, -1), torch.softmax(b, -1))
    torch.testing.assert_close(categorical_kl_from_logits(a, b), expected)
    a[..., 0] = -math.inf  # a token the first model can never emit
    assert torch.isfinite(categorical_kl_from_logits(a, b)).all()
