"""Side-by-side runs of alignlab and TRL: same model, same data, same batches, same optimiser, one JSON line.

A comparison script defines its *sides* (`ours`, `trl`, ...) as functions of a `Context` that train for
`ctx.total_steps` optimiser steps and report through `ctx.clock` when each step ended and what its loss
was. The harness, in the parent process:
1. writes the workload (`bench/workload.py`) into a temporary directory and asks the script for its plan:
   the example indices of every step's batch, in alignlab's order (TRL gets its records in that order
   with a sequential sampler, so both sides see identical batches), and each step's token count;
2. measures the square-matmul peak at the chosen thread count;
3. runs every side in its own fresh process (`python -m bench.bench_X --side NAME`), alternating sides for
   `--rounds` rounds (reversed on odd rounds), so that drift in machine load hits all sides; each child
   reports its own peak RSS (ru_maxrss), which is why the sides never share a process;
4. prints one JSON line per comparison.

Timing: every side runs warmup + steps + 1 steps; the timed window is steps warmup+1 .. warmup+steps, from
the end of the last warm-up step to the end of the last timed step, so model loading, tokenization, a
reference pass and the final save (alignlab checkpoints at its last step) are outside it. Tokens/s counts
the real (non-pad) tokens of the window's batches, the same count for both sides; MFU is
6 · matmul parameters · tokens/s ÷ the measured matmul peak (reference forwards are not counted, so a side
that recomputes them each step shows a lower MFU for the same useful work). Both sides log every step (the
loss trajectory needs it), train on the CPU at the same `--dtype` (fp32, or bf16 autocast over fp32 master
weights; the matmul peak is measured in that dtype), without gradient checkpointing, with AdamW
(beta2 0.95, no weight decay), clipping at 1.0 and a constant learning rate.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench.common import emit, matmul_peak_gflops, peak_rss_gib

CHILD_ENV = {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
             "TOKENIZERS_PARALLELISM": "false", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1",
             "TRANSFORMERS_VERBOSITY": "error"}
ROOT = Path(__file__).resolve().parents[1]  # children run `python -m bench.X` from here
for _key, _value in CHILD_ENV.items():  # before transformers/datasets are imported, in every process
    os.environ.setdefault(_key, _value)


@dataclass
class Clock:
    """When each optimiser step ended (perf_counter) and each step's loss, for one side."""

    start: float = 0.0
    ends: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    logs: list[dict] = field(default_factory=list)  # every row a TRL side logged (not reported)
    tokens: list[int] = field(default_factory=list)  # real tokens of each step, where a side's steps differ

    def begin(self) -> None:
        """Call after the side's imports: `first_step_s` counts loading and data preparation, not imports."""
        self.start = time.perf_counter()

    def tick(self) -> None:
        self.ends.append(time.perf_counter())


@dataclass
class Context:
    """What a side function gets: the parsed arguments, the workload paths and the plan, its clock."""

    args: argparse.Namespace
    workdir: Path
    plan: dict
    side: str
    clock: Clock = field(default_factory=Clock)
    checks: dict = field(default_factory=dict)  # e.g. {"same_tokens": True}: copied into the JSON line

    @property
    def total_steps(self) -> int:
        return self.args.warmup + self.args.steps + 1

    @property
    def run_dir(self) -> Path:
        return self.workdir / f"run-{self.side}"

    def ordered(self, records: list) -> list:
        """`records` in the order alignlab's loop takes them, step by step, then those no step takes: TRL
        gets the whole dataset, so its one-off work (tokenizing, a reference pass) covers what ours does."""
        used = [i for batch in self.plan["batches"] for i in batch]
        seen = set(used)
        return [records[i] for i in used] + [r for i, r in enumerate(records) if i not in seen]


def add_args(parser: argparse.ArgumentParser, learning_rate: float) -> None:
    a = parser.add_argument
    a("--steps", type=int, default=30, help="timed optimiser steps per side and round")
    a("--warmup", type=int, default=3, help="untimed steps before them (at least 1)")
    a("--rounds", type=int, default=2, help="alternating rounds; tokens/s is the median over rounds")
    a("--threads", type=int, default=0, help="torch threads per side (0 = one per core)")
    a("--model-size", default="reference", choices=("reference", "mini"), help="see bench/workload.py")
    a("--pairs", type=int, default=512, help="synthetic records (a multiple of --batch)")
    a("--prompt-tokens", type=int, default=32)
    a("--completion-tokens", type=int, default=64)
    a("--batch", type=int, default=8, help="per step: pairs, SFT examples, or GRPO prompts")
    a("--lr", type=float, default=learning_rate, help="constant learning rate of both sides")
    a("--seed", type=int, default=0)
    a("--dtype", default="fp32", choices=DTYPES, help="both sides: fp32, or bf16 autocast (fp32 master weights)")
    a("--torch-compile", action="store_true",
      help="both sides compile: alignlab's --torch_compile (each decoder layer), TRL's torch_compile=True (the model)")
    a("--no-fused-ops", action="store_true",
      help="alignlab side with transformers' own RMSNorm and RoPE (--fused_ops false), to measure what they give")
    a("--in-process", action="store_true",
      help="run the sides in this process, one after another (fast, for tests; no per-side peak RSS)")
    a("--side", help=argparse.SUPPRESS)  # set in the child processes
    a("--workdir", help=argparse.SUPPRESS)


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def threads_of(args) -> int:
    return args.threads or len(os.sched_getaffinity(0))


# --- alignlab and TRL settings that both sides share -------------------------------------------------

def ours_options(ctx: Context) -> dict:
    """TrainingConfig fields of an alignlab side."""
    a = ctx.args
    return dict(output_dir=str(ctx.run_dir), overwrite=True, seed=a.seed, num_threads=threads_of(a), quiet=True,
                learning_rate=a.lr, weight_decay=0.0, adam_beta2=0.95, lr_scheduler_type="constant",
                warmup_ratio=0.0, max_grad_norm=1.0, per_device_train_batch_size=a.batch,
                gradient_accumulation_steps=1, max_steps=ctx.total_steps, logging_steps=1, save_steps=0,
                bf16=a.dtype == "bf16", device="cpu", torch_compile=a.torch_compile,
                fused_ops=not a.no_fused_ops)


def trl_options(ctx: Context) -> dict:
    """TrainingArguments fields of a TRL side: TRL's own defaults except where they would differ from ours."""
    a = ctx.args
    return dict(output_dir=str(ctx.run_dir), seed=a.seed, learning_rate=a.lr, weight_decay=0.0, adam_beta2=0.95,
                lr_scheduler_type="constant", max_grad_norm=1.0, per_device_train_batch_size=a.batch,
                gradient_accumulation_steps=1, max_steps=ctx.total_steps, logging_steps=1, save_strategy="no",
                eval_strategy="no", report_to=[], bf16=a.dtype == "bf16", fp16=False, activation_checkpointing=False,
                dataloader_num_workers=0, disable_tqdm=True, use_cpu=True, train_sampling_strategy="sequential",
                torch_compile=a.torch_compile)


@contextmanager
def clocked_train_loop(clock: Clock):
    """Tick `clock` after every `TrainLoop.optimizer_step`: the end of an alignlab step."""
    from alignlab.train.loop import TrainLoop

    original = TrainLoop.optimizer_step

    def timed(self, *args, **kwargs):
        original(self, *args, **kwargs)
        clock.tick()

    TrainLoop.optimizer_step = timed
    try:
        yield
    finally:
        TrainLoop.optimizer_step = original


def metric_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def ours_losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in metric_rows(run_dir) if "loss" in r]


def run_ours(ctx: Context, run: Callable, cfg) -> None:
    """An alignlab side: `run(cfg)` (a stage's run_X) with its steps clocked, then its logged losses."""
    with clocked_train_loop(ctx.clock):
        run(cfg)
    ctx.clock.losses = ours_losses(ctx.run_dir)


def trl_inputs(ctx: Context, records_path: str) -> dict:
    """A TRL trainer's model, records (in alignlab's order) and tokenizer, all from the workload."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    from bench.workload import read_jsonl

    return {"model": ctx.plan["model_dir"], "train_dataset": Dataset.from_list(ctx.ordered(read_jsonl(records_path))),
            "processing_class": AutoTokenizer.from_pretrained(ctx.plan["model_dir"])}


def train_trl(trainer, clock: Clock) -> None:
    """`trainer.train()` with `clock` ticking at each step end and collecting the logged losses."""
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback

    class Tick(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            clock.tick()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                clock.losses.append(float(logs["loss"]))
                clock.logs.append(dict(logs))

    trainer.remove_callback(PrinterCallback)  # it prints every log row to stdout when tqdm is off
    trainer.add_callback(Tick())
    trainer.train()


# --- running the sides --------------------------------------------------------------------------------

def _result(ctx: Context, isolated: bool) -> dict:
    return {"start": ctx.clock.start, "ends": ctx.clock.ends, "losses": ctx.clock.losses, "checks": ctx.checks,
            "tokens": ctx.clock.tokens, "peak_rss_gib": peak_rss_gib() if isolated else None}


def _run_child(module: str, argv: list[str], side: str, workdir: Path, threads: int) -> dict:
    env = {**os.environ, **CHILD_ENV, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "HF_DATASETS_CACHE": str(workdir / "hf-datasets")}
    cmd = [sys.executable, "-m", module, *argv, "--side", side, "--workdir", str(workdir)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{module} --side {side} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads((workdir / f"result-{side}.json").read_text())


def _stats(results: list[dict], plan: dict, args) -> dict:
    """tokens/s (median over rounds), peak RSS (max), time to the first step end, losses (first round).

    A step's tokens are the plan's, unless the side counted its own (`Clock.tokens`: packed sides, whose
    steps hold other examples than the plan's batches).
    """
    w, n = args.warmup, args.steps
    for r in results:
        if len(r["ends"]) != w + n + 1 or len(r["losses"]) != w + n + 1:
            raise RuntimeError(f"a side ran {len(r['ends'])} steps and logged {len(r['losses'])} losses, "
                               f"expected {w + n + 1} of each")
    rates = [sum((r.get("tokens") or plan["tokens"])[w: w + n]) / (r["ends"][w + n - 1] - r["ends"][w - 1])
             for r in results]
    rss = [r["peak_rss_gib"] for r in results if r["peak_rss_gib"] is not None]
    first = results[0]
    return {"tokens_per_s": statistics.median(rates), "peak_rss_gib": max(rss) if rss else None,
            "first_step_s": statistics.median(r["ends"][0] - r["start"] for r in results),
            "losses": first["losses"], "checks": first["checks"]}


def _row(ours: dict, trl: dict, peak_gflops: float, matmul_params: int) -> dict:
    def side(name: str, s: dict) -> dict:
        rss = None if s["peak_rss_gib"] is None else round(s["peak_rss_gib"], 3)
        return {f"{name}_tokens_per_s": round(s["tokens_per_s"], 1), f"{name}_peak_rss_gib": rss,
                f"{name}_mfu": round(6 * matmul_params * s["tokens_per_s"] / (peak_gflops * 1e9), 4),
                f"{name}_first_step_s": round(s["first_step_s"], 2),
                f"{name}_loss_first10": [round(x, 5) for x in s["losses"][:10]],
                f"{name}_loss_last10": [round(x, 5) for x in s["losses"][-10:]]}

    return {**side("ours", ours), **side("trl", trl), "ratio": round(ours["tokens_per_s"] / trl["tokens_per_s"], 3),
            "first_loss_gap": abs(ours["losses"][0] - trl["losses"][0]), **ours["checks"], **trl["checks"]}


@dataclass
class Script:
    """One comparison: its name, module, sides, plan, and which (label, trl side) rows it prints."""

    name: str
    module: str
    sides: dict[str, Callable[[Context], None]]
    plan: Callable  # (args, Workload) -> {"batches": [[int]], "tokens": [int], ...}
    rows: list[tuple[dict, str]]  # (extra keys of the row, the TRL side it compares with "ours")
    learning_rate: float
    description: str = ""
    matmul_params: Callable | None = None  # (args, Workload) -> int, when the trained model is not the causal LM
    extra_args: Callable | None = None  # (ArgumentParser) -> None: the script's own options
    defaults: dict = field(default_factory=dict)  # the script's own defaults of the common options


def main(script: Script, argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=script.description)
    add_args(parser, script.learning_rate)
    if script.extra_args:
        script.extra_args(parser)
    parser.set_defaults(**script.defaults)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")
    if args.side:  # a child: run one side, leave its result next to the plan
        workdir = Path(args.workdir)
        ctx = Context(args, workdir, json.loads((workdir / "plan.json").read_text()), args.side)
        torch.set_num_threads(threads_of(args))
        script.sides[args.side](ctx)
        (workdir / f"result-{args.side}.json").write_text(json.dumps(_result(ctx, isolated=True)))
        return []
    with tempfile.TemporaryDirectory(prefix=f"bench-{script.name}-") as tmp:
        return _compare(script, args, argv, Path(tmp))


def _compare(script: Script, args, argv: list[str], workdir: Path) -> list[dict]:
    from bench.workload import prepare

    threads = threads_of(args)
    torch.set_num_threads(threads)
    work = prepare(workdir, args.model_size, args.pairs, args.prompt_tokens, args.completion_tokens, args.seed)
    plan = {"model_dir": str(work.model_dir), "pairs_path": str(work.pairs_path), "sft_path": str(work.sft_path),
            **script.plan(args, work)}
    (workdir / "plan.json").write_text(json.dumps(plan))
    peak = matmul_peak_gflops(DTYPES[args.dtype])
    names = list(script.sides)
    results: dict[str, list[dict]] = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            if args.in_process:
                ctx = Context(args, workdir, plan, name)
                script.sides[name](ctx)
                results[name].append(_result(ctx, isolated=False))
            else:
                results[name].append(_run_child(script.module, argv, name, workdir, threads))
    stats = {name: _stats(results[name], plan, args) for name in names}
    params = script.matmul_params(args, work) if script.matmul_params else work.matmul_params
    common = {"bench": script.name, "threads": threads, "model_size": args.model_size, "dtype": args.dtype,
              "torch_compile": args.torch_compile, "model_params": work.model_params, "matmul_params": params,
              "pairs": args.pairs, "batch": args.batch, "steps": args.steps, "warmup": args.warmup,
              "rounds": args.rounds, "isolated": not args.in_process, "matmul_peak_gflops": round(peak, 1)}
    rows = []
    for extra, trl_side in script.rows:
        rows.append({**common, **extra, **_row(stats["ours"], stats[trl_side], peak, params)})
        emit(rows[-1])
    return rows
