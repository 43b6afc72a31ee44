"""Text in, text out: `generate_text(model, tokenizer, prompts, cfg)` over `sampler.sample`."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from alignlab.errors import UsageError
from alignlab.generation.sampler import SampleOutput, SamplingConfig, make_generator, sample

__all__ = ["generate_text", "cut_at_stop_strings"]


def cut_at_stop_strings(text: str, stop_strings: Sequence[str]) -> str:
    """Text before the earliest occurrence of any stop string (unchanged if none occurs)."""
    cut = min((i for s in stop_strings if s and (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def generate_text(
    model: nn.Module,
    tokenizer,
    prompts: Sequence[str],
    cfg: SamplingConfig,
    batch_size: int = 32,
    stop_strings: Sequence[str] = (),
    *,
    add_special_tokens: bool = True,
    num_threads: int | None = None,
) -> list[str]:
    """Continue each prompt; returns the new text only, in the order of `prompts`.

    Prompts are tokenised with `tokenizer(prompt, add_special_tokens=...)` (True = the tokenizer's own
    default, as `tokenizer(text)`; pass False for text already rendered by a chat template), sorted by
    length and sampled `batch_size` at a time from one generator seeded by `cfg.seed`. The stop token that
    ended a row is not part of its text; special tokens are otherwise kept, so a stop string may be one.
    Stop strings only cut the decoded text: generation itself stops on `cfg.stop_token_ids`.
    `num_threads` is passed to `sample`.
    """
    if batch_size < 1:
        raise UsageError(f"generate_text: batch_size must be >= 1, got {batch_size}")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise UsageError("generate_text: the tokenizer has neither a pad nor an eos token to pad with")
    encoded = [tokenizer(p, add_special_tokens=add_special_tokens)["input_ids"] for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    gen = make_generator(cfg.seed)
    texts = [""] * len(encoded)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        out = sample(model, [encoded[i] for i in chunk], cfg, pad, generator=gen, num_threads=num_threads)
        for row, i in enumerate(chunk):
            texts[i] = cut_at_stop_strings(_decode_row(tokenizer, out, row), stop_strings)
    return texts


def _decode_row(tokenizer, out: SampleOutput, row: int) -> str:
    n = int(out.lengths[row]) - int(out.finished[row])  # drop the stop token itself
    return tokenizer.decode(out.tokens[row, :n].tolist(), skip_special_tokens=False)
