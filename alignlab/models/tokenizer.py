"""Byte-level BPE tokenizers trained on a corpus, with special tokens and a chat template.

The result is a `PreTrainedTokenizerFast` saved so that `AutoTokenizer.from_pretrained(dir)` and
`apply_chat_template` work with no alignlab code on the loading side.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

EOS = "<|endoftext|>"
END = "<|end|>"  # closes every chat turn; generation of an assistant turn stops here
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = (EOS, *ROLE_TOKENS, END)

# Each turn is `<|role|> content<|end|>`, with nothing between turns. The space before the content makes a turn's
# first word the same token the corpus has after "Q: " / "A: " (byte-level BPE spells "What" at the start of a
# text as W-h-at but " What" as one token): without it SFT had to learn new spellings of every question and
# answer, and held-out answers, never seen in that spelling, were not recalled. The assistant's space, content
# and <|end|> sit inside {% generation %} so `return_assistant_tokens_mask=True` marks exactly the tokens SFT
# trains on, and the model generates the space-prefixed first token itself.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ['system', 'user', 'assistant'] -%}"
    "{{ raise_exception('role must be system, user or assistant, got ' + message['role']) }}"
    "{%- endif -%}"
    "<|{{ message['role'] }}|>"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %} {{ message['content'] }}<|end|>{% endgeneration %}"
    "{%- else -%}"
    "{{ ' ' + message['content'] }}<|end|>"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `texts`; special tokens take the first ids (0 = <|endoftext|>)."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    return wrap_tokenizer(core)


def wrap_tokenizer(core: Tokenizer) -> PreTrainedTokenizerFast:
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=EOS,
        eos_token=EOS,
        pad_token=EOS,
        unk_token=None,
        additional_special_tokens=[*ROLE_TOKENS, END],
        model_max_length=1_000_000,
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def ordinary_token_ids(tokenizer) -> torch.Tensor:
    """Every id of the vocabulary that is not a special token, ascending (random-token probes draw from it)."""
    special = set(tokenizer.all_special_ids)
    return torch.tensor([i for i in range(len(tokenizer)) if i not in special])


def stop_token_ids(tokenizer) -> list[int]:
    """Token ids that end generation: <|end|> for chat turns (when the tokenizer has it) and eos."""
    ids = [tokenizer.eos_token_id]
    end_id = tokenizer.convert_tokens_to_ids(END)
    if isinstance(end_id, int) and end_id != tokenizer.unk_token_id and end_id not in ids:
        ids.insert(0, end_id)
    return [i for i in ids if i is not None]
