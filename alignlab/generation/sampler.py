"""Batched sampling from a causal LM with a KV cache: `sample(model, prompt_ids, cfg, pad_token_id)`.

One batched prefill over left-padded prompts, then one decode step per new token. Two interchangeable
decoders do the forward passes: `FusedLlama` (stock fp32 Llama: ~12 ops per layer per token, its own
preallocated cache) and `HFDecoder` (any HF causal LM through `model.forward` with an HF cache). Tokens
are chosen by `filters.pick_next_token` (temperature → top-k → top-p, inverse-CDF sampling).

Deliberately left out: beam search, repetition penalties, stop *strings* (see `text.generate_text`,
which cuts after decoding), and per-row early exit (a finished row keeps being fed the pad token, as in
HF `generate`, so shapes stay static; the loop ends when every row has finished).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from alignlab.errors import UsageError
from alignlab.generation.filters import pick_next_token
from alignlab.generation.fused_llama import FusedLlama
from alignlab.generation.hf_decoder import CACHE_KIND, HFDecoder

__all__ = ["SamplingConfig", "SampleOutput", "sample", "left_pad", "make_decoder"]


@dataclass
class SamplingConfig:
    """How to choose new tokens. Field names follow HF `GenerationConfig` where they mean the same."""

    max_new_tokens: int = field(default=64, metadata={"help": "at most this many new tokens per prompt"})
    temperature: float = field(default=1.0, metadata={"help": "divide logits by this before sampling (> 0)"})
    top_k: int = field(default=0, metadata={"help": "keep only the k most likely tokens; 0 = off"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass in (0, 1]; 1 = off"})
    do_sample: bool = field(default=True, metadata={"help": "False = greedy (argmax) decoding"})
    stop_token_ids: list[int] = field(
        default_factory=list, metadata={"help": "a row stops after emitting any of these (kept in output)"}
    )
    seed: int | None = field(
        default=None, metadata={"help": "seed of the sampling generator; None = from torch's global RNG"}
    )

    def __post_init__(self) -> None:
        problems = {
            "max_new_tokens": self.max_new_tokens < 0,
            "temperature": not self.temperature > 0,
            "top_k": self.top_k < 0,
            "top_p": not 0 < self.top_p <= 1,
        }
        for name, bad in problems.items():
            if bad:
                raise UsageError(
                    f"SamplingConfig: field '{name}': invalid value {getattr(self, name)!r} "
                    "(max_new_tokens >= 0, temperature > 0, top_k >= 0, 0 < top_p <= 1)"
                )


@dataclass
class SampleOutput:
    """What `sample` returns; row b's new tokens are `tokens[b, :lengths[b]]`.

    tokens: (B, T) long, T = the longest row (<= max_new_tokens); pad_token_id after a row's stop token.
    logprobs: (B, T) fp32, log-probability of each new token under the model itself (temperature 1, no
        top-k/top-p), i.e. log softmax(logits)[token] of the policy; 0 after the row's end.
    lengths: (B,) long, number of new tokens including the stop token.
    finished: (B,) bool, True where the row emitted a stop token (False = hit max_new_tokens).
    """

    tokens: torch.Tensor
    logprobs: torch.Tensor
    lengths: torch.Tensor
    finished: torch.Tensor


def left_pad(prompt_ids: Sequence[Sequence[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token lists to one width → input_ids (B, P) long, attention_mask (B, P) long (1 = token)."""
    width = max(len(row) for row in prompt_ids)
    ids = torch.full((len(prompt_ids), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
    for b, row in enumerate(prompt_ids):
        if row:
            ids[b, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[b, width - len(row) :] = 1
    return ids, mask


def make_decoder(
    model: nn.Module, batch: int, max_len: int, decoder: str = "auto", dtype: torch.dtype = torch.float32
):
    """The forward-pass engine `resolve_decoder` names; `dtype` is the fused engine's compute dtype (the
    HF engine computes in whatever autocast says)."""
    decoder = resolve_decoder(model, decoder)
    if decoder == "fused":
        return FusedLlama(model, batch, max_len, dtype)
    return HFDecoder(model, batch, max_len, cache_kind=decoder[3:])


def resolve_decoder(model: nn.Module, decoder: str) -> str:
    """The engine's name for `decoder`: "auto" (fused when supported), "fused", "hf-dynamic", "hf-static"."""
    if decoder == "auto":
        return "fused" if FusedLlama.supports(model) else f"hf-{CACHE_KIND}"
    if decoder not in ("fused", "hf-dynamic", "hf-static"):
        raise UsageError(f"sample: decoder {decoder!r} is not one of auto, fused, hf-dynamic, hf-static")
    if decoder == "fused" and not FusedLlama.supports(model):
        raise UsageError(f"sample: decoder 'fused' does not support {type(model).__name__}; use 'auto'")
    return decoder


def check_prompts(where: str, prompt_ids: Sequence[Sequence[int]], vocab_size: int) -> None:
    """Raise UsageError naming the first empty prompt or out-of-vocabulary token id."""
    if len(prompt_ids) == 0:
        raise UsageError(f"{where}: no prompts given")
    for i, row in enumerate(prompt_ids):
        if len(row) == 0:
            raise UsageError(f"{where}: prompt {i}: empty prompt (needs at least one token, e.g. BOS)")
        bad = [t for t in row if not 0 <= t < vocab_size]
        if bad:
            raise UsageError(
                f"{where}: prompt {i}: token id {bad[0]} is outside the vocabulary (size {vocab_size})"
            )


def vocab_size_of(model: nn.Module) -> int:
    return model.get_input_embeddings().num_embeddings


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run with dropout off, then restore every submodule's own train/eval flag (they may differ)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Use n intra-op threads inside the block and restore the previous count after (None: no change)."""
    if n is None:
        yield
        return
    if n < 1:
        raise UsageError(f"sample: num_threads must be >= 1, got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_dtype(dtype: torch.dtype | None) -> torch.dtype:
    """The compute dtype of a decode: `dtype`, else bf16 inside a bf16 CPU autocast region, else fp32."""
    if dtype is None:
        autocast_bf16 = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        dtype = torch.bfloat16 if autocast_bf16 else torch.float32
    if dtype not in (torch.float32, torch.bfloat16):
        raise UsageError(f"sample: dtype must be torch.float32 or torch.bfloat16, got {dtype}")
    return dtype


def make_generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded by `seed`, or by torch's global RNG when None (so `torch.manual_seed` rules)."""
    if seed is None:
        seed = int(torch.randint(0, 2**62, ()).item())
    return torch.Generator().manual_seed(seed)


def sample(
    model: nn.Module,
    prompt_ids: Sequence[Sequence[int]],
    cfg: SamplingConfig,
    pad_token_id: int,
    *,
    generator: torch.Generator | None = None,
    decoder: str = "auto",
    num_threads: int | None = None,
    dtype: torch.dtype | None = None,
) -> SampleOutput:
    """Sample continuations of a batch of token-id prompts (of any lengths) with a KV cache.

    Prompts are left-padded; the first new token of every row lands in the same column, so one decode step
    serves the whole batch. `generator` overrides `cfg.seed` (to continue one stream across calls).
    Greedy (`do_sample=False`) output equals `model.generate(do_sample=False)` token for token.
    `decoder`: see `make_decoder`. `num_threads`: torch intra-op threads for this call only (None = leave
    torch's setting); on the shared 2-vCPU box, 1 thread decoded 4-7x faster than 2 under load.
    `dtype`: float32, or bfloat16 for the forward passes of bf16 autocast (weights cast once per call on
    the fused path: 1.26x our fp32 speed at batch 32 on the AMX Xeon, 0.75x at batch 1, BENCHMARKS.md);
    None = bf16 inside a bf16 CPU autocast region, else fp32. Greedy output equals `generate`'s at fp32; at
    bf16 it follows autocast's rounding, so a near-tie between two tokens can go the other way.
    """
    vocab = vocab_size_of(model)
    check_prompts("sample", prompt_ids, vocab)
    if not 0 <= pad_token_id < vocab:
        raise UsageError(f"sample: pad_token_id {pad_token_id} is outside the vocabulary (size {vocab})")
    ids, mask = left_pad(prompt_ids, pad_token_id)
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and ids.shape[1] + cfg.max_new_tokens > limit:
        raise UsageError(
            f"sample: longest prompt ({ids.shape[1]}) + max_new_tokens ({cfg.max_new_tokens}) "
            f"exceeds the model's max_position_embeddings ({limit})"
        )
    gen = generator if generator is not None else make_generator(cfg.seed)
    dtype, decoder = resolve_dtype(dtype), resolve_decoder(model, decoder)
    # The fused engine casts for itself (autocast around it would re-cast its prefill GEMMs); an HF model
    # reaches bf16 only through autocast.
    hf_bf16 = decoder != "fused" and dtype == torch.bfloat16
    device_type = next(model.parameters()).device.type
    with (
        eval_mode(model),
        torch_threads(num_threads),
        torch.inference_mode(),
        torch.autocast(device_type, dtype=torch.bfloat16, enabled=hf_bf16),
    ):
        out = _decode_loop(model, ids, mask, cfg, gen, pad_token_id, decoder, dtype)
    # Clone outside inference mode: inference tensors cannot enter autograd, and RL feeds these back in.
    return SampleOutput(*(t.clone() for t in out))


def _decode_loop(model, ids, mask, cfg, gen, pad_token_id, decoder, dtype) -> tuple[torch.Tensor, ...]:
    """Prefill, then pick/feed one token per step until every row stopped or max_new_tokens."""
    b, p = ids.shape
    n = cfg.max_new_tokens
    tokens = torch.full((b, n), pad_token_id, dtype=torch.long)
    logprobs = torch.zeros(b, n)
    finished = torch.zeros(b, dtype=torch.bool)
    steps_done = torch.zeros(b, dtype=torch.long)  # steps each row spent already finished
    stop = torch.tensor(sorted(set(cfg.stop_token_ids)), dtype=torch.long)
    steps = 0
    if n > 0:
        dec = make_decoder(model, b, p + n, decoder, dtype)
        logits = dec.prefill(ids, mask)
    for step in range(n):
        tok, lp = pick_next_token(
            logits,
            do_sample=cfg.do_sample,
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            top_p=cfg.top_p,
            generator=gen,
        )
        tok.masked_fill_(finished, pad_token_id)
        tokens[:, step] = tok
        logprobs[:, step] = lp
        steps_done += finished
        steps = step + 1
        if len(stop):
            finished |= (tok[:, None] == stop).any(-1)  # cheaper than isin for a few stop ids
            if bool(finished.all()):
                break
        if steps < n:
            logits = dec.decode(tok, p + step)
    lengths = steps - steps_done
    logprobs[:, :steps].masked_fill_(torch.arange(steps) >= lengths[:, None], 0.0)
    return tokens[:, :steps], logprobs[:, :steps], lengths, finished
