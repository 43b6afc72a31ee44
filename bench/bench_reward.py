"""Reward model: `alignlab reward` (`run_reward`) vs TRL's `RewardTrainer`, side by side (bench/harness.py).

Both sides turn the same causal LM into a sequence classifier with a fresh scalar head (seeded the same
way, so the heads start equal) and train it with the Bradley-Terry loss on the same pairs in the same
batches: one forward over the 2B prompt+chosen and prompt+rejected rows, right-padded. One JSON line.

    .venv/bin/python -m bench.bench_reward
"""

from __future__ import annotations

from bench import harness
from bench.workload import MODEL_SIZES


def limits(args) -> tuple[int, int]:
    """alignlab's prompt and completion limits; TRL's max_length is their sum. Nothing reaches them."""
    return 2 * args.prompt_tokens, 2 * args.completion_tokens


def reward_config(ctx: harness.Context):
    from alignlab.train.reward import RewardConfig

    max_prompt, max_completion = limits(ctx.args)
    return RewardConfig(**harness.ours_options(ctx), model_name_or_path=ctx.plan["model_dir"],
                        dataset=ctx.plan["pairs_path"], max_prompt_length=max_prompt,
                        max_completion_length=max_completion, eval_steps=0, train_eval_pairs=ctx.args.batch)


def pair_plan(args, work) -> dict:
    """alignlab's batches of pairs (`batch_indices`, as the reward and DPO loops call it) and token ids."""
    from alignlab.data import PREFERENCE_KINDS, load_dataset, tokenize_preference
    from alignlab.models import load_tokenizer
    from alignlab.train.loop import batch_indices

    tokenizer = load_tokenizer(str(work.model_dir))
    records, kind = load_dataset(str(work.pairs_path), allowed=PREFERENCE_KINDS, purpose="bench")
    examples = tokenize_preference(records, tokenizer, *limits(args), path=str(work.pairs_path), kind=kind)
    total = args.warmup + args.steps + 1
    batches = [batch_indices(len(examples), step, args.batch, args.seed).tolist() for step in range(total)]
    tokens = [sum(2 * len(e.prompt_ids) + len(e.chosen_ids) + len(e.rejected_ids) for e in map(examples.__getitem__, b))
              for b in batches]
    return {"batches": batches, "tokens": tokens, "prompt_ids": [e.prompt_ids for e in examples],
            "chosen_ids": [e.chosen_ids for e in examples], "rejected_ids": [e.rejected_ids for e in examples]}


def ours(ctx: harness.Context) -> None:
    from alignlab.train.reward import run_reward

    ctx.clock.begin()
    harness.run_ours(ctx, run_reward, reward_config(ctx))


def trl(ctx: harness.Context) -> None:
    from trl import RewardConfig, RewardTrainer

    ctx.clock.begin()
    args = RewardConfig(**harness.trl_options(ctx), max_length=sum(limits(ctx.args)))
    trainer = RewardTrainer(args=args, **harness.trl_inputs(ctx, ctx.plan["pairs_path"]))
    plan, data = ctx.plan, trainer.train_dataset
    rows = ctx.ordered(list(zip(plan["prompt_ids"], plan["chosen_ids"], plan["rejected_ids"], strict=True)))
    ctx.checks["same_tokens"] = (data["chosen_ids"] == [p + c for p, c, _ in rows]
                                 and data["rejected_ids"] == [p + r for p, _, r in rows])
    harness.train_trl(trainer, ctx.clock)


def reward_matmul_params(args, work) -> int:
    """The causal LM's matmul parameters with the (vocab x hidden) LM head swapped for the (1 x hidden) score."""
    shape = MODEL_SIZES[args.model_size]
    return work.matmul_params - shape["vocab_size"] * shape["hidden_size"] + shape["hidden_size"]


SCRIPT = harness.Script(
    name="reward", module="bench.bench_reward", sides={"ours": ours, "trl": trl}, plan=pair_plan,
    rows=[({"trl_trainer": "RewardTrainer"}, "trl")], learning_rate=1e-4, description=__doc__.splitlines()[0],
    matmul_params=reward_matmul_params)


def main(argv: list[str] | None = None) -> list[dict]:
    return harness.main(SCRIPT, argv)


if __name__ == "__main__":
    main()
