"""Bradley-Terry reward model: a causal LM with a scalar head learns r(x, y) from chosen/rejected pairs.

The loss is `objectives.reward.bradley_terry_loss`: -log sigmoid(r_c - r_r [- margin]) (Ouyang et al. 2022
eq. 1; the optional per-pair margin column is Llama 2's eq. 2) plus TRL's optional centring term
c (r_c + r_r)^2. One step, for B pairs: one forward over 2B concatenated rows (prompt+chosen rows, then
prompt+rejected rows, right-padded), the reward read at each row's last non-pad token by the model's own
rule (see `models/reward_model.py`), as TRL's RewardTrainer does. Full fine-tuning or LoRA (task SEQ_CLS;
the fresh `score` head is always trained, through `modules_to_save`).

Logged per step under TRL's names: loss, accuracy, margin, plus rewards/chosen and rewards/rejected (means);
on the held-out set every eval_steps: eval_accuracy, eval_margin, eval_ece (calibration of
sigmoid(r_c - r_r)), eval_spearman_score / eval_spearman_gold when the file has the rater's / gold
scores. summary.json holds the same metrics on a sample of the training pairs and on the held-out set.
Saved in HF format: `AutoModelForSequenceClassification.from_pretrained(output_dir)` loads it (an
adapter directory too, given `num_labels=1`); `alignlab eval reward` measures it further.

Left out: InstructGPT's all-K-choose-2 pairs of one prompt in one batch element (pairs are independent
rows here), and ensembles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from alignlab.config import option
from alignlab.data import PREFERENCE_KINDS, PreferenceExample, load_dataset, tokenize_preference
from alignlab.errors import UsageError
from alignlab.evals.reward import pair_metrics
from alignlab.models import count_parameters, load_tokenizer, save_model
from alignlab.models.reward_model import build_reward_model, pair_rewards, score_pairs
from alignlab.objectives.reward import bradley_terry_loss
from alignlab.rundir import RunDir
from alignlab.train.loop import (
    TrainingConfig,
    TrainLoop,
    batch_indices,
    resolve_device,
    seed_everything,
    set_threads,
    total_steps,
)
from alignlab.train.lora import LoraOptions, finalise_lora
from alignlab.train.preferences import NUMERIC_COLUMNS, pair_columns


@dataclass
class RewardConfig(TrainingConfig, LoraOptions):
    output_dir: str = option("runs/reward", "run directory: config, metrics, checkpoints, the reward model")
    model_name_or_path: str = option("runs/sft", "local causal-LM directory the reward model starts from")
    dataset: str = option("runs/preferences/pairs.jsonl", "preference file in any TRL preference format")
    eval_dataset: str | None = option(None, "held-out preference file, e.g. runs/preferences/heldout.jsonl")
    max_prompt_length: int = option(128, "longest tokenized prompt")
    max_completion_length: int = option(128, "longest tokenized chosen/rejected completion")
    truncation: str = option("error", "a longer prompt/completion: error, or keep the prompt's end and the "
                             "completion's start", ("error", "truncate"))
    margin_column: str | None = option(None, "column with a per-pair required margin (Llama 2), e.g. 'margin'")
    center_rewards_coefficient: float | None = option(None, "weight of (r_c + r_r)^2, pinning rewards near 0 "
                                                      "(TRL's name; none = off)")
    learning_rate: float = option(1e-4, "peak learning rate (TRL RewardConfig's default)")
    weight_decay: float = option(0.0, "AdamW weight decay (TRL's default 0)")
    per_device_train_batch_size: int = option(8, "pairs per micro-batch (2x rows in the forward)")
    per_device_eval_batch_size: int = option(32, "pairs per forward when evaluating")
    eval_steps: int = option(50, "held-out metrics every N steps and at the end (0 = only in summary.json)")
    train_eval_pairs: int = option(512, "training pairs (a seeded sample) scored for the summary's train metrics")
    n_bins: int = option(10, "bins of the calibration error")


@dataclass
class PairSet:
    """Tokenized pairs with the numeric columns of their file (score_*, gold_*, p_chosen, margin)."""

    examples: list[PreferenceExample]
    columns: dict
    kind: str

    def __len__(self) -> int:
        return len(self.examples)


def load_pairs(path: str, tokenizer, cfg: RewardConfig) -> PairSet:
    records, kind = load_dataset(path, allowed=PREFERENCE_KINDS, purpose="reward modelling")
    if cfg.margin_column and cfg.margin_column not in records[0]:
        raise UsageError(f"{path}: record 1: field '{cfg.margin_column}': missing (named by --margin_column)")
    extra = (cfg.margin_column,) if cfg.margin_column and cfg.margin_column not in NUMERIC_COLUMNS else ()
    columns = pair_columns(records, path, NUMERIC_COLUMNS + extra)
    examples = tokenize_preference(records, tokenizer, cfg.max_prompt_length, cfg.max_completion_length,
                                   cfg.truncation, path=path, kind=kind)
    return PairSet(examples, columns, kind)


def apply_reward_lora(model, cfg: LoraOptions):
    """LoRA for sequence classification; the new score head is trained in full (modules_to_save)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(task_type="SEQ_CLS", r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                        lora_dropout=cfg.lora_dropout, target_modules=list(cfg.lora_target_modules),
                        modules_to_save=["score"])
    return get_peft_model(model, config)


def load_reward_backbone(cfg: RewardConfig, pad_id: int, device: torch.device):
    p = Path(cfg.model_name_or_path)
    adapter_base = (p / "adapter_config.json").is_file() and not (p / "config.json").is_file()
    if cfg.use_peft and adapter_base and not cfg.merge_adapter:
        raise UsageError("--use_peft: the starting model is itself an adapter directory, so a reward adapter "
                         "could not be reloaded from it; pass --merge_adapter or start from a merged model")
    model = build_reward_model(cfg.model_name_or_path, pad_id).to(device)
    return apply_reward_lora(model, cfg) if cfg.use_peft else model


def reward_loss(cfg: RewardConfig, chosen: Tensor, rejected: Tensor, margin: Tensor | None):
    """Mean BT loss of a micro-batch and its detached metrics (TRL's names)."""
    losses, m = bradley_terry_loss(chosen, rejected, margin=margin,
                                   center_rewards_coefficient=cfg.center_rewards_coefficient)
    loss = losses.mean()
    return loss, {"loss": loss.detach(), "accuracy": m["accuracy"], "margin": m["margin"],
                  "rewards/chosen": chosen.detach().mean(), "rewards/rejected": rejected.detach().mean()}


def evaluate(model, pairs: PairSet, pad_id: int, cfg: RewardConfig, subset: list[int] | None = None) -> dict:
    """pair_metrics over `pairs` (or the indices `subset`), the model left in its training mode."""
    was_training = model.training
    model.eval()
    idx = subset if subset is not None else list(range(len(pairs)))
    chosen, rejected = score_pairs(model, [pairs.examples[i] for i in idx], pad_id, cfg.per_device_eval_batch_size)
    model.train(was_training)
    columns = {k: v[idx] for k, v in pairs.columns.items()}
    return pair_metrics(chosen, rejected, columns, cfg.n_bins)


def run_reward(cfg: RewardConfig) -> dict:
    run = RunDir.claim(cfg.output_dir, cfg.overwrite, cfg.resume)
    set_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    tokenizer = load_tokenizer(cfg.model_name_or_path)
    pad_id = tokenizer.pad_token_id
    train = load_pairs(cfg.dataset, tokenizer, cfg)
    held = load_pairs(cfg.eval_dataset, tokenizer, cfg) if cfg.eval_dataset else None
    model = load_reward_backbone(cfg, pad_id, resolve_device(cfg.device))
    size, accum = cfg.per_device_train_batch_size, cfg.gradient_accumulation_steps
    total = total_steps(cfg, len(train) / size)
    margins = torch.as_tensor(train.columns[cfg.margin_column], dtype=torch.float32) if cfg.margin_column else None
    run.write_config(cfg, {"resolved": {"total_steps": total, "pairs": len(train), "format": train.kind,
                                        "eval_pairs": len(held) if held else 0,
                                        "parameters": count_parameters(model)}})

    loop = TrainLoop(cfg, model, run, total, description="reward")
    model.train()
    for step in loop.remaining_steps():
        step_metrics: dict[str, Tensor] = {}
        tokens = 0
        for micro in range(accum):
            idx = batch_indices(len(train), step * accum + micro, size, cfg.seed).tolist()
            with loop.forward_context():
                chosen, rejected, n_tokens = pair_rewards(model, train.examples, idx, pad_id)
            margin = margins[idx].to(chosen.device) if margins is not None else None
            loss, metrics = reward_loss(cfg, chosen, rejected, margin)
            loop.backward(loss)
            for k, v in metrics.items():
                step_metrics[k] = step_metrics.get(k, 0.0) + v / accum
            tokens += n_tokens
        loop.optimizer_step(step_metrics, tokens=tokens)
        if held and loop.should(cfg.eval_steps):
            loop.log_eval(lambda: _prefixed("eval_", evaluate(model, held, pad_id, cfg)))
    timing = loop.finish()

    sample = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed))[: cfg.train_eval_pairs]
    summary = {"stage": "reward", "pairs": len(train), "format": train.kind, "peft": cfg.use_peft,
               "merged": cfg.use_peft and cfg.merge_adapter,
               "train": evaluate(model, train, pad_id, cfg, sorted(sample.tolist())),
               "eval": evaluate(model, held, pad_id, cfg) if held else None, **timing}
    saved = finalise_lora(model, cfg) if cfg.use_peft else model
    save_model(saved, tokenizer, run.path)
    run.write_summary(summary)
    return summary


def _prefixed(prefix: str, metrics: dict) -> dict:
    return {prefix + k: v for k, v in metrics.items() if isinstance(v, int | float) and v is not None}
