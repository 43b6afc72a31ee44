"""`alignlab grpo` and `alignlab rloo`: critic-free policy gradients over groups of completions per prompt.

One rollout (`train/rollout.py`) samples `num_generations` (G) completions for each of R / G prompts, where
R = per_device_train_batch_size x gradient_accumulation_steps x num_mini_batches, and scores them. Then
`num_iterations` passes over it, `num_mini_batches` optimiser steps each, on the per-token clipped surrogate
of `objectives.rl.grpo_per_token_loss`, reduced by TRL's `loss_type` (`GRPO_AGGREGATIONS`: grpo, bnpo,
dapo, dr_grpo). The two stages differ only in the advantage, one number per completion:

- GRPO (Shao et al. 2024, Sec. 4.1.2): (r - mean of the group) / (std of the group + 1e-4)
  (`scale_rewards`: group, batch or none = Dr. GRPO), and an optional k3 KL term beta x KL_t in the loss
  (TRL's default beta = 0: then no reference is ever computed).
- RLOO (Ahmadian et al. 2024): the KL enters the reward, r - beta x sum_t KL_t (k1 or k3 estimator, from
  the log-probs at sampling time), and the baseline is the mean of the other G - 1 rewards of the group;
  optionally whitened over the rollout (`normalize_advantages`, TRL's option).

With one optimiser step per rollout (num_iterations = num_mini_batches = 1) the sampling policy is the
current one, so its log-probs are the training forward's own, detached (ratio 1, as TRL); otherwise they
come from one no-grad forward after sampling.

Logged under TRL's names where it has them: reward, reward_std, gold (world prompts), frac_reward_zero_std,
kl (GRPO: the mean per-token k3 of the loss term, as TRL; RLOO: the per-sequence KL in the reward, as
PPO), entropy, completion_length, eos_rate, loss, clip_ratio/low_mean, clip_ratio/high_mean,
clip_ratio/region_mean. The saved model is the policy.

Left out: multiple reward functions with weights, sequence-level importance sampling (GSPO), entropy
masking, and generation with vLLM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from alignlab.config import option
from alignlab.errors import UsageError
from alignlab.models import count_parameters, save_model
from alignlab.objectives.kl import KL_ESTIMATORS
from alignlab.objectives.online import masked_sequence_sum
from alignlab.objectives.rl import (
    GRPO_AGGREGATIONS,
    grpo_advantages,
    grpo_per_token_loss,
    masked_mean,
    masked_whiten,
    rloo_advantages,
)
from alignlab.rundir import RunDir
from alignlab.train import online
from alignlab.train.loop import (
    TrainLoop,
    batch_indices,
    resolve_device,
    seed_everything,
    set_threads,
    total_steps,
)
from alignlab.train.lora import finalise_lora
from alignlab.train.online import OnlineConfig
from alignlab.train.rollout import (
    Reference,
    Rollout,
    completion_hidden,
    completion_logps,
    log_completions,
    minibatches,
    roll_out,
    rollout_generator,
    rollout_metrics,
)


@dataclass
class GroupConfig(OnlineConfig):
    stage: ClassVar[str] = "grpo"

    per_device_train_batch_size: int = option(16, "rows (completions) per micro-batch")
    gradient_accumulation_steps: int = option(4, "micro-batches per optimiser step")
    num_generations: int = option(4, "completions sampled per prompt (G; TRL's default is 8)")
    num_iterations: int = option(1, "passes over each rollout (TRL's mu)")
    epsilon: float = option(0.2, "lower clip of the importance ratio")
    epsilon_high: float | None = option(None, "upper clip (DAPO's clip-higher); none = epsilon")
    loss_type: str = option("dapo", "reduction of the per-token loss (TRL's names; its default is dapo)",
                            tuple(GRPO_AGGREGATIONS))


@dataclass
class GrpoConfig(GroupConfig):
    output_dir: str = option("runs/grpo", "run directory: config, metrics, completions, checkpoints, the policy")
    beta: float = option(0.0, "weight of the k3 KL-to-reference term in the loss (TRL's default 0)")
    scale_rewards: str = option("group", "divide advantages by the std of the group, the batch, or not at all",
                                ("group", "batch", "none"))


@dataclass
class RlooConfig(GroupConfig):
    stage: ClassVar[str] = "rloo"

    output_dir: str = option("runs/rloo", "run directory: config, metrics, completions, checkpoints, the policy")
    beta: float = option(0.05, "KL coefficient in the reward r - beta KL(sequence) (TRL's default)")
    kl_estimator: str = option("k1", "per-token KL estimator summed over the sequence", tuple(KL_ESTIMATORS))
    normalize_advantages: bool = option(False, "whiten the advantages over the rollout")


@dataclass
class GroupBuffer:
    rollout: Rollout
    advantages: Tensor  # (R,)
    old_logps: Tensor | None  # (R, T); None: the training forward's own, detached
    ref_logps: Tensor | None  # (R, T); GRPO with beta != 0 only
    metrics: dict[str, float]


@torch.no_grad()
def forward_logps(cfg: GroupConfig, model, r: Rollout, forward_context, reference=None) -> Tensor:
    """(R, T) log-probs of the rollout's completions under `model` (or `reference`), micro-batch by micro-batch."""
    device, width, parts = next(model.parameters()).device, r.batch.mask.size(1), []
    for idx in torch.arange(len(r.texts)).split(cfg.per_device_train_batch_size):
        batch = r.rows(idx).to(device)
        with forward_context():
            if reference is not None:
                lp = reference.logps(batch, cfg.temperature)
            else:
                lp = completion_logps(model, completion_hidden(model, batch), batch, cfg.temperature)[0]
        parts.append(nn.functional.pad(lp.float().cpu(), (0, width - lp.size(1))))
    return torch.cat(parts)


def prepare(cfg: GroupConfig, policy, reference, r: Rollout, spr: int, forward_context) -> GroupBuffer:
    """Advantages (and the log-probs they or the loss need) of one rollout, and its metrics."""
    g, mask = cfg.num_generations, r.batch.mask
    grouped = r.scores.view(-1, g)
    metrics = {**rollout_metrics(r), "frac_reward_zero_std": float((grouped.std(1) == 0).float().mean())}
    rloo = cfg.stage == "rloo"
    need_old = spr > 1 or (rloo and cfg.beta != 0)
    old = forward_logps(cfg, policy, r, forward_context) if need_old else None
    ref = forward_logps(cfg, policy, r, forward_context, reference) if cfg.beta != 0 else None
    if rloo:
        rewards = r.scores
        if cfg.beta != 0:
            seq_kl = masked_sequence_sum(KL_ESTIMATORS[cfg.kl_estimator](old, ref, mask), mask)
            rewards = rewards - cfg.beta * seq_kl
            metrics["kl"] = float(seq_kl.mean())
        advantages = rloo_advantages(rewards, g)
        if cfg.normalize_advantages:
            advantages = masked_whiten(advantages, torch.ones_like(advantages))
        ref = None  # RLOO's KL is in the reward, not the loss
    else:
        advantages = grpo_advantages(r.scores, g, scale_rewards=cfg.scale_rewards)
    return GroupBuffer(r, advantages, old, ref, metrics)


def group_loss(cfg: GroupConfig, policy, buf: GroupBuffer, idx: Tensor, step_tokens: int, device):
    """Loss of one micro-batch, scaled so that TrainLoop's division by the accumulation steps is right."""
    batch = buf.rollout.rows(idx).to(device)
    cut = batch.tokens.size(1)
    logps, entropy = completion_logps(policy, completion_hidden(policy, batch), batch, cfg.temperature)
    old = logps.detach() if buf.old_logps is None else buf.old_logps[idx, :cut].to(device)
    ref = None if buf.ref_logps is None else buf.ref_logps[idx, :cut].to(device)
    beta = cfg.beta if cfg.stage == "grpo" else 0.0
    per_token, metrics = grpo_per_token_loss(logps, old, buf.advantages[idx].to(device), batch.mask,
                                             epsilon_low=cfg.epsilon, epsilon_high=cfg.epsilon_high,
                                             beta=beta, ref_logps=ref)
    loss = GRPO_AGGREGATIONS[cfg.loss_type](per_token, batch.mask, num_items_in_batch=step_tokens,
                                            max_completion_length=cfg.max_new_tokens)
    if cfg.loss_type == "dapo":
        # dapo already divides by the whole step's token count; undo TrainLoop's division by accumulation.
        loss = loss * cfg.gradient_accumulation_steps
    # the step's loss is the sum of loss / accumulation over its micro-batches, as TrainLoop backpropagates it
    metrics = {"loss": loss.detach(), "entropy": masked_mean(entropy, batch.mask), **metrics}
    return loss, metrics, int(batch.positions[:, 0].sum()) + len(idx) + int(batch.mask.sum())


def check_config(cfg: GroupConfig) -> int:
    """Steps per rollout, after checking the group options."""
    if cfg.num_generations < 2:
        raise UsageError(f"--num_generations: a group needs at least 2 completions, got {cfg.num_generations}")
    if cfg.rollout_rows() % cfg.num_generations:
        raise UsageError(f"--num_generations: {cfg.num_generations} must divide the rollout's "
                         f"{cfg.rollout_rows()} rows (per_device_train_batch_size x gradient_accumulation_steps "
                         "x num_mini_batches)")
    if cfg.num_iterations < 1:
        raise UsageError(f"--num_iterations: must be >= 1, got {cfg.num_iterations}")
    if cfg.beta < 0:
        raise UsageError(f"--beta: must be >= 0, got {cfg.beta}")
    steps = cfg.num_iterations * cfg.num_mini_batches
    online.check_shared_options(cfg, steps)
    return steps


def run_group(cfg: GroupConfig) -> dict:
    spr = check_config(cfg)
    run = RunDir.claim(cfg.output_dir, cfg.overwrite, cfg.resume)
    set_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    policy = online.load_policy(cfg, device)
    tokenizer, prompts, rewarder = online.rollout_inputs(cfg, policy, device)
    reference = Reference(cfg, policy, device) if cfg.beta != 0 else None
    rows, accum, g = cfg.rollout_rows(), cfg.gradient_accumulation_steps, cfg.num_generations
    total = total_steps(cfg, math.ceil(len(prompts.ids) * g / rows) * spr * accum)
    run.write_config(cfg, {"resolved": {"stage": cfg.stage, "total_steps": total, "steps_per_rollout": spr,
                                        "rollout_rows": rows, "prompts_per_rollout": rows // g,
                                        "prompts": len(prompts.ids), "reward": rewarder.source,
                                        "parameters": count_parameters(policy)}})

    loop = TrainLoop(cfg, policy, run, total, description=cfg.stage)
    buf = None
    policy.train()
    for step in loop.remaining_steps():
        r, k = divmod(step, spr)
        if k == 0 or buf is None:
            index = [i for i in batch_indices(len(prompts.ids), r, rows // g, cfg.seed).tolist() for _ in range(g)]
            rollout = roll_out(cfg, policy, tokenizer, prompts, index, rewarder,
                                      rollout_generator(cfg.seed, r))
            buf = prepare(cfg, policy, reference, rollout, spr, loop.forward_context)
            log_completions(run.path, step, prompts, rollout, cfg.completions_per_rollout)
        minibatch = minibatches(rows, cfg.num_mini_batches, cfg.seed * 7919 + r * 101 + k // cfg.num_mini_batches)
        minibatch = minibatch[k % cfg.num_mini_batches]
        step_tokens = int(buf.rollout.batch.mask[minibatch].sum())
        step_metrics: dict = {}
        tokens = 0
        for idx in minibatch.split(cfg.per_device_train_batch_size):
            with loop.forward_context():
                loss, metrics, n = group_loss(cfg, policy, buf, idx, step_tokens, device)
            loop.backward(loss)
            tokens += n
            for name, v in metrics.items():
                step_metrics[name] = step_metrics.get(name, 0.0) + v / accum
        loop.optimizer_step({**buf.metrics, **step_metrics}, tokens=tokens)
    timing = loop.finish()

    saved = finalise_lora(policy, cfg) if cfg.use_peft else policy
    save_model(saved, tokenizer, run.path)
    summary = {"stage": cfg.stage, "reward": rewarder.source, "prompts": len(prompts.ids), "rollout_rows": rows,
               "num_generations": g, "steps_per_rollout": spr, "loss_type": cfg.loss_type, "beta": cfg.beta,
               "peft": cfg.use_peft, "last_rollout": buf.metrics if buf else None, **timing}
    run.write_summary(summary)
    return summary


def run_grpo(cfg: GrpoConfig) -> dict:
    return run_group(cfg)


def run_rloo(cfg: RlooConfig) -> dict:
    return run_group(cfg)
