import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

TINY = dict(vocab_size=256, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)


def tiny_llama(seed: int = 0, **overrides) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(**{**TINY, **overrides})).eval()


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny-model decoding is all small ops; on the shared 2-vCPU box a second OpenMP thread mostly waits
    for a descheduled sibling (measured 2-5x slower under load), so these tests run single-threaded."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model() -> LlamaForCausalLM:
    return tiny_llama()


@pytest.fixture(scope="module")
def ragged_prompts() -> list[list[int]]:
    """Four prompts of different lengths (left padding needed), ids avoid 0 (the pad id in tests)."""
    g = torch.Generator().manual_seed(7)
    return [torch.randint(1, 256, (n,), generator=g).tolist() for n in (9, 3, 6, 1)]
