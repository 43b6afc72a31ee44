"""A fused, preallocated-cache decoder for Llama-architecture models (the sampler's fast path).

`LlamaForCausalLM.forward` spends ~60 small ops per layer on one decode token (three projections,
rotate-half RoPE, cache `cat`, 4-D mask building, separate residual adds). This module computes the
*same function* from the same parameters with ~15 ops per layer:

- q, k, v projections are one matmul on the concatenated weight; gate and up are one matmul too.
- RoPE is one complex multiply. HF rotates *halves* of each head (`rotate_half`); we permute the rows of
  W_q and W_k so each (x_i, x_{i+D/2}) pair is adjacent, view pairs as complex numbers and multiply by
  cos + i·sin. Attention scores q·k are invariant to permuting head dimensions identically in q and k,
  so outputs are unchanged (the cached keys are stored permuted; nobody outside reads them).
- The output and down projections add the residual inside the GEMM (`addmm`, beta = 1); weights are
  stored transposed so no `t()` is dispatched per call.
- The KV cache is one preallocated tensor per layer written in place; attention reads a prefix view.
- cos/sin come from the model's own `rotary_emb`, so HF's static RoPE scalings are honoured.

Where the time goes (2-vCPU AVX2 box, 5.3M-parameter bench model, 1 thread, CPU time per decode step):
batch 1: 3.9 ms = matmuls 2.2 + attention 0.2 + other ops 1.5; batch 32: 16.6 ms = matmuls 9.8 +
attention (SDPA, q_len 1) 3.8 + other 3.0. Small batches are dispatch-bound, where this module pays most
(~1.6-1.8x `generate`); at batch 32 the fp32 matmuls dominate on this CPU (~45 GFLOP/s peak) and both
sides share them. `torch.compile` of the decode step was tried: ~90 s to compile per batch shape and no
faster per step here (complex RoPE falls back to eager), so it is not used.

Deliberately left out (those models take the generic HF path in `hf_decoder.py`): biases, activations
other than SiLU, weights stored in anything but fp32 (bf16 *compute* is a constructor option),
length-dependent RoPE ("dynamic", "longrope"), adapters (peft LoRA layers are not `nn.Linear`), and any
class other than the stock Llama ones; `FusedLlama.supports(model)` checks. Weights are re-packed from the
live parameters at construction (~8 MB copied, 2-4 ms for the bench model), so a policy just updated in
place by an optimiser step is sampled with its current weights.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FusedLlama"]

_STATIC_ROPE_TYPES = ("default", "linear", "llama3", "yarn")
# MKL's packed GEMM (internal ops, present in x86 CPU builds of torch); without them decode uses `mm`.
_MKL_PACKING = torch.backends.mkl.is_available() and hasattr(torch.ops.mkl, "_mkl_linear")


class _Projection:
    """x (N, in) → x·Wᵀ (N, out) [+ residual] from one weight W (out, in), no bias, in W's dtype.

    fp32: decode steps always have `rows` token rows, so there the weight is used in MKL's packed-GEMM
    layout (`cblas_sgemm_pack`, the form inductor's CPU freezing uses): at 32 rows on the AMX Xeon it ran
    the bench model's projections 1.2-1.6x faster than `mm` on the same weight, with bit-identical output.
    Other row counts (the prefill) use `mm` on a transposed view. bf16: W is a bf16 copy made once, so no
    step pays autocast's per-call cast of the fp32 weight; the input is cast to bf16 and a residual stays
    in its own dtype (fp32, as under autocast, where the residual stream is never cast down).
    """

    def __init__(self, weight: torch.Tensor, rows: int, dtype: torch.dtype = torch.float32) -> None:
        self.weight = weight.to(dtype)
        self.rows = rows
        packable = _MKL_PACKING and dtype == torch.float32
        self.packed = torch.ops.mkl._mkl_reorder_linear_weight(weight, rows) if packable else None

    def __call__(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if self.packed is not None and x.shape[0] == self.rows:
            y = torch.ops.mkl._mkl_linear(x, self.packed, self.weight, None, self.rows)
            return y if residual is None else y.add_(residual)
        x = x.to(self.weight.dtype)
        if residual is None:
            return torch.mm(x, self.weight.t())
        if residual.dtype != x.dtype:
            return residual + torch.mm(x, self.weight.t())  # fp32 + bf16 → fp32, as autocast adds
        return torch.addmm(residual, x, self.weight.t())  # residual folded into the GEMM


@dataclass
class _Layer:
    """One decoder layer's norms and projections."""

    ln_attn: torch.Tensor  # (C,)
    qkv: _Projection  # → (Hq + 2·Hkv)·D, q and k rows permuted to interleaved RoPE pairs
    o: _Projection  # Hq·D → C
    ln_mlp: torch.Tensor  # (C,)
    gate_up: _Projection  # C → 2·I
    down: _Projection  # I → C


def _interleave_rows(w: torch.Tensor, n_heads: int, head_dim: int) -> torch.Tensor:
    """Reorder rows of a q/k projection from HF's halves layout to adjacent RoPE pairs.

    w: (n_heads·D, C). Within a head, HF pairs dimension i with i + D/2 (`rotate_half`); the output puts
    them at 2i and 2i + 1 so a (..., D/2, 2) view is a complex number per pair.
    """
    c = w.shape[1]
    return w.view(n_heads, 2, head_dim // 2, c).transpose(1, 2).reshape(n_heads * head_dim, c)


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """LlamaRMSNorm for fp32, in HF's operation order (x·rsqrt(mean x² + eps), then ·weight).

    Written out because `F.rms_norm` dispatches to a composite that costs ~1.5x these ops here; `mean` is
    spelled sum-then-divide, which is what ATen's CPU `mean` computes, minus a dtype-conversion dispatch.
    """
    return weight * (x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True).div_(x.shape[-1]).add_(eps)))


def _is_plain_linear(module: object) -> bool:
    return type(module) is nn.Linear and module.bias is None


class FusedLlama:
    """Prefill + one-token decode steps for a stock fp32 `LlamaForCausalLM`, with its own static KV cache.

    Usage: `dec = FusedLlama(model, batch, max_len)`; `logits = dec.prefill(ids, mask)` (left-padded
    prompts, mask 1 = real token); then `logits = dec.decode(tokens, pos)` where `pos` is the cache column
    of `tokens` (prompt width P for the first new token, P + 1 for the next, ...). Logits are (B, V) fp32.

    `dtype=torch.bfloat16` computes what the model computes under bf16 autocast: projections, attention and
    the KV cache in bf16 (weights cast once, here), norms, RoPE and the residual stream in fp32.
    """

    @staticmethod
    def supports(model: nn.Module) -> bool:
        """True when `model` is exactly the architecture this module reimplements (see module docstring)."""
        cfg = getattr(model, "config", None)
        if type(model).__name__ != "LlamaForCausalLM" or cfg is None or cfg.model_type != "llama":
            return False
        if getattr(cfg, "hidden_act", None) != "silu" or getattr(cfg, "pretraining_tp", 1) != 1:
            return False
        # cos/sin are computed once for all positions; "dynamic"/"longrope" change with sequence length.
        rope_type = (getattr(cfg, "rope_parameters", None) or {}).get("rope_type", "default")
        if rope_type not in _STATIC_ROPE_TYPES:
            return False
        inner = model.model
        if inner.embed_tokens.weight.dtype != torch.float32 or not _is_plain_linear(model.lm_head):
            return False
        if model.lm_head.weight.shape[0] != inner.embed_tokens.weight.shape[0]:
            return False
        for layer in inner.layers:
            attn, mlp = layer.self_attn, layer.mlp
            projections = (
                attn.q_proj,
                attn.k_proj,
                attn.v_proj,
                attn.o_proj,
                mlp.gate_proj,
                mlp.up_proj,
                mlp.down_proj,
            )
            if not all(_is_plain_linear(p) for p in projections):
                return False
        return type(inner.layers[0].mlp.act_fn).__name__ in ("SiLU", "SiLUActivation")

    @torch.inference_mode()
    def __init__(
        self, model: nn.Module, batch: int, max_len: int, dtype: torch.dtype = torch.float32
    ) -> None:
        if dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(f"FusedLlama computes in float32 or bfloat16, not {dtype}")
        cfg, inner = model.config, model.model
        self.dtype = dtype
        self.n_heads = cfg.num_attention_heads
        self.n_kv = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.eps = cfg.rms_norm_eps
        self.rotary = inner.rotary_emb
        self.embed = inner.embed_tokens.weight  # (V, C)
        self.norm = inner.norm.weight
        self.head = _Projection(model.lm_head.weight, batch, dtype)
        self.layers = [self._pack(layer, batch) for layer in inner.layers]
        shape = (batch, self.n_kv, max_len, self.head_dim)
        self.k_cache = [torch.zeros(shape, dtype=dtype) for _ in self.layers]
        self.v_cache = [torch.zeros(shape, dtype=dtype) for _ in self.layers]
        self.batch, self.max_len = batch, max_len
        self.rope: torch.Tensor | None = None  # (B, max_len, 1, D/2) complex, set by prefill
        self.key_mask: torch.Tensor | None = None  # (B, 1, 1, max_len) additive, None = no padding

    def _pack(self, layer: nn.Module, rows: int) -> _Layer:
        attn, mlp, d = layer.self_attn, layer.mlp, self.head_dim
        w_qkv = torch.cat(
            [
                _interleave_rows(attn.q_proj.weight, self.n_heads, d),
                _interleave_rows(attn.k_proj.weight, self.n_kv, d),
                attn.v_proj.weight,
            ]
        )
        return _Layer(
            ln_attn=layer.input_layernorm.weight,
            qkv=_Projection(w_qkv, rows, self.dtype),
            o=_Projection(attn.o_proj.weight, rows, self.dtype),
            ln_mlp=layer.post_attention_layernorm.weight,
            gate_up=_Projection(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]), rows, self.dtype),
            down=_Projection(mlp.down_proj.weight, rows, self.dtype),
        )

    def _set_positions(self, attention_mask: torch.Tensor) -> None:
        """RoPE factors and the key mask for every cache column, from the left-padded prompt mask (B, P)."""
        b, p = attention_mask.shape
        full = torch.ones(b, self.max_len, dtype=torch.long)
        full[:, :p] = attention_mask
        # Real tokens count 0, 1, 2, ... from each row's first real token, as in HF generate.
        positions = (full.cumsum(-1) - 1).clamp_min(0)  # (B, max_len)
        cos, sin = self.rotary(self.embed, positions)  # (B, max_len, D), halves duplicated
        half = self.head_dim // 2
        self.rope = torch.complex(cos[..., :half].float(), sin[..., :half].float()).unsqueeze(2)
        if bool(attention_mask.all()):
            self.key_mask = None
        else:
            self.key_mask = torch.zeros(b, 1, 1, self.max_len, dtype=self.dtype)
            self.key_mask.masked_fill_((full == 0).view(b, 1, 1, -1), float("-inf"))

    def _block(self, x: torch.Tensor, lw: _Layer, rope: torch.Tensor, attend) -> torch.Tensor:
        """One decoder layer on token rows x (N, C); `attend(q, k, v)` → (N, Hq·D) owns the cache."""
        hq, hkv, d = self.n_heads, self.n_kv, self.head_dim
        qkv = lw.qkv(_rms_norm(x, lw.ln_attn, self.eps))  # (N, (Hq + 2·Hkv)·D)
        n_qk = (hq + hkv) * d
        # RoPE in fp32 (a no-op view at fp32), as under autocast, where HF's fp32 cos/sin upcast q and k
        qk = torch.view_as_complex(qkv[:, :n_qk].float().unflatten(-1, (hq + hkv, d // 2, 2)))
        qk = torch.view_as_real(qk * rope).flatten(-2).to(self.dtype)  # (N, Hq + Hkv, D)
        a = attend(qk[:, :hq], qk[:, hq:], qkv[:, n_qk:].unflatten(-1, (hkv, d)))
        x = lw.o(a, residual=x)
        gate_up = lw.gate_up(_rms_norm(x, lw.ln_mlp, self.eps))  # (N, 2·I)
        inter = lw.down.weight.shape[1]
        return lw.down(F.silu(gate_up[:, :inter]) * gate_up[:, inter:], residual=x)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(_rms_norm(x, self.norm, self.eps)).float()

    @torch.inference_mode()
    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids, attention_mask: (B, P) left-padded → next-token logits (B, V) at the last column."""
        b, p = input_ids.shape
        self._set_positions(attention_mask)
        # Causal mask over real keys; a pad query also sees itself so no softmax row is empty (NaN-free).
        allowed = torch.ones(p, p, dtype=torch.bool).tril() & (
            attention_mask.bool()[:, None, :] | torch.eye(p, dtype=torch.bool)
        )  # (B, P, P)
        mask = torch.zeros(b, 1, p, p, dtype=self.dtype).masked_fill_(~allowed[:, None], float("-inf"))

        def attend(i: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            # q (B·P, Hq, D), k and v (B·P, Hkv, D) → (B·P, Hq·D)
            k_cache, v_cache = self.k_cache[i][:, :, :p], self.v_cache[i][:, :, :p]
            k_cache.copy_(k.unflatten(0, (b, p)).transpose(1, 2))
            v_cache.copy_(v.unflatten(0, (b, p)).transpose(1, 2))
            a = F.scaled_dot_product_attention(
                q.unflatten(0, (b, p)).transpose(1, 2),
                k_cache,
                v_cache,
                attn_mask=mask,
                enable_gqa=self.n_kv != self.n_heads,
            )
            return a.transpose(1, 2).reshape(b * p, -1)

        x = F.embedding(input_ids.flatten(), self.embed)  # (B·P, C)
        rope = self.rope[:, :p].reshape(b * p, 1, -1)
        for i, lw in enumerate(self.layers):
            x = self._block(x, lw, rope, functools.partial(attend, i))
        return self._logits(x.view(b, p, -1)[:, -1])

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor, pos: int) -> torch.Tensor:
        """tokens (B,) at cache column `pos` → next-token logits (B, V). ~13 ops per layer."""
        b = tokens.shape[0]
        mask = None if self.key_mask is None else self.key_mask[..., : pos + 1]

        def attend(i: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            # q (B, Hq, D), k and v (B, Hkv, D) → (B, Hq·D); the cache grows by column `pos`
            k_cache, v_cache = self.k_cache[i], self.v_cache[i]
            k_cache[:, :, pos] = k
            v_cache[:, :, pos] = v
            a = F.scaled_dot_product_attention(
                q.unsqueeze(2),
                k_cache[:, :, : pos + 1],
                v_cache[:, :, : pos + 1],
                attn_mask=mask,
                enable_gqa=self.n_kv != self.n_heads,
            )
            return a.reshape(b, -1)  # (B, Hq, 1, D) → (B, Hq·D), a view for SDPA's contiguous output

        x = F.embedding(tokens, self.embed)  # (B, C)
        rope = self.rope[:, pos]  # (B, 1, D/2)
        for i, lw in enumerate(self.layers):
            x = self._block(x, lw, rope, functools.partial(attend, i))
        return self._logits(x)
