"""Batches from tokenized examples: right padding, packing without cross-document attention, length
bucketing, and fixed-length pretraining blocks.

Packing. Several documents share one row; `position_ids` restart at 0 at each document and no
`attention_mask` is passed. transformers 5 then detects the packed layout from the position ids
(`masking_utils.find_packed_sequence_indices`: a new document starts wherever a position is not the previous
one plus 1) and `create_causal_mask` builds a block-diagonal causal mask, for sdpa, eager and flex attention
alike. Two conditions, both checked in `tests/data/test_packing.py`:
- call the model with `use_cache=False`. Llama's config has `use_cache=True`; the model then makes a
  `DynamicCache`, and with a cache present `_preprocess_mask_arguments` skips packed-sequence detection,
  so documents silently attend to each other. Where you cannot control that, pass the explicit 4D mask
  from `block_causal_mask` (`collate_packed(..., mask_dtype=...)`) instead.
- the label of each document's first token is -100. HF causal-LM losses shift labels left by one, so the
  last position of document k would otherwise be trained to predict the first token of document k+1.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable, Sequence

import torch

from alignlab.data.tokenize import IGNORE_INDEX, TokenizedExample
from alignlab.errors import UsageError

MEGABATCH = 50  # batches per sorted chunk in length bucketing, as HF's LengthGroupedSampler


def pad_batch(examples: Sequence[TokenizedExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example: input_ids, attention_mask, labels, each (B, L) int64."""
    width = max(len(ex) for ex in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for b, ex in enumerate(examples):
        n = len(ex)
        input_ids[b, :n] = torch.tensor(ex.input_ids)
        labels[b, :n] = torch.tensor(ex.labels)
        attention_mask[b, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def pack_examples(
    examples: Sequence[TokenizedExample], max_length: int, path: str = "<records>"
) -> list[list[TokenizedExample]]:
    """Best-fit-decreasing bin packing of examples into rows of at most `max_length` tokens.

    Longest first, each example goes to the row with the least free space that still fits it (a new row
    if none does); asymptotically at most 11/9 of the optimal number of rows (Johnson et al. 1974).
    Deterministic: ties keep input order.
    """
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]))
    rows: list[list[TokenizedExample]] = []
    free: list[tuple[int, int]] = []  # (free space, row index), sorted
    for i in order:
        ex, n = examples[i], len(examples[i])
        if n > max_length:
            raise UsageError(
                f"{path}: record {ex.record}: {n} tokens, longer than the packing length {max_length}"
            )
        if n == 0:
            raise ValueError(f"{path}: record {ex.record}: an empty example cannot be packed")
        k = bisect.bisect_left(free, (n, -1))  # first row with free space >= n
        if k == len(free):
            rows.append([ex])
            bisect.insort(free, (max_length - n, len(rows) - 1))
        else:
            space, r = free.pop(k)
            rows[r].append(ex)
            bisect.insort(free, (space - n, r))
    return rows


def collate_packed(
    rows: Sequence[Sequence[TokenizedExample]],
    pad_id: int,
    flatten: bool = False,
    mask_dtype: torch.dtype | None = None,
) -> dict[str, torch.Tensor]:
    """input_ids, labels, position_ids for packed rows: (B, L), or (1, total) with `flatten`.

    Rows shorter than L are filled with one padding segment (pad_id, positions from 0, labels -100): a
    segment of its own, so no real token attends to it. No attention_mask unless `mask_dtype` is given,
    then a (B, 1, L, L) additive block-diagonal causal mask of that dtype (see `block_causal_mask`).
    """
    if flatten:
        rows = [[ex for row in rows for ex in row]]
    width = max(sum(len(ex) for ex in row) for row in rows)
    ids, labels, positions = [], [], []
    for row in rows:
        r_ids, r_labels, r_pos = [], [], []
        for ex in row:
            r_ids += ex.input_ids
            r_labels += [IGNORE_INDEX] + list(ex.labels[1:])  # no loss across the boundary
            r_pos += range(len(ex))
        pad = width - len(r_ids)
        ids.append(r_ids + [pad_id] * pad)
        labels.append(r_labels + [IGNORE_INDEX] * pad)
        positions.append(r_pos + list(range(pad)))
    batch = {
        "input_ids": torch.tensor(ids, dtype=torch.long),
        "labels": torch.tensor(labels, dtype=torch.long),
        "position_ids": torch.tensor(positions, dtype=torch.long),
    }
    if mask_dtype is not None:
        batch["attention_mask"] = block_causal_mask(batch["position_ids"], mask_dtype)
    return batch


def block_causal_mask(position_ids: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Additive mask (B, 1, L, L): 0 where query i may attend key j (same document, j <= i), else the
    dtype's minimum. Documents are found from position_ids exactly as transformers does."""
    first = position_ids[:, :1] - 1
    segment = (torch.diff(position_ids, prepend=first, dim=-1) != 1).cumsum(-1)  # (B, L)
    same_doc = segment[:, :, None] == segment[:, None, :]  # (B, L, L)
    length = position_ids.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=position_ids.device).tril()
    mask = torch.zeros(same_doc.shape, dtype=dtype, device=position_ids.device)
    mask.masked_fill_(~(same_doc & causal), torch.finfo(dtype).min)
    return mask[:, None]


def length_bucketed_batches(examples: Sequence, batch_size: int, seed: int) -> list[list[int]]:
    """Batches of indices into `examples` with similar lengths, in random order (for the padded path).

    As HF's LengthGroupedSampler: shuffle, cut into megabatches of MEGABATCH batches, sort each megabatch
    by length (longest first), cut into batches, shuffle the batches. Padding waste drops while every
    epoch (another seed) still sees different neighbours. The last batch of a megabatch may be smaller.
    """
    rng = random.Random(seed)
    order = list(range(len(examples)))
    rng.shuffle(order)
    span = batch_size * MEGABATCH
    batches = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: -len(examples[i]))
        batches += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def pretrain_blocks(token_stream_docs: Iterable[Sequence[int]], block_len: int, eos_id: int) -> torch.Tensor:
    """Concatenate documents, each followed by eos, and cut into blocks of exactly block_len: (N, block_len).

    The tail shorter than a block is dropped (no padding), as in GPT-2 style pretraining; attention crosses
    document boundaries inside a block, and the eos tells the model a new document begins.
    """
    stream: list[int] = []
    for doc in token_stream_docs:
        stream.extend(doc)
        stream.append(eos_id)
    n_blocks = len(stream) // block_len
    if n_blocks == 0:
        raise UsageError(f"the corpus has {len(stream)} tokens, fewer than one block of {block_len}")
    return torch.tensor(stream[: n_blocks * block_len], dtype=torch.long).view(n_blocks, block_len)


def copy_blocks(n: int, block_len: int, token_ids: torch.Tensor, bos_id: int, seed: int,
                min_len: int = 8, max_len: int = 40) -> torch.Tensor:
    """Synthetic copy data, (n, block_len): each row is segments `bos, s, s` with s a uniform random run of
    min_len..max_len ids drawn from `token_ids`, cut at block_len. A pure function of `seed`, so a resumed
    run sees the same blocks.

    Predicting the second s needs an induction head (find the earlier occurrence of the current token,
    copy the token after it); a small model trained on natural text alone may never form one.
    """
    g = torch.Generator().manual_seed(seed)
    rows = torch.empty(n, block_len, dtype=torch.long)
    for i in range(n):
        row: list[int] = []
        while len(row) < block_len:
            length = int(torch.randint(min_len, max_len + 1, (1,), generator=g))
            s = token_ids[torch.randint(len(token_ids), (length,), generator=g)].tolist()
            row += [bos_id, *s, *s]
        rows[i] = torch.tensor(row[:block_len])
    return rows
