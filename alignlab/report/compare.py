"""`alignlab compare DIR...`: the headline numbers of several run directories side by side.

One column of the terminal table per stage, one row per headline number; the same numbers go to
PREFIX.csv (one row per stage, for pandas / spreadsheets) and PREFIX.md (the terminal layout, for a README
or an issue). PREFIX is `--output`, or `compare` in the directory that holds all the runs. A number whose
instrument was not run is empty in the CSV and "—" elsewhere.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alignlab.config import CommonConfig, option
from alignlab.io import atomic_write_text
from alignlab.report.runs import Run, behaviour, default_output, dig, load_runs


@dataclass
class CompareConfig(CommonConfig):
    runs: list[str] = option([], "run directories, in pipeline order (also given as bare words)")
    output: str | None = option(None, "write OUTPUT.csv and OUTPUT.md; default: DIR/compare where DIR holds "
                                      "all the runs")


@dataclass(frozen=True)
class Headline:
    name: str
    get: Callable[[Run], float | str | None]
    digits: int = 3


def _eval(path: str) -> Callable[[Run], float | None]:
    return lambda run: dig(run.eval, path)


def _rate(category: str, label: str) -> Callable[[Run], float | None]:
    return lambda run: dig(behaviour(run)[1], f"rates.{category}.{label}.rate")


def tutor_honest(run: Run) -> float | None:
    """tutor_honest pooled over both grammar categories (a correct sentence and an incorrect one)."""
    rates = behaviour(run)[1].get("rates", {})
    cells = [rates[c]["tutor_honest"] for c in ("grammar_correct", "grammar_incorrect")
             if "tutor_honest" in rates.get(c, {})]
    n = sum(c["n"] for c in cells)
    return sum(c["rate"] * c["n"] for c in cells) / n if n else None


def gold_reward(run: Run) -> float | None:
    """The gold instrument's mean (more prompts), else the gold score of the proxy_reward answers."""
    value = dig(run.eval, "gold.gold_reward.overall.mean")
    return value if value is not None else dig(run.eval, "proxy_reward.gold.mean")


HEADLINES: list[Headline] = [
    Headline("stage", lambda run: run.summary.get("stage")),
    Headline("steps", lambda run: run.summary.get("steps"), 0),
    Headline("calibration MAE (seen)", _eval("calibration.seen.mae")),
    Headline("calibration ECE (seen)", _eval("calibration.seen.ece")),
    Headline("calibration MAE (held out)", _eval("calibration.heldout.mae")),
    Headline("calibration ECE (held out)", _eval("calibration.heldout.ece")),
    Headline("KL from ref (nats/seq, k3)", _eval("kl.sampled.k3.per_sequence_nats")),
    Headline("KL on fact answers (nats)", _eval("kl.answer_sets.mean_nats")),
    Headline("TV to the optimum (rewarded facts)", _eval("optimum.rewarded.tv.mean")),
    Headline("gold reward", gold_reward),
    Headline("win rate vs baseline (gold)", _eval("gold.win_rate.rate")),
    Headline("proxy reward", _eval("proxy_reward.proxy.mean")),
    Headline("reward model: pair accuracy", _eval("reward.accuracy")),
    Headline("behaviour prompts", lambda run: behaviour(run)[0]),
    Headline("quiz: answered", _rate("quiz", "answered")),
    Headline("quiz: continued list", _rate("quiz", "continued_list")),
    Headline("quiz: correct", _rate("quiz", "correct")),
    Headline("hazardous: refused", _rate("hazardous", "refused")),
    Headline("benign: refused (over-refusal)", _rate("benign", "refused")),
    Headline("benign: helped", _rate("benign", "helped")),
    Headline("grammar: tutor honest", tutor_honest),
    Headline("answer entropy (bits)", _eval("diversity.all.answer_entropy_bits")),
    Headline("distinct-2", _eval("diversity.all.distinct_2")),
    Headline("persona: P(yes) own trait", _eval("persona.profile_exact.assistant_likes")),
    Headline("persona: P(yes) control traits", _eval("persona.profile_exact.control")),
    Headline("persona: affirms control traits", _eval("persona.profile_sampled.control")),
]


def headline_values(runs: list[Run]) -> list[dict]:
    """{headline name: raw value or None} per run, in HEADLINES order."""
    return [{h.name: h.get(run) for h in HEADLINES} for run in runs]


def fmt(value, digits: int = 3, missing: str = "—") -> str:
    if value is None:
        return missing
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table_rows(runs: list[Run], values: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Header ["", stage names...] and one row per headline that some run has, as formatted cells."""
    header = ["", *(run.name for run in runs)]
    rows = [[h.name, *(fmt(v[h.name], h.digits) for v in values)] for h in HEADLINES
            if any(v[h.name] is not None for v in values)]
    return header, rows


def to_csv(runs: list[Run], values: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["run", "run_dir", *(h.name for h in HEADLINES)])
    for run, v in zip(runs, values, strict=True):
        writer.writerow([run.name, str(run.path), *("" if v[h.name] is None else v[h.name] for h in HEADLINES)])
    return buf.getvalue()


def to_markdown(header: list[str], rows: list[list[str]]) -> str:
    def line(cells):
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *map(line, rows)]) + "\n"


def run_compare(cfg: CompareConfig) -> dict:
    runs = load_runs(cfg.runs)
    values = headline_values(runs)
    header, rows = table_rows(runs, values)
    prefix = Path(cfg.output) if cfg.output else default_output(cfg.runs, "compare")
    csv_path, md_path = prefix.with_name(prefix.name + ".csv"), prefix.with_name(prefix.name + ".md")
    atomic_write_text(csv_path, to_csv(runs, values))
    atomic_write_text(md_path, to_markdown(header, rows))
    if not cfg.quiet:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="stages side by side")
        for i, col in enumerate(header):
            table.add_column(col, justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        print(f"wrote {csv_path} and {md_path}")
    return {"runs": [r.name for r in runs], "values": values, "csv": str(csv_path), "markdown": str(md_path)}
