"""Packing changes nothing a model computes: a packed row gives each conversation the logits it gets alone,
and the packed loss is the token-weighted loss of the separate sequences. Checked on a tiny Llama with
sdpa and eager attention, through transformers' own packed-sequence detection (position_ids, no mask).
"""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from alignlab.data.collate import collate_packed, pack_examples
from alignlab.data.tokenize import IGNORE_INDEX, tokenize_sft

IMPLEMENTATIONS = ("sdpa", "eager")


def U(text):
    return {"role": "user", "content": text}


def A(text):
    return {"role": "assistant", "content": text}


CONVERSATIONS = [
    [U("What color is the sky?"), A("Blue.")],
    [
        {"role": "system", "content": "Be brief."},
        U("Hi"),
        A("Hello."),
        U("Rainbow?"),
        A("Yes, at the waterfall."),
    ],
    [U("Cat?"), A("The cat sat on the mat.")],
    [U("Dog?"), A("No.")],
    [U("What color is the grass? And the sea?"), A("Green, and blue.")],
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny matrices: thread start-up and oversubscription on a shared 2-core machine cost 50x the maths.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def models(tok):
    out = {}
    for impl in IMPLEMENTATIONS:
        torch.manual_seed(0)
        config = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
            attn_implementation=impl,
        )
        out[impl] = LlamaForCausalLM(config).eval()
        assert out[impl].config._attn_implementation == impl
    return out


def _examples(tok, completion_only_loss=True):
    records = [{"messages": m} for m in CONVERSATIONS]
    return tokenize_sft(records, tok, max_length=64, completion_only_loss=completion_only_loss)


def _alone_logits(model, example):
    with torch.no_grad():
        return model(input_ids=torch.tensor([example.input_ids])).logits[0]  # (T, V)


def _packed_logits(model, rows, batch, **kwargs):
    """Per-example logits sliced out of a packed forward, in the order examples appear in `rows`."""
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], **kwargs).logits
    out = []
    for b, row in enumerate(rows):
        start = 0
        for ex in row:
            out.append((ex, logits[b, start : start + len(ex)]))
            start += len(ex)
    return out


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("flatten", [False, True], ids=["rows", "flat"])
def test_packed_logits_equal_separate_logits(tok, models, impl, flatten):
    model, examples = models[impl], _examples(tok)
    rows = pack_examples(examples, max_length=56)
    assert len(rows) >= 2 and any(len(row) >= 2 for row in rows)  # real packing, and padding in (B, L)
    batch = collate_packed(rows, tok.pad_token_id, flatten=flatten)
    if flatten:
        rows = [[ex for row in rows for ex in row]]
    for ex, packed in _packed_logits(model, rows, batch, use_cache=False):
        torch.testing.assert_close(packed, _alone_logits(model, ex), atol=1e-5, rtol=0)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_explicit_block_mask_gives_the_same_logits(tok, models, impl):
    # The fallback for callers that cannot pass use_cache=False: a 4D mask bypasses mask construction.
    model, examples = models[impl], _examples(tok)
    rows = pack_examples(examples, max_length=56)
    batch = collate_packed(rows, tok.pad_token_id, mask_dtype=torch.float32)
    for ex, packed in _packed_logits(model, rows, batch, attention_mask=batch["attention_mask"]):
        torch.testing.assert_close(packed, _alone_logits(model, ex), atol=1e-5, rtol=0)


def test_packed_detection_needs_use_cache_false(tok, models):
    # Documents the trap in collate.py's docstring: with the config's use_cache=True, transformers makes a
    # DynamicCache and skips packed-sequence detection, so later documents attend to earlier ones. If this
    # starts failing, transformers has changed and the docstring should say so.
    model, examples = models["sdpa"], _examples(tok)
    rows = [examples[:2]]
    batch = collate_packed(rows, tok.pad_token_id)
    second_ex, second = _packed_logits(model, rows, batch)[1]
    assert not torch.allclose(second, _alone_logits(model, second_ex), atol=1e-3)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("completion_only_loss", [True, False])
def test_packed_loss_is_token_weighted_loss_of_separate_sequences(tok, models, impl, completion_only_loss):
    # With completion_only_loss=False every first token has a label, so this also checks that no loss
    # crosses a document boundary (the model shifts labels by one).
    model, examples = models[impl], _examples(tok, completion_only_loss)
    rows = pack_examples(examples, max_length=56)
    batch = collate_packed(rows, tok.pad_token_id)
    with torch.no_grad():
        packed_loss = model(**batch, use_cache=False).loss
        total, count = 0.0, 0
        for ex in examples:
            labels = torch.tensor([ex.labels])
            n = int((labels[:, 1:] != IGNORE_INDEX).sum())  # labels[0] is never predicted
            total += model(input_ids=torch.tensor([ex.input_ids]), labels=labels).loss.item() * n
            count += n
    assert count == int((batch["labels"] != IGNORE_INDEX).sum())
    torch.testing.assert_close(packed_loss.item(), total / count, atol=1e-5, rtol=0)
