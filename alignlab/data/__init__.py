"""Datasets in TRL's formats: loading (load.py), format detection and validation (formats.py), chat-template
token spans (chat.py), tokenisation with loss labels (tokenize.py), padding, packing and blocks (collate.py).

Typical use:
    records, kind = load_dataset("sft.jsonl", allowed=SFT_KINDS, purpose="sft")
    examples = tokenize_sft(records, tokenizer, max_length=512, path="sft.jsonl", kind=kind)
    batch = collate_packed(pack_examples(examples, 512), tokenizer.pad_token_id)
    loss = model(**batch, use_cache=False).loss
"""

from alignlab.data.collate import (
    block_causal_mask,
    collate_packed,
    length_bucketed_batches,
    pack_examples,
    pad_batch,
    pretrain_blocks,
)
from alignlab.data.formats import (
    KINDS,
    PREFERENCE_KINDS,
    PROMPT_KINDS,
    SFT_KINDS,
    UNPAIRED_KINDS,
    completion_text,
    detect_format,
    is_conversational,
    load_dataset,
    split_preference,
    validate_records,
)
from alignlab.data.load import load_records
from alignlab.data.tokenize import (
    IGNORE_INDEX,
    PreferenceExample,
    TokenizedExample,
    UnpairedExample,
    tokenize_preference,
    tokenize_prompts,
    tokenize_sft,
    tokenize_unpaired,
)

__all__ = [
    "IGNORE_INDEX",
    "KINDS",
    "PREFERENCE_KINDS",
    "PROMPT_KINDS",
    "SFT_KINDS",
    "UNPAIRED_KINDS",
    "PreferenceExample",
    "TokenizedExample",
    "UnpairedExample",
    "block_causal_mask",
    "collate_packed",
    "completion_text",
    "detect_format",
    "is_conversational",
    "length_bucketed_batches",
    "load_dataset",
    "load_records",
    "pack_examples",
    "pad_batch",
    "pretrain_blocks",
    "split_preference",
    "tokenize_preference",
    "tokenize_prompts",
    "tokenize_sft",
    "tokenize_unpaired",
    "validate_records",
]
