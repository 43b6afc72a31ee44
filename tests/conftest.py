import os

# Nothing in the suite may reach a model hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TRANSFORMERS_NO_ADVISORY_WARNINGS"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A small byte-level BPE with the alignlab chat template, trained in well under a second."""
    from alignlab.models.tokenizer import train_tokenizer

    texts = [f"Quiz. {i}. What is the capital of Zorbia? The waterfall had a rainbow. She likes the beach."
             for i in range(200)]
    return train_tokenizer(texts, vocab_size=320)
