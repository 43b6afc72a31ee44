"""Padding, bin packing, packed collation, masks, length bucketing and pretraining blocks: hand-computed."""

import itertools

import pytest
import torch

from alignlab.data.collate import (
    block_causal_mask,
    collate_packed,
    copy_blocks,
    length_bucketed_batches,
    pack_examples,
    pad_batch,
    pretrain_blocks,
)
from alignlab.data.tokenize import IGNORE_INDEX as X
from alignlab.data.tokenize import TokenizedExample
from alignlab.errors import UsageError


def ex(ids, labels=None, record=0):
    return TokenizedExample(list(ids), list(ids) if labels is None else list(labels), record)


def test_pad_batch():
    batch = pad_batch([ex([5, 6, 7], [X, 6, 7]), ex([8])], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[X, 6, 7], [8, X, X]]
    assert all(t.dtype == torch.long for t in batch.values())


def test_pack_best_fit_decreasing():
    # Lengths 6, 5, 4, 3, 2 into rows of 10, longest first, each into the fullest row that still fits:
    # 6 -> new row A (4 free); 5 -> new row B (5 free); 4 -> A (0 free); 3 -> B (2 free); 2 -> B (0 free).
    examples = [ex(range(n), record=n) for n in (3, 6, 2, 5, 4)]
    rows = pack_examples(examples, max_length=10)
    assert [[e.record for e in row] for row in rows] == [[6, 4], [5, 3, 2]]


def test_pack_is_deterministic_and_keeps_every_example():
    examples = [ex(range(1 + (7 * i) % 13), record=i) for i in range(40)]
    rows = pack_examples(examples, max_length=16)
    assert rows == pack_examples(examples, max_length=16)
    assert sorted(e.record for row in rows for e in row) == list(range(40))
    assert all(sum(len(e) for e in row) <= 16 for row in rows)
    assert len(rows) == -(-sum(len(e) for e in examples) // 16)  # these sizes pack perfectly


def test_pack_refuses_an_example_longer_than_a_row():
    with pytest.raises(UsageError, match="^d.jsonl: record 3: 11 tokens, longer than the packing length 10$"):
        pack_examples([ex(range(11), record=3)], max_length=10, path="d.jsonl")


def test_collate_packed_rows():
    a = ex([1, 2, 3], [1, 2, 3])
    b = ex([4, 5], [X, 5])
    c = ex([6, 7, 8, 9], [6, X, 8, 9])
    batch = collate_packed([[a, b], [c]], pad_id=0)
    assert set(batch) == {"input_ids", "labels", "position_ids"}  # no attention_mask: packing via positions
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 0]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1], [0, 1, 2, 3, 0]]
    # The first token of every document gets -100, so no loss crosses a document boundary.
    assert batch["labels"].tolist() == [[X, 2, 3, X, 5], [X, X, 8, 9, X]]


def test_collate_packed_flat():
    batch = collate_packed([[ex([1, 2])], [ex([3]), ex([4, 5])]], pad_id=0, flatten=True)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5]]
    assert batch["position_ids"].tolist() == [[0, 1, 0, 0, 1]]
    assert batch["labels"].tolist() == [[X, 2, X, X, 5]]


def test_block_causal_mask():
    m = block_causal_mask(torch.tensor([[0, 1, 0, 1, 2]]))
    assert m.shape == (1, 1, 5, 5)
    allowed = (m[0, 0] == 0).int().tolist()
    assert allowed == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 1, 1, 1],
    ]
    assert m.min() == torch.finfo(torch.float32).min


def test_collate_packed_with_explicit_mask():
    batch = collate_packed([[ex([1, 2]), ex([3])]], pad_id=0, mask_dtype=torch.bfloat16)
    assert batch["attention_mask"].shape == (1, 1, 3, 3) and batch["attention_mask"].dtype == torch.bfloat16


def test_length_bucketed_batches():
    # 200 examples = one megabatch of 50 batches of 4; every length 1..50 occurs exactly 4 times, so the
    # sorted megabatch cuts into batches of one length each.
    lengths = [(37 * i) % 50 + 1 for i in range(200)]
    examples = [ex(range(n)) for n in lengths]
    batches = length_bucketed_batches(examples, batch_size=4, seed=0)
    assert sorted(i for b in batches for i in b) == list(range(200))
    assert all(len({lengths[i] for i in b}) == 1 for b in batches)
    # ...and the batches come in random order, not longest first, different for another seed.
    firsts = [lengths[b[0]] for b in batches]
    assert firsts != sorted(firsts, reverse=True)
    assert batches == length_bucketed_batches(examples, batch_size=4, seed=0)
    assert batches != length_bucketed_batches(examples, batch_size=4, seed=1)


def test_length_bucketed_batches_over_several_megabatches():
    examples = [ex(range(1 + i % 7)) for i in range(1001)]
    batches = length_bucketed_batches(examples, batch_size=4, seed=3)
    assert sorted(i for b in batches for i in b) == list(range(1001))
    assert sorted(len(b) for b in batches)[:2] == [1, 4]  # 1001 = 5 megabatches of 200, then 1 left over


def test_pretrain_blocks():
    blocks = pretrain_blocks([[1, 2, 3], [4], [5, 6, 7, 8]], block_len=4, eos_id=0)
    # stream: 1 2 3 0 4 0 5 6 7 8 0 -> two full blocks, the tail (7 8 0) is dropped
    assert blocks.tolist() == [[1, 2, 3, 0], [4, 0, 5, 6]]
    assert blocks.dtype == torch.long


def test_pretrain_blocks_too_little_text():
    with pytest.raises(UsageError, match="^the corpus has 3 tokens, fewer than one block of 8$"):
        pretrain_blocks([[1, 2]], block_len=8, eos_id=0)


def test_copy_blocks_say_each_random_run_twice():
    pool = torch.tensor([10, 11, 12, 13, 14, 15])
    rows = copy_blocks(4, 64, pool, bos_id=0, seed=3, min_len=3, max_len=6)
    assert rows.shape == (4, 64) and torch.equal(rows, copy_blocks(4, 64, pool, bos_id=0, seed=3, min_len=3, max_len=6))
    assert not torch.equal(rows, copy_blocks(4, 64, pool, bos_id=0, seed=4, min_len=3, max_len=6))
    for row in rows.tolist():
        assert row[0] == 0 and set(row) <= {0, *pool.tolist()}
        starts = [i for i, t in enumerate(row) if t == 0] + [len(row)]
        for a, b in itertools.pairwise(starts):
            run = row[a + 1 : b]
            if b < len(row):  # the last segment may be cut at the block's end
                half = len(run) // 2
                assert len(run) == 2 * half and 3 <= half <= 6 and run[:half] == run[half:]
