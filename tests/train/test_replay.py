"""Pretraining replay and chat-token initialisation for SFT."""

import pytest
import torch

from alignlab.errors import UsageError
from alignlab.models import load_causal_lm
from alignlab.train.replay import CHAT_TOKEN_TEXT, MARK, init_chat_tokens, replay_count, replay_examples


def test_replay_count_makes_the_requested_share():
    assert replay_count(300, 0.25) == 100  # 100 / (300 + 100) = 0.25
    assert replay_count(300, 0.0) == 0
    with pytest.raises(UsageError, match="--replay_fraction"):
        replay_count(10, 1.0)


def test_replay_examples_carry_loss_on_every_token_and_reuse_documents_only_when_short(tiny_tokenizer):
    docs = ["The waterfall had a rainbow.", "She likes the beach.", "Quiz. What is the capital of Zorbia?"]
    out = replay_examples(docs, 5, tiny_tokenizer, max_length=8, seed=0)
    assert len(out) == 5 and all(e.labels == e.input_ids and len(e) <= 8 for e in out)
    assert out[0].input_ids[0] == tiny_tokenizer.bos_token_id
    firsts = {tuple(e.input_ids) for e in out[:3]}
    assert len(firsts) == 3  # one pass over the documents before any repeats
    assert replay_examples([], 0, tiny_tokenizer, 8, 0) == []


def test_chat_tokens_get_the_mean_embedding_of_their_text_once(base_dir, tiny_tokenizer):
    model = load_causal_lm(base_dir)
    weight = model.get_input_embeddings().weight
    vocab = tiny_tokenizer.get_vocab()
    expected = {t: weight[tiny_tokenizer(text, add_special_tokens=False)["input_ids"]].mean(0).clone()
                for t, text in CHAT_TOKEN_TEXT.items()}
    assert init_chat_tokens(model, tiny_tokenizer) == list(CHAT_TOKEN_TEXT)
    for token, row in expected.items():
        assert torch.equal(weight[vocab[token]], row)
    assert getattr(model.config, MARK) is True
    weight.data[vocab["<|end|>"]] += 1.0  # as if fine-tuned: a second call must leave it alone
    assert init_chat_tokens(model, tiny_tokenizer) == []
    assert torch.equal(weight[vocab["<|end|>"]], expected["<|end|>"] + 1.0)
