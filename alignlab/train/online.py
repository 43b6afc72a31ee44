"""What PPO, GRPO and RLOO share: the config, the prompts and the rewards (the rollout is `rollout.py`).

Prompts: the world's prompts (`preferences.world_prompts`: an equal share per category, rendered with the
chat template), or any TRL file with a prompt; a rollout takes its rows through `batch_indices` (a fresh
permutation per epoch over the prompts).

Rewards (`Rewarder`): the world's rater (`--reward world`: taste plus the rater's biases, as
`alignlab preferences` draws preferences from) or a reward model (`--reward_model DIR`, which must share
the policy's tokenizer: it reads the prompt + completion token ids, as TRL's online trainers do). On world
prompts the rater's unbiased taste is kept as `gold` whatever trains, so proxy and gold reward can be
compared along training.

Checkpoints: resuming starts on a fresh rollout, so `save_steps` must be a multiple of a rollout's
optimiser steps; stage state the TrainLoop checkpoint lacks (PPO's adaptive KL coefficient) is written
next to it as online_state.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from alignlab.config import option
from alignlab.data import PROMPT_KINDS, load_dataset, tokenize_prompts
from alignlab.data.chat import render_ids
from alignlab.errors import UsageError
from alignlab.io import atomic_write_json, read_json
from alignlab.models import load_causal_lm
from alignlab.train.loop import TrainingConfig
from alignlab.train.lora import LoraOptions, apply_lora
from alignlab.train.preferences import RaterOptions, make_rater, world_prompts
from alignlab.world.checks import PROBE_CATEGORIES

RATED = tuple(c for c in PROBE_CATEGORIES if c != "persona")  # a persona answer's gold taste is always 0
CONTROLLER_FILE = "online_state.json"


@dataclass
class OnlineConfig(TrainingConfig, LoraOptions, RaterOptions):
    """Fields every online stage has; `per_device_train_batch_size x gradient_accumulation_steps x
    num_mini_batches` rows make one rollout (TRL's PPO convention)."""

    model_name_or_path: str = option("runs/sft", "local model directory to start from (usually the SFT model)")
    ref_model_name_or_path: str | None = option(
        None, "reference model directory; default: the starting model (with LoRA: the adapter disabled)")
    reward: str | None = option(None, "who scores completions: 'world' (the world's rater) or 'model' "
                                "(--reward_model); default: model when --reward_model is given, else world",
                                ("world", "model"))
    reward_model: str | None = option(None, "reward-model directory (HF sequence classification, one label)")
    missing_eos_penalty: float | None = option(None, "subtracted from the score of a completion that hit "
                                               "max_new_tokens without a stop token (TRL's name; none = off)")
    prompts: str = option("world", "'world' (the world's prompts) or a prompt file in any TRL format with a "
                          "prompt (a 'probe' column, as in `alignlab preferences` output, enables --reward world)")
    world: str | None = option(None, "world YAML spec; the built-in default when not given")
    split: str = option("train", "world prompt phrasings: those of the SFT data, or held out", ("train", "heldout"))
    categories: list[str] = option(list(RATED), "world prompt categories", PROBE_CATEGORIES)
    n_prompts: int = option(512, "world: prompts spread over the categories; file: the first N records (0 = all)")
    max_prompt_length: int | None = option(None, "longest tokenized file prompt (none = no limit)")
    truncation: str = option("error", "a longer file prompt: error, or keep its end", ("error", "truncate"))
    max_new_tokens: int = option(32, "longest sampled completion")
    temperature: float = option(1.0, "sampling temperature; log-probs use the same one (policy = softmax(l/T))")
    num_mini_batches: int = option(1, "optimiser steps per pass over one rollout")
    learning_rate: float = option(5e-5, "peak learning rate")
    weight_decay: float = option(0.0, "AdamW weight decay")
    lr_scheduler_type: str = option("linear", "learning-rate schedule after warmup (TRL's default: linear)",
                                    ("cosine", "linear", "constant"))
    warmup_ratio: float = option(0.0, "fraction of steps with linear warmup")
    logging_steps: int = option(1, "write a metrics.jsonl row every N optimiser steps")
    completions_per_rollout: int = option(4, "completions of each rollout kept in completions.jsonl")

    def rollout_rows(self) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps * self.num_mini_batches


def reward_source(cfg: OnlineConfig) -> str:
    source = cfg.reward or ("model" if cfg.reward_model else "world")
    if source == "model" and not cfg.reward_model:
        raise UsageError("--reward model: needs --reward_model DIR")
    if source == "world" and cfg.reward_model:
        raise UsageError("--reward_model: given with --reward world; pass one or the other")
    return source


def check_shared_options(cfg: OnlineConfig, steps_per_rollout: int) -> None:
    """Bad combinations of the shared options, before anything is loaded."""
    for name in ("max_new_tokens", "per_device_train_batch_size", "gradient_accumulation_steps", "num_mini_batches"):
        if getattr(cfg, name) < 1:
            raise UsageError(f"--{name}: must be >= 1, got {getattr(cfg, name)}")
    if not cfg.temperature > 0:
        raise UsageError(f"--temperature: must be > 0, got {cfg.temperature}")
    if cfg.save_steps % steps_per_rollout:
        raise UsageError(f"--save_steps: must be a multiple of the {steps_per_rollout} optimiser steps of one "
                         "rollout, so that a resumed run starts on a fresh rollout")
    reward_source(cfg)


def rollout_inputs(cfg: OnlineConfig, policy, device: torch.device):
    """The tokenizer, the prompts (each with room for max_new_tokens) and the rewarder of a run, checked
    against each other: what every online stage sets up before its loop."""
    from alignlab.models import load_tokenizer
    from alignlab.world import load_world

    tokenizer = load_tokenizer(cfg.model_name_or_path)
    world = load_world(cfg.world)
    prompts = load_prompts(cfg, tokenizer, world, policy.config.max_position_embeddings)
    rewarder = Rewarder(cfg, tokenizer, world, device)
    rewarder.check(prompts, cfg)
    return tokenizer, prompts, rewarder


def load_policy(cfg: OnlineConfig, device: torch.device):
    """The model to train: the starting model, LoRA-wrapped with --use_peft."""
    model = load_causal_lm(cfg.model_name_or_path).to(device)
    return apply_lora(model, cfg) if cfg.use_peft else model


# --- prompts ---------------------------------------------------------------------------------------

@dataclass
class PromptSet:
    ids: list[list[int]]
    texts: list[str]  # for completions.jsonl
    probes: list | None  # world Probe per prompt, when known (the rater needs it)


def load_prompts(cfg: OnlineConfig, tokenizer, world, limit: int) -> PromptSet:
    """World prompts or a prompt file, tokenized; each must leave room for max_new_tokens within `limit`."""
    if cfg.prompts == "world":
        if cfg.n_prompts < 1:
            raise UsageError(f"--n_prompts: must be >= 1 for world prompts, got {cfg.n_prompts}")
        probes = world_prompts(world, cfg)
        ids = [render_ids(tokenizer, [{"role": "user", "content": p.prompt}], True, "world prompts") for p in probes]
        prompts = PromptSet(ids, [p.prompt for p in probes], probes)
    else:
        prompts = _file_prompts(cfg, tokenizer)
    for i, row in enumerate(prompts.ids):
        if len(row) + cfg.max_new_tokens > limit:
            raise UsageError(f"{cfg.prompts}: prompt {i + 1}: {len(row)} tokens + max_new_tokens "
                             f"{cfg.max_new_tokens} exceed the model's max_position_embeddings ({limit})")
    return prompts


def _file_prompts(cfg: OnlineConfig, tokenizer) -> PromptSet:
    from alignlab.world import Probe

    records, kind = load_dataset(cfg.prompts, allowed=PROMPT_KINDS, purpose="online RL prompts")
    if cfg.n_prompts > 0:
        records = records[: cfg.n_prompts]
    ids = tokenize_prompts(records, tokenizer, cfg.max_prompt_length, cfg.truncation, path=cfg.prompts, kind=kind)
    for number, row in enumerate(ids, start=1):
        if not row:
            raise UsageError(f"{cfg.prompts}: record {number}: field 'prompt': no tokens to generate from")
    texts = [json.dumps(r["prompt"]) if not isinstance(r.get("prompt"), str) else r["prompt"] for r in records]
    probes = None
    if all(isinstance(r.get("probe"), dict) for r in records):
        probes = [Probe.from_record(r["probe"]) for r in records]
    return PromptSet(ids, texts, probes)


# --- rewards ---------------------------------------------------------------------------------------

class Rewarder:
    """Scores (prompt, completion) rows: the world's rater or a reward model; gold taste on world probes."""

    def __init__(self, cfg: OnlineConfig, tokenizer, world, device: torch.device):
        from alignlab.evals.kl import check_same_tokenizer
        from alignlab.models import load_tokenizer
        from alignlab.models.reward_model import load_reward_model

        self.source = reward_source(cfg)
        self.rater = make_rater(world, cfg)
        self.rm = None
        if self.source == "model":
            check_same_tokenizer(tokenizer, load_tokenizer(cfg.reward_model, "--reward_model"), "--reward_model")
            self.rm = load_reward_model(cfg.reward_model).to(device)
            self.rm.requires_grad_(False)

    def check(self, prompts: PromptSet, cfg: OnlineConfig) -> None:
        if self.source == "world" and prompts.probes is None:
            raise UsageError(f"{cfg.prompts}: --reward world needs world prompts (or a file whose records have "
                             "a 'probe' column); give --reward_model DIR for other prompts")
        limit = getattr(self.rm.config, "max_position_embeddings", None) if self.rm is not None else None
        longest = max(len(r) for r in prompts.ids)
        if limit is not None and longest + cfg.max_new_tokens > limit:
            raise UsageError(f"--reward_model: the longest prompt ({longest} tokens) + max_new_tokens "
                             f"({cfg.max_new_tokens}) exceed its max_position_embeddings ({limit})")

    @torch.no_grad()
    def __call__(self, prompts: PromptSet, index: list[int], completions: list[list[int]],
                 texts: list[str]) -> tuple[Tensor, Tensor | None]:
        """(R,) scores that train and (R,) gold taste (None without world probes)."""
        rated = None
        if prompts.probes is not None:
            rated = [self.rater.components(prompts.probes[i], t) for i, t in zip(index, texts, strict=True)]
        gold = None if rated is None else torch.tensor([c["taste"] for c in rated])
        if self.rm is None:
            return torch.tensor([float(sum(c.values())) for c in rated]), gold
        return self.model_scores([prompts.ids[i] + c for i, c in zip(index, completions, strict=True)]), gold

    def model_scores(self, rows: list[list[int]], batch_size: int = 64) -> Tensor:
        from alignlab.models.reward_model import right_pad, sequence_rewards

        device, pad = next(self.rm.parameters()).device, self.rm.config.pad_token_id
        return torch.cat([sequence_rewards(self.rm, right_pad(rows[s: s + batch_size], pad).to(device)).cpu()
                          for s in range(0, len(rows), batch_size)])


# --- run-directory extras ---------------------------------------------------------------------------

def save_online_state(run_path: Path, step: int, state: dict) -> None:
    """Stage state the TrainLoop checkpoint lacks (the adaptive KL coefficient), next to that checkpoint."""
    ckpt = run_path / f"checkpoint-{step}"
    if ckpt.is_dir():
        atomic_write_json(ckpt / CONTROLLER_FILE, state)


def load_online_state(run_path: Path, step: int, default: dict) -> dict:
    if step == 0:
        return default
    path = run_path / f"checkpoint-{step}" / CONTROLLER_FILE
    if not path.is_file():
        raise UsageError(f"--resume: {path.parent} has no {CONTROLLER_FILE}; it was not written by this stage")
    return read_json(path)
