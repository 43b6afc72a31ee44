"""Reward models: a causal-LM checkpoint with a scalar head, built, loaded and scored.

A reward model is `AutoModelForSequenceClassification` with `num_labels=1` (for Llama,
`LlamaForSequenceClassification`): the causal LM's decoder plus a linear `score` head (H -> 1, no bias),
read at one position per row. Which position is the model's own rule (transformers'
`GenericForSequenceClassification.forward`): the rightmost token that is not `config.pad_token_id`. With
right padding that is a row's last real token. alignlab's tokenizers pad with `<|endoftext|>`, which is
also eos, so a *trailing* eos (standard-format completions end with one, as in TRL's RewardTrainer) counts
as padding and the reward is read at the token before it. Everything here calls the model's own forward,
so the position is the same for alignlab, TRL and any HF user of the saved directory.

Left out: multi-objective heads (num_labels > 1) and value heads for PPO (that is `train/online`'s business).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch
from torch import Tensor
from transformers import AutoConfig, AutoModelForSequenceClassification
from transformers.utils import logging as hf_logging

from alignlab.data import PreferenceExample
from alignlab.data.chat import prompt_completion_ids
from alignlab.errors import UsageError
from alignlab.models.build import check_local_model_dir, load_causal_lm
from alignlab.models.last_token_score import last_token_scores


@contextlib.contextmanager
def _quiet_load():
    """Building from a causal LM leaves `score.weight` missing and `lm_head` unused by design; hide HF's report."""
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _is_adapter_dir(p: Path) -> bool:
    return (p / "adapter_config.json").is_file() and not (p / "config.json").is_file()


def build_reward_model(path: str, pad_token_id: int, dtype: torch.dtype = torch.float32,
                       what: str = "--model_name_or_path"):
    """A new reward model from a causal-LM directory: its decoder weights and a fresh `score` head.

    The head is initialised by transformers (normal, std `initializer_range`) from torch's global RNG, so
    seed first for a reproducible start. A peft adapter directory is merged into its base first.
    """
    p = check_local_model_dir(path, what)
    with _quiet_load():
        if not _is_adapter_dir(p):
            return AutoModelForSequenceClassification.from_pretrained(
                str(p), num_labels=1, pad_token_id=pad_token_id, dtype=dtype, local_files_only=True)
        causal = load_causal_lm(path, dtype, what)
        config = causal.config
        config.num_labels, config.pad_token_id = 1, pad_token_id
        rm = AutoModelForSequenceClassification.from_config(config).to(dtype)
        getattr(rm, rm.base_model_prefix).load_state_dict(getattr(causal, causal.base_model_prefix).state_dict())
        return rm


def load_reward_model(path: str, dtype: torch.dtype = torch.float32, what: str = "--reward_model"):
    """A trained reward model in eval mode: a full directory, or a SEQ_CLS LoRA adapter merged into its base."""
    p = check_local_model_dir(path, what)
    with _quiet_load():
        if _is_adapter_dir(p):
            model = _load_adapter(p, dtype, what)
        else:
            config = AutoConfig.from_pretrained(str(p), local_files_only=True)
            archs = config.architectures or []
            if not any(a.endswith("ForSequenceClassification") for a in archs) or config.num_labels != 1:
                raise UsageError(f"{what}: {path} is not a reward model (architectures {archs}, "
                                 f"{config.num_labels} labels); train one with `alignlab reward`")
            model = AutoModelForSequenceClassification.from_pretrained(str(p), dtype=dtype, local_files_only=True)
    if model.config.pad_token_id is None:
        from alignlab.models.build import load_tokenizer

        model.config.pad_token_id = load_tokenizer(path, what).pad_token_id
    return model.eval()


def _load_adapter(p: Path, dtype: torch.dtype, what: str):
    from peft import PeftModel

    from alignlab.models.build import load_tokenizer

    adapter = json.loads((p / "adapter_config.json").read_text())
    if adapter.get("task_type") != "SEQ_CLS":
        raise UsageError(f"{what}: {p} is a {adapter.get('task_type')} adapter, not a reward model (SEQ_CLS)")
    base_path = adapter.get("base_model_name_or_path") or ""
    base = build_reward_model(base_path, load_tokenizer(str(p), what).pad_token_id, dtype,
                              what=f"{what}: the adapter's base_model_name_or_path")
    return PeftModel.from_pretrained(base, str(p)).merge_and_unload()


# --- scoring -------------------------------------------------------------------------------------------

def right_pad(rows: list[list[int]], pad_id: int) -> Tensor:
    """(R, L) long: each row followed by pad ids (causal attention never looks right, so no mask needed)."""
    out = torch.full((len(rows), max(len(r) for r in rows)), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def sequence_rewards(rm, input_ids: Tensor) -> Tensor:
    """(R,) float32 rewards of right-padded rows (R, L), read where the model's own rule reads them (the
    top layer of a Llama runs only there)."""
    return last_token_scores(rm, input_ids)[:, 0].float()


def pair_rows(examples: list[PreferenceExample], idx: list[int]) -> list[list[int]]:
    """prompt+chosen rows of the pairs `idx`, then their prompt+rejected rows: 2B rows."""
    pairs = [examples[i] for i in idx]
    return [e.prompt_ids + e.chosen_ids for e in pairs] + [e.prompt_ids + e.rejected_ids for e in pairs]


def pair_rewards(rm, examples: list[PreferenceExample], idx: list[int], pad_id: int) -> tuple[Tensor, Tensor, int]:
    """One forward over 2B concatenated rows: chosen rewards (B,), rejected rewards (B,), real tokens."""
    rows = pair_rows(examples, idx)
    device = next(rm.parameters()).device
    rewards = sequence_rewards(rm, right_pad(rows, pad_id).to(device))
    return rewards[: len(idx)], rewards[len(idx):], sum(len(r) for r in rows)


@torch.no_grad()
def score_pairs(rm, examples: list[PreferenceExample], pad_id: int, batch_size: int = 32) -> tuple[Tensor, Tensor]:
    """Rewards of every pair, (N,) chosen and (N,) rejected, on the CPU."""
    chosen, rejected = [], []
    for start in range(0, len(examples), batch_size):
        c, r, _ = pair_rewards(rm, examples, list(range(start, min(start + batch_size, len(examples)))), pad_id)
        chosen.append(c.cpu())
        rejected.append(r.cpu())
    return torch.cat(chosen), torch.cat(rejected)


@torch.no_grad()
def score_texts(rm, tokenizer, prompts: list[str], responses: list[str], batch_size: int = 32) -> Tensor:
    """(N,) rewards of single-turn chats: each prompt a user turn, each response the assistant's reply."""
    rows = []
    for i, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
        p, c = prompt_completion_ids(tokenizer, [{"role": "user", "content": prompt}],
                                     [{"role": "assistant", "content": response}], where=f"text {i + 1}")
        rows.append(p + c)
    device, pad_id = next(rm.parameters()).device, rm.config.pad_token_id  # the id the model reads as padding
    out = [sequence_rewards(rm, right_pad(rows[s: s + batch_size], pad_id).to(device)).cpu()
           for s in range(0, len(rows), batch_size)]
    return torch.cat(out) if out else torch.zeros(0)
