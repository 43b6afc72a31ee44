"""Exact log-probabilities of given continuations: the scorer behind calibration and enumerable answers.

`score_continuations(model, prompts, continuations)` → (N,) fp32, sum over the continuation of
log p(token | prompt, earlier continuation tokens); `score_continuations_per_token` gives the per-token
terms. Batches are right-padded (no position-id bookkeeping: real tokens sit at 0, 1, 2, ... and causal
attention never looks right), sorted by total length to waste little compute on padding, and the LM head
runs only from the shortest prompt's last token onward (`logits_to_keep`). Log-softmax is taken in fp32 as
logit[token] - logsumexp(logits), so a (B, T, V) log-prob tensor is never materialised.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from alignlab.errors import UsageError
from alignlab.generation.sampler import check_prompts, eval_mode, vocab_size_of

__all__ = ["score_continuations", "score_continuations_per_token", "right_pad"]


def right_pad(rows: Sequence[Sequence[int]], pad_token_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token lists: → input_ids (B, T) long, attention_mask (B, T) long (1 = token)."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        ids[b, : len(row)] = torch.tensor(list(row), dtype=torch.long)
        mask[b, : len(row)] = 1
    return ids, mask


def score_continuations_per_token(
    model: nn.Module,
    prompt_ids: Sequence[Sequence[int]],
    continuation_ids: Sequence[Sequence[int]],
    batch_size: int = 64,
) -> list[torch.Tensor]:
    """Per-token log p(continuation token | everything before it), one fp32 tensor (C_i,) per pair."""
    if len(prompt_ids) != len(continuation_ids):
        raise UsageError(
            f"score_continuations: {len(prompt_ids)} prompts but {len(continuation_ids)} continuations"
        )
    if batch_size < 1:
        raise UsageError(f"score_continuations: batch_size must be >= 1, got {batch_size}")
    vocab = vocab_size_of(model)
    check_prompts("score_continuations", prompt_ids, vocab)
    for i, cont in enumerate(continuation_ids):
        bad = [t for t in cont if not 0 <= t < vocab]
        if bad:
            raise UsageError(
                f"score_continuations: continuation {i}: token id {bad[0]} is outside the "
                f"vocabulary (size {vocab})"
            )
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]) + len(continuation_ids[i]))
    out: list[torch.Tensor | None] = [None] * len(order)
    with eval_mode(model), torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            rows = _score_batch(model, [prompt_ids[i] for i in chunk], [continuation_ids[i] for i in chunk])
            for i, row in zip(chunk, rows, strict=True):
                out[i] = row
    return [t.clone() for t in out]  # leave inference mode: callers may use these in autograd code


def _score_batch(model: nn.Module, prompts: list, conts: list) -> list[torch.Tensor]:
    ids, mask = right_pad([list(p) + list(c) for p, c in zip(prompts, conts, strict=True)])
    first = min(len(p) for p in prompts) - 1  # earliest position whose logits predict a continuation token
    logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=ids.shape[1] - first).logits.float()
    # logits[:, j] (j = 0 .. T-1-first) is at position first + j and predicts token first + j + 1.
    targets = ids[:, first + 1 :, None]  # (B, T-1-first, 1)
    token_lp = logits[:, :-1].gather(-1, targets).squeeze(-1) - logits[:, :-1].logsumexp(-1)
    return [
        token_lp[b, len(p) - 1 - first : len(p) - 1 - first + len(c)]
        for b, (p, c) in enumerate(zip(prompts, conts, strict=True))
    ]


def score_continuations(
    model: nn.Module,
    prompt_ids: Sequence[Sequence[int]],
    continuation_ids: Sequence[Sequence[int]],
    batch_size: int = 64,
) -> torch.Tensor:
    """(N,) fp32: summed log-probability of each continuation given its prompt (0 for an empty one)."""
    rows = score_continuations_per_token(model, prompt_ids, continuation_ids, batch_size)
    return torch.stack([row.sum() for row in rows])
