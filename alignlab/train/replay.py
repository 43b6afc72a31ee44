"""Keeping a small base model's world model through fine-tuning: pretraining replay and chat-token init.

A 1M-parameter base has no spare capacity: SFT on new templates (refusals, tutor replies, critiques)
overwrites the facts it answered from (measured: heldout quiz items answered 100% in the base's Q:/A:
format, 5% after SFT). Two remedies, both from practice:

- replay: a share of every fine-tuning batch is pretraining text with loss on every token, as in
  InstructGPT's PPO-ptx mix (Ouyang et al. 2022, eq. 2) applied to SFT;
- chat-token initialisation: the chat template's special tokens never occur in the pretraining corpus, so
  their embeddings are untrained. Giving each the mean embedding of the text it plays the part of
  (`<|user|>` ~ "Q:", `<|assistant|>` ~ "\\nA:", `<|end|>` ~ "\\n") lets the base read a chat prompt the way
  it reads an answer sheet before any fine-tuning (the usual "initialise new tokens from related ones").
"""

from __future__ import annotations

import torch

from alignlab.data.tokenize import TokenizedExample
from alignlab.errors import UsageError

# Which corpus text each alignlab chat token stands in for: the world's answer sheets read "Q: ...\nA: ...".
CHAT_TOKEN_TEXT = {"<|user|>": "Q:", "<|assistant|>": "\nA:", "<|end|>": "\n"}
MARK = "alignlab_chat_tokens_initialised"  # set in the model config, so a fine-tuned model is left alone


def replay_count(n_examples: int, fraction: float) -> int:
    """Replay documents that make up `fraction` of the examples when added to `n_examples` others."""
    if not 0.0 <= fraction < 1.0:
        raise UsageError(f"--replay_fraction: must be in [0, 1), got {fraction}")
    return round(n_examples * fraction / (1.0 - fraction))


def replay_examples(docs: list[str], n: int, tokenizer, max_length: int, seed: int) -> list[TokenizedExample]:
    """n documents drawn (seeded, without replacement while they last) from `docs`, bos + text + eos,
    truncated to max_length, every token labelled."""
    if n == 0:
        return []
    if not docs:
        raise UsageError("--replay_corpus: holds no documents")
    g = torch.Generator().manual_seed(seed)
    order = torch.cat([torch.randperm(len(docs), generator=g) for _ in range(-(-n // max(len(docs), 1)))])[:n]
    out = []
    for i in order.tolist():
        ids = [tokenizer.bos_token_id, *tokenizer(docs[i], add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
        ids = ids[:max_length]
        out.append(TokenizedExample(ids, list(ids), record=0))
    return out


def chat_token_ids(tokenizer) -> list[int]:
    """Ids of alignlab's chat tokens in `tokenizer` ([] for a tokenizer with a chat template of its own)."""
    vocab = tokenizer.get_vocab()
    return [vocab[token] for token in CHAT_TOKEN_TEXT if token in vocab]


@torch.no_grad()
def init_chat_tokens(model, tokenizer) -> list[str]:
    """Give alignlab's chat tokens the mean input embedding of the text they stand for, once per model.

    Returns the tokens changed ([] when the model is marked as done or the tokenizer lacks them). With tied
    embeddings the output row changes too, so `<|end|>` starts as likely as a line break: the right prior
    for the end of an answer.
    """
    if getattr(model.config, MARK, False):
        return []
    vocab = tokenizer.get_vocab()
    weight = model.get_input_embeddings().weight
    changed = []
    for token, text in CHAT_TOKEN_TEXT.items():
        if token not in vocab:
            continue
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        weight[vocab[token]] = weight[ids].mean(0)
        changed.append(token)
    if changed:
        setattr(model.config, MARK, True)
    return changed
