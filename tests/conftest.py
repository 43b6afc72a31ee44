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


@pytest.fixture
def one_thread():
    """One torch thread for the test: tiny models are all small ops, and a second thread mostly waits."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, tiny_tokenizer):
    """A freshly initialised `nano` model with the tiny tokenizer, saved as an HF directory (per module)."""
    from alignlab.models import build_model, save_model

    path = tmp_path_factory.mktemp("base")
    save_model(build_model("nano", len(tiny_tokenizer), 128, seed=0, tokenizer=tiny_tokenizer), tiny_tokenizer, path)
    return path
