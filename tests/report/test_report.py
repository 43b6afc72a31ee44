"""`alignlab report`: a self-contained page from fake run directories — sections, rows, figures, escaping."""

import base64
import re

from alignlab.cli import main
from alignlab.report.html import samples
from alignlab.report.runs import load_runs

from .page import parse_page


def test_report_has_every_section_and_one_row_per_stage(fake_runs):
    assert main(["report", *map(str, fake_runs), "--quiet"]) == 0
    path = fake_runs[0].parent / "report.html"  # the default: next to the runs
    text = path.read_text()
    page = parse_page(text)
    assert page.summary_rows == ["pretrain", "sft", "ppo"]
    assert page.sections >= {"summary", "calibration", "optimum", "reward-kl", "behaviour", "persona", "samples",
                             "configs"}
    # reliability x 3 stages, answer distribution, frontier, over-optimisation, behaviour x 3, persona x 2
    assert len(page.images) == 11
    for src in page.images:
        assert base64.b64decode(src.removeprefix("data:image/png;base64,"))[:8] == b"\x89PNG\r\n\x1a\n"
    assert text.count("not run:") == 1 and "not run: no config.yaml" in text  # pretrain's: the fixture has none
    assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing to fetch: the page works offline


def test_missing_data_says_not_run_and_text_is_escaped(fake_runs, tmp_path):
    out = tmp_path / "one.html"
    assert main(["report", str(fake_runs[0]), "--output", str(out), "--title", "a <title>", "--quiet"]) == 0
    text = out.read_text()
    for what in ("no run has eval.json['optimum']", "no run has eval.json['kl'] with", "no config.yaml in this"):
        assert f"not run: {what}" in text.replace("&#x27;", "'")
    assert "<title>a &lt;title&gt;</title>" in text
    assert "&lt;b&gt;not&lt;/b&gt; telling" not in text  # pretrain did not refuse: its example is "1."
    sft = samples(load_runs([str(fake_runs[1])]))
    assert "&lt;b&gt;not&lt;/b&gt; telling" in sft and "<b>not</b>" not in sft


def test_samples_put_the_same_prompt_side_by_side(fake_runs):
    page = samples(load_runs([str(p) for p in fake_runs]))
    quiz = page[page.index("<h3>quiz</h3>"):page.index("<h3>hazardous</h3>")]
    assert quiz.count("What is the capital of Zorbia?") == 1  # one row, three stages
    assert "Daskin (0.3)" in quiz and quiz.count("Daskin (1.0)") == 2
