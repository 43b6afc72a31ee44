"""Online RL stages: PPO / GRPO / RLOO smoke runs, log-probs that match the sampler, the LoRA reference,
resume, and bad input."""

import json

import pytest
import torch
from safetensors.torch import load_file

from alignlab.cli import main
from alignlab.generation import SamplingConfig, sample
from alignlab.models import load_causal_lm
from alignlab.objectives.rl import masked_mean
from alignlab.train import loop as loop_module
from alignlab.train.loop import TIMING_KEYS
from alignlab.train.online import OnlineConfig
from alignlab.train.rollout import (
    Reference,
    completion_batch,
    completion_hidden,
    completion_logps,
)

SMALL = ["--n_prompts", "8", "--max_new_tokens", "8", "--per_device_train_batch_size", "4",
         "--gradient_accumulation_steps", "1", "--num_mini_batches", "2", "--learning_rate", "1e-3",
         "--logging_steps", "1", "--num_threads", "1", "--quiet"]


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """These tests run on one thread (see tests/conftest.py)."""


@pytest.fixture(scope="module")
def rm_dir(base_dir, tiny_tokenizer, tmp_path_factory):
    """A reward model with a random (non-zero) head on the nano base, so scores differ between answers."""
    from alignlab.models import save_model
    from alignlab.models.reward_model import build_reward_model

    torch.manual_seed(0)
    rm = build_reward_model(str(base_dir), tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        torch.nn.init.normal_(rm.score.weight)
    path = tmp_path_factory.mktemp("rm")
    save_model(rm, tiny_tokenizer, path)
    return path


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": [{"role": "user", "content": f"Quiz {i}. What is the capital?"}]})
                            + "\n" for i in range(6)))
    return path


def rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def changed(base_dir, out, name="model.layers.0.mlp.up_proj.weight") -> bool:
    return not torch.equal(load_file(out / "model.safetensors")[name], load_file(base_dir / "model.safetensors")[name])


def test_ppo_two_steps_change_the_policy_and_log_every_metric(base_dir, tmp_path):
    out = tmp_path / "ppo"
    assert main(["ppo", "--model_name_or_path", str(base_dir), "--output_dir", str(out), "--reward", "world",
                 "--max_steps", "2", "--num_ppo_epochs", "1", *SMALL]) == 0
    logged = rows(out)
    assert [r["step"] for r in logged] == [1, 2]
    wanted = {"reward", "gold", "kl", "kl_coef", "entropy", "clipfrac", "loss/policy", "loss/value", "approx_kl",
              "explained_variance", "completion_length", "eos_rate", "grad_norm"}
    assert wanted <= set(logged[0]), wanted - set(logged[0])
    assert logged[0]["kl"] == pytest.approx(0.0, abs=1e-5)  # the first rollout samples the reference itself
    assert logged[0]["clipfrac"] == 0.0 and logged[1]["approx_kl"] > 0  # step 2 sees the policy step 1 made
    assert changed(base_dir, out)
    assert not (out / "value_head.safetensors").exists()  # the saved model is the policy alone
    completions = [json.loads(line) for line in (out / "completions.jsonl").read_text().splitlines()]
    assert len(completions) == 4 and {"prompt", "completion", "score", "gold"} <= set(completions[0])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["steps_per_rollout"] == 2 and summary["reward"] == "world"


def test_ppo_lora_separate_critic_reward_model_file_prompts_adaptive_kl(base_dir, rm_dir, prompt_file, tmp_path):
    out = tmp_path / "ppo_lora"
    assert main(["ppo", "--model_name_or_path", str(base_dir), "--output_dir", str(out), "--reward_model",
                 str(rm_dir), "--prompts", str(prompt_file), "--use_peft", "--lora_r", "4", "--value_model",
                 "separate", "--kl_target", "0.5", "--kl_horizon", "8", "--kl_estimator", "k3", "--max_steps", "4",
                 "--num_ppo_epochs", "1", *SMALL]) == 0
    logged = rows(out)
    assert "gold" not in logged[0]  # file prompts without a probe column have no gold reward
    assert logged[0]["kl_coef"] == logged[1]["kl_coef"] == pytest.approx(0.05)
    # rollout 1's KL is ~0 < target: the coefficient falls by the clipped 20% x 8/8 for rollout 2
    assert logged[2]["kl_coef"] == pytest.approx(0.04)
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()


def test_grpo_and_rloo_smoke_runs(base_dir, rm_dir, tmp_path):
    grpo = tmp_path / "grpo"
    assert main(["grpo", "--model_name_or_path", str(base_dir), "--output_dir", str(grpo), "--max_steps", "2",
                 "--num_generations", "4", "--beta", "0.1", "--loss_type", "grpo", "--reward_model", str(rm_dir),
                 *SMALL]) == 0
    logged = rows(grpo)
    assert {"reward", "reward_std", "gold", "frac_reward_zero_std", "kl", "entropy", "loss",
            "clip_ratio/region_mean"} <= set(logged[0])
    assert logged[0]["kl"] == pytest.approx(0.0, abs=1e-5) and logged[1]["kl"] > 0
    assert changed(base_dir, grpo)
    summary = json.loads((grpo / "summary.json").read_text())
    assert summary["steps_per_rollout"] == 2 and summary["num_generations"] == 4

    rloo = tmp_path / "rloo"
    assert main(["rloo", "--model_name_or_path", str(base_dir), "--output_dir", str(rloo), "--max_steps", "2",
                 "--reward_model", str(rm_dir), "--use_peft", "--lora_r", "4", "--normalize_advantages", *SMALL,
                 "--num_generations", "2", "--num_mini_batches", "1",  # later keys override SMALL's
                 "--kl_estimator", "k3"]) == 0  # k3 >= 0 per token, so one step away from the reference is > 0
    logged = rows(rloo)
    assert {"reward", "kl", "loss", "entropy"} <= set(logged[0]) and logged[1]["kl"] > 0
    assert json.loads((rloo / "summary.json").read_text())["stage"] == "rloo"


def test_completion_logps_match_the_sampler_and_the_lora_reference_is_the_base(base_dir, tiny_tokenizer):
    from alignlab.train.lora import apply_lora

    model = load_causal_lm(str(base_dir))
    prompts = [[0, 40, 41, 42], [0, 43], [0, 44, 45]]  # ragged: the sampler left-pads, we right-pad
    out = sample(model, prompts, SamplingConfig(max_new_tokens=6, seed=0), tiny_tokenizer.pad_token_id)
    batch = completion_batch(prompts, out.tokens, out.lengths, tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        logps, entropy = completion_logps(model, completion_hidden(model, batch), batch, 1.0)
    torch.testing.assert_close(logps, out.logprobs * batch.mask, atol=1e-4, rtol=1e-4)
    assert masked_mean(entropy, batch.mask) > 0

    cfg = OnlineConfig(use_peft=True, lora_r=4)
    lora = apply_lora(load_causal_lm(str(base_dir)), cfg)
    with torch.no_grad():
        for p in lora.parameters():
            if p.requires_grad:
                p.add_(0.5)  # the adapter now changes the outputs
        moved = completion_logps(lora, completion_hidden(lora, batch), batch, 1.0)[0]
        ref = Reference(cfg, lora, torch.device("cpu"))
        assert ref.model is None  # no second copy of the weights
        torch.testing.assert_close(ref.logps(batch, 1.0), logps, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(moved, logps, atol=1e-3)


def test_interrupted_ppo_resumes_identically(base_dir, tmp_path, monkeypatch):
    def args(out, *extra):
        return ["ppo", "--model_name_or_path", str(base_dir), "--output_dir", str(out), "--max_steps", "4",
                "--num_ppo_epochs", "1", "--kl_target", "0.5", "--kl_horizon", "8", "--save_steps", "2",
                *SMALL, *extra]

    assert main(args(tmp_path / "full")) == 0
    real_step = loop_module.TrainLoop.optimizer_step

    def dying_step(self, metrics, tokens):
        real_step(self, metrics, tokens)
        if self.step == 3:
            raise KeyboardInterrupt  # killed in the second rollout; the last checkpoint is step 2

    monkeypatch.setattr(loop_module.TrainLoop, "optimizer_step", dying_step)
    assert main(args(tmp_path / "cut")) == 130
    monkeypatch.undo()
    assert main(args(tmp_path / "cut", "--resume")) == 0

    def clean(run):
        return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows(tmp_path / run)]

    assert clean("cut") == clean("full")
    assert clean("full")[2]["kl_coef"] != clean("full")[0]["kl_coef"]  # the restored coefficient mattered
    cut = (tmp_path / "cut" / "completions.jsonl").read_text()
    assert cut == (tmp_path / "full" / "completions.jsonl").read_text()


@pytest.mark.parametrize("extra, message", [
    (["--reward", "model"], "--reward model: needs --reward_model DIR"),
    (["--num_generations", "3"], "--num_generations: 3 must divide the rollout's 8 rows"),
    (["--save_steps", "3"], "--save_steps: must be a multiple of the 2 optimiser steps of one rollout"),
    (["--max_new_tokens", "120"], "exceed the model's max_position_embeddings (128)"),
    (["--prompts", "PROMPTS"], "PROMPTS: --reward world needs world prompts (or a file whose records have a "
                               "'probe' column)"),
])
def test_bad_input_is_one_line_naming_the_option(base_dir, prompt_file, tmp_path, capsys, extra, message):
    extra = [str(prompt_file) if e == "PROMPTS" else e for e in extra]
    message = message.replace("PROMPTS", str(prompt_file))
    argv = ["grpo", "--model_name_or_path", str(base_dir), "--output_dir", str(tmp_path / "bad"),
            "--max_steps", "1", "--num_generations", "2", *SMALL, *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
