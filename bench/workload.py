"""The workload every TRL comparison shares: one model directory and one synthetic preference set.

Reference size (issue 11): a 5.26M-parameter Llama — vocabulary 4,096, hidden 256, 4 layers, 4 heads,
MLP 688, untied LM head — and 512 pairs whose prompts have ≈ 32 tokens and whose chosen/rejected answers
≈ 64. The text is made of pseudo-words ("kobadu sefi ...") with a byte-level BPE trained on them to the
model's vocabulary, so both sides tokenize real text with a real tokenizer. Chosen answers use one half
of the words and rejected answers the other, so a reward model and DPO have something to learn.
`--model-size mini` is a miniature of the same shape for tests.

Records are in TRL's standard (non-conversational) formats: pairs.jsonl (prompt/chosen/rejected) and
sft.jsonl (prompt/completion = the chosen answer). Completions start with a space, so TRL's joint
tokenization of prompt+completion splits where alignlab's separate one does (the scripts check it).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch

MODEL_SIZES = {
    "reference": {"vocab_size": 4096, "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
                  "intermediate_size": 688},
    "mini": {"vocab_size": 320, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 128},
}


def build_llama(size: str = "reference", seed: int = 0, tokenizer=None):
    """A freshly initialised Llama of `MODEL_SIZES[size]`; the same seed gives the same weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    special = {}
    if tokenizer is not None:
        special = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                   "pad_token_id": tokenizer.pad_token_id}
    shape = MODEL_SIZES[size]
    cfg = LlamaConfig(**shape, num_key_value_heads=shape["num_attention_heads"], max_position_embeddings=512,
                      tie_word_embeddings=False, **special)
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg)


def pseudo_words(n: int, seed: int) -> list[str]:
    """n distinct words of two or three consonant-vowel syllables, sorted."""
    rnd = random.Random(seed)
    syllables = [c + v for c in "bcdfghjklmnprstvz" for v in "aeiou"]
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rnd.choice(syllables) for _ in range(rnd.choice((2, 3)))))
    return sorted(words)


def word_tokenizer(words: list[str], vocab_size: int, seed: int):
    """alignlab's byte-level BPE (chat template and all) trained on sentences of `words`."""
    from alignlab.models import train_tokenizer

    rnd = random.Random(seed)
    corpus = [" ".join(rnd.choice(words) for _ in range(50)) for _ in range(600)]
    return train_tokenizer(corpus, vocab_size=vocab_size)


def _text(rnd: random.Random, words: list[str], cost: dict[str, int], budget: int, lead_space: bool) -> str:
    """Words drawn from `words` until about `budget` tokens (each word costs its own token count)."""
    picked, used = [], 0
    while used < budget:
        w = rnd.choice(words)
        picked.append(w)
        used += cost[w]
    return (" " if lead_space else "") + " ".join(picked)


def synthetic_pairs(tokenizer, n: int, prompt_tokens: int, completion_tokens: int, seed: int) -> list[dict]:
    """n standard preference records; lengths vary ±12% around the targets (so batches need padding)."""
    words = pseudo_words(3000, seed)
    cost = {w: len(tokenizer(" " + w, add_special_tokens=False).input_ids) for w in words}
    rnd = random.Random(seed + 1)

    def length(target: int) -> int:
        return rnd.randint(round(target * 0.88), round(target * 1.12))

    good, bad = words[::2], words[1::2]
    return [{"prompt": _text(rnd, words, cost, length(prompt_tokens), lead_space=False),
             "chosen": _text(rnd, good, cost, length(completion_tokens), lead_space=True),
             "rejected": _text(rnd, bad, cost, length(completion_tokens), lead_space=True)} for _ in range(n)]


@dataclass
class Workload:
    model_dir: Path
    pairs_path: Path
    sft_path: Path
    model_params: int
    matmul_params: int  # of the causal LM; see bench.common.matmul_params


def prepare(workdir: Path, size: str, pairs: int, prompt_tokens: int, completion_tokens: int,
            seed: int = 0) -> Workload:
    """Write model/ (weights + tokenizer), pairs.jsonl and sft.jsonl under `workdir`."""
    from alignlab.io import atomic_write_jsonl
    from alignlab.models import save_model
    from bench.common import matmul_params

    workdir.mkdir(parents=True, exist_ok=True)
    tokenizer = word_tokenizer(pseudo_words(3000, seed), MODEL_SIZES[size]["vocab_size"], seed)
    model = build_llama(size, seed, tokenizer)
    save_model(model, tokenizer, workdir / "model")
    records = synthetic_pairs(tokenizer, pairs, prompt_tokens, completion_tokens, seed)
    atomic_write_jsonl(workdir / "pairs.jsonl", records)
    atomic_write_jsonl(workdir / "sft.jsonl", [{"prompt": r["prompt"], "completion": r["chosen"]} for r in records])
    return Workload(workdir / "model", workdir / "pairs.jsonl", workdir / "sft.jsonl",
                    sum(p.numel() for p in model.parameters()), matmul_params(model))


def read_jsonl(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
