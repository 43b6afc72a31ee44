"""`alignlab compare`: headline numbers from fake run directories, CSV and markdown, defaults and bad input."""

import csv
import json

import pytest

from alignlab.cli import main
from alignlab.report.compare import headline_values, tutor_honest
from alignlab.report.runs import default_output, load_runs, reward_kl_trajectory, stage_names


def test_headline_values_from_eval_json(fake_runs):
    runs = load_runs([str(p) for p in fake_runs])
    pre, sft, ppo = headline_values(runs)
    assert pre["stage"] == "pretrain" and pre["KL from ref (nats/seq, k3)"] is None and pre["gold reward"] is None
    assert sft["quiz: answered"] == 1.0 and sft["hazardous: refused"] == 0.6
    assert sft["benign: refused (over-refusal)"] == pytest.approx(0.1)
    assert ppo["KL from ref (nats/seq, k3)"] == 12.0 and ppo["gold reward"] == pytest.approx(1.2)
    assert ppo["persona: P(yes) own trait"] == 0.9 and ppo["behaviour prompts"] == "chat"
    assert ppo["proxy reward"] == 2.4 and sft["proxy reward"] is None and sft["win rate vs baseline (gold)"] == 0.6


def test_tutor_honest_pools_both_grammar_categories(fake_runs):
    run = load_runs([str(fake_runs[1])])[0]
    assert tutor_honest(run) == pytest.approx((5 + 10) / 20)  # half of the correct, all of the incorrect


def test_compare_writes_csv_and_markdown_next_to_the_runs(fake_runs, capsys):
    assert main(["compare", *map(str, fake_runs), "--quiet"]) == 0
    root = fake_runs[0].parent
    rows = list(csv.DictReader((root / "compare.csv").open()))
    assert [r["run"] for r in rows] == ["pretrain", "sft", "ppo"]
    assert float(rows[2]["gold reward"]) == pytest.approx(1.2) and rows[0]["gold reward"] == ""
    md = (root / "compare.md").read_text().splitlines()
    assert md[0] == "|  | pretrain | sft | ppo |" and md[1] == "| --- | --- | --- | --- |"
    assert "| gold reward | — | 0.500 | 1.200 |" in md
    assert not any(line.startswith("| reward model") for line in md)  # no run has it: the row is left out


def test_compare_output_prefix_and_terminal_table(fake_runs, tmp_path, capsys):
    assert main(["compare", str(fake_runs[0]), str(fake_runs[1]), "--output", str(tmp_path / "out" / "cmp")]) == 0
    assert (tmp_path / "out" / "cmp.csv").is_file() and (tmp_path / "out" / "cmp.md").is_file()
    out = capsys.readouterr().out
    assert "calibration MAE (seen)" in out and "pretrain" in out


def test_names_and_default_output():
    from pathlib import Path

    assert stage_names([Path("a/sft"), Path("b/sft"), Path("b/ppo")]) == ["a/sft", "b/sft", "ppo"]
    assert default_output(["runs/demo/pretrain", "runs/demo/sft"], "x") == Path("runs/demo/x")
    assert default_output(["pretrain"], "x") == Path("x")


def test_reward_kl_trajectory_reads_known_columns(fake_runs):
    ppo = load_runs([str(fake_runs[2])])[0]
    points = reward_kl_trajectory(ppo)
    assert len(points) == 7 and points[0] == {"step": 1, "kl": 2.0, "proxy": 0.5, "gold": pytest.approx(0.35)}
    assert reward_kl_trajectory(load_runs([str(fake_runs[1])])[0]) == []  # an SFT log has no KL column


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "no such run directory"),
    (lambda d: (d.mkdir(), (d / "eval.json").write_text("{oops")), "eval.json: invalid JSON at line 1"),
    (lambda d: (d.mkdir(), (d / "metrics.jsonl").write_text('{"step": 1}\nnot json\n')), "metrics.jsonl: line 2"),
    (lambda d: (d.mkdir(), (d / "summary.json").write_text(json.dumps([1]))), "expected a JSON object, got list"),
])
def test_bad_run_directory_is_one_line(tmp_path, capsys, setup, message):
    run = tmp_path / "run"
    setup(run)
    assert main(["compare", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_compare_needs_a_run(capsys):
    assert main(["compare", "--quiet"]) == 2
    assert "give at least one run directory" in capsys.readouterr().err
