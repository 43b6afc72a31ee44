import torch

from alignlab.generation import SamplingConfig, generate_text, sample
from alignlab.generation.text import cut_at_stop_strings

from .conftest import tiny_llama


class ByteTokenizer:
    """Minimal stand-in: one token per byte, id 0 doubles as pad/eos."""

    pad_token_id = 0
    eos_token_id = 0

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": list(text.encode("latin-1"))}

    def decode(self, ids, skip_special_tokens=False):
        return bytes(ids).decode("latin-1")


def test_cut_at_stop_strings():
    assert cut_at_stop_strings("abc<|end|>def\nghi", ["\n", "<|end|>"]) == "abc"
    assert cut_at_stop_strings("abc", ["x", ""]) == "abc"


def test_generate_text_matches_sample_and_keeps_order():
    model, tok = tiny_llama(), ByteTokenizer()
    prompts = ["a much longer prompt here", "hi", "medium one"]
    cfg = SamplingConfig(max_new_tokens=6, do_sample=False)
    texts = generate_text(model, tok, prompts, cfg, batch_size=2)
    for prompt, text in zip(prompts, texts, strict=True):
        ids = sample(model, [tok(prompt)["input_ids"]], cfg, 0).tokens[0].tolist()
        assert text == tok.decode(ids)


def test_generate_text_drops_stop_token_and_cuts_stop_strings():
    model, tok = tiny_llama(), ByteTokenizer()
    greedy = sample(model, [tok("hi")["input_ids"]], SamplingConfig(max_new_tokens=8, do_sample=False), 0)
    ids = greedy.tokens[0].tolist()
    stop_id = ids[3]
    cut = ids.index(stop_id)
    cfg = SamplingConfig(max_new_tokens=8, do_sample=False, stop_token_ids=[stop_id])
    assert generate_text(model, tok, ["hi"], cfg) == [tok.decode(ids[:cut])]
    stop_string = tok.decode(ids[1:2])
    expected = tok.decode(ids[:8])
    assert generate_text(
        model, tok, ["hi"], SamplingConfig(max_new_tokens=8, do_sample=False), stop_strings=[stop_string]
    ) == [expected[: expected.index(stop_string)]]


def test_generate_text_seeded_is_reproducible():
    model, tok = tiny_llama(), ByteTokenizer()
    cfg = SamplingConfig(max_new_tokens=8, seed=3)
    prompts = ["one", "two", "three"]
    assert generate_text(model, tok, prompts, cfg, batch_size=2) == generate_text(
        model, tok, prompts, cfg, batch_size=2
    )


def test_generate_text_with_the_project_tokenizer(tiny_tokenizer):
    model = tiny_llama(vocab_size=len(tiny_tokenizer))
    torch.manual_seed(0)
    texts = generate_text(
        model, tiny_tokenizer, ["The waterfall", "Quiz."], SamplingConfig(max_new_tokens=5, seed=1)
    )
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
