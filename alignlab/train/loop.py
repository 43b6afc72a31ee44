"""The mechanics every training stage shares, written once.

A stage builds its model and data, then writes its own visible loop:

    loop = TrainLoop(cfg, model, run, total_steps=..., description="sft")
    for step in loop.remaining_steps():          # starts after the last checkpoint on --resume
        for micro_batch in batches_for(step):     # data order must be a function of (seed, step)
            with loop.forward_context():          # bf16 autocast, fused Llama norm/RoPE
                loss, metrics = ...
            loop.backward(loss)                   # divides by gradient_accumulation_steps
        loop.optimizer_step(metrics, tokens=n)    # clip, step, schedule, log, checkpoint
    loop.finish()

What lives here: AdamW (fused where the build supports it), warmup + cosine/linear/constant schedule,
gradient clipping and accumulation, thread count, bf16 autocast and fused Llama ops around each training
forward, metrics.jsonl rows, a rich progress bar, checkpoints with optimiser and RNG state, and bit-for-bit
resume. Metrics are accumulated as tensors and read back to the host only on logging steps.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from alignlab.config import CommonConfig, option
from alignlab.errors import UsageError
from alignlab.io import atomic_write_json, read_json
from alignlab.models.fused_ops import fused_llama_ops
from alignlab.rundir import RunDir
from alignlab.train.progress import ProgressBar

TIMING_KEYS = ("tokens_per_s", "elapsed_s")  # the only metrics that differ between identical runs


def fast_bf16_available() -> bool:
    """Whether bf16 matmuls run in hardware here: a CUDA device with bf16, or a CPU with AMX / AVX512-BF16.

    Elsewhere bf16 is emulated: on an AVX2-only CPU a bf16 matmul measured ~75x slower than fp32.
    """
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


FAST_BF16 = fast_bf16_available()


@dataclass
class TrainingConfig(CommonConfig):
    """Optimisation fields shared by every training stage (names follow TRL / HF TrainingArguments)."""

    output_dir: str = option("runs/train", "run directory: config, metrics, checkpoints, the model")
    overwrite: bool = option(False, "replace a non-empty output_dir")
    resume: bool = option(False, "continue from the last checkpoint in output_dir")
    learning_rate: float = option(1e-3, "peak learning rate")
    weight_decay: float = option(0.1, "AdamW weight decay (not applied to norms and biases)")
    adam_beta1: float = option(0.9, "AdamW beta1")
    adam_beta2: float = option(0.95, "AdamW beta2")
    lr_scheduler_type: str = option("cosine", "learning-rate schedule after warmup", ("cosine", "linear", "constant"))
    warmup_ratio: float = option(0.05, "fraction of steps with linear warmup")
    min_lr_ratio: float = option(0.0, "final learning rate as a fraction of the peak (cosine/linear)")
    max_grad_norm: float = option(1.0, "gradient clipping norm; 0 disables")
    per_device_train_batch_size: int = option(16, "sequences per micro-batch")
    gradient_accumulation_steps: int = option(1, "micro-batches per optimiser step")
    max_steps: int = option(-1, "optimiser steps; -1 = derived from num_train_epochs")
    num_train_epochs: float = option(1.0, "passes over the training data when max_steps is -1")
    logging_steps: int = option(10, "write a metrics.jsonl row every N steps")
    save_steps: int = option(0, "checkpoint every N steps (0 = only at the end)")
    save_total_limit: int = option(1, "checkpoints kept on disk")
    bf16: bool = option(FAST_BF16, "bf16 autocast for forward/backward (fp32 master weights); "
                        "defaults to true only where bf16 runs in hardware (AMX, AVX512-BF16, CUDA)")
    device: str = option("auto", "cpu, cuda, or auto (cuda when available)")
    torch_compile: bool = option(False, "torch.compile each decoder layer (dynamic shapes): ~15 s of compiling, "
                                 "then training steps measured 6-26% faster on a 2-core CPU; pays on long runs")
    fused_ops: bool = option(True, "Llama's RMSNorm and RoPE as two fused autograd functions in training forwards "
                             "(models/fused_ops.py): same values, ~8% faster steps on a 2-core CPU; off under "
                             "--torch_compile and gradient checkpointing")
    report_to: str = option("none", "also send every metrics row to TensorBoard (events in output_dir/tensorboard; "
                            "needs the tensorboard package)", ("none", "tensorboard"))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device: {name} requested but no CUDA device is available")
    return torch.device(name)


def set_threads(num_threads: int) -> int:
    n = num_threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_optimizer(params, cfg: TrainingConfig) -> torch.optim.AdamW:
    """AdamW with weight decay only on matrices (norm gains and biases are not decayed)."""
    params = [p for p in params if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]], lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2),
        fused=True,
    )


def lr_lambda(cfg: TrainingConfig, total_steps: int):
    """Multiplier of the peak rate at a step: linear warmup, then the chosen decay to min_lr_ratio."""
    warmup = int(round(cfg.warmup_ratio * total_steps))
    floor = cfg.min_lr_ratio

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.lr_scheduler_type == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        shape = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.lr_scheduler_type == "cosine" else 1 - progress
        return floor + (1 - floor) * shape

    return f


def total_steps(cfg: TrainingConfig, micro_batches_per_epoch: float) -> int:
    """Optimiser steps of a run: --max_steps when set, else num_train_epochs passes over the data."""
    if cfg.max_steps > 0:
        return cfg.max_steps
    return max(1, math.ceil(cfg.num_train_epochs * micro_batches_per_epoch / cfg.gradient_accumulation_steps))


def batch_indices(n_items: int, step: int, batch_size: int, seed: int) -> torch.Tensor:
    """Indices of the items of one micro-batch: a fresh permutation per epoch, a pure function of (seed, step)."""
    first = step * batch_size
    epoch = first // n_items
    perm = torch.randperm(n_items, generator=torch.Generator().manual_seed(seed * 1000 + epoch))
    idx = torch.arange(first, first + batch_size) % n_items
    # A batch that straddles an epoch boundary takes its tail from the next epoch's permutation.
    if (first + batch_size - 1) // n_items != epoch:
        nxt = torch.randperm(n_items, generator=torch.Generator().manual_seed(seed * 1000 + epoch + 1))
        return torch.where(torch.arange(first, first + batch_size) // n_items == epoch, perm[idx], nxt[idx])
    return perm[idx]


def tensorboard_writer(cfg: TrainingConfig, run: RunDir):
    """A SummaryWriter into output_dir/tensorboard for `--report_to tensorboard`, else None."""
    if getattr(cfg, "report_to", "none") != "tensorboard":
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UsageError("--report_to tensorboard: the tensorboard package is not installed "
                         "(pip install tensorboard)") from None
    return SummaryWriter(log_dir=str(run.path / "tensorboard"))


def compile_decoder_layers(model: torch.nn.Module) -> None:
    """`torch.compile` every decoder layer of `model` in place.

    `nn.Module.compile` leaves parameter names alone, so checkpoints and `save_pretrained` are unchanged; the
    layers share one code object, so one compiled graph (with dynamic sequence lengths) serves them all.
    Layers are the children of every `ModuleList` named `layers` (Llama, Mistral, Qwen...) or `h` (GPT-2).
    """
    lists = [m for name, m in model.named_modules()
             if isinstance(m, torch.nn.ModuleList) and name.rsplit(".", 1)[-1] in ("layers", "h")]
    if not lists:
        raise UsageError(f"--torch_compile: no decoder layers (a ModuleList named 'layers' or 'h') in "
                         f"{type(model).__name__}")
    # Layers differ in an integer attribute (layer_idx, read by the KV cache when evaluating); as a guard it
    # would compile a graph per layer and soon hit dynamo's recompile limit, falling back to eager.
    torch._dynamo.config.allow_unspec_int_on_nn_module = True
    for layers in lists:
        for layer in layers:
            layer.compile(dynamic=True)


class TrainLoop:
    """Optimiser, schedule, logging, progress and checkpoints for one training run."""

    def __init__(self, cfg: TrainingConfig, model: torch.nn.Module, run: RunDir, total_steps: int,
                 description: str = "train", schedule: Callable[[int], float] | None = None):
        """`schedule`: multiplier of --learning_rate at each step; warmup + --lr_scheduler_type when None."""
        if total_steps <= 0:
            raise UsageError("--max_steps: the run has no optimiser steps (empty dataset or max_steps 0)")
        self.cfg, self.model, self.run, self.total_steps = cfg, model, run, total_steps
        self.device = next(model.parameters()).device
        # Not under compile (the swap would force recompiles) nor activation checkpointing (its recomputation
        # runs after the forward's block, with HF's ops, and would save a different set of tensors).
        checkpointing = any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())
        self._fused_ops = cfg.fused_ops and not cfg.torch_compile and not checkpointing
        if cfg.torch_compile:
            compile_decoder_layers(model)
        self.optimizer = build_optimizer(model.parameters(), cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule or lr_lambda(cfg, total_steps))
        self.step = 0
        self.tokens_seen = 0
        self._window: dict[str, tuple[torch.Tensor, int]] = {}  # metric -> (sum, steps reporting it)
        self._window_steps = 0
        self._window_tokens = 0
        self._window_start = time.perf_counter()
        self._train_seconds = 0.0
        if cfg.resume:
            self._load_latest_checkpoint()
        self.progress = ProgressBar(description, total_steps, enabled=not cfg.quiet, start=self.step)
        self.tensorboard = tensorboard_writer(cfg, run)

    # --- the per-step API -------------------------------------------------------------------
    def remaining_steps(self) -> Iterator[int]:
        """Step indices still to run (0-based); empty when the run already finished."""
        return iter(range(self.step, self.total_steps))

    @contextmanager
    def forward_context(self) -> Iterator[None]:
        """Where every training forward runs: bf16 autocast when on, and the fused Llama ops when they apply."""
        with ExitStack() as stack:
            if self.cfg.bf16:
                stack.enter_context(torch.autocast(device_type=self.device.type, dtype=torch.bfloat16))
            stack.enter_context(fused_llama_ops(self.model, enabled=self._fused_ops))
            yield

    def backward(self, loss: torch.Tensor) -> None:
        (loss / self.cfg.gradient_accumulation_steps).backward()

    def optimizer_step(self, metrics: dict[str, torch.Tensor | float], tokens: int) -> None:
        """Clip, step, advance the schedule; log and checkpoint when due."""
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        if self.cfg.max_grad_norm > 0:
            metrics = {**metrics, "grad_norm": torch.nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm)}
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.tokens_seen += tokens
        self._accumulate(metrics, tokens)
        if self.step % self.cfg.logging_steps == 0 or self.step == self.total_steps:
            self._flush_window(lr)
        if (self.cfg.save_steps and self.step % self.cfg.save_steps == 0) or self.step == self.total_steps:
            self.save_checkpoint()

    def log_eval(self, evaluate) -> dict:
        """Run `evaluate() -> metrics` and log them; its time does not count against training throughput."""
        tick = time.perf_counter()
        metrics = evaluate()
        self.log(metrics)
        self._window_start += time.perf_counter() - tick
        return metrics

    def log(self, metrics: dict[str, float]) -> None:
        """An extra metrics row at the current step (e.g. held-out loss)."""
        row = {"step": self.step, "tokens_seen": self.tokens_seen, **{k: _to_float(v) for k, v in metrics.items()}}
        self._emit(row)

    def should(self, every: int) -> bool:
        return every > 0 and (self.step % every == 0 or self.step == self.total_steps)

    def finish(self) -> dict:
        self.progress.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
        return {"steps": self.step, "tokens_seen": self.tokens_seen, "train_seconds": round(self._train_seconds, 2),
                "tokens_per_s": round(self.tokens_seen / max(self._train_seconds, 1e-9), 1)}

    # --- logging ----------------------------------------------------------------------------
    def _accumulate(self, metrics: dict, tokens: int) -> None:
        # Each metric is averaged over the steps that reported it (a KTO step may lack one side).
        for k, v in metrics.items():
            v = v.detach().float() if torch.is_tensor(v) else torch.tensor(float(v))
            total, count = self._window.get(k, (0.0, 0))
            self._window[k] = (total + v, count + 1)
        self._window_steps += 1
        self._window_tokens += tokens

    def _emit(self, row: dict) -> None:
        """One metrics row to metrics.jsonl, the progress bar and, if asked for, TensorBoard."""
        self.run.append_metrics(row)
        self.progress.update(self.step, row)
        if self.tensorboard is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, int | float):
                    self.tensorboard.add_scalar(key, value, self.step)

    def _flush_window(self, lr: float) -> None:
        elapsed = time.perf_counter() - self._window_start
        self._train_seconds += elapsed
        row = {"step": self.step, "lr": lr, "tokens_seen": self.tokens_seen}
        row.update({k: _to_float(total) / count for k, (total, count) in self._window.items()})
        row["tokens_per_s"] = round(self._window_tokens / max(elapsed, 1e-9), 1)
        row["elapsed_s"] = round(self._train_seconds, 2)
        self._emit(row)
        self._window, self._window_steps, self._window_tokens = {}, 0, 0
        self._window_start = time.perf_counter()

    # --- checkpoints ------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """checkpoint-STEP/state.pt with trainable weights, optimiser, schedule and RNG state."""
        tick = time.perf_counter()
        final = self.run.path / f"checkpoint-{self.step}"
        tmp = self.run.path / f".checkpoint-{self.step}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        trainable = {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}
        torch.save({
            "model": trainable,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()},
            # A logging window may straddle the checkpoint; its partial sums make the resumed row identical.
            "log_window": {"sums": self._window, "steps": self._window_steps},
        }, tmp / "state.pt")
        atomic_write_json(tmp / "trainer_state.json", {
            "step": self.step, "tokens_seen": self.tokens_seen, "total_steps": self.total_steps,
            "train_seconds": self._train_seconds,
        })
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        self._prune_checkpoints()
        self._window_start += time.perf_counter() - tick  # checkpoint time is not training throughput
        return final

    def _checkpoints(self) -> list[Path]:
        found = [p for p in self.run.path.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[1].isdigit()]
        return sorted(found, key=lambda p: int(p.name.split("-")[1]))

    def _prune_checkpoints(self) -> None:
        for old in self._checkpoints()[: -max(1, self.cfg.save_total_limit)]:
            shutil.rmtree(old, ignore_errors=True)

    def _load_latest_checkpoint(self) -> None:
        checkpoints = self._checkpoints()
        if not checkpoints:
            return  # --resume on a fresh directory starts from scratch
        ckpt = checkpoints[-1]
        state = torch.load(ckpt / "state.pt", weights_only=False)
        trainer_state = read_json(ckpt / "trainer_state.json")
        if trainer_state["total_steps"] != self.total_steps:
            raise UsageError(f"--resume: {ckpt} belongs to a run of {trainer_state['total_steps']} steps, "
                             f"this config gives {self.total_steps}")
        missing = set(n for n, p in self.model.named_parameters() if p.requires_grad) - set(state["model"])
        if missing:
            raise UsageError(f"--resume: {ckpt} lacks trainable weights such as {sorted(missing)[0]}")
        with torch.no_grad():
            params = dict(self.model.named_parameters())
            for name, value in state["model"].items():
                params[name].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
        np.random.set_state(state["rng"]["numpy"])
        self._window = state["log_window"]["sums"]
        self._window_steps = state["log_window"]["steps"]
        self.step = trainer_state["step"]
        self.tokens_seen = trainer_state["tokens_seen"]
        self._train_seconds = trainer_state["train_seconds"]
        self.run.truncate_metrics(self.step)


def _to_float(v) -> float:
    return float(v.item()) if torch.is_tensor(v) else float(v)
