import math

import pytest
import torch

from alignlab.generation.filters import (
    apply_temperature,
    inverse_cdf_pick,
    inverse_cdf_sample,
    pick_next_token,
    top_k_filter,
    top_p_filter,
)

NEG = float("-inf")


def test_top_k_keeps_k_largest_and_ties():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.5, 0.0]])
    assert top_k_filter(logits, 2).tolist() == [[NEG, 3.0, 2.0, NEG, NEG]]
    tied = torch.tensor([[1.0, 3.0, 2.0, 3.0, 0.0]])
    # The 2nd largest is 3.0 (a tie with the 1st): both survive, as in HF's TopKLogitsWarper.
    assert top_k_filter(tied, 2).tolist() == [[NEG, 3.0, NEG, 3.0, NEG]]
    assert top_k_filter(tied, 3).tolist() == [[NEG, 3.0, 2.0, 3.0, NEG]]


def test_top_k_off_and_per_row():
    logits = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    assert top_k_filter(logits, 0) is logits
    assert top_k_filter(logits, 3) is logits
    assert top_k_filter(logits, 1).tolist() == [[NEG, NEG, 3.0], [3.0, NEG, NEG]]


@pytest.mark.parametrize(
    "p, kept",
    [
        (0.4, [True, False, False, False]),  # 0.5 alone reaches 0.4
        (0.75, [True, True, False, False]),  # 0.5 + 0.3 = 0.8 >= 0.75
        (0.9, [True, True, True, False]),  # 0.5 + 0.3 + 0.15 = 0.95 >= 0.9
        (1.0, [True, True, True, True]),
    ],
)
def test_top_p_keeps_smallest_set_reaching_p(p, kept):
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    out = top_p_filter(probs.log(), p)
    assert torch.isfinite(out[0]).tolist() == kept
    assert torch.equal(out[0][torch.tensor(kept)], probs.log()[0][torch.tensor(kept)])


def test_top_p_is_order_independent_and_always_keeps_the_top_token():
    probs = torch.tensor([[0.05, 0.3, 0.5, 0.15], [0.97, 0.01, 0.01, 0.01]])
    out = top_p_filter(probs.log(), 0.75)
    assert torch.isfinite(out).tolist() == [[False, True, True, False], [True, False, False, False]]
    assert torch.isfinite(top_p_filter(probs.log(), 1e-6)).sum(-1).tolist() == [1, 1]


def test_temperature():
    logits = torch.tensor([[2.0, -4.0]])
    assert apply_temperature(logits, 0.5).tolist() == [[4.0, -8.0]]
    assert apply_temperature(logits, 1.0) is logits
    with pytest.raises(ValueError):
        apply_temperature(logits, 0.0)


def test_inverse_cdf_pick_hand_computed():
    # Unnormalised weights, total 4: intervals token1 [0, 1), token3 [1, 4); tokens 0, 2, 4 weigh nothing.
    w = torch.tensor([[0.0, 1.0, 0.0, 3.0, 0.0]]).expand(5, 5)
    u = torch.tensor([0.0, 0.2499, 0.25, 0.9, 1.0 - 2.0**-24])
    assert inverse_cdf_pick(w, u).tolist() == [1, 1, 3, 3, 3]


def test_inverse_cdf_sample_frequencies():
    w = torch.tensor([[0.0, 0.2, 0.0, 0.5, 0.3]]).expand(40_000, 5)
    tokens = inverse_cdf_sample(w, torch.Generator().manual_seed(0))
    freq = torch.bincount(tokens, minlength=5).float() / len(tokens)
    assert freq[0] == 0 and freq[2] == 0
    assert torch.allclose(freq, torch.tensor([0.0, 0.2, 0.0, 0.5, 0.3]), atol=0.01)


def test_pick_next_token_greedy_and_logprob_at_temperature_one():
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    tokens, lp = pick_next_token(logits, do_sample=False)
    assert tokens.tolist() == [1, 0]
    expected = [2.0 - math.log(1 + math.e**2 + math.e), 3.0 - math.log(math.e**3 + 2)]
    assert torch.allclose(lp, torch.tensor(expected))


@pytest.mark.parametrize(
    "kw", [dict(), dict(temperature=0.3), dict(top_k=2), dict(top_p=0.5, temperature=2.0)]
)
def test_pick_next_token_logprob_is_the_unwarped_models(kw):
    logits = torch.randn(64, 10, generator=torch.Generator().manual_seed(1))
    tokens, lp = pick_next_token(logits, do_sample=True, generator=torch.Generator().manual_seed(2), **kw)
    expected = logits.log_softmax(-1).gather(-1, tokens[:, None]).squeeze(-1)
    assert torch.allclose(lp, expected, atol=1e-6)
    if "top_k" in kw:  # sampled tokens all lie inside the filter
        allowed = torch.topk(logits, kw["top_k"]).indices
        assert (allowed == tokens[:, None]).any(-1).all()


def test_pick_next_token_same_generator_seed_same_tokens():
    logits = torch.randn(8, 50, generator=torch.Generator().manual_seed(3))
    a, _ = pick_next_token(logits, do_sample=True, generator=torch.Generator().manual_seed(5))
    b, _ = pick_next_token(logits, do_sample=True, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
