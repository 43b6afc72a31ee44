"""Offline preference optimisation on (prompt, chosen, rejected) pairs: DPO and its family, SimPO, ORPO.

The losses are pure functions in `alignlab/objectives/preference.py`, picked by `--loss_type` through its
`LOSSES` dict (sigmoid = DPO, cdpo, robust, hinge, ipo, rpo, simpo, orpo); this module only feeds them.

One step, for B pairs:
1. one concatenated forward over (2B, L) rows — prompt+chosen rows, then prompt+rejected rows, right-padded
   (causal attention never looks right, so padding needs no mask and positions start at 0 on every row);
2. the LM head only at completion positions (as `lm_loss.py`), `objectives.lm.label_logps`, summed per row
   (and the completion lengths, which IPO, SimPO, ORPO and RPO's NLL divide by);
3. the reference's summed log-probs come from a cache computed once before training (`ref_cache.py`);
   reference-free losses (SimPO, ORPO) never touch a reference.

Logged per step under TRL DPOTrainer's names: loss, rewards/chosen, rewards/rejected, rewards/accuracies,
rewards/margins, logps/chosen, logps/rejected; for rpo/orpo also nll_loss (and orpo's log_odds_ratio); and
`kl/k1_chosen`, a KL-to-reference proxy: the per-token mean of log pi - log pi_ref over the chosen tokens
of the batch (the k1 estimator of Schulman 2020). It is *not* an unbiased KL(pi || pi_ref): the tokens come
from the dataset, not from pi, so it can be negative; `alignlab eval kl` samples from the policy instead.

Memory (tiny preset, LoRA r=16, 8 pairs of ~40+70 tokens, 1 thread; peak RSS): inference of the model plus
the adapter's AdamW state 468 MiB; LoRA DPO 794-824 MiB, 633-650 MiB with `--gradient_checkpointing`
(which cuts the autograd-saved activations from 162 MiB to 18 MiB). Most of what remains is freed memory
glibc keeps: with MALLOC_MMAP_THRESHOLD_=65536 the numbers are 426 vs 459 MiB (1.08x), at about half the
speed. The reference pass runs `precompute_ref_batch_size` pairs at a time, so keep it near the training
batch for memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from alignlab.config import option
from alignlab.data import PREFERENCE_KINDS, PreferenceExample, load_dataset, tokenize_preference
from alignlab.errors import UsageError
from alignlab.models import count_parameters, load_causal_lm, load_tokenizer, save_model
from alignlab.objectives.lm import label_logps
from alignlab.objectives.preference import (
    LOSS_HPARAMS,
    LOSSES,
    REFERENCE_FREE,
    PairedLogps,
    orpo_log_odds_ratio,
    preference_metrics,
)
from alignlab.rundir import RunDir
from alignlab.train.lm_loss import hidden_states, unwrap_causal_lm
from alignlab.train.loop import (
    TrainingConfig,
    TrainLoop,
    batch_indices,
    resolve_device,
    seed_everything,
    set_threads,
    total_steps,
)
from alignlab.train.lora import LoraOptions, apply_lora, finalise_lora
from alignlab.train.ref_cache import ReferenceOptions, reference_logps, rows_digest


@dataclass
class DpoConfig(TrainingConfig, LoraOptions, ReferenceOptions):
    stage: ClassVar[str] = "dpo"

    output_dir: str = option("runs/dpo", "run directory: config, metrics, reference cache, the model")
    model_name_or_path: str = option("runs/sft", "local model directory to start from (usually the SFT model)")
    dataset: str | None = option(None, "preference file in TRL format (.jsonl/.json/.parquet or datasets dir)")
    loss_type: str = option("sigmoid", "preference loss (objectives.preference.LOSSES)", tuple(LOSSES))
    beta: float = option(0.1, "KL strength: DPO's beta (IPO's tau, ORPO's lambda, SimPO's reward scale)")
    label_smoothing: float = option(0.0, "assumed label-flip rate for cdpo and robust")
    rpo_alpha: float = option(1.0, "weight of the chosen NLL term in rpo")
    simpo_gamma: float = option(0.5, "target reward margin of simpo")
    learning_rate: float = option(1e-4, "peak learning rate (TRL's 1e-6 barely moves a 5M-parameter model)")
    weight_decay: float = option(0.0, "AdamW weight decay (TRL's default 0)")
    per_device_train_batch_size: int = option(8, "pairs per micro-batch (2x rows in the forward)")
    logging_steps: int = option(10, "write a metrics.jsonl row every N steps")


@dataclass
class OrpoConfig(DpoConfig):
    """ORPO (Hong et al. 2024): SFT and preference in one reference-free loss; no reference model."""

    stage: ClassVar[str] = "orpo"

    output_dir: str = option("runs/orpo", "run directory: config, metrics, the model")
    model_name_or_path: str = option("runs/pretrain", "local model directory (ORPO can start from a base model)")
    loss_type: str = option("orpo", "reference-free preference loss", tuple(sorted(REFERENCE_FREE)))


# --- rows and log-probs ------------------------------------------------------------------------------

def collate_rows(prompts: list[list[int]], completions: list[list[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Right-pad prompt+completion rows: input_ids (R, L) long, completion_mask (R, L) bool."""
    width = max(len(p) + len(c) for p, c in zip(prompts, completions, strict=True))
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    completion_mask = torch.zeros((len(prompts), width), dtype=torch.bool)
    for r, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        input_ids[r, : len(p) + len(c)] = torch.tensor(p + c)
        completion_mask[r, len(p) : len(p) + len(c)] = True
    return input_ids, completion_mask


def completion_logps(model, input_ids: Tensor, completion_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Summed log-prob of the completion tokens of each row, and how many there are.

    input_ids, completion_mask: (R, L); every completion must follow at least one prompt token.
    Returns sums (R,) float32 (differentiable) and lengths (R,) long.
    """
    hidden = hidden_states(model, input_ids)[:, :-1]  # (R, L-1, H): position t predicts token t+1
    keep = completion_mask[:, 1:]  # (R, L-1)
    head = unwrap_causal_lm(model).get_output_embeddings()
    logits = head(hidden[keep])  # (N, V) at completion positions only
    token_logps = label_logps(logits, input_ids[:, 1:][keep])  # (N,) float32
    rows = torch.arange(len(input_ids), device=input_ids.device).unsqueeze(1).expand_as(keep)[keep]
    sums = torch.zeros(len(input_ids), device=token_logps.device).index_add(0, rows, token_logps)
    return sums, keep.sum(1)


def concatenated_logps(model, examples: list[PreferenceExample], idx: Tensor, pad_id: int) -> dict[str, Tensor]:
    """One forward over the chosen rows then the rejected rows of the pairs `idx`: each output (B,)."""
    pairs = [examples[i] for i in idx.tolist()]
    prompts = [e.prompt_ids for e in pairs] * 2
    completions = [e.chosen_ids for e in pairs] + [e.rejected_ids for e in pairs]
    device = next(model.parameters()).device
    input_ids, mask = collate_rows(prompts, completions, pad_id)
    sums, lengths = completion_logps(model, input_ids.to(device), mask.to(device))
    b = len(pairs)
    return {"chosen": sums[:b], "rejected": sums[b:], "chosen_lengths": lengths[:b], "rejected_lengths": lengths[b:]}


def require_prompts(prompts: list[list[int]], path: str) -> None:
    """The first completion token is predicted from the prompt's last token, so a prompt needs one."""
    for number, ids in enumerate(prompts, start=1):
        if not ids:
            raise UsageError(f"{path}: record {number}: field 'prompt': no tokens after tokenization; the first "
                             "completion token needs at least one token before it (give a non-empty prompt)")


# --- the loss of one micro-batch -------------------------------------------------------------------

EXTRA_METRICS = {
    "rpo": lambda b: {"nll_loss": -b.chosen_mean().mean()},
    "orpo": lambda b: {"nll_loss": -b.chosen_mean().mean(), "log_odds_ratio": orpo_log_odds_ratio(b).mean()},
}


def preference_loss(cfg: DpoConfig, b: PairedLogps) -> tuple[Tensor, dict[str, float]]:
    """Mean loss of the chosen `loss_type` over the batch and its detached metrics."""
    fn = LOSSES[cfg.loss_type]
    out = fn(b, beta=cfg.beta, **{k: getattr(cfg, k) for k in LOSS_HPARAMS[cfg.loss_type]})
    loss = out.losses.mean()
    metrics = {"loss": loss.item(), **preference_metrics(out, b)}
    with torch.no_grad():
        metrics.update({k: float(v) for k, v in EXTRA_METRICS.get(cfg.loss_type, lambda _: {})(b).items()})
        if b.ref_chosen is not None:
            metrics["kl/k1_chosen"] = ((b.policy_chosen - b.ref_chosen).sum() / b.chosen_lengths.sum()).item()
    return loss, metrics


def paired_batch(policy: dict[str, Tensor], ref: dict[str, Tensor] | None, idx: Tensor) -> PairedLogps:
    device = policy["chosen"].device
    return PairedLogps(
        policy["chosen"], policy["rejected"],
        None if ref is None else ref["chosen"][idx].to(device),
        None if ref is None else ref["rejected"][idx].to(device),
        policy["chosen_lengths"], policy["rejected_lengths"],
    )


# --- the stage ----------------------------------------------------------------------------------------

def load_policy(cfg, device: torch.device):
    """The model to train: loaded, optionally with activation checkpointing, optionally LoRA-wrapped."""
    model = load_causal_lm(cfg.model_name_or_path).to(device)
    if cfg.gradient_checkpointing:
        # use_reentrant=False: gradients reach the LoRA weights without the inputs requiring grad.
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable({"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return apply_lora(model, cfg) if cfg.use_peft else model


def load_pairs(cfg: DpoConfig, tokenizer) -> tuple[list[PreferenceExample], str]:
    if not cfg.dataset:
        raise UsageError("--dataset: required: a preference file in TRL format (prompt/chosen/rejected)")
    records, kind = load_dataset(cfg.dataset, allowed=PREFERENCE_KINDS, purpose=f"{cfg.stage}")
    examples = tokenize_preference(records, tokenizer, cfg.max_prompt_length, cfg.max_completion_length,
                                   cfg.truncation, path=cfg.dataset, kind=kind)
    require_prompts([e.prompt_ids for e in examples], cfg.dataset)
    return examples, kind


def pair_reference(cfg: DpoConfig, model, examples, pad_id: int) -> tuple[dict | None, str]:
    """Cached reference log-probs {"chosen", "rejected"} (N,), and how they were obtained."""
    if cfg.loss_type in REFERENCE_FREE:
        return None, "none (reference-free loss)"
    device = next(model.parameters()).device

    def score(ref, idx):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            out = concatenated_logps(ref, examples, idx, pad_id)
        return {"chosen": out["chosen"], "rejected": out["rejected"]}

    digest = rows_digest({"prompt": [e.prompt_ids for e in examples], "chosen": [e.chosen_ids for e in examples],
                          "rejected": [e.rejected_ids for e in examples]})
    tensors, hit = reference_logps(
        model, model_dir=cfg.model_name_or_path, ref_dir=cfg.ref_model_name_or_path,
        cache_path=cfg.ref_cache_path(), digest=digest, n_items=len(examples),
        batch_size=cfg.precompute_ref_batch_size, score_batch=score, bf16=cfg.bf16,
        meta={"dataset": str(cfg.dataset), "kind": "pairs"})
    return tensors, "cache hit" if hit else "computed"


def run_dpo(cfg: DpoConfig) -> dict:
    if cfg.loss_type not in LOSSES:
        raise UsageError(f"--loss_type: must be one of {', '.join(LOSSES)}; got {cfg.loss_type!r}")
    run = RunDir.claim(cfg.output_dir, cfg.overwrite, cfg.resume)
    set_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    tokenizer = load_tokenizer(cfg.model_name_or_path)
    examples, kind = load_pairs(cfg, tokenizer)
    model = load_policy(cfg, resolve_device(cfg.device))
    pad_id = tokenizer.pad_token_id
    ref, how = pair_reference(cfg, model, examples, pad_id)  # before TrainLoop restores any checkpoint
    size, accum = cfg.per_device_train_batch_size, cfg.gradient_accumulation_steps
    per_epoch = math.ceil(len(examples) / size)
    total = total_steps(cfg, per_epoch)
    run.write_config(cfg, {"resolved": {"stage": cfg.stage, "total_steps": total, "pairs": len(examples),
                                        "format": kind, "reference": how, "parameters": count_parameters(model)}})

    loop = TrainLoop(cfg, model, run, total, description=cfg.stage)
    model.train()
    for step in loop.remaining_steps():
        step_metrics: dict[str, float] = {}
        tokens = 0
        for micro in range(accum):
            idx = batch_indices(len(examples), step * accum + micro, size, cfg.seed)
            with loop.forward_context():
                policy = concatenated_logps(model, examples, idx, pad_id)
            loss, metrics = preference_loss(cfg, paired_batch(policy, ref, idx))
            loop.backward(loss)
            for k, v in metrics.items():
                step_metrics[k] = step_metrics.get(k, 0.0) + v / accum
            tokens += int((policy["chosen_lengths"] + policy["rejected_lengths"]).sum())
            tokens += 2 * sum(len(examples[i].prompt_ids) for i in idx.tolist())
        loop.optimizer_step(step_metrics, tokens=tokens)
    timing = loop.finish()

    saved = finalise_lora(model, cfg) if cfg.use_peft else model
    save_model(saved, tokenizer, run.path)
    summary = {"stage": cfg.stage, "loss_type": cfg.loss_type, "beta": cfg.beta, "pairs": len(examples),
               "format": kind, "reference": how, "peft": cfg.use_peft, "merged": cfg.use_peft and cfg.merge_adapter,
               **timing}
    run.write_summary(summary)
    return summary


def run_orpo(cfg: OrpoConfig) -> dict:
    """ORPO is `run_dpo` with a reference-free loss; its own command only for discoverability."""
    return run_dpo(cfg)
