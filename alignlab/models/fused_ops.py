"""Llama's RMSNorm and RoPE as two autograd functions with hand-written backward passes, for training.

transformers' `LlamaRMSNorm` and `apply_rotary_pos_emb` are chains of small element-wise ops, and autograd
records every one of them: `rotate_half`'s two slices, negation and `cat` alone cost a zero-fill and a copy
per slice in backward. On a CPU at the bench model's shapes those ops, not the matmuls, are where a
training step's time beyond the GEMMs goes (profile of a 16 × 100-token forward+backward: matmuls 58%, `mul`
11%, `add`/`fill_`/`copy_`/`cat`/`neg` another 8%). The two functions here compute the same values (to
float rounding: gradients within 1e-8 at fp32) with about half the ops, which made the decoder's
forward+backward 5–20% faster there (noisy; median ~8%).

`fused_llama_ops(model)` swaps them in for the duration of a `with` block: each `LlamaRMSNorm` instance of
`model` gets the fused forward, and `transformers.models.llama.modeling_llama.apply_rotary_pos_emb` (which
`LlamaAttention.forward` looks up at call time) is replaced and then restored. Only the stock Llama classes
are touched — other architectures (Gemma's norm scales by 1 + weight, for one) keep their own code. The
training loop does not swap them under `torch.compile` (which fuses these ops itself and would recompile
on the swap) nor under activation checkpointing (whose recomputation runs outside the block).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

__all__ = ["fused_llama_ops", "rms_norm", "apply_rotary"]


class _RMSNorm(torch.autograd.Function):
    """y = w · x / sqrt(mean(x²) + eps) over the last dim, x in fp32."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, eps: float) -> Tensor:
        rstd = torch.rsqrt(x.pow(2).mean(-1, keepdim=True).add_(eps))
        normed = x * rstd
        ctx.save_for_backward(normed, rstd, weight)
        return weight * normed

    @staticmethod
    def backward(ctx, grad: Tensor):
        normed, rstd, weight = ctx.saved_tensors
        grad_weight = (grad * normed).sum(tuple(range(grad.dim() - 1)))
        g = grad * weight
        # d/dx of x·rstd: rstd · (g − x̂ · mean(g · x̂)), x̂ the normalised input
        grad_x = (g - normed * (g * normed).mean(-1, keepdim=True)).mul_(rstd)
        return grad_x, grad_weight, None


def rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """`LlamaRMSNorm.forward`: normalise in fp32, return in x's dtype times the (fp32) weight."""
    return _RMSNorm.apply(x.float(), weight, eps).to(torch.result_type(weight, x))


class _Rotary(torch.autograd.Function):
    """y = x·cos + rotate_half(x)·sin, rotate_half(x) = (−x₂, x₁) for the two halves of the last dim.

    Backward is the transposed rotation: dx = g·cos + (g₂·sin₂, −g₁·sin₁) (cos and sin carry each
    frequency in both halves, as HF's tables do).
    """

    @staticmethod
    def forward(ctx, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        ctx.save_for_backward(cos, sin)
        half = x.shape[-1] // 2
        y = x * cos
        y[..., :half].addcmul_(x[..., half:], sin[..., :half], value=-1)
        y[..., half:].addcmul_(x[..., :half], sin[..., half:])
        return y

    @staticmethod
    def backward(ctx, grad: Tensor):
        cos, sin = ctx.saved_tensors
        half = grad.shape[-1] // 2
        grad_x = grad * cos
        grad_x[..., :half].addcmul_(grad[..., half:], sin[..., half:])
        grad_x[..., half:].addcmul_(grad[..., :half], sin[..., :half], value=-1)
        return grad_x, None, None


def apply_rotary(q: Tensor, k: Tensor, cos: Tensor, sin: Tensor, unsqueeze_dim: int = 1) -> tuple[Tensor, Tensor]:
    """Drop-in for transformers' Llama `apply_rotary_pos_emb` (same signature, same values)."""
    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    return _Rotary.apply(q, cos, sin), _Rotary.apply(k, cos, sin)


def _fused_norm_forward(module: nn.Module):
    def forward(hidden_states: Tensor) -> Tensor:
        return rms_norm(hidden_states, module.weight, module.variance_epsilon)

    return forward


@contextmanager
def fused_llama_ops(model: nn.Module, enabled: bool = True) -> Iterator[bool]:
    """Run the block with the fused RMSNorm and RoPE in `model`'s Llama modules; yields whether it did."""
    from transformers.models.llama import modeling_llama as llama

    norms, attention = [], False
    for m in model.modules() if enabled else ():  # one pass: this runs around every training forward
        if type(m) is llama.LlamaRMSNorm:
            norms.append(m)
        attention = attention or type(m) is llama.LlamaAttention
    if not norms and not attention:
        yield False
        return
    original_rotary = llama.apply_rotary_pos_emb
    for m in norms:
        m.forward = _fused_norm_forward(m)
    if attention:
        llama.apply_rotary_pos_emb = apply_rotary
    try:
        yield True
    finally:
        for m in norms:
            del m.forward
        llama.apply_rotary_pos_emb = original_rotary
