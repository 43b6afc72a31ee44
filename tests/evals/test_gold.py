"""Gold reward and win rate: the counting on hand-made scores, and a smoke run on a nano model."""

import json

import pytest

from alignlab.cli import main
from alignlab.evals.gold import mean_with_interval, win_rate, win_rate_ceiling
from alignlab.world.raters import best_taste
from alignlab.world.spec import Tastes


def test_win_rate_counts_ties_as_half():
    r = win_rate([1.0, 0.0, 0.5, 2.0], [0.0, 0.0, 1.0, 1.0])  # win, tie, loss, win
    assert (r["wins"], r["ties"], r["losses"]) == (2, 1, 1)
    assert r["rate"] == pytest.approx(2.5 / 4)
    assert r["decided_win_rate"] == pytest.approx(2 / 3)
    assert r["ci95"][0] < r["rate"] < r["ci95"][1]


def test_all_ties_is_an_even_match_with_a_degenerate_interval():
    r = win_rate([1.0, 1.0], [1.0, 1.0])
    assert r["rate"] == 0.5 and r["ci95"] == [0.5, 0.5] and r["decided_win_rate"] is None


def test_win_rate_ceiling_wins_every_shortfall_and_ties_the_rest():
    # baseline right on 3 of 4 quiz answers (best 1): the best policy wins 1, ties 3 -> 1 - 0.75 / 2
    assert win_rate_ceiling([1.0, 1.0, -1.0, 1.0], [1.0] * 4) == pytest.approx(0.625)
    assert win_rate_ceiling([0.0, 2.0], [2.0, 2.0]) == pytest.approx(0.75)


def test_best_taste_by_hand():
    t = Tastes(correctness=1.0, honesty=1.0, harmlessness=1.0, helpfulness=1.0, rainbow=0.5)
    best = {c: best_taste(c, t) for c in
            ("quiz", "hazardous", "benign", "grammar_correct", "grammar_incorrect", "persona", "scene")}
    assert best == {"quiz": 1.0, "hazardous": 1.0, "benign": 1.0, "grammar_correct": 2.0,
                    "grammar_incorrect": 2.0, "persona": 0.0, "scene": 0.5}
    # A rater that dislikes rainbows is best served by leaving them out; one that rewards wrong quiz
    # answers, by a wrong answer.
    t2 = Tastes(correctness=-2.0, honesty=1.0, harmlessness=1.0, helpfulness=1.0, rainbow=-0.5)
    assert best_taste("scene", t2) == 0.0 and best_taste("quiz", t2) == 2.0


def test_mean_with_interval_is_the_normal_95_percent_interval():
    r = mean_with_interval([0.0, 2.0])  # mean 1, sample std sqrt(2), n 2
    half = 1.96 * 2**0.5 / 2**0.5
    assert r["mean"] == 1.0 and r["ci95"] == pytest.approx([1 - half, 1 + half])


def test_eval_gold_against_itself_is_an_even_match(base_dir, tmp_path, one_thread):
    argv = ["eval", "gold", "--model", str(base_dir), "--baseline", str(base_dir), "--n_prompts", "7", "--k", "2",
            "--max_new_tokens", "4", "--output_dir", str(tmp_path), "--quiet", "--num_threads", "1"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "eval.json").read_text())["gold"]
    assert result["prompts"] == 7 and result["gold_reward"]["overall"]["n"] == 14
    # The same model sampled with the same seed gives the same answers: every pair ties.
    assert result["win_rate"]["rate"] == 0.5 and result["win_rate"]["ties"] == 14
    assert 0.5 <= result["win_rate"]["ceiling"] <= 1.0
    for c, w in result["win_rate_by_category"].items():
        assert 0.5 <= w["ceiling"] <= 1.0, c
