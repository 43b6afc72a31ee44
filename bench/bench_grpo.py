"""GRPO: `alignlab grpo` (`run_grpo`) vs TRL's `GRPOTrainer`, side by side (see bench/harness.py).

Each step, both sides take the same `--batch` prompts (the synthetic prompts, in alignlab's order; TRL's
sampler reads them sequentially), sample `--num-generations` completions of up to `--completion-tokens`
tokens for each (alignlab's KV-cache sampler vs TRL's `model.generate`), score them with the same reward
model (a fresh scalar head on the same causal LM), and take one optimiser step on the clipped surrogate:
group-normalised advantages, `dapo` reduction, beta 0 (TRL's default: no reference model), one iteration
per rollout. Tokens per step count every row's prompt and a full-length completion; each side's mean
completion length is reported next to it (a random model rarely samples a stop token, so they are close).

The sides sample with different generators, so their completions — and therefore their losses — differ
from the first step: only throughput and memory are comparable here, not the loss trajectories.

    .venv/bin/python -m bench.bench_grpo
"""

from __future__ import annotations

import statistics

from bench import harness
from bench.workload import read_jsonl


def extra_args(parser) -> None:
    parser.add_argument("--num-generations", type=int, default=4, help="completions per prompt (G)")


def rows(args) -> int:
    return args.batch * args.num_generations


def plan(args, work) -> dict:
    """The prompt file, a reward model, alignlab's prompts per step (`batch_indices` as `run_group` calls it)."""
    import torch

    from alignlab.data import PROMPT_KINDS, load_dataset, tokenize_prompts
    from alignlab.io import atomic_write_jsonl
    from alignlab.models import load_tokenizer, save_model
    from alignlab.models.reward_model import build_reward_model
    from alignlab.train.loop import batch_indices

    workdir = work.model_dir.parent
    atomic_write_jsonl(workdir / "prompts.jsonl", [{"prompt": r["prompt"]} for r in read_jsonl(work.pairs_path)])
    tokenizer = load_tokenizer(str(work.model_dir))
    torch.manual_seed(args.seed + 1)  # the reward head
    save_model(build_reward_model(str(work.model_dir), tokenizer.pad_token_id), tokenizer, workdir / "reward_model")
    records, kind = load_dataset(str(workdir / "prompts.jsonl"), allowed=PROMPT_KINDS, purpose="bench")
    prompt_ids = tokenize_prompts(records, tokenizer, None, path="prompts.jsonl", kind=kind)
    total = args.warmup + args.steps + 1
    batches = [batch_indices(len(prompt_ids), step, args.batch, args.seed).tolist() for step in range(total)]
    g, new = args.num_generations, args.completion_tokens
    return {"batches": batches, "tokens": [sum(g * (len(prompt_ids[i]) + new) for i in b) for b in batches],
            "prompts_path": str(workdir / "prompts.jsonl"), "reward_model": str(workdir / "reward_model")}


def ours(ctx: harness.Context) -> None:
    from alignlab.train.grpo import GrpoConfig, run_grpo

    ctx.clock.begin()
    a = ctx.args
    options = {**harness.ours_options(ctx), "per_device_train_batch_size": rows(a)}
    cfg = GrpoConfig(**options, model_name_or_path=ctx.plan["model_dir"], prompts=ctx.plan["prompts_path"],
                     reward_model=ctx.plan["reward_model"], n_prompts=0, max_new_tokens=a.completion_tokens,
                     temperature=1.0, num_generations=a.num_generations, num_mini_batches=1, num_iterations=1,
                     beta=0.0, loss_type="dapo", scale_rewards="group", epsilon=0.2)
    harness.run_ours(ctx, run_grpo, cfg)
    logged = [row["completion_length"] for row in harness.metric_rows(ctx.run_dir) if "completion_length" in row]
    ctx.checks["ours_completion_length"] = round(statistics.mean(logged), 2)


def trl(ctx: harness.Context) -> None:
    from trl import GRPOConfig, GRPOTrainer

    ctx.clock.begin()
    a = ctx.args
    options = {**harness.trl_options(ctx), "per_device_train_batch_size": rows(a)}
    args = GRPOConfig(**options, num_generations=a.num_generations, max_completion_length=a.completion_tokens,
                      temperature=1.0, beta=0.0, loss_type="dapo", scale_rewards="group", epsilon=0.2,
                      num_iterations=1, steps_per_generation=1, shuffle_dataset=False)
    trainer = GRPOTrainer(reward_funcs=ctx.plan["reward_model"], args=args,
                          **harness.trl_inputs(ctx, ctx.plan["prompts_path"]))
    harness.train_trl(trainer, ctx.clock)
    lengths = [row["completions/mean_length"] for row in ctx.clock.logs if "completions/mean_length" in row]
    ctx.checks["trl_completion_length"] = round(statistics.mean(lengths), 2)


SCRIPT = harness.Script(
    name="grpo", module="bench.bench_grpo", sides={"ours": ours, "trl": trl}, plan=plan,
    rows=[({"trl_trainer": "GRPOTrainer"}, "trl")], learning_rate=5e-5, description=__doc__.splitlines()[0],
    extra_args=extra_args, defaults={"steps": 10, "warmup": 2})


def main(argv: list[str] | None = None) -> list[dict]:
    return harness.main(SCRIPT, argv)


if __name__ == "__main__":
    main()
