"""SFT on the world's conversations: `alignlab sft` with its packing vs TRL's `SFTTrainer`, unpacked and packed.

The workload of `bench_sft` has prompts and completions of nearly equal lengths, where padding costs little.
Real conversations do not: the world's SFT transcripts (`World.sft_conversations`, messages format) run from
about 20 to 250 tokens. Each side trains the reference-size Llama (`bench/workload.py`, with a byte-level BPE
of 4,096 tokens trained on these conversations and alignlab's chat template) on the same conversations, loss
on assistant turns only (our completion-only loss; TRL's `assistant_only_loss=True`), with its own defaults
for how rows are formed:
- `ours`: `alignlab sft --packing true` (the default): best-fit-decreasing bins of up to `--max-length`
  tokens, `--batch` bins per step, position ids restarting per conversation so attention stays inside it;
- `trl`: `SFTTrainer` unpacked (`packing=False`, TRL's default): `--batch` conversations per step, padded to
  the longest, in a random order (shuffled here once, then read sequentially, as the harness does);
- `trl_packed`: `SFTTrainer(packing=True)`: TRL's "bfd" packing into `--max-length` bins, padding-free,
  `--batch` bins per step.

Steps hold different conversations on each side, so each side is timed on the real tokens of its own steps
(alignlab's from the plan, TRL's counted from its prepared dataset into `Clock.tokens`) and the ratio is of
tokens/s; the losses are not comparable (they average over different tokens). `--pairs` is the number of
conversations. One JSON line per TRL side.

    .venv/bin/python -m bench.bench_sft_world
    .venv/bin/python -m bench.bench_sft_world --pairs 200 --batch 2 --steps 2 --warmup 1 --rounds 1 \\
        --threads 1      # a quick look (the mini model's 320-token BPE makes conversations too long)
"""

from __future__ import annotations

from pathlib import Path

from bench import harness


def extra_args(parser) -> None:
    parser.add_argument("--max-length", type=int, default=512, help="packed row length (and max sequence length)")


def world_dir(work) -> Path:
    return work.model_dir.parent / "world"


def sft_config(ctx: harness.Context):
    from alignlab.train.sft import SftConfig

    return SftConfig(**harness.ours_options(ctx), model_name_or_path=ctx.plan["model_dir"],
                     dataset=ctx.plan["sft_path"], max_length=ctx.args.max_length, packing=True,
                     completion_only_loss=True)


def plan(args, work) -> dict:
    """World conversations, a model with a tokenizer trained on them, TRL's (shuffled) record order, and the
    real tokens of each of alignlab's steps (its packed rows, chosen as `sft.make_batches` chooses them)."""
    import torch

    from alignlab.data import pack_examples, tokenize_sft
    from alignlab.io import atomic_write_jsonl
    from alignlab.models import save_model
    from alignlab.models.tokenizer import train_tokenizer
    from alignlab.train.loop import batch_indices
    from alignlab.train.sft import load_sft_records
    from alignlab.world import load_world
    from bench.workload import MODEL_SIZES, build_llama

    records = load_world(None).sft_conversations(args.pairs, args.seed, 0.5)
    texts = [m["content"] for r in records for m in r["messages"]]
    tokenizer = train_tokenizer(texts, vocab_size=MODEL_SIZES[args.model_size]["vocab_size"])
    directory = world_dir(work)
    save_model(build_llama(args.model_size, args.seed, tokenizer), tokenizer, directory / "model")
    atomic_write_jsonl(directory / "conversations.jsonl", [{"messages": r["messages"]} for r in records])
    order = torch.randperm(len(records), generator=torch.Generator().manual_seed(args.seed)).tolist()
    paths = {"model_dir": str(directory / "model"), "sft_path": str(directory / "conversations.jsonl")}
    cfg = sft_config(harness.Context(args, work.model_dir.parent, paths, "plan"))
    loaded, kind, source = load_sft_records(cfg)  # as run_sft reads them
    examples = tokenize_sft(loaded, tokenizer, cfg.max_length, True, path=source, kind=kind)
    rows = pack_examples(examples, cfg.max_length)
    size = cfg.per_device_train_batch_size
    tokens = [sum(len(e) for i in batch_indices(len(rows), step, size, cfg.seed) for e in rows[i])
              for step in range(args.warmup + args.steps + 1)]
    return {**paths, "batches": [order[i: i + args.batch] for i in range(0, len(order), args.batch)],
            "tokens": tokens, "conversation_tokens": sum(len(e) for e in examples)}


def ours(ctx: harness.Context) -> None:
    from alignlab.train.sft import run_sft

    ctx.clock.begin()
    ctx.checks["ours_conversation_tokens"] = ctx.plan["conversation_tokens"]
    harness.run_ours(ctx, run_sft, sft_config(ctx))


def trl_side(packing: bool):
    def side(ctx: harness.Context) -> None:
        from trl import SFTConfig, SFTTrainer

        ctx.clock.begin()
        a = ctx.args
        args = SFTConfig(**harness.trl_options(ctx), max_length=a.max_length, packing=packing,
                         assistant_only_loss=True)
        trainer = SFTTrainer(args=args, **harness.trl_inputs(ctx, ctx.plan["sft_path"]))
        lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]  # read in this order, sequentially
        ctx.clock.tokens = [sum(lengths[s * a.batch: (s + 1) * a.batch]) for s in range(ctx.total_steps)]
        if not packing:
            ctx.checks["trl_conversation_tokens"] = sum(lengths)
        harness.train_trl(trainer, ctx.clock)

    return side


SCRIPT = harness.Script(
    name="sft_world", module="bench.bench_sft_world",
    sides={"ours": ours, "trl": trl_side(False), "trl_packed": trl_side(True)}, plan=plan,
    rows=[({"trl_trainer": "SFTTrainer", "trl_packing": False}, "trl"),
          ({"trl_trainer": "SFTTrainer", "trl_packing": True}, "trl_packed")],
    learning_rate=2e-3, description=__doc__.splitlines()[0], extra_args=extra_args,
    matmul_params=lambda args, work: world_matmul_params(work), defaults={"pairs": 3000})


def world_matmul_params(work) -> int:
    from alignlab.models import load_causal_lm
    from bench.common import matmul_params

    return matmul_params(load_causal_lm(str(world_dir(work) / "model")))


def main(argv: list[str] | None = None) -> list[dict]:
    return harness.main(SCRIPT, argv)


if __name__ == "__main__":
    main()
