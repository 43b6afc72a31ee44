import math

import pytest
import torch

from alignlab.errors import UsageError
from alignlab.generation import score_continuations, score_continuations_per_token
from alignlab.generation.scoring import right_pad

PROMPTS = [[5, 9, 13, 200], [7], [1, 2, 3, 4, 5, 6, 7, 8], [42, 43]]
CONTS = [[17, 18, 19], [250, 3], [9], []]


def manual_logprobs(model, prompt, cont):
    """One unpadded sequence: sum over i of log softmax(logits at len(prompt)-1+i)[cont[i]]."""
    ids = torch.tensor([prompt + cont])
    with torch.no_grad():
        lp = model(ids).logits[0].double().log_softmax(-1)
    return [lp[len(prompt) - 1 + i, t].item() for i, t in enumerate(cont)]


def test_right_pad():
    ids, mask = right_pad([[4, 5, 6], [7]], pad_token_id=0)
    assert ids.tolist() == [[4, 5, 6], [7, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_equals_single_sequence_computation(model):
    scores = score_continuations(model, PROMPTS, CONTS)
    assert scores.dtype == torch.float32 and scores.shape == (4,)
    for i, (p, c) in enumerate(zip(PROMPTS, CONTS, strict=True)):
        assert scores[i].item() == pytest.approx(math.fsum(manual_logprobs(model, p, c)), abs=1e-4)
    assert scores[3].item() == 0.0  # empty continuation


def test_per_token_variant_and_batch_size_invariance(model):
    rows = score_continuations_per_token(model, PROMPTS, CONTS, batch_size=64)
    singles = score_continuations_per_token(model, PROMPTS, CONTS, batch_size=1)
    assert [r.shape[0] for r in rows] == [len(c) for c in CONTS]
    for r, s, p, c in zip(rows, singles, PROMPTS, CONTS, strict=True):
        assert torch.allclose(r, s, atol=1e-5)
        assert torch.allclose(
            r.double(), torch.tensor(manual_logprobs(model, p, c), dtype=torch.float64), atol=1e-4
        )


def test_enumerable_answers_normalise(model):
    # Over all 256 one-token answers, the probabilities of a distribution sum to 1.
    scores = score_continuations(model, [[3, 4]] * 256, [[t] for t in range(256)])
    assert scores.exp().sum().item() == pytest.approx(1.0, abs=1e-4)


def test_bad_input(model):
    with pytest.raises(UsageError, match="2 prompts but 1 continuations"):
        score_continuations(model, [[1], [2]], [[3]])
    with pytest.raises(UsageError, match="score_continuations: prompt 0: empty prompt"):
        score_continuations(model, [[]], [[3]])
    with pytest.raises(
        UsageError, match="score_continuations: continuation 1: token id 999 is outside the vocabulary"
    ):
        score_continuations(model, [[1], [2]], [[3], [999]])
