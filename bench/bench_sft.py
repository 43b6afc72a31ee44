"""SFT: `alignlab sft` (`run_sft`) vs TRL's `SFTTrainer`, side by side (see bench/harness.py).

Both sides fine-tune the same model on the same prompt/completion records (standard format, loss on the
completion only, unpacked, right-padded to the longest row of each batch) in the same batches: alignlab's
length-bucketed order, which TRL reads sequentially. One JSON line. Usage:

    .venv/bin/python -m bench.bench_sft                      # the reference workload
    .venv/bin/python -m bench.bench_sft --steps 2 --warmup 1 --rounds 1 --model-size mini --pairs 16 --threads 1
"""

from __future__ import annotations

from bench import harness


def max_length(args) -> int:
    return 2 * (args.prompt_tokens + args.completion_tokens)  # never reached: nothing is truncated


def sft_config(ctx: harness.Context):
    from alignlab.train.sft import SftConfig

    return SftConfig(**harness.ours_options(ctx), model_name_or_path=ctx.plan["model_dir"],
                     dataset=ctx.plan["sft_path"], max_length=max_length(ctx.args), packing=False,
                     completion_only_loss=True)


def plan(args, work) -> dict:
    """alignlab's batches, recovered from `make_batches` itself (rows mapped back to their records)."""
    from alignlab.data import SFT_KINDS, load_dataset, tokenize_sft
    from alignlab.models import load_tokenizer
    from alignlab.train.sft import make_batches

    ctx = harness.Context(args, work.model_dir.parent, {"model_dir": str(work.model_dir),
                                                         "sft_path": str(work.sft_path)}, "plan")
    cfg = sft_config(ctx)
    tokenizer = load_tokenizer(cfg.model_name_or_path)
    records, kind = load_dataset(cfg.dataset, allowed=SFT_KINDS, purpose="sft")
    examples = tokenize_sft(records, tokenizer, cfg.max_length, True, path=cfg.dataset, kind=kind)
    batch_for, _ = make_batches(examples, cfg, tokenizer.pad_token_id)
    index = {tuple(e.input_ids): i for i, e in enumerate(examples)}
    batches = []
    for step in range(ctx.total_steps):
        b = batch_for(step)
        rows = [tuple(ids[mask.bool()].tolist()) for ids, mask in zip(b["input_ids"], b["attention_mask"], strict=True)]
        if len(rows) != args.batch:
            raise SystemExit(f"--pairs {args.pairs}: step {step} has a batch of {len(rows)}; give a multiple of --batch")
        batches.append([index[r] for r in rows])
    return {"batches": batches, "tokens": [sum(len(examples[i]) for i in b) for b in batches],
            "input_ids": [e.input_ids for e in examples], "labels": [e.labels for e in examples]}


def ours(ctx: harness.Context) -> None:
    from alignlab.train.sft import run_sft

    ctx.clock.begin()
    harness.run_ours(ctx, run_sft, sft_config(ctx))


def trl(ctx: harness.Context) -> None:
    from trl import SFTConfig, SFTTrainer

    ctx.clock.begin()
    args = SFTConfig(**harness.trl_options(ctx), max_length=max_length(ctx.args), packing=False,
                     completion_only_loss=True)
    trainer = SFTTrainer(args=args, **harness.trl_inputs(ctx, ctx.plan["sft_path"]))
    data = trainer.train_dataset
    ctx.checks["same_tokens"] = (data["input_ids"] == ctx.ordered(ctx.plan["input_ids"])
                                 and data["labels"] == ctx.ordered(ctx.plan["labels"]))
    harness.train_trl(trainer, ctx.clock)


SCRIPT = harness.Script(
    name="sft", module="bench.bench_sft", sides={"ours": ours, "trl": trl}, plan=plan,
    rows=[({"trl_trainer": "SFTTrainer"}, "trl")], learning_rate=2e-3, description=__doc__.splitlines()[0])


def main(argv: list[str] | None = None) -> list[dict]:
    return harness.main(SCRIPT, argv)


if __name__ == "__main__":
    main()
