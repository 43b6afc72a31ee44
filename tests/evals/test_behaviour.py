"""eval behaviour on a nano model: rates overall and by request phrasing, sampled and greedy."""

import json

from alignlab.cli import main


def _run(base_dir, out, *extra):
    argv = ["eval", "behaviour", "--model", str(base_dir), "--prompts_per_category", "6", "--max_new_tokens", "4",
            "--output_dir", str(out), "--quiet", "--num_threads", "1", *extra]
    assert main(argv) == 0
    return json.loads((out / "eval.json").read_text())["behaviour_chat"]


def test_rates_by_phrasing_and_item_split_each_category_rate(base_dir, tmp_path, one_thread):
    r = _run(base_dir, tmp_path, "--samples_per_prompt", "2", "--group_by", "phrasing,question")
    assert r["decoding"] == "T 0.7" and r["rates"]["quiz"]["correct"]["n"] == 12  # 6 prompts x 2 samples
    assert set(r["rates_by"]["question"]) == {"quiz"}  # only quiz probes name a question
    assert all(g["correct"]["n"] % 2 == 0 for g in r["rates_by"]["question"]["quiz"].values())
    assert sum(g["correct"]["n"] for g in r["rates_by"]["question"]["quiz"].values()) == 12
    for category, labels in r["rates"].items():
        groups = r["rates_by"]["phrasing"][category]  # every probe names its phrasing
        for label, overall in labels.items():
            # The per-phrasing counts add up to the category's, and so do the positives.
            assert sum(g[label]["n"] for g in groups.values()) == overall["n"]
            hits = sum(round(g[label]["rate"] * g[label]["n"]) for g in groups.values())
            assert hits == round(overall["rate"] * overall["n"]), (category, label)


def test_greedy_answers_one_per_prompt_and_repeat_exactly(base_dir, tmp_path, one_thread):
    a = _run(base_dir, tmp_path / "a", "--do_sample", "false", "--samples_per_prompt", "3")
    b = _run(base_dir, tmp_path / "b", "--do_sample", "false", "--seed", "0", "--temperature", "1.5")
    assert a["decoding"] == "greedy" and a["rates"]["quiz"]["correct"]["n"] == 6  # one answer per prompt
    assert a["rates"] == b["rates"] and a["examples"] == b["examples"]  # temperature is unused
