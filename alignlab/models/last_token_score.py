"""A Llama sequence classifier's scores with the last decoder layer run only where the head reads.

`LlamaForSequenceClassification` runs every layer on every position, then keeps the score of each row's
last non-pad token. Below the top layer every position is needed (its keys and values feed later
queries), but the top layer's output is read at one position per row: there only the keys and values
need every position, while the query, the attention, the output projection, the MLP, the final norm and
the head need one. On the 4-layer bench model that is about a fifth of a reward model's matmul work.

`last_token_scores(rm, input_ids)` computes the same function as `rm(input_ids=input_ids).logits` from the
same modules — calling them, so peft's LoRA layers and alignlab's fused ops still apply. Rows are right-
padded (no attention mask: causal attention never looks right); the read position is HF's rule, the
rightmost token that is not the pad id. The layers below the top run inside the model's own forward: a
pre-hook on the top layer captures its inputs and stops the forward there. Anything else — another
architecture, attention dropout in training, activation checkpointing — takes the model's own forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["last_token_scores"]


class _TopLayerInputs(Exception):
    """Raised by the pre-hook to stop the forward once the top layer's inputs are known."""

    def __init__(self, hidden: Tensor, position_embeddings: tuple[Tensor, Tensor]):
        self.hidden, self.position_embeddings = hidden, position_embeddings


def _classifier(rm: nn.Module) -> nn.Module:
    """The transformers model under peft's wrappers (PeftModel → LoraModel → the classifier)."""
    return rm.get_base_model() if hasattr(rm, "get_base_model") else rm


def _supported(clf: nn.Module) -> bool:
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaForSequenceClassification

    if type(clf) is not LlamaForSequenceClassification or clf.config.pad_token_id is None:
        return False
    top = clf.model.layers[-1]
    dropout = clf.training and clf.config.attention_dropout > 0
    return (type(top) is LlamaDecoderLayer and not dropout and not getattr(top, "gradient_checkpointing", False)
            and not getattr(clf.model, "gradient_checkpointing", False))


def read_positions(input_ids: Tensor, pad_token_id: int) -> Tensor:
    """(R,) index of each row's rightmost non-pad token (HF's rule; 0 for an all-pad row)."""
    positions = torch.arange(input_ids.shape[-1], device=input_ids.device)
    return (positions * (input_ids != pad_token_id)).argmax(-1)


def _rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    from transformers.models.llama.modeling_llama import rotate_half

    return x * cos + rotate_half(x) * sin


def last_token_scores(rm: nn.Module, input_ids: Tensor) -> Tensor:
    """(R, num_labels) scores of right-padded rows (R, L), as `rm(input_ids=...).logits` gives them."""
    clf = _classifier(rm)
    if not _supported(clf):
        return rm(input_ids=input_ids, use_cache=False).logits
    top = clf.model.layers[-1]

    def capture(module, args, kwargs):
        raise _TopLayerInputs(args[0] if args else kwargs["hidden_states"], kwargs["position_embeddings"])

    handle = top.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        clf.model(input_ids=input_ids, use_cache=False)
        raise RuntimeError("the top decoder layer was never called")  # pragma: no cover
    except _TopLayerInputs as captured:
        hidden, (cos, sin) = captured.hidden, captured.position_embeddings
    finally:
        handle.remove()

    rows = torch.arange(input_ids.shape[0], device=input_ids.device)
    at = read_positions(input_ids, clf.config.pad_token_id)
    attn = top.self_attn
    n_rows, length, _ = hidden.shape
    d = attn.head_dim
    x = top.input_layernorm(hidden)
    k = attn.k_proj(x).view(n_rows, length, -1, d).transpose(1, 2)  # (R, kv heads, L, d)
    v = attn.v_proj(x).view(n_rows, length, -1, d).transpose(1, 2)
    q = attn.q_proj(x[rows, at]).view(n_rows, -1, 1, d)  # (R, heads, 1, d)
    cos, sin = cos.expand(n_rows, -1, -1), sin.expand(n_rows, -1, -1)
    k = _rope(k, cos[:, None], sin[:, None])
    q = _rope(q, cos[rows, at][:, None, None], sin[rows, at][:, None, None])
    groups = q.shape[1] // k.shape[1]
    if groups > 1:
        k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    visible = (torch.arange(length, device=at.device) <= at[:, None])[:, None, None]  # (R, 1, 1, L)
    out = F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype), attn_mask=visible, scale=attn.scaling)
    h = hidden[rows, at] + attn.o_proj(out.reshape(n_rows, -1))
    h = h + top.mlp(top.post_attention_layernorm(h))
    return clf.score(clf.model.norm(h))
