"""Next-token loss computed only where labels are set.

A causal LM's `forward(labels=...)` projects every position through the LM head; for SFT only the
completion tokens carry loss, so projecting just those positions saves most of the head's work
(`../shared/NOTES-performance.md`: about a third of the head at prompt ≈ completion lengths).
Works for any HF causal LM exposing `get_decoder()` and `get_output_embeddings()`, peft-wrapped or not.
"""

from __future__ import annotations

import torch

from alignlab.data import IGNORE_INDEX
from alignlab.objectives.lm import label_logps


def unwrap_causal_lm(model):
    """The underlying `...ForCausalLM` of a peft model (LoRA layers are injected in place, so it uses them)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def hidden_states(model, input_ids: torch.Tensor, **kwargs) -> torch.Tensor:
    """Last hidden states (B, L, H) of the decoder, without the LM head."""
    decoder = unwrap_causal_lm(model).get_decoder()
    return decoder(input_ids=input_ids, use_cache=False, **kwargs).last_hidden_state


def completion_nll(model, input_ids: torch.Tensor, labels: torch.Tensor, **kwargs) -> tuple[torch.Tensor, int]:
    """Mean next-token NLL over positions whose label is set, and how many there are.

    input_ids, labels: (B, L), labels aligned with input_ids (-100 = no loss); the shift happens here.
    """
    hidden = hidden_states(model, input_ids, **kwargs)[:, :-1]  # (B, L-1, H): position t predicts t+1
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    head = unwrap_causal_lm(model).get_output_embeddings()
    logits = head(hidden[keep])  # (N, V) only where a label is set
    return -label_logps(logits, targets[keep]).mean(), int(keep.sum())
