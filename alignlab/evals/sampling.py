"""Sampling a model's answers to world prompts, shared by the instruments that read sampled text.

`--prompt_format chat` shows each prompt as a user turn of the model's chat template and the answer ends
at <|end|> (a stop token); `plain` shows the bare text and a newline, as a base model met such text in
pretraining, and the answer ends at the line break.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from alignlab.generation import SamplingConfig, generate_text
from alignlab.models import stop_token_ids

PROMPT_FORMATS = ("chat", "plain")


def render_prompt(tokenizer, text: str, prompt_format: str) -> str:
    if prompt_format == "chat":
        return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
    return text + "\n"


def sample_answers(model, tokenizer, prompts: Sequence[str], prompt_format: str, *, max_new_tokens: int,
                   temperature: float, seed: int, batch_size: int, top_p: float = 1.0,
                   do_sample: bool = True) -> list[str]:
    """One sampled answer per entry of `prompts` (repeat a prompt for several), in order; `do_sample=False`:
    the greedy answer (temperature and top_p unused)."""
    rendered = [render_prompt(tokenizer, p, prompt_format) for p in prompts]
    sampling = SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, do_sample=do_sample,
                              stop_token_ids=stop_token_ids(tokenizer), seed=seed)
    stops = ("\n",) if prompt_format == "plain" else ()
    with torch.inference_mode():
        return generate_text(model, tokenizer, rendered, sampling, batch_size, stops,
                             add_special_tokens=prompt_format == "plain")
