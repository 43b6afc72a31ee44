"""KTO on unpaired data: (prompt, completion, label) with label = desirable or not (Ethayarajh et al. 2024).

The loss is `objectives.preference.kto_loss`; this module feeds it. Its reference point z0 estimates
KL(pi || pi_ref) from *mismatched* pairs (x_i, y_j), a completion placed after another example's prompt,
as in the paper (sec. 4.1) and TRL's KTOTrainer: z0 = max(0, mean over the batch of log pi(y_j|x_i) -
log pi_ref(y_j|x_i)), with no gradient. The partner j of every example is fixed once (a seeded shuffle,
each example paired with the next one whose prompt differs), as TRL fixes its shifted completions when it
prepares the dataset, so the reference log-probs of both the matched and the mismatched rows are computed
once and cached (`ref_cache.py`). Per step: one forward with gradients over the B matched rows, one
no-grad forward over the B mismatched rows.

Logged under TRL's names: loss, kl (the z0 used), rewards/chosen, rewards/rejected, rewards/margins,
logps/chosen, logps/rejected (chosen = desirable); a side with no example in a batch is left out of it.
Caveat: the training loop averages each metric over the steps of a logging window, so when a micro-batch
has no desirable (or no undesirable) example its rewards/logps for that side are missing from that step and
the window mean is pulled toward 0 (TRL keeps per-side sums and counts instead); keep batches mixed.
Left out: TRL's `apo_zero_unpaired` loss and the KL-free variant (`calculate_KL=False`).
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass

import torch
from torch import Tensor

from alignlab.config import option
from alignlab.data import UNPAIRED_KINDS, UnpairedExample, load_dataset, tokenize_unpaired
from alignlab.errors import UsageError
from alignlab.models import count_parameters, load_tokenizer, save_model
from alignlab.objectives.preference import kto_kl_reference, kto_loss, kto_metrics
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
from alignlab.train.preference import collate_rows, completion_logps, load_policy, require_prompts
from alignlab.train.ref_cache import ReferenceOptions, reference_logps, rows_digest

log = logging.getLogger(__name__)


@dataclass
class KtoConfig(TrainingConfig, LoraOptions, ReferenceOptions):
    output_dir: str = option("runs/kto", "run directory: config, metrics, reference cache, the model")
    model_name_or_path: str = option("runs/sft", "local model directory to start from (usually the SFT model)")
    dataset: str | None = option(None, "unpaired preference file in TRL format (prompt, completion, label)")
    beta: float = option(0.1, "KL strength beta")
    desirable_weight: float = option(1.0, "lambda_D, the weight of desirable examples")
    undesirable_weight: float = option(1.0, "lambda_U, the weight of undesirable examples")
    learning_rate: float = option(1e-4, "peak learning rate")
    weight_decay: float = option(0.0, "AdamW weight decay (TRL's default 0)")
    per_device_train_batch_size: int = option(8, "examples per micro-batch (> 1: z0 is a batch mean)")
    logging_steps: int = option(10, "write a metrics.jsonl row every N steps")


def mismatched_partners(prompts: list[list[int]], seed: int) -> list[int]:
    """For each example i a partner j != i whose completion follows i's prompt in the KL estimate.

    Examples are put in a seeded random order and each takes the next one in that cycle whose prompt
    differs from its own (KTO data often holds several completions of one prompt); when every prompt is
    the same, simply the next one.
    """
    n = len(prompts)
    if n < 2:
        raise UsageError("KTO needs at least 2 examples: its KL reference point pairs completions with other prompts")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    partners = [0] * n
    for k, i in enumerate(order):
        candidates = (order[(k + step) % n] for step in range(1, n))
        partners[i] = next((j for j in candidates if prompts[j] != prompts[i]), order[(k + 1) % n])
    return partners


def unpaired_logps(model, prompts: list[list[int]], completions: list[list[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Summed completion log-probs (R,) and completion lengths (R,) of prompt+completion rows."""
    device = next(model.parameters()).device
    input_ids, mask = collate_rows(prompts, completions, pad_id)
    return completion_logps(model, input_ids.to(device), mask.to(device))


class UnpairedData:
    """Tokenized examples with their labels and fixed KL partners, addressed by index tensors."""

    def __init__(self, examples: list[UnpairedExample], seed: int):
        self.examples = examples
        self.partners = mismatched_partners([e.prompt_ids for e in examples], seed)
        self.desirable = torch.tensor([e.label for e in examples])

    def __len__(self) -> int:
        return len(self.examples)

    def rows(self, idx: Tensor) -> tuple[list[list[int]], list[list[int]]]:
        ex = [self.examples[i] for i in idx.tolist()]
        return [e.prompt_ids for e in ex], [e.completion_ids for e in ex]

    def kl_rows(self, idx: Tensor) -> tuple[list[list[int]], list[list[int]]]:
        ex = [self.examples[i] for i in idx.tolist()]
        return [e.prompt_ids for e in ex], [self.examples[self.partners[i]].completion_ids for i in idx.tolist()]

    def digest(self) -> str:
        all_idx = torch.arange(len(self))
        prompts, completions = self.rows(all_idx)
        return rows_digest({"prompt": prompts, "completion": completions, "kl_completion": self.kl_rows(all_idx)[1]})


def check_balance(data: UnpairedData, cfg: KtoConfig) -> None:
    """The paper recommends lambda_D n_D / (lambda_U n_U) in [1, 4/3] (Ethayarajh et al. 2024, eq. 9)."""
    n_d = int(data.desirable.sum())
    n_u = len(data) - n_d
    if n_d == 0 or n_u == 0:
        log.warning("KTO: the dataset has only %s examples", "undesirable" if n_d == 0 else "desirable")
        return
    ratio = cfg.desirable_weight * n_d / (cfg.undesirable_weight * n_u)
    if not 1.0 <= ratio <= 4 / 3:
        log.warning("KTO: desirable_weight * %d / (undesirable_weight * %d) = %.2f is outside the recommended "
                    "[1, 4/3]", n_d, n_u, ratio)


def kto_reference(cfg: KtoConfig, model, data: UnpairedData, pad_id: int) -> tuple[dict, str]:
    """Cached reference log-probs {"completion", "kl"} (N,) and whether they were a cache hit."""
    device = next(model.parameters()).device

    def score(ref, idx):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            return {"completion": unpaired_logps(ref, *data.rows(idx), pad_id)[0],
                    "kl": unpaired_logps(ref, *data.kl_rows(idx), pad_id)[0]}

    tensors, hit = reference_logps(
        model, model_dir=cfg.model_name_or_path, ref_dir=cfg.ref_model_name_or_path,
        cache_path=cfg.ref_cache_path(), digest=data.digest(), n_items=len(data),
        batch_size=cfg.precompute_ref_batch_size, score_batch=score, bf16=cfg.bf16,
        meta={"dataset": str(cfg.dataset), "kind": "unpaired"})
    return tensors, "cache hit" if hit else "computed"


def kto_step_loss(cfg: KtoConfig, model, data: UnpairedData, ref: dict, idx: Tensor, pad_id: int, forward_context):
    """Loss and metrics of one micro-batch: a graded forward on matched rows, a no-grad one on mismatched."""
    with forward_context():
        logps, _ = unpaired_logps(model, *data.rows(idx), pad_id)
        with torch.no_grad():
            kl_logps, _ = unpaired_logps(model, *data.kl_rows(idx), pad_id)
    device = logps.device
    z0 = kto_kl_reference(kl_logps, ref["kl"][idx].to(device))
    desirable = data.desirable[idx].to(device)
    out = kto_loss(logps, ref["completion"][idx].to(device), desirable, z0, beta=cfg.beta,
                   desirable_weight=cfg.desirable_weight, undesirable_weight=cfg.undesirable_weight)
    loss = out.losses.mean()
    return loss, {"loss": loss.item(), **kto_metrics(out, logps, desirable)}


def run_kto(cfg: KtoConfig) -> dict:
    run = RunDir.claim(cfg.output_dir, cfg.overwrite, cfg.resume)
    set_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    tokenizer = load_tokenizer(cfg.model_name_or_path)
    if not cfg.dataset:
        raise UsageError("--dataset: required: an unpaired preference file in TRL format (prompt/completion/label)")
    records, kind = load_dataset(cfg.dataset, allowed=UNPAIRED_KINDS, purpose="kto")
    examples = tokenize_unpaired(records, tokenizer, cfg.max_prompt_length, cfg.max_completion_length,
                                 cfg.truncation, path=cfg.dataset, kind=kind)
    require_prompts([e.prompt_ids for e in examples], cfg.dataset)
    data = UnpairedData(examples, cfg.seed)
    check_balance(data, cfg)
    model = load_policy(cfg, resolve_device(cfg.device))
    pad_id = tokenizer.pad_token_id
    ref, how = kto_reference(cfg, model, data, pad_id)  # before TrainLoop restores any checkpoint
    size, accum = cfg.per_device_train_batch_size, cfg.gradient_accumulation_steps
    per_epoch = math.ceil(len(data) / size)
    total = total_steps(cfg, per_epoch)
    run.write_config(cfg, {"resolved": {"stage": "kto", "total_steps": total, "examples": len(data),
                                        "desirable": int(data.desirable.sum()), "format": kind, "reference": how,
                                        "parameters": count_parameters(model)}})

    loop = TrainLoop(cfg, model, run, total, description="kto")
    model.train()
    for step in loop.remaining_steps():
        step_metrics: dict[str, float] = {}
        tokens = 0
        for micro in range(accum):
            idx = batch_indices(len(data), step * accum + micro, size, cfg.seed)
            loss, metrics = kto_step_loss(cfg, model, data, ref, idx, pad_id, loop.forward_context)
            loop.backward(loss)
            for k, v in metrics.items():
                step_metrics[k] = step_metrics.get(k, 0.0) + v / accum
            tokens += sum(len(p) + len(c) for p, c in zip(*data.rows(idx), strict=True))
        loop.optimizer_step(step_metrics, tokens=tokens)
    timing = loop.finish()

    saved = finalise_lora(model, cfg) if cfg.use_peft else model
    save_model(saved, tokenizer, run.path)
    summary = {"stage": "kto", "beta": cfg.beta, "examples": len(data), "format": kind, "reference": how,
               "peft": cfg.use_peft, "merged": cfg.use_peft and cfg.merge_adapter, **timing}
    run.write_summary(summary)
    return summary
