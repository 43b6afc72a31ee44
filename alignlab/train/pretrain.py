"""Pretraining: next-token prediction of a fresh model on the world corpus or a local corpus.

Steps: read documents → train a byte-level BPE (unless `--tokenizer DIR` is given) → tokenise → hold
out a fraction of the documents → pack the rest into blocks of `context_length` tokens, documents
separated by eos (no padding) → an explicit loop with periodic held-out loss → save the base model.
With `--copy_warmup_steps` the loop first trains on synthetic copy blocks (induction heads form there),
and `--copy_fraction` keeps a share of copy blocks in every corpus batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from alignlab.config import option
from alignlab.data.collate import copy_blocks, pretrain_blocks
from alignlab.errors import UsageError
from alignlab.models import (
    build_model,
    count_parameters,
    load_tokenizer,
    ordinary_token_ids,
    save_model,
    train_tokenizer,
)
from alignlab.rundir import RunDir
from alignlab.train.loop import (
    TrainingConfig,
    TrainLoop,
    batch_indices,
    lr_lambda,
    resolve_device,
    seed_everything,
    set_threads,
    total_steps,
)


@dataclass
class PretrainConfig(TrainingConfig):
    output_dir: str = option("runs/pretrain", "run directory: config, metrics, checkpoints, the base model")
    corpus: str = option("world", "'world' (the built-in or --world spec) or a local .txt / .jsonl file")
    world: str | None = option(None, "world YAML spec; the built-in default when not given")
    world_scale: float = option(1.0, "multiplies every document count of the world")
    text_field: str = option("text", "field holding the document in a .jsonl corpus")
    tokenizer: str | None = option(None, "an existing tokenizer directory; otherwise one is trained")
    vocab_size: int = option(2048, "vocabulary of the trained tokenizer")
    preset: str = option("tiny", "model shape", ("nano", "tiny", "small"))
    context_length: int = option(128, "tokens per packed block")
    heldout_fraction: float = option(0.01, "fraction of documents kept out for held-out loss")
    eval_steps: int = option(100, "held-out loss every N steps (0 = only at the end)")
    eval_blocks: int = option(64, "held-out blocks per evaluation")
    calibration_probes_per_fact: int = option(2, "fact probes per split scored at each evaluation (world corpus "
                                                 "only; 0 = off): the calibration curve against tokens seen")
    learning_rate: float = option(3e-3, "peak learning rate")
    warmup_ratio: float = option(0.03, "fraction of steps with linear warmup")
    per_device_train_batch_size: int = option(32, "blocks per micro-batch")
    num_train_epochs: float = option(1.5, "passes over the training blocks when max_steps is -1")
    logging_steps: int = option(25, "write a metrics.jsonl row every N steps")
    copy_warmup_steps: int = option(0, "optimiser steps on synthetic copy data (random token runs, each said "
                                       "twice) before the corpus, so that induction heads form; they come on "
                                       "top of --max_steps")
    copy_learning_rate: float = option(1e-3, "constant rate of the copy warm-up (after its own warmup): "
                                             "induction formed at 1e-3 and not at 3e-3")
    copy_fraction: float = option(0.0, "share of each corpus batch that is copy data, which keeps the skill "
                                       "alive while the corpus is learnt")


def read_corpus(cfg: PretrainConfig) -> tuple[list[str], dict, object]:
    """Documents of the corpus, what to record about their source, and the world (None for a file)."""
    if cfg.corpus == "world":
        from alignlab.world import load_world

        world = load_world(cfg.world, {"scale": cfg.world_scale} if cfg.world_scale != 1.0 else None)
        return world.corpus(cfg.seed), {"world": world.to_dict()}, world
    path = Path(cfg.corpus)
    if not path.is_file():
        raise UsageError(f"--corpus: no such file {cfg.corpus} (give 'world' or a local .txt/.jsonl file)")
    if path.suffix == ".txt":
        # Blank lines separate documents; a file without them is one document per line.
        text = path.read_text(encoding="utf-8")
        docs = [d.strip() for d in text.split("\n\n")] if "\n\n" in text else text.splitlines()
    elif path.suffix == ".jsonl":
        docs = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise UsageError(f"{path}: line {n}: invalid JSON ({e.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get(cfg.text_field), str):
                raise UsageError(f"{path}: line {n}: field '{cfg.text_field}': missing or not a string")
            docs.append(record[cfg.text_field])
    else:
        raise UsageError(f"--corpus: {path} must end in .txt or .jsonl")
    docs = [d for d in docs if d]
    if not docs:
        raise UsageError(f"--corpus: {path} holds no documents")
    return docs, {"corpus_file": str(path)}, None


def split_documents(docs: list[str], heldout_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(docs), generator=g).tolist()
    n_held = max(1, int(len(docs) * heldout_fraction)) if heldout_fraction > 0 else 0
    return [docs[i] for i in order[n_held:]], [docs[i] for i in order[:n_held]]


def heldout_blocks(docs: list[list[int]], cfg: PretrainConfig, eos_id: int) -> torch.Tensor:
    """Held-out blocks for the periodic loss; none (no held-out loss) when the held-out documents are fewer
    tokens than one block, e.g. with --heldout_fraction 0 or a small corpus."""
    if sum(len(d) + 1 for d in docs) < cfg.context_length:
        return torch.empty(0, cfg.context_length, dtype=torch.long)
    return pretrain_blocks(docs, cfg.context_length, eos_id)[: cfg.eval_blocks]


@torch.no_grad()
def heldout_loss(model, blocks: torch.Tensor, batch_size: int) -> float:
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(blocks), batch_size):
        batch = blocks[i : i + batch_size].to(model.device)
        out = model(input_ids=batch, labels=batch, use_cache=False)
        total += out.loss.item() * batch.numel()
        count += batch.numel()
    model.train()
    return total / max(count, 1)


def calibration_probe(world, tokenizer, cfg: PretrainConfig):
    """A function model -> {"calibration/mae_seen": ..., "calibration/mae_heldout": ...} on fixed fact probes."""
    from alignlab.evals.calibration import exact_probabilities
    from alignlab.evals.metrics import mean_absolute_error

    if world is None or cfg.calibration_probes_per_fact <= 0:
        return None
    probes = {s: world.fact_probes(s, cfg.calibration_probes_per_fact, cfg.seed) for s in ("seen", "heldout")}

    @torch.no_grad()
    def measure(model) -> dict:
        model.eval()
        out = {}
        for split, ps in probes.items():
            q, _ = exact_probabilities(model, tokenizer, ps)
            out[f"calibration/mae_{split}"] = float(mean_absolute_error(q[:, 0], [p.truth[0] for p in ps]))
        model.train()
        return out

    return measure


def two_phase_schedule(cfg: PretrainConfig, corpus_steps: int):
    """LR multiplier: the copy warm-up at a constant copy_learning_rate (after a linear warmup), then the
    usual warmup + decay at learning_rate over the corpus steps."""
    copy_steps = cfg.copy_warmup_steps
    ratio = cfg.copy_learning_rate / cfg.learning_rate
    warmup = max(1, round(cfg.warmup_ratio * copy_steps))
    corpus = lr_lambda(cfg, corpus_steps)
    return lambda step: ratio * min(1.0, (step + 1) / warmup) if step < copy_steps else corpus(step - copy_steps)


def copy_blocks_per_batch(cfg: PretrainConfig) -> int:
    return round(cfg.per_device_train_batch_size * cfg.copy_fraction)


def start_token_id(tokenizer) -> int:
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


class BatchSource:
    """The blocks of each micro-batch, a pure function of (seed, micro-batch index) so that resume is exact:
    copy data during the warm-up, then corpus blocks with `copy_fraction` of each batch still copy data."""

    def __init__(self, blocks: torch.Tensor, cfg: PretrainConfig, tokenizer):
        self.copy_ids = ordinary_token_ids(tokenizer)
        self.bos = start_token_id(tokenizer)
        self.blocks, self.cfg = blocks, cfg
        self.batch = cfg.per_device_train_batch_size
        self.n_copy = copy_blocks_per_batch(cfg)
        self.n_corpus = self.batch - self.n_copy
        self.copy_micro = cfg.copy_warmup_steps * cfg.gradient_accumulation_steps

    def copy(self, n: int, micro: int) -> torch.Tensor:
        return copy_blocks(n, self.blocks.shape[1], self.copy_ids, self.bos, seed=self.cfg.seed * 1_000_003 + micro)

    def __call__(self, micro: int) -> torch.Tensor:
        if micro < self.copy_micro:
            return self.copy(self.batch, micro)
        corpus = self.blocks[batch_indices(len(self.blocks), micro - self.copy_micro, self.n_corpus, self.cfg.seed)]
        return torch.cat([self.copy(self.n_copy, micro), corpus]) if self.n_copy else corpus


def copy_probe(tokenizer, cfg: PretrainConfig):
    """A function model -> {"copy/second_copy_acc": ...}: greedy accuracy on the second half of 32 random
    20-token runs said twice (the in-context copying that induction heads do)."""
    from alignlab.evals.skills import copy_accuracies, repeated_sequences

    ids = repeated_sequences(32, 20, ordinary_token_ids(tokenizer), start_token_id(tokenizer), cfg.seed)

    @torch.no_grad()
    def measure(model) -> dict:
        model.eval()
        logits = model(input_ids=ids.to(model.device), use_cache=False).logits
        model.train()
        return {"copy/second_copy_acc": copy_accuracies(logits.float(), ids.to(model.device), 20)[1]}

    return measure


def check_copy_options(cfg: PretrainConfig) -> None:
    batch = cfg.per_device_train_batch_size
    if not 0 <= cfg.copy_fraction < 1 or copy_blocks_per_batch(cfg) >= batch:
        raise UsageError(f"--copy_fraction: {cfg.copy_fraction} leaves no corpus blocks in a batch of {batch} "
                         "(give a share in [0, 1))")
    if cfg.copy_warmup_steps < 0:
        raise UsageError(f"--copy_warmup_steps: {cfg.copy_warmup_steps} is negative")


def run_pretrain(cfg: PretrainConfig) -> dict:
    check_copy_options(cfg)
    run = RunDir.claim(cfg.output_dir, cfg.overwrite, cfg.resume)
    set_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    docs, source, world = read_corpus(cfg)
    train_docs, held_docs = split_documents(docs, cfg.heldout_fraction, cfg.seed)
    tokenizer = load_tokenizer(cfg.tokenizer, "--tokenizer") if cfg.tokenizer else train_tokenizer(
        train_docs, vocab_size=cfg.vocab_size)
    encode = lambda texts: tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []  # noqa: E731
    blocks = pretrain_blocks(encode(train_docs), cfg.context_length, tokenizer.eos_token_id)
    held = heldout_blocks(encode(held_docs), cfg, tokenizer.eos_token_id)
    if len(blocks) < cfg.per_device_train_batch_size:
        raise UsageError(f"--corpus: only {len(blocks)} blocks of {cfg.context_length} tokens; "
                         f"fewer than one batch of {cfg.per_device_train_batch_size}")

    device = resolve_device(cfg.device)
    model = build_model(cfg.preset, len(tokenizer), cfg.context_length, cfg.seed, tokenizer).to(device)
    batch = cfg.per_device_train_batch_size
    batches = BatchSource(blocks, cfg, tokenizer)
    corpus_steps = total_steps(cfg, len(blocks) // batches.n_corpus)
    total = cfg.copy_warmup_steps + corpus_steps
    params = count_parameters(model)
    run.write_config(cfg, {"resolved": {"total_steps": total, "train_blocks": len(blocks),
                                        "heldout_blocks": len(held), "parameters": params, **source}})

    calibration = calibration_probe(world, tokenizer, cfg)
    copying = copy_probe(tokenizer, cfg)
    loop = TrainLoop(cfg, model, run, total, description="pretrain",
                     schedule=two_phase_schedule(cfg, corpus_steps) if cfg.copy_warmup_steps else None)
    model.train()
    for step in loop.remaining_steps():
        step_loss = 0.0
        for micro in range(cfg.gradient_accumulation_steps):
            x = batches(step * cfg.gradient_accumulation_steps + micro).to(device)
            with loop.forward_context():
                loss = model(input_ids=x, labels=x, use_cache=False).loss  # no KV cache to build while training
            loop.backward(loss)
            step_loss += loss.detach() / cfg.gradient_accumulation_steps
        loop.optimizer_step({"loss": step_loss}, tokens=x.numel() * cfg.gradient_accumulation_steps)
        if len(held) and loop.should(cfg.eval_steps):
            loop.log_eval(lambda: {"eval_loss": heldout_loss(model, held, batch), **copying(model),
                                   **(calibration(model) if calibration else {})})
    timing = loop.finish()

    save_model(model, tokenizer, run.path)
    summary = {"stage": "pretrain", "parameters": params, "train_blocks": len(blocks),
               "final_eval_loss": heldout_loss(model, held, batch) if len(held) else None, **timing}
    run.write_summary(summary)
    return summary
