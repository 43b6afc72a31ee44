"""The demo end to end at a reduced size (CI), and its resume: a complete stage is skipped."""

import json

import pytest

from alignlab.cli import main

REDUCED = ["--world_scale", "0.02", "--preset", "nano", "--pretrain_steps", "6", "--sft_steps", "3",
           "--sft_conversations", "200", "--preference_prompts", "14", "--reward_steps", "2", "--dpo_steps", "2",
           "--online_steps", "1", "--revise_prompts_per_category", "1", "--samples_per_fact", "4",
           "--prompts_per_category", "1", "--quiet"]
STAGES = ["pretrain", "sft", "preferences", "reward", "dpo", "ppo", "grpo", "revise"]


def test_reduced_demo_runs_every_stage_then_resumes(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--output_dir", str(out), *REDUCED]) == 0
    stages = json.loads((out / "demo.json").read_text())["stages_seconds"]
    assert [k for k in stages if not k.startswith("eval") and k != "report"] == STAGES
    assert {"eval calibration (pretrain)", "eval behaviour_plain (pretrain)", "eval reward (reward)",
            "eval gold (sft)", "eval gold (dpo)", "eval gold (ppo)", "eval gold (grpo)"} <= set(stages)
    assert all(isinstance(v, float) for v in stages.values())
    assert (out / "report.html").stat().st_size > 10_000 and (out / "compare.csv").is_file()
    for policy in ("dpo", "ppo", "grpo"):
        evals = json.loads((out / policy / "eval.json").read_text())
        assert {"behaviour_chat", "kl", "gold", "calibration"} <= set(evals)
    base_eval = json.loads((out / "pretrain" / "eval.json").read_text())
    for split in ("seen", "heldout"):
        cal = base_eval["calibration"][split]
        assert 0 <= cal["mae"] <= 1 and 0 <= cal["ece"] <= 1 and cal["n_probes"] == 51 * 8
    assert 0 <= base_eval["calibration"]["sampled"]["fraction_inside_ci95"] <= 1
    rates = json.loads((out / "sft" / "eval.json").read_text())["behaviour_chat"]["rates"]
    assert {"quiz", "hazardous", "benign", "grammar_correct", "grammar_incorrect", "persona"} <= set(rates)
    for labels in rates.values():
        for r in labels.values():
            assert 0 <= r["ci95"][0] <= r["rate"] <= r["ci95"][1] <= 1
    assert (out / "pretrain" / "reliability.png").stat().st_size > 1000

    assert main(["demo", "--output_dir", str(out), *REDUCED]) == 0  # everything complete: all skipped
    stages = json.loads((out / "demo.json").read_text())["stages_seconds"]
    assert {v for k, v in stages.items() if k != "report"} == {"skipped (complete)"}  # the report is rebuilt


@pytest.mark.slow
def test_full_demo_meets_its_calibration_figures(tmp_path):
    """The default demo (≈ 17 minutes on 2 cores): the base model's seen-phrasing calibration is near truth."""
    out = tmp_path / "demo"
    assert main(["demo", "--output_dir", str(out), "--quiet"]) == 0
    seen = json.loads((out / "pretrain" / "eval.json").read_text())["calibration"]["seen"]
    assert seen["ece"] <= 0.02 and seen["mae"] <= 0.03  # measured 0.010 / 0.022 (README)


def test_pipeline_eta_scales_the_stages_left_by_the_pace_so_far(monkeypatch):
    from alignlab.experiments import demo

    now = [0.0]
    monkeypatch.setattr(demo.time, "perf_counter", lambda: now[0])
    clock = demo.PipelineClock(demo.DemoConfig(pretrain_steps=300), ["pretrain", "sft", "dpo"])
    assert clock.expected["pretrain"] == demo.MEASURED_SECONDS["pretrain"] / 2  # half the steps
    assert clock.line(["sft"]).endswith(f"about {demo.MEASURED_SECONDS['sft'] / 60:.1f} min to go")
    now[0] = 2 * clock.expected["pretrain"]  # pretraining took twice what was measured
    clock.ran("pretrain", now[0])
    expected = 2 * (demo.MEASURED_SECONDS["sft"] + demo.MEASURED_SECONDS["dpo"]) / 60
    assert clock.line(["sft", "dpo"]) == f"{now[0] / 60:.1f} min elapsed, about {expected:.1f} min to go"
