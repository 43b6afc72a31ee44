"""LoRA through peft: the options every stage shares, wrapping, and what to save at the end."""

from __future__ import annotations

from dataclasses import dataclass

from alignlab.config import option
from alignlab.errors import UsageError

EMBEDDING = "embed_tokens"
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class LoraOptions:
    use_peft: bool = option(False, "train a LoRA adapter instead of every weight")
    lora_r: int = option(16, "LoRA rank")
    lora_alpha: int = option(32, "LoRA scaling numerator (scale = alpha / r)")
    lora_dropout: float = option(0.0, "dropout on the LoRA input")
    lora_target_modules: list[str] = option(ALL_LINEAR, "module names that get adapters")
    merge_adapter: bool = option(False, "save the merged model instead of the adapter")


def apply_lora(model, cfg: LoraOptions, trainable_tokens: list[int] | None = None):
    """Wrap `model` in a LoRA adapter. `trainable_tokens`: embedding rows trained alongside it and saved in
    the adapter (peft's trainable tokens; tied output rows follow), e.g. special tokens the base never saw."""
    from peft import LoraConfig, get_peft_model

    if EMBEDDING in cfg.lora_target_modules:
        if model.config.tie_word_embeddings:
            # trained on the input side only, but merged into the tied output rows too: garbage after merging
            raise UsageError(f"--lora_target_modules: {EMBEDDING} cannot take a LoRA adapter in this model, whose "
                             "input and output embeddings are tied; leave it out")
        if trainable_tokens:
            raise UsageError(f"--lora_target_modules: {EMBEDDING} gets a LoRA adapter of its own, which adapts "
                             "the chat-token rows too; add --lora_train_chat_tokens false")
    config = LoraConfig(task_type="CAUSAL_LM", r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                        lora_dropout=cfg.lora_dropout, target_modules=list(cfg.lora_target_modules),
                        trainable_token_indices=list(trainable_tokens) if trainable_tokens else None)
    return get_peft_model(model, config)


def finalise_lora(model, cfg: LoraOptions):
    """The object to save: the merged base model, or the peft model (which saves only its adapter)."""
    return model.merge_and_unload() if cfg.merge_adapter else model
