"""`alignlab ppo`: PPO with a value function and a per-token KL penalty to the reference (RLHF as in
Ziegler et al. 2019 and Stiennon et al. 2020; the loss of Schulman et al. 2017).

One rollout (`train/rollout.py`) of R = per_device_train_batch_size x gradient_accumulation_steps x
num_mini_batches prompts, then `num_ppo_epochs` passes over it in `num_mini_batches` optimiser steps each:
1. sample a completion per prompt; score it (world rater or reward model);
2. with no grad: the policy's log-probs and values, the reference's log-probs;
3. per-token reward -kl_coef * KL_t (k1 or k3 estimator) plus the score on the last token
   (`objectives.rl.kl_penalized_rewards`), optionally whitened in scale (`whiten_rewards`);
4. GAE advantages and returns (`objectives.rl.gae`), advantages whitened over the rollout;
5. each minibatch: clipped policy loss + vf_coef x clipped value loss, token means over the micro-batch.
The KL coefficient is fixed, or adapted after each rollout towards `kl_target` (Ziegler et al. 2019,
Sec. 2.2; `objectives.online.adaptive_kl_coef`).

Value function: `--value_model shared` puts a linear head on the policy's last hidden state (one forward
for both; the value loss also shapes the trunk); `separate` gives the critic its own copy of the starting
model's decoder (with LoRA, its own adapter). The head starts at zero, so the first values are 0.
TRL initialises a separate critic from the reward model instead; here it starts from the policy.

Logged per optimiser step: reward, reward_std, gold (world prompts), kl (per sequence, nats, the chosen
estimator), kl_coef, non_score_reward, rlhf_reward, entropy, completion_length, eos_rate,
explained_variance (rollout values against GAE returns), and from the minibatch loss/policy, loss/value,
clipfrac, vf_clipfrac, approx_kl, ratio. The saved model is the policy alone (no value head).

Left out: an entropy bonus, reward clipping, and TRL's `stop_token` truncation (completions already stop at
the chat template's end token; `missing_eos_penalty` penalises those that do not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from alignlab.config import option
from alignlab.errors import UsageError
from alignlab.models import count_parameters, save_model
from alignlab.objectives.kl import KL_ESTIMATORS
from alignlab.objectives.online import adaptive_kl_coef, explained_variance, masked_sequence_sum
from alignlab.objectives.rl import (
    gae,
    kl_penalized_rewards,
    masked_mean,
    masked_whiten,
    ppo_policy_loss,
    ppo_value_loss,
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
    CompletionBatch,
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
class PpoConfig(OnlineConfig):
    output_dir: str = option("runs/ppo", "run directory: config, metrics, completions, checkpoints, the policy")
    per_device_train_batch_size: int = option(16, "rows per micro-batch")
    num_mini_batches: int = option(4, "optimiser steps per PPO epoch over one rollout")
    num_ppo_epochs: int = option(2, "passes over each rollout (TRL's default is 4)")
    value_model: str = option("shared", "critic: a head on the policy's trunk, or its own copy of the model",
                              ("shared", "separate"))
    kl_coef: float = option(0.05, "per-token KL penalty coefficient (the start value when kl_target is set)")
    kl_estimator: str = option("k1", "per-token KL estimator in the reward (TRL's choices: k1, k3)",
                               tuple(KL_ESTIMATORS))
    kl_target: float | None = option(None, "adaptive coefficient: target KL per sequence in nats (none = fixed)")
    kl_horizon: float = option(10000.0, "adaptive coefficient: horizon in sequences (TRL's default)")
    cliprange: float = option(0.2, "policy ratio clip epsilon")
    cliprange_value: float = option(0.2, "value clip around the rollout's values")
    vf_coef: float = option(0.1, "weight of the value loss")
    gamma: float = option(1.0, "discount")
    lam: float = option(0.95, "GAE lambda")
    whiten_rewards: bool = option(False, "whiten the per-token rewards in scale (mean kept) before GAE")


class ActorCritic(nn.Module):
    """The policy and its critic, one module so that one optimiser and one checkpoint hold both."""

    def __init__(self, policy: nn.Module, value_model: nn.Module | None, hidden_size: int):
        super().__init__()
        self.policy, self.value_model = policy, value_model
        self.value_head = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(self, batch: CompletionBatch, temperature: float) -> tuple[Tensor, Tensor, Tensor]:
        """log-probs (B, T) and values (B, T) with grad, entropy (B, T) detached; 0 where masked."""
        hidden = completion_hidden(self.policy, batch)
        logps, entropy = completion_logps(self.policy, hidden, batch, temperature)
        trunk = hidden if self.value_model is None else completion_hidden(self.value_model, batch)
        values = self.value_head(trunk).squeeze(-1).float() * batch.mask
        return logps, entropy, values


def build_actor_critic(cfg: PpoConfig, device: torch.device) -> ActorCritic:
    policy = online.load_policy(cfg, device)
    critic = None
    if cfg.value_model == "separate":
        critic = online.load_policy(cfg, device)  # the starting model again; with LoRA its own adapter
    return ActorCritic(policy, critic, policy.config.hidden_size).to(device)


@dataclass
class PpoBuffer:
    """One rollout and what PPO computed from it: (R, T) tensors on the CPU."""

    rollout: Rollout
    old_logps: Tensor
    old_values: Tensor
    advantages: Tensor
    returns: Tensor
    metrics: dict[str, float]


@torch.no_grad()
def prepare(cfg: PpoConfig, ac: ActorCritic, reference: Reference, r: Rollout, kl_coef: float,
            forward_context) -> PpoBuffer:
    """Old log-probs and values, KL-shaped rewards, GAE; and the rollout's metrics."""
    device = next(ac.parameters()).device
    parts: dict[str, list[Tensor]] = {"logps": [], "values": [], "entropy": [], "ref": []}
    for idx in torch.arange(len(r.texts)).split(cfg.per_device_train_batch_size):
        batch = r.rows(idx).to(device)
        width = r.batch.mask.size(1)
        with forward_context():
            logps, entropy, values = ac(batch, cfg.temperature)
            ref = reference.logps(batch, cfg.temperature)
        for name, t in zip(parts, (logps, values, entropy, ref), strict=True):
            parts[name].append(nn.functional.pad(t.float().cpu(), (0, width - t.size(1))))
    logps, values, entropy, ref = (torch.cat(parts[n]) for n in ("logps", "values", "entropy", "ref"))
    mask = r.batch.mask
    rewards, kl = kl_penalized_rewards(r.scores, logps, ref, mask, kl_coef=kl_coef, estimator=cfg.kl_estimator)
    if cfg.whiten_rewards:
        rewards = masked_whiten(rewards, mask, shift_mean=False)
    advantages, returns = gae(rewards, values, mask, gamma=cfg.gamma, lam=cfg.lam)
    advantages = masked_whiten(advantages, mask)
    seq_kl = masked_sequence_sum(kl, mask)
    metrics = {**rollout_metrics(r), "kl": float(seq_kl.mean()), "kl_coef": kl_coef,
               "non_score_reward": float(-kl_coef * seq_kl.mean()),
               "entropy": float(masked_mean(entropy, mask)),
               "explained_variance": explained_variance(values, returns, mask)}
    metrics["rlhf_reward"] = metrics["reward"] + metrics["non_score_reward"]
    return PpoBuffer(r, logps, values, advantages, returns, metrics)


def ppo_loss(cfg: PpoConfig, ac: ActorCritic, buf: PpoBuffer, idx: Tensor, device) -> tuple[Tensor, dict, int]:
    """Loss of one micro-batch (token means), its metrics and its token count."""
    batch = buf.rollout.rows(idx).to(device)
    cut = batch.tokens.size(1)

    def take(t: Tensor) -> Tensor:
        return t[idx, :cut].to(device)

    logps, entropy, values = ac(batch, cfg.temperature)
    pg, pm = ppo_policy_loss(logps, take(buf.old_logps), take(buf.advantages), batch.mask, clip_eps=cfg.cliprange)
    vf, vm = ppo_value_loss(values, take(buf.old_values), take(buf.returns), batch.mask,
                            clip_eps_value=cfg.cliprange_value)
    policy_loss, value_loss = masked_mean(pg, batch.mask), masked_mean(vf, batch.mask)
    metrics = {"loss/policy": policy_loss.detach(), "loss/value": value_loss.detach(), **pm, **vm}
    tokens = int(batch.positions[:, 0].sum()) + len(idx) + int(batch.mask.sum())  # prompt + completion tokens
    return policy_loss + cfg.vf_coef * value_loss, metrics, tokens


def check_config(cfg: PpoConfig) -> int:
    """Steps per rollout, after checking the PPO-specific options."""
    if cfg.num_ppo_epochs < 1:
        raise UsageError(f"--num_ppo_epochs: must be >= 1, got {cfg.num_ppo_epochs}")
    if cfg.kl_target is not None and not cfg.kl_target > 0:
        raise UsageError(f"--kl_target: must be > 0 (or none for a fixed coefficient), got {cfg.kl_target}")
    if cfg.kl_coef < 0:
        raise UsageError(f"--kl_coef: must be >= 0, got {cfg.kl_coef}")
    steps = cfg.num_ppo_epochs * cfg.num_mini_batches
    online.check_shared_options(cfg, steps)
    return steps


def run_ppo(cfg: PpoConfig) -> dict:
    spr = check_config(cfg)
    run = RunDir.claim(cfg.output_dir, cfg.overwrite, cfg.resume)
    set_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    ac = build_actor_critic(cfg, device)
    tokenizer, prompts, rewarder = online.rollout_inputs(cfg, ac.policy, device)
    reference = Reference(cfg, ac.policy, device)
    rows, accum = cfg.rollout_rows(), cfg.gradient_accumulation_steps
    total = total_steps(cfg, math.ceil(len(prompts.ids) / rows) * spr * accum)
    run.write_config(cfg, {"resolved": {"total_steps": total, "steps_per_rollout": spr, "rollout_rows": rows,
                                        "prompts": len(prompts.ids), "reward": rewarder.source,
                                        "parameters": count_parameters(ac.policy)}})

    loop = TrainLoop(cfg, ac, run, total, description="ppo")
    state = online.load_online_state(run.path, loop.step, {"kl_coef": cfg.kl_coef})
    buf = None
    ac.train()
    for step in loop.remaining_steps():
        r, k = divmod(step, spr)
        if k == 0 or buf is None:
            index = batch_indices(len(prompts.ids), r, rows, cfg.seed).tolist()
            rollout = roll_out(cfg, ac.policy, tokenizer, prompts, index, rewarder,
                                      rollout_generator(cfg.seed, r))
            buf = prepare(cfg, ac, reference, rollout, state["kl_coef"], loop.forward_context)
            log_completions(run.path, step, prompts, rollout, cfg.completions_per_rollout)
            if cfg.kl_target is not None:
                state["kl_coef"] = adaptive_kl_coef(state["kl_coef"], buf.metrics["kl"], cfg.kl_target, rows,
                                                    cfg.kl_horizon)
        epoch, mb = divmod(k, cfg.num_mini_batches)
        minibatch = minibatches(rows, cfg.num_mini_batches, cfg.seed * 7919 + r * 101 + epoch)[mb]
        step_metrics: dict = {}
        tokens = 0
        for idx in minibatch.split(cfg.per_device_train_batch_size):
            with loop.forward_context():
                loss, metrics, n = ppo_loss(cfg, ac, buf, idx, device)
            loop.backward(loss)
            tokens += n
            for name, v in metrics.items():
                step_metrics[name] = step_metrics.get(name, 0.0) + v / accum
        loop.optimizer_step({**buf.metrics, **step_metrics}, tokens=tokens)
        online.save_online_state(run.path, loop.step, state)
    timing = loop.finish()

    saved = finalise_lora(ac.policy, cfg) if cfg.use_peft else ac.policy
    save_model(saved, tokenizer, run.path)
    summary = {"stage": "ppo", "reward": rewarder.source, "prompts": len(prompts.ids), "rollout_rows": rows,
               "steps_per_rollout": spr, "value_model": cfg.value_model, "peft": cfg.use_peft,
               "final_kl_coef": state["kl_coef"], "last_rollout": buf.metrics if buf else None, **timing}
    run.write_summary(summary)
    return summary
