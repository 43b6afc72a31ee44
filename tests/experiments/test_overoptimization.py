"""`alignlab experiment overoptimization`: the fits recover known curves, and a CI-sized run writes its
points, fits and figure."""

import json
import math

import numpy as np
import pytest
import torch

from alignlab.cli import main
from alignlab.experiments.overoptimization import curve, fit_bon, fit_rl


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """These tests run on one thread (see tests/conftest.py)."""


def test_fits_recover_the_functional_forms():
    d = np.linspace(0, 3, 12)
    bon = fit_bon(d, d * (2.0 - 0.5 * d))
    assert bon["alpha"] == pytest.approx(2.0) and bon["beta"] == pytest.approx(0.5) and bon["r2"] == pytest.approx(1.0)
    rl = fit_rl(d, np.where(d > 0, d * (1.0 - 0.3 * np.log(np.maximum(d, 1e-300))), 0.0))
    assert rl["alpha"] == pytest.approx(1.0) and rl["beta"] == pytest.approx(0.3) and rl["r2"] == pytest.approx(1.0)
    noisy = fit_bon(d, d * (2.0 - 0.5 * d) + np.random.default_rng(0).normal(0, 0.3, d.size))
    assert 0 < noisy["r2"] < 1


def test_curve_measures_gains_from_the_start_and_fits_only_with_three_points():
    c = curve([0.0, 1.0], [1.0, 2.0], [0.5, 0.0], fit_bon)
    assert c["proxy"] == [0.0, 1.0] and c["gold"] == [0.0, -0.5] and "fit_gold" not in c
    assert "fit_gold" in curve([0.0, 1.0, 2.0], [0.0, 1.0, 2.0], [0.0, 1.0, 1.0], fit_bon)


def test_ci_sized_experiment_writes_points_fits_and_figure(base_dir, tiny_tokenizer, tmp_path):
    from alignlab.models import save_model
    from alignlab.models.reward_model import build_reward_model

    torch.manual_seed(0)
    rm = build_reward_model(str(base_dir), tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        torch.nn.init.normal_(rm.score.weight)
    save_model(rm, tiny_tokenizer, tmp_path / "rm")
    out = tmp_path / "exp"
    assert main(["experiment", "overoptimization", "--model", str(base_dir), "--reward_model", str(tmp_path / "rm"),
                 "--output_dir", str(out), "--bon_prompts", "3", "--bon_max_n", "4", "--max_new_tokens", "6",
                 "--ppo_steps", "16", "--ppo_batch_size", "2", "--num_threads", "1", "--quiet"]) == 0
    result = json.loads((out / "overoptimization.json").read_text())
    assert result["bon"]["n"] == [1, 2, 4]
    assert result["bon"]["d"] == pytest.approx([0.0, math.sqrt(math.log(2) - 0.5), math.sqrt(math.log(4) - 0.75)])
    assert result["bon"]["proxy"][0] == 0.0 and result["bon"]["proxy"] == sorted(result["bon"]["proxy"])
    assert {"alpha", "beta", "r2"} <= set(result["bon"]["fit_gold"])
    assert len(result["rl"]["d"]) == 16 and result["rl"]["d"][0] == pytest.approx(0.0, abs=1e-2)
    assert "fit_proxy" in result["rl"]
    assert (out / "overoptimization.png").stat().st_size > 1000
    assert (out / "ppo" / "summary.json").is_file() and (out / "bon" / "eval.json").is_file()
