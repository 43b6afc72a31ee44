"""Models: tiny Llama presets, local loading, tokenizers, saving in HF format."""

from alignlab.models.build import (
    PRESETS,
    build_model,
    check_local_model_dir,
    count_parameters,
    load_causal_lm,
    load_tokenizer,
)
from alignlab.models.save import save_model
from alignlab.models.tokenizer import ordinary_token_ids, stop_token_ids, train_tokenizer

__all__ = [
    "PRESETS", "build_model", "check_local_model_dir", "count_parameters", "load_causal_lm",
    "load_tokenizer", "ordinary_token_ids", "save_model", "stop_token_ids", "train_tokenizer",
]
