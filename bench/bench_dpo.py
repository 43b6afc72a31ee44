"""DPO: `alignlab dpo` (`run_dpo`) vs TRL's `DPOTrainer`, its default and `precompute_ref_log_probs=True`.

All sides train the same model with the sigmoid loss (beta 0.1) on the same pairs in the same batches.
alignlab scores the reference once before the first step and caches it (`train/ref_cache.py`); TRL by
default keeps a second model and runs its forward at every step, or with `precompute_ref_log_probs=True`
scores the dataset once before training. The three sides alternate; two JSON lines, one per TRL mode,
share alignlab's numbers.

    .venv/bin/python -m bench.bench_dpo
"""

from __future__ import annotations

from bench import harness
from bench.bench_reward import limits, pair_plan

BETA = 0.1


def dpo_config(ctx: harness.Context):
    from alignlab.train.preference import DpoConfig

    max_prompt, max_completion = limits(ctx.args)
    return DpoConfig(**harness.ours_options(ctx), model_name_or_path=ctx.plan["model_dir"],
                     dataset=ctx.plan["pairs_path"], loss_type="sigmoid", beta=BETA, max_prompt_length=max_prompt,
                     max_completion_length=max_completion, precompute_ref_batch_size=ctx.args.batch)


def ours(ctx: harness.Context) -> None:
    from alignlab.train.preference import run_dpo

    ctx.clock.begin()
    harness.run_ours(ctx, run_dpo, dpo_config(ctx))


def trl_side(precompute: bool):
    def side(ctx: harness.Context) -> None:
        from trl import DPOConfig, DPOTrainer

        ctx.clock.begin()
        args = DPOConfig(**harness.trl_options(ctx), loss_type=["sigmoid"], beta=BETA,
                         max_length=sum(limits(ctx.args)), precompute_ref_log_probs=precompute,
                         precompute_ref_batch_size=ctx.args.batch)
        trainer = DPOTrainer(args=args, **harness.trl_inputs(ctx, ctx.plan["pairs_path"]))
        data = trainer.train_dataset
        ctx.checks["same_tokens"] = all(data[k] == ctx.ordered(ctx.plan[k])
                                        for k in ("prompt_ids", "chosen_ids", "rejected_ids"))
        harness.train_trl(trainer, ctx.clock)

    return side


SCRIPT = harness.Script(
    name="dpo", module="bench.bench_dpo",
    sides={"ours": ours, "trl": trl_side(False), "trl_precompute": trl_side(True)}, plan=pair_plan,
    rows=[({"trl_trainer": "DPOTrainer", "trl_mode": "default"}, "trl"),
          ({"trl_trainer": "DPOTrainer", "trl_mode": "precompute_ref_log_probs"}, "trl_precompute")],
    learning_rate=1e-4, description=__doc__.splitlines()[0])


def main(argv: list[str] | None = None) -> list[dict]:
    return harness.main(SCRIPT, argv)


if __name__ == "__main__":
    main()
