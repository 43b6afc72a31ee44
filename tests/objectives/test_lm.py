import math

import pytest
import torch
import torch.nn.functional as F

from alignlab.objectives.lm import cross_entropy_loss, label_logps, sequence_logps, token_entropy, token_logps


def test_uniform_logits_give_minus_log_vocab_per_token():
    logits = torch.zeros(1, 4, 8)  # every next-token distribution is uniform over V = 8
    labels = torch.tensor([[-100, 3, 5, -100]])  # shift: positions 1..3 are scored -> tokens 3, 5
    total, n = sequence_logps(logits, labels)
    assert n.tolist() == [2]
    assert total.item() == pytest.approx(-2 * math.log(8))


def test_token_logps_match_log_softmax_gather_and_shift():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    labels = torch.randint(0, 7, (2, 5))
    labels[0, :2] = -100
    logps, mask = token_logps(logits, labels)
    expected = torch.log_softmax(logits[:, :-1], -1).gather(-1, labels[:, 1:].clamp(min=0).unsqueeze(-1))
    expected = expected.squeeze(-1) * mask
    assert logps.shape == (2, 4)
    torch.testing.assert_close(logps, expected)
    assert mask[0].tolist() == [False, True, True, True]  # label at position 1 is ignored, 2..4 scored
    # shift=False on pre-aligned tensors is the same computation
    logps2, mask2 = token_logps(logits[:, :-1], labels[:, 1:], shift=False)
    torch.testing.assert_close(logps2, logps)
    assert torch.equal(mask2, mask)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="disagree"):
        token_logps(torch.zeros(2, 5, 3), torch.zeros(2, 4, dtype=torch.long))


def test_bf16_logits_reduce_in_float32():
    logits = torch.randn(1, 3, 5).to(torch.bfloat16)
    logps, _ = token_logps(logits, torch.tensor([[0, 1, 2]]))
    assert logps.dtype == torch.float32


def test_cross_entropy_matches_torch_and_counts_tokens():
    torch.manual_seed(1)
    logits = torch.randn(3, 6, 11)
    labels = torch.randint(0, 11, (3, 6))
    labels[1, 3:] = -100
    loss, metrics = cross_entropy_loss(logits, labels)
    ref = F.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=-100)
    torch.testing.assert_close(loss, ref)
    assert metrics["n_tokens"].item() == 15 - 3


def test_cross_entropy_accuracy_and_empty_batch():
    logits = torch.full((1, 3, 4), -10.0)
    logits[0, 0, 2] = 10.0  # predicts token 2 at position 1: correct
    logits[0, 1, 0] = 10.0  # predicts token 0 at position 2: wrong (label 3)
    _, metrics = cross_entropy_loss(logits, torch.tensor([[3, 2, 3]]))
    assert metrics["mean_token_accuracy"].item() == pytest.approx(0.5)
    loss, metrics = cross_entropy_loss(logits, torch.full((1, 3), -100))
    assert loss.item() == 0.0 and metrics["n_tokens"].item() == 0


def test_token_entropy_of_uniform_is_log_v():
    assert token_entropy(torch.zeros(2, 3, 16)).allclose(torch.full((2, 3), math.log(16)))


def test_label_logps_matches_log_softmax_gather_in_value_and_gradient():
    torch.manual_seed(0)
    logits = (3 * torch.randn(5, 7, 11)).requires_grad_(True)
    labels = torch.randint(0, 11, (5, 7))
    weights = torch.randn(5, 7)  # a different upstream gradient per position
    ours = label_logps(logits, labels)
    (ours * weights).sum().backward()
    ours_grad, logits.grad = logits.grad, None
    ref = logits.log_softmax(-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    (ref * weights).sum().backward()
    torch.testing.assert_close(ours, ref.detach(), rtol=0, atol=1e-6)
    torch.testing.assert_close(ours_grad, logits.grad, rtol=0, atol=1e-6)
    assert label_logps(logits.bfloat16(), labels).dtype == torch.float32
