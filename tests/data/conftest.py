"""Fixtures for the data-layer tests: one small tokenizer per session and a jsonl writer."""

import json

import pytest

from alignlab.models.tokenizer import train_tokenizer

WORDS = "the sky is blue green red cat dog sat on mat what color hello hi yes no rainbow waterfall".split()


@pytest.fixture(scope="session")
def tok():
    """Byte-level BPE with alignlab's specials and chat template, vocab 300; trains in well under a second."""
    texts = [
        f"{WORDS[i % len(WORDS)]} {WORDS[(3 * i) % len(WORDS)]} {i}. What color is the sky?"
        for i in range(300)
    ]
    return train_tokenizer(texts, vocab_size=300)


@pytest.fixture
def write_jsonl(tmp_path):
    """write_jsonl(records, name) -> path of a .jsonl file with one record a line."""

    def write(records, name="data.jsonl"):
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        return path

    return write
