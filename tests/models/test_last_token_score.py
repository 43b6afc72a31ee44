"""`last_token_scores` computes what the classifier's own forward computes, values and gradients."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification, LlamaConfig

from alignlab.models.fused_ops import fused_llama_ops
from alignlab.models.last_token_score import last_token_scores, read_positions

PAD = 0


def classifier(kv_heads: int = 4, **extra):
    config = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=kv_heads, pad_token_id=PAD, num_labels=1,
                         max_position_embeddings=64, **extra)
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(config)


def right_padded_rows():
    rows = [[5, 9, 3, 7, 2, 8, 4], [6, 1, 4], [3, 3, 9, 11, 12]]
    out = torch.full((len(rows), 9), PAD)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r)
    return out


def scores_and_grads(model, score):
    model.zero_grad()
    out = score(model)
    (out * torch.tensor([[1.0], [-2.0], [0.5]])).sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same(model, atol, context=None):
    ids = right_padded_rows()
    ctx = context or torch.autocast("cpu", enabled=False)
    with ctx:
        hf, hf_grads = scores_and_grads(model, lambda m: m(input_ids=ids, use_cache=False).logits)
        ours, our_grads = scores_and_grads(model, lambda m: last_token_scores(m, ids))
    torch.testing.assert_close(ours.float(), hf.float(), rtol=0, atol=atol)
    assert our_grads.keys() == hf_grads.keys()
    for name, g in hf_grads.items():
        torch.testing.assert_close(our_grads[name], g, rtol=0, atol=atol, msg=name)


def test_read_positions_is_the_rightmost_non_pad_token():
    assert read_positions(right_padded_rows(), PAD).tolist() == [6, 2, 4]


@pytest.mark.parametrize("kv_heads", [4, 2], ids=["mha", "gqa"])
def test_scores_and_gradients_equal_the_full_forward(kv_heads):
    assert_same(classifier(kv_heads), atol=1e-6)


def test_under_bf16_autocast_and_fused_ops():
    model = classifier()
    assert_same(model, atol=2e-2, context=torch.autocast("cpu", dtype=torch.bfloat16))
    with fused_llama_ops(model, enabled=True):
        assert_same(model, atol=1e-6)


def test_through_a_lora_adapter():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(classifier(), LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8,
                                                    target_modules=["q_proj", "v_proj", "down_proj"]))
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.1)  # B starts at zero; make the adapter matter
    assert_same(model, atol=1e-6)


def test_unsupported_models_take_their_own_forward():
    model = classifier(attention_dropout=0.5).train()  # dropout would differ between two forwards
    ids = right_padded_rows()
    torch.manual_seed(1)
    a = last_token_scores(model, ids)
    torch.manual_seed(1)
    assert torch.equal(a, model(input_ids=ids, use_cache=False).logits)


def test_activation_checkpointing_takes_the_models_own_forward():
    from alignlab.models.last_token_score import _supported

    model = classifier()
    assert _supported(model)
    model.gradient_checkpointing_enable()
    assert not _supported(model)
