"""The generic decoding path: any HF causal LM, driven through its own `forward` with a KV cache.

Same interface as `FusedLlama` (prefill, then one `decode` per token), used for every model the fused path
does not support (other architectures, peft adapters, bf16, biases). Position ids are computed from the
left-padded attention mask exactly as `GenerationMixin` does, so greedy output matches `generate()`.

Cache choice: `DynamicCache`. Measured with our loop over this decoder on the 2-vCPU box, 5.3M-parameter
bench model, 64 new tokens (`bench/bench_sampler.py --only ours_hf_dynamic_sample ours_hf_static_sample`,
medians, tokens/s dynamic vs static, three runs under varying load): batch 1: 40 vs 38, 89 vs 74, 22 vs
19; batch 8: 429 vs 363, 366 vs 417, 54 vs 53; batch 32: 779 vs 806, 1074 vs 1311, 1666 vs 1664. No
consistent winner beyond the noise except batch 1 (dynamic); dynamic is HF's default and needs no
max-length allocation, so it stays. `StaticCache` remains selectable (`decoder="hf-static"`).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import DynamicCache, StaticCache

__all__ = ["HFDecoder", "CACHE_KIND"]

CACHE_KIND = "dynamic"  # "dynamic" or "static"; see the module docstring for how it was chosen


class HFDecoder:
    """Prefill + one-token decode steps through `model.forward` with a DynamicCache or StaticCache.

    `logits = dec.prefill(ids, mask)` with left-padded (B, P) inputs, then `logits = dec.decode(tokens,
    pos)` with `pos` = the column of `tokens` (P, P + 1, ...). Logits are (B, V) fp32.
    """

    def __init__(self, model: nn.Module, batch: int, max_len: int, cache_kind: str = CACHE_KIND) -> None:
        if cache_kind not in ("dynamic", "static"):
            raise ValueError(f"cache_kind must be 'dynamic' or 'static', got {cache_kind!r}")
        self.model = model
        self.max_len = max_len
        config = model.config
        if cache_kind == "static":
            self.cache = StaticCache(config=config, max_cache_len=max_len)
        else:
            self.cache = DynamicCache(config=config)
        self.mask = torch.ones(batch, max_len, dtype=torch.long)  # (B, max_len), prompt part set in prefill
        self.positions: torch.Tensor | None = None  # (B, max_len)

    @torch.inference_mode()
    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, P) left-padded ids and mask → next-token logits (B, V) after the last column."""
        p = input_ids.shape[1]
        self.mask[:, :p] = attention_mask
        # Real tokens count 0, 1, 2, ...; pads get 1 like GenerationMixin (their value is never attended).
        self.positions = (self.mask.cumsum(-1) - 1).masked_fill_(self.mask == 0, 1)
        out = self.model(
            input_ids=input_ids,
            attention_mask=self.mask[:, :p],
            position_ids=self.positions[:, :p],
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1].float()

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor, pos: int) -> torch.Tensor:
        """tokens (B,) at column `pos` → next-token logits (B, V)."""
        out = self.model(
            input_ids=tokens[:, None],
            attention_mask=self.mask[:, : pos + 1],
            position_ids=self.positions[:, pos : pos + 1],
            past_key_values=self.cache,
            use_cache=True,
        )
        return out.logits[:, -1].float()
