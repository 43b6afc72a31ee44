"""The fused RMSNorm and RoPE compute what transformers' Llama code computes, values and gradients."""

import pytest
import torch
from transformers.models.llama import modeling_llama as llama

from alignlab.models import build_model
from alignlab.models.fused_ops import apply_rotary, fused_llama_ops, rms_norm


def _grads(fn, *inputs):
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = fn(*leaves)
    out = torch.cat([o.flatten() for o in out]) if isinstance(out, tuple) else out.flatten()
    out.backward(torch.linspace(-1, 1, out.numel()))  # a gradient that weights every element differently
    return out.detach(), [x.grad for x in leaves]


def test_rms_norm_matches_llama_rms_norm_with_gradients():
    torch.manual_seed(0)
    norm = llama.LlamaRMSNorm(24, eps=1e-5)
    norm.weight.data.uniform_(0.5, 1.5)
    x = torch.randn(3, 5, 24)
    hf_out, (hf_dx, hf_dw) = _grads(lambda x, w: llama.LlamaRMSNorm.forward(_with_weight(norm, w), x), x, norm.weight)
    out, (dx, dw) = _grads(lambda x, w: rms_norm(x, w, 1e-5), x, norm.weight)
    torch.testing.assert_close(out, hf_out, rtol=0, atol=1e-6)
    torch.testing.assert_close(dx, hf_dx, rtol=0, atol=1e-6)
    torch.testing.assert_close(dw, hf_dw, rtol=0, atol=1e-6)


def _with_weight(norm, weight):
    clone = llama.LlamaRMSNorm(weight.shape[0], eps=norm.variance_epsilon)
    del clone.weight
    clone.weight = weight  # a plain tensor, so the gradient reaches the test's leaf
    return clone


def test_rotary_matches_apply_rotary_pos_emb_with_gradients():
    torch.manual_seed(0)
    q, k = torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 8)
    angles = torch.randn(2, 7, 4)
    cos, sin = torch.cat([angles.cos()] * 2, -1), torch.cat([angles.sin()] * 2, -1)  # HF's duplicated halves
    hf_out, hf_grads = _grads(lambda q, k: llama.apply_rotary_pos_emb(q, k, cos, sin), q, k)
    out, grads = _grads(lambda q, k: apply_rotary(q, k, cos, sin), q, k)
    torch.testing.assert_close(out, hf_out, rtol=0, atol=1e-6)
    for g, hf_g in zip(grads, hf_grads, strict=True):
        torch.testing.assert_close(g, hf_g, rtol=0, atol=1e-6)


@pytest.mark.parametrize("bf16", [False, True])
def test_model_under_fused_ops_gives_the_same_loss_and_gradients(bf16):
    model = build_model("nano", 64, 16, seed=0)
    x = torch.randint(0, 64, (3, 16), generator=torch.Generator().manual_seed(1))

    def loss_and_grads(fused: bool):
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16), fused_llama_ops(model, fused) as on:
            loss = model(input_ids=x, labels=x).loss
        assert on == fused
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    plain_loss, plain_grads = loss_and_grads(False)
    fused_loss, fused_grads = loss_and_grads(True)
    tol = 1e-2 if bf16 else 1e-6  # under autocast the two orders of rounding differ by a bf16 ulp
    torch.testing.assert_close(fused_loss, plain_loss, rtol=0, atol=tol)
    for g, plain in zip(fused_grads, plain_grads, strict=True):
        torch.testing.assert_close(g, plain, rtol=tol, atol=tol)


def test_the_swap_is_undone_on_exit_even_after_an_error():
    model = build_model("nano", 64, 16, seed=0)
    original = llama.apply_rotary_pos_emb
    with pytest.raises(RuntimeError), fused_llama_ops(model):
        assert llama.apply_rotary_pos_emb is apply_rotary
        assert all("forward" in vars(m) for m in model.modules() if isinstance(m, llama.LlamaRMSNorm))
        raise RuntimeError("boom")
    assert llama.apply_rotary_pos_emb is original
    assert not any("forward" in vars(m) for m in model.modules())


def test_models_without_llama_modules_are_left_alone():
    with fused_llama_ops(torch.nn.Linear(4, 4)) as on:
        assert not on
        assert llama.apply_rotary_pos_emb is not apply_rotary
