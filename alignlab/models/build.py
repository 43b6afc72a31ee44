"""Tiny Llama-architecture models from presets, and loading any local HF causal-LM directory.

Nothing here downloads: `load_causal_lm` accepts only a local directory and says so otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from alignlab.errors import UsageError


@dataclass(frozen=True)
class Preset:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int

    def non_embedding_params(self) -> int:
        h = self.hidden_size
        per_layer = 4 * h * h + 3 * h * self.intermediate_size + 2 * h  # attention, SwiGLU MLP, two norms
        return self.num_hidden_layers * per_layer + h  # + the final norm


# Head dim 64 everywhere; widths chosen so bf16 matmuls are large enough for the CPU's AMX tiles.
PRESETS = {
    "nano": Preset(hidden_size=128, num_hidden_layers=5, num_attention_heads=2, intermediate_size=352),  # ≈ 1.0M
    "tiny": Preset(hidden_size=320, num_hidden_layers=4, num_attention_heads=5, intermediate_size=864),  # ≈ 5.0M
    "small": Preset(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, intermediate_size=1376),  # ≈ 25M
}


def preset_config(preset: str, vocab_size: int, max_position_embeddings: int, tokenizer=None) -> LlamaConfig:
    if preset not in PRESETS:
        raise UsageError(f"--preset: must be one of {', '.join(PRESETS)}; got {preset!r}")
    p = PRESETS[preset]
    special = {}
    if tokenizer is not None:
        special = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                   "pad_token_id": tokenizer.pad_token_id}
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=p.hidden_size,
        num_hidden_layers=p.num_hidden_layers,
        num_attention_heads=p.num_attention_heads,
        num_key_value_heads=p.num_attention_heads,
        intermediate_size=p.intermediate_size,
        max_position_embeddings=max_position_embeddings,
        rope_theta=10000.0,
        tie_word_embeddings=True,  # at vocab 2k the head would be a large share of a 1M model
        attn_implementation="sdpa",
        **special,
    )


def build_model(preset: str, vocab_size: int, max_position_embeddings: int, seed: int, tokenizer=None) -> LlamaForCausalLM:
    """A freshly initialised model; the same seed gives the same weights."""
    config = preset_config(preset, vocab_size, max_position_embeddings, tokenizer)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model


def check_local_model_dir(path: str, what: str = "--model_name_or_path") -> Path:
    p = Path(path)
    if not p.exists():
        hint = " (alignlab loads models from local directories only and never downloads from a hub)" \
            if "/" in path and not path.startswith((".", "/")) else ""
        raise UsageError(f"{what}: no such directory {path}{hint}")
    if not (p / "config.json").is_file() and not (p / "adapter_config.json").is_file():
        raise UsageError(f"{what}: {path} is not a model directory (no config.json or adapter_config.json)")
    return p


def load_causal_lm(path: str, dtype: torch.dtype = torch.float32, what: str = "--model_name_or_path"):
    """Load a local HF causal LM (or a peft adapter directory, merged for inference)."""
    p = check_local_model_dir(path, what)
    if (p / "adapter_config.json").is_file() and not (p / "config.json").is_file():
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(str(p), dtype=dtype, local_files_only=True)
        return model.merge_and_unload()
    return AutoModelForCausalLM.from_pretrained(str(p), dtype=dtype, local_files_only=True)


def load_tokenizer(path: str, what: str = "--model_name_or_path"):
    p = check_local_model_dir(path, what)
    try:
        tok = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    except (OSError, ValueError) as e:
        raise UsageError(f"{what}: {path} has no usable tokenizer ({str(e).splitlines()[0]})") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token  # left padding for sampling needs some pad id; eos is the HF convention
    return tok


def count_parameters(model) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    embed = model.get_input_embeddings().weight.numel()
    return {"total": total, "non_embedding": total - embed}
