"""`alignlab eval --model DIR`: the umbrella runs the chosen instruments and skips those missing an input."""

import json
import logging

import pytest

from alignlab.cli import _match_command, main
from alignlab.errors import UsageError
from alignlab.evals.suite import EvalConfig, instrument_config


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """These tests run on one thread (see tests/conftest.py)."""


def test_eval_alone_and_eval_subcommands_both_route():
    assert _match_command(["eval", "--model", "x"]) == ("eval", ["--model", "x"])
    assert _match_command(["eval", "kl", "--model", "x"]) == ("eval kl", ["--model", "x"])
    with pytest.raises(UsageError, match="'alignlab eval' has no subcommand 'klx': kl, optimum"):
        _match_command(["eval", "klx"])


def test_instrument_configs_get_the_shared_options():
    cfg = EvalConfig(model="m", ref_model="r", reward_model="rm", world="w.yaml", output_dir="o", seed=3,
                     prompt_format="plain", beta=0.5, samples_per_fact=7, max_new_tokens=5, num_threads=1, quiet=True)
    kl = instrument_config("kl", cfg)
    assert (kl.model, kl.ref_model, kl.world, kl.output_dir, kl.seed, kl.quiet) == ("m", "r", "w.yaml", "o", 3, True)
    assert kl.max_new_tokens == 5 and kl.n_prompts == 10  # sizes left unset keep the instrument's default
    assert instrument_config("optimum", cfg).beta == 0.5
    assert instrument_config("calibration", cfg).samples_per_fact == 7
    assert instrument_config("behaviour", cfg).prompt_format == "plain"
    assert instrument_config("behaviour", cfg).prompts_per_category == 25
    assert instrument_config("reward", cfg).reward_model == "rm"
    assert instrument_config("gold", cfg).baseline == "r"  # the win rate is against the reference
    assert instrument_config("kl", EvalConfig(prompts_per_category=2)).n_prompts == 2
    assert instrument_config("gold", EvalConfig(prompts_per_category=2)).n_prompts == 14


def test_eval_runs_what_it_can_and_logs_what_it_skips(base_dir, tmp_path, caplog):
    argv = ["eval", "--model", str(base_dir), "--instruments", "kl,optimum,gold,reward,diversity", "--output_dir",
            str(tmp_path), "--prompt_format", "plain", "--prompts_per_category", "1", "--max_new_tokens", "3",
            "--quiet", "--num_threads", "1"]
    with caplog.at_level(logging.WARNING, logger="alignlab.evals.suite"):
        assert main(argv) == 0
    assert "kl skipped (it needs --ref_model)" in caplog.text and "optimum skipped" in caplog.text
    assert "reward skipped (it needs --reward_model)" in caplog.text
    eval_json = json.loads((tmp_path / "eval.json").read_text())
    assert set(eval_json) == {"gold", "diversity"} and "win_rate" not in eval_json["gold"]  # no baseline
    assert eval_json["gold"]["prompts"] == 7  # one per category
    assert eval_json["diversity"]["all"]["prompts"] == 2
