"""bench/: every TRL comparison runs 2 timed steps on a miniature model and prints a complete JSON line; both
sides start from the same loss on the same tokens; the timing window is the one documented.

The fast tests run the sides in the test process (`--in-process`); the slow one runs a script as a user
does, each side in its own child process with its own peak RSS.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` is a top-level folder of the checkout, not part of the package
    sys.path.insert(0, str(ROOT))

pytest.importorskip("trl")

from bench import bench_dpo, bench_grpo, bench_reward, bench_sft, bench_sft_world, harness  # noqa: E402

MINI = ["--model-size", "mini", "--pairs", "16", "--batch", "4", "--prompt-tokens", "8", "--completion-tokens",
        "16", "--steps", "2", "--warmup", "1", "--rounds", "1", "--threads", "1"]
KEYS = {"bench", "threads", "model_params", "matmul_params", "matmul_peak_gflops", "ratio", "first_loss_gap",
        *(f"{side}_{k}" for side in ("ours", "trl") for k in ("tokens_per_s", "peak_rss_gib", "mfu", "first_step_s",
                                                              "loss_first10", "loss_last10"))}


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """These tests run on one thread (see tests/conftest.py)."""


def check_row(row: dict, isolated: bool) -> None:
    assert KEYS <= set(row)
    assert row["isolated"] is isolated and row["threads"] == 1 and row["model_size"] == "mini"
    for side in ("ours", "trl"):
        losses = row[f"{side}_loss_first10"]
        assert len(losses) == 4 and all(math.isfinite(x) for x in losses)  # warm-up 1 + timed 2 + 1 untimed
        assert row[f"{side}_tokens_per_s"] > 0 and 0 < row[f"{side}_mfu"]
        assert (row[f"{side}_peak_rss_gib"] is not None) is isolated
    assert row["ratio"] == pytest.approx(row["ours_tokens_per_s"] / row["trl_tokens_per_s"], rel=1e-2)


@pytest.mark.parametrize("script, n_rows", [(bench_sft, 1), (bench_reward, 1), (bench_dpo, 2)],
                         ids=["sft", "reward", "dpo"])
def test_each_comparison_prints_complete_rows_and_both_sides_start_from_the_same_loss(script, n_rows, capsys):
    rows = script.main([*MINI, "--in-process"])
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == rows and len(rows) == n_rows
    for row in rows:
        check_row(row, isolated=False)
        assert row["same_tokens"] is True  # TRL tokenized the text into alignlab's ids
        # Same weights, same batches, same optimiser: the first step's loss agrees to float32 rounding.
        assert row["first_loss_gap"] < 1e-4
    if script is bench_dpo:
        assert rows[0]["ours_loss_first10"][0] == pytest.approx(math.log(2), abs=1e-5)  # policy = reference


def test_grpo_compares_throughput_on_full_length_rollouts(capsys):
    (row,) = bench_grpo.main([*MINI, "--batch", "2", "--num-generations", "2", "--in-process"])
    check_row(row, isolated=False)
    # Different samplers draw different completions, so only their lengths are compared, not the losses.
    assert 0 < row["ours_completion_length"] <= 16 and 0 < row["trl_completion_length"] <= 16


def test_sft_on_world_conversations_compares_packed_and_unpacked_sides_on_their_own_tokens(capsys):
    argv = ["--pairs", "24", "--batch", "2", "--steps", "2", "--warmup", "1", "--rounds", "1", "--threads", "1",
            "--in-process"]
    rows = bench_sft_world.main(argv)
    assert [r["trl_packing"] for r in rows] == [False, True]
    for row in rows:
        assert KEYS <= set(row) and row["ours_tokens_per_s"] > 0 and row["trl_tokens_per_s"] > 0
        # Both tools tokenized the same conversations into the same number of tokens.
        assert row["ours_conversation_tokens"] == rows[0]["trl_conversation_tokens"] > 0


def test_a_side_that_counts_its_own_tokens_is_timed_on_them():
    import argparse

    args = argparse.Namespace(warmup=1, steps=2)
    result = {"start": 0.0, "ends": [1.0, 2.0, 3.0, 9.0], "losses": [1.0] * 4, "checks": {}, "peak_rss_gib": None,
              "tokens": [5, 40, 60, 7]}
    stats = harness._stats([result], {"tokens": [1, 1, 1, 1]}, args)
    assert stats["tokens_per_s"] == pytest.approx(100 / 2.0)  # its own 40 + 60 tokens, not the plan's


def test_the_timed_window_runs_from_the_last_warm_up_step_to_the_last_timed_step():
    import argparse

    args = argparse.Namespace(warmup=2, steps=3)
    plan = {"tokens": [100, 100, 10, 20, 30, 999]}  # warm-up, warm-up, 3 timed steps, the untimed last one
    result = {"start": 0.0, "ends": [1.0, 2.0, 3.0, 5.0, 7.0, 50.0], "losses": [1.0] * 6, "checks": {},
              "peak_rss_gib": 0.5}
    stats = harness._stats([result, {**result, "peak_rss_gib": 0.7}], plan, args)
    assert stats["tokens_per_s"] == pytest.approx(60 / 5.0)  # (10 + 20 + 30) tokens from t=2 to t=7
    assert stats["peak_rss_gib"] == 0.7 and stats["first_step_s"] == 1.0


@pytest.mark.slow
def test_a_script_run_as_users_run_it_isolates_each_side_in_its_own_process():
    done = subprocess.run([sys.executable, "-m", "bench.bench_reward", *MINI], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (row,) = [json.loads(line) for line in done.stdout.splitlines()]
    check_row(row, isolated=True)
    assert row["first_loss_gap"] < 1e-4 and 0.1 < row["ours_peak_rss_gib"] < 8


def test_bf16_runs_both_sides_under_autocast_from_the_same_loss(capsys):
    rows = bench_sft.main([*MINI, "--in-process", "--dtype", "bf16"])
    (row,) = rows
    check_row(row, isolated=False)
    assert row["dtype"] == "bf16"
    # bf16 matmuls on both sides: the first losses agree to bf16 rounding, not to fp32's.
    assert row["first_loss_gap"] < 2e-2


def test_no_fused_ops_reaches_only_the_alignlab_side():
    import argparse
    from types import SimpleNamespace

    parser = argparse.ArgumentParser()
    harness.add_args(parser, learning_rate=1e-4)
    for argv, fused in (([], True), (["--no-fused-ops"], False)):
        ctx = SimpleNamespace(args=parser.parse_args(argv), run_dir=Path("unused"), total_steps=3)
        assert harness.ours_options(ctx)["fused_ops"] is fused
        assert "fused_ops" not in harness.trl_options(ctx)
