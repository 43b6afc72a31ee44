"""`alignlab experiment elicitation`: the scoring and efficiency maths against hand-computed values, the
finding follows the numbers, and a CI-sized run writes one row per (shift, n, seed) with held-out probes
that no fine-tuning set contains."""

import json

import pytest

from alignlab.cli import main
from alignlab.experiments.elicitation import (
    ElicitationConfig,
    auc_log_n,
    char_accuracy,
    corpus_plaintexts,
    exact_match,
    finding,
    finetune_records,
    samples_to_reach,
    sft_steps,
)
from alignlab.world import load_world


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """These tests run on one thread (see tests/conftest.py)."""


def test_exact_and_character_accuracy():
    assert exact_match(" dbu eph\nPlain: x", "dbu eph") == 1.0
    assert exact_match("dbu epi", "dbu eph") == 0.0
    assert char_accuracy("dbu epi", "dbu eph") == pytest.approx(6 / 7)
    assert char_accuracy(" dbu", "dbu eph") == pytest.approx(3 / 7)  # the missing characters count as wrong
    assert char_accuracy("dbu ephxx", "dbu eph") == pytest.approx(7 / 9)  # so do the extra ones
    assert char_accuracy("", "") == 1.0 and char_accuracy("\nabc", "abc") == 0.0


def test_budget_rule_efficiency_and_auc():
    assert sft_steps(4, 3.0, 20, 16) == 20 and sft_steps(256, 3.0, 20, 16) == 48
    assert sft_steps(1024, 3.0, 20, 16) == 192 and sft_steps(17, 1.5, 1, 16) == 3
    assert samples_to_reach([0, 4, 16, 64], [0.1, 0.3, 0.5, 0.9], 0.5) == 16
    assert samples_to_reach([64, 4, 0], [0.9, 0.6, 0.0], 0.5) == 4  # in increasing n, whatever the order given
    assert samples_to_reach([0, 4], [0.7, 0.2], 0.5) == 0 and samples_to_reach([4, 16], [0.1, None], 0.5) is None
    # log2 n = 0, 1, 2; trapezoids (0 + 1) / 2 + (1 + 1) / 2 = 1.5 over a width of 2.
    assert auc_log_n([1, 2, 4], [0.0, 1.0, 1.0]) == pytest.approx(0.75)
    assert auc_log_n([4, 16, 1024], [0.2, 0.2, 0.2]) == pytest.approx(0.2)
    assert auc_log_n([16], [0.3]) == pytest.approx(0.3)


def _summary(common_n, rare_n, gap):
    skill = {"docs_in_corpus": 0, "base_exact": 0.0, "best_exact": 0.2, "auc": {"mean": 0.1, "lo": 0.1, "hi": 0.1,
                                                                                "n": 3}}
    return {"n": [4, 1024], "common_shift": 1, "rarest_shift": 7, "auc_gap": gap,
            "skills": {1: {**skill, "docs_in_corpus": 4000, "n_to_threshold": common_n},
                       7: {**skill, "n_to_threshold": rare_n}}}


def test_finding_is_chosen_by_the_numbers():
    cfg = ElicitationConfig()
    wide = finding(cfg, _summary(4, None, {"mean": 0.6, "lo": 0.5, "hi": 0.7, "n": 3}))
    assert "never-seen shift 7 was not learned" in wide and "up to n = 1024" in wide
    assert "reached 0.50 at n = 4" in wide and "as elicitation predicts" in wide
    none = finding(cfg, _summary(0, 1024, {"mean": 0.0, "lo": -0.1, "hi": 0.1, "n": 3}))
    assert "shift 7 was learned" in none and "already 0.00 in the base" in none and "no clear difference" in none
    assert "against the elicitation view" in finding(cfg, _summary(64, 4, {"mean": -0.3, "lo": -0.4, "hi": -0.2,
                                                                            "n": 3}))


def test_fine_tuning_sets_are_nested_and_avoid_the_excluded_plaintexts():
    spec = load_world().spec
    small, big = finetune_records(spec, 7, 4, 0, set()), finetune_records(spec, 7, 64, 0, set())
    assert small == big[:4] and len({r["plain"] for r in big}) == 64
    avoid = {r["plain"] for r in big[:32]}
    assert not avoid & {r["plain"] for r in finetune_records(spec, 7, 64, 0, avoid)}
    r = big[0]
    assert r["prompt"] == f"Shift cipher, key 7.\nPlain: {r['plain']}\nCoded:"
    assert r["completion"][0] == " " and len(r["completion"]) == len(r["plain"]) + 1
    assert corpus_plaintexts(["Shift cipher, key 1.\nPlain: a b\nCoded: b c\nPlain: c\nCoded: d"]) == {"a b", "c"}


def test_ci_sized_experiment_writes_rows_tables_and_figure(tmp_path):
    out = tmp_path / "exp"
    argv = ["experiment", "elicitation", "--output_dir", str(out), "--world_scale", "0.1", "--filler_docs", "200",
            "--pretrain_steps", "2", "--vocab_size", "512", "--shifts", "1,7", "--n", "4,16", "--seeds", "0",
            "--probes", "6", "--min_steps", "3", "--num_threads", "1", "--quiet"]
    assert main(argv) == 0
    result = json.loads((out / "results.json").read_text())
    rows, base_rows = result["rows"], result["base_rows"]
    assert sorted((r["shift"], r["n"], r["seed"]) for r in rows) == [(1, 4, 0), (1, 16, 0), (7, 4, 0), (7, 16, 0)]
    assert [(r["shift"], r["n"]) for r in base_rows] == [(1, 0), (7, 0)]
    for r in rows + base_rows:
        assert 0 <= r["exact"] <= 1 and 0 <= r["char"] <= 1 and len(r["examples"]) == 3
    assert all(r["steps"] == 3 for r in rows)  # 3 epochs of one batch each
    assert result["skills"]["1"]["docs_in_corpus"] == 400 and result["skills"]["7"]["docs_in_corpus"] == 0
    assert 0 <= result["skills"]["7"]["auc"]["mean"] <= 1 and result["finding"].startswith("The never-seen shift 7")

    heldout = [json.loads(line) for line in (out / "heldout.jsonl").read_text().splitlines()]
    assert len(heldout) == 12 and {p["meta"]["shift"] for p in heldout} == {1, 7}
    for r in rows:
        train = [json.loads(line) for line in (out / f"shift{r['shift']}_n{r['n']}_seed0" / "train.jsonl")
                 .read_text().splitlines()]
        held = {p["meta"]["plain"] for p in heldout if p["meta"]["shift"] == r["shift"]}
        assert len(train) == r["n"] and not held & {t["plain"] for t in train}
    summary = (out / "summary.md").read_text()
    assert result["finding"] in summary and "| 7 | 0 |" in summary and "| 1 | 16 |" in summary
    assert (out / "elicitation.png").stat().st_size > 1000

    before = (out / "shift7_n16_seed0" / "result.json").stat().st_mtime_ns
    assert main(argv) == 0  # a rerun finds every sub-run done
    assert (out / "shift7_n16_seed0" / "result.json").stat().st_mtime_ns == before
