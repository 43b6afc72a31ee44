import pytest
import torch

from alignlab.generation.fused_llama import FusedLlama, _interleave_rows
from alignlab.generation.sampler import left_pad

from .conftest import tiny_llama


def test_interleaving_q_and_k_rows_preserves_attention_scores():
    # Per head, q·k is a sum over dimensions; permuting the rows of W_q and W_k the same way keeps it.
    g = torch.Generator().manual_seed(0)
    wq, wk, x = (
        torch.randn(2 * 8, 5, generator=g),
        torch.randn(2 * 8, 5, generator=g),
        torch.randn(3, 5, generator=g),
    )
    scores = lambda a, b: ((x @ a.T).view(3, 2, 8) * (x @ b.T).view(3, 2, 8)).sum(-1)  # noqa: E731
    assert torch.allclose(
        scores(wq, wk), scores(_interleave_rows(wq, 2, 8), _interleave_rows(wk, 2, 8)), atol=1e-5
    )
    # Pairs (i, i + D/2) of each head become adjacent: rows 0, 4, 1, 5, 2, 6, 3, 7 of head 0.
    assert torch.equal(_interleave_rows(wq, 2, 8)[:8], wq[[0, 4, 1, 5, 2, 6, 3, 7]])


def test_supports_only_stock_fp32_llama():
    from transformers import GPT2Config, GPT2LMHeadModel

    assert FusedLlama.supports(tiny_llama())
    assert not FusedLlama.supports(tiny_llama().to(torch.bfloat16))
    assert not FusedLlama.supports(tiny_llama(attention_bias=True))
    assert not FusedLlama.supports(tiny_llama(hidden_act="gelu"))
    assert not FusedLlama.supports(
        tiny_llama(rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e4})
    )
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=256, n_embd=32, n_layer=1, n_head=2, n_positions=64))
    assert not FusedLlama.supports(gpt2)


def test_prefill_and_decode_logits_equal_hf_forward(model, ragged_prompts):
    ids, mask = left_pad(ragged_prompts, 0)
    b, p = ids.shape
    dec = FusedLlama(model, b, p + 3)
    logits = dec.prefill(ids, mask)
    for step in range(3):
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        with torch.no_grad():
            ref = model(ids, attention_mask=mask, position_ids=positions).logits[:, -1]
        assert torch.allclose(logits, ref, atol=1e-5)
        nxt = torch.tensor([[11 + step]] * b)
        ids, mask = torch.cat([ids, nxt], 1), torch.cat([mask, torch.ones(b, 1, dtype=torch.long)], 1)
        logits = dec.decode(nxt[:, 0], p + step)


def test_bf16_compute_follows_hf_under_bf16_autocast(model, ragged_prompts):
    # Same function as the model under bf16 autocast, to bf16 rounding; and visibly not the fp32 one.
    ids, mask = left_pad(ragged_prompts, 0)
    b, p = ids.shape
    dec = FusedLlama(model, b, p + 3, dtype=torch.bfloat16)
    assert dec.k_cache[0].dtype == torch.bfloat16
    logits = dec.prefill(ids, mask)
    for step in range(3):
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        with torch.no_grad():
            fp32 = model(ids, attention_mask=mask, position_ids=positions).logits[:, -1]
            with torch.autocast("cpu", dtype=torch.bfloat16):
                ref = model(ids, attention_mask=mask, position_ids=positions).logits[:, -1].float()
        assert logits.dtype == torch.float32
        assert (logits - ref).abs().max() <= 1e-2 * ref.abs().max()
        assert (logits - fp32).abs().max() > 1e-4
        nxt = torch.tensor([[11 + step]] * b)
        ids, mask = torch.cat([ids, nxt], 1), torch.cat([mask, torch.ones(b, 1, dtype=torch.long)], 1)
        logits = dec.decode(nxt[:, 0], p + step)


def test_compute_dtype_is_fp32_or_bf16(model):
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        FusedLlama(model, 1, 4, dtype=torch.float16)


def test_packing_reads_current_weights(ragged_prompts):
    # A fresh decoder per call sees parameter updates made in place (as an optimiser step does).
    model = tiny_llama()
    ids, mask = left_pad(ragged_prompts, 0)
    before = FusedLlama(model, len(ids), ids.shape[1] + 1).prefill(ids, mask)
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight.mul_(3.0)
    after = FusedLlama(model, len(ids), ids.shape[1] + 1).prefill(ids, mask)
    with torch.no_grad():
        ref = model(ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp_min(0)).logits[:, -1]
    assert not torch.allclose(before, after) and torch.allclose(after, ref, atol=1e-5)


@pytest.mark.parametrize("decoder", ["hf-dynamic", "hf-static"])
def test_generic_path_on_a_non_llama_model_matches_generate(ragged_prompts, decoder):
    from transformers import GPT2Config, GPT2LMHeadModel

    from alignlab.generation import SamplingConfig, sample

    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=256, n_embd=32, n_layer=2, n_head=2, n_positions=64)).eval()
    out = sample(gpt2, ragged_prompts, SamplingConfig(max_new_tokens=8, do_sample=False), 0, decoder=decoder)
    ids, mask = left_pad(ragged_prompts, 0)
    with torch.no_grad():
        ref = gpt2.generate(
            ids, attention_mask=mask, do_sample=False, max_new_tokens=8, pad_token_id=0, eos_token_id=None
        )
    assert out.tokens.tolist() == ref[:, ids.shape[1] :].tolist()
