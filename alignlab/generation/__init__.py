"""Batched KV-cache sampling and exact continuation scoring for HF causal LMs.

`sample` (token ids in, tokens + log-probs out), `generate_text` (strings in and out),
`score_continuations` / `score_continuations_per_token` (exact fp32 log-probs of given continuations),
and the pure token-choice functions in `filters`.
"""

from alignlab.generation.filters import inverse_cdf_sample, pick_next_token, top_k_filter, top_p_filter
from alignlab.generation.sampler import SampleOutput, SamplingConfig, left_pad, sample
from alignlab.generation.scoring import score_continuations, score_continuations_per_token
from alignlab.generation.text import generate_text

__all__ = [
    "SamplingConfig",
    "SampleOutput",
    "sample",
    "left_pad",
    "generate_text",
    "score_continuations",
    "score_continuations_per_token",
    "inverse_cdf_sample",
    "pick_next_token",
    "top_k_filter",
    "top_p_filter",
]
