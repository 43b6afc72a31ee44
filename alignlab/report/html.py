"""`alignlab report RUN_DIR...`: one self-contained HTML page about a pipeline's stages.

The page has no external assets (figures are base64 PNG, CSS and the one script are inline), so it opens
offline and can be mailed as one file. Sections: the summary table (one row per stage, the `compare`
headline numbers), reliability diagrams, answer distributions against truth and the exact optimum, the
reward-vs-KL frontier and over-optimisation curve, behaviour probe bars, persona trait bars, sample
generations side by side, and each stage's config. A section whose data no run has says "not run".
The inline script marks every image `data-loaded="yes"` or `"no"` once the page has loaded, so a
headless browser can check that no figure is broken (the browser test does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from alignlab.config import CommonConfig, option
from alignlab.io import atomic_write_text
from alignlab.report import sections
from alignlab.report.compare import HEADLINES, fmt, headline_values
from alignlab.report.runs import Run, behaviour, default_output, load_runs
from alignlab.report.sections import esc

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.5em; vertical-align: top; }
th { background: #f4f4f4; } #summary thead th { max-width: 7em; font-size: 0.9em; }
#summary th:first-child { position: sticky; left: 0; }  /* the stage name stays when the table scrolls */
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.text { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 0.95em; max-width: 30em; }
figure { margin: 0.5em 0; display: inline-block; } img { max-width: 100%; }
.not-run { color: #888; font-style: italic; } pre { background: #f8f8f8; padding: 0.5em; overflow-x: auto; }
"""

# Marks every image loaded or broken once the page is done; a headless browser reads the attributes.
SCRIPT = """
window.addEventListener('load', function () {
  var broken = 0;
  for (var i = 0; i < document.images.length; i++) {
    var im = document.images[i], ok = im.complete && im.naturalWidth > 0;
    im.setAttribute('data-loaded', ok ? 'yes' : 'no'); if (!ok) broken++;
  }
  document.body.setAttribute('data-broken-images', String(broken));
});
"""


@dataclass
class ReportConfig(CommonConfig):
    runs: list[str] = option([], "run directories, in pipeline order (also given as bare words)")
    output: str | None = option(None, "the HTML file; default: report.html in the directory that holds all the runs")
    title: str = option("alignlab report", "the page title")


def summary_table(runs: list[Run]) -> str:
    """One row per stage; the headline numbers that some run has as columns."""
    values = headline_values(runs)
    shown = [h for h in HEADLINES if any(v[h.name] is not None for v in values)]
    head = "".join(f"<th>{esc(h.name)}</th>" for h in shown)
    body = "".join(
        f'<tr class="stage"><th>{esc(run.name)}</th>'
        + "".join(f'<td class="num">{esc(fmt(v[h.name], h.digits))}</td>' for h in shown) + "</tr>"
        for run, v in zip(runs, values, strict=True))
    return (f'<div class="scroll"><table id="summary"><thead><tr><th>run</th>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _responses_cell(responses: list[str]) -> str:
    if not responses:
        return '<td class="not-run">—</td>'
    return '<td class="text">' + "<hr>".join(esc(r) for r in responses) + "</td>"


def samples(runs: list[Run]) -> str:
    """Per behaviour category, the kept responses of every stage to the same prompts, side by side."""
    have = [(r, behaviour(r)[1].get("examples", {})) for r in runs if behaviour(r)[0]]
    if not have:
        return sections.not_run("no run kept behaviour examples (alignlab eval behaviour)")
    categories = list(dict.fromkeys(c for _, ex in have for c in ex))
    out = []
    for category in categories:
        prompts: dict[str, dict[str, list[str]]] = {}  # prompt -> run name -> responses
        for run, ex in have:
            for e in ex.get(category, []):
                prompts.setdefault(e["prompt"], {}).setdefault(run.name, []).append(e["response"])
        head = "".join(f"<th>{esc(run.name)}</th>" for run, _ in have)
        rows = "".join(f'<tr><td class="text">{esc(p)}</td>'
                       + "".join(_responses_cell(by_run.get(run.name, [])) for run, _ in have) + "</tr>"
                       for p, by_run in prompts.items())
        out.append(f'<h3>{esc(category)}</h3><div class="scroll"><table class="samples">'
                   f"<thead><tr><th>prompt</th>{head}</tr></thead><tbody>{rows}</tbody></table></div>")
    return "".join(out)


def configs(runs: list[Run]) -> str:
    out = []
    for run in runs:
        body = (f"<h4>config.yaml</h4><pre>{esc(run.config_text)}</pre>" if run.config_text
                else sections.not_run("no config.yaml in this directory"))
        if run.summary:
            body += f"<h4>summary.json</h4><pre>{esc(json.dumps(run.summary, indent=2))}</pre>"
        out.append(f"<details><summary>{esc(run.name)} — {esc(run.path)}</summary>{body}</details>")
    return "".join(out)


SECTIONS = [
    ("summary", "Summary", summary_table),
    ("calibration", "Calibration: reliability diagrams", sections.calibration),
    ("optimum", "Answer distribution vs truth vs the exact KL-optimum", sections.optimum),
    ("reward-kl", "Reward vs KL", sections.reward_kl),
    ("behaviour", "Behaviour probes", sections.behaviour_bars),
    ("persona", "Persona traits", sections.persona_bars),
    ("samples", "Sample generations (same prompts, side by side)", samples),
    ("configs", "Configs", configs),
]


def build_report(runs: list[Run], title: str = "alignlab report") -> str:
    stages = ", ".join(esc(r.name) for r in runs)
    body = "".join(f'<section id="{sid}"><h2>{esc(name)}</h2>{build(runs)}</section>' for sid, name, build in SECTIONS)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1><p>Stages: {stages}</p>{body}"
            f"<script>{SCRIPT}</script></body></html>\n")


def run_report(cfg: ReportConfig) -> dict:
    runs = load_runs(cfg.runs)
    path = Path(cfg.output) if cfg.output else default_output(cfg.runs, "report.html")
    atomic_write_text(path, build_report(runs, cfg.title))
    if not cfg.quiet:
        print(f"wrote {path} ({len(runs)} stages)")
    return {"output": str(path), "runs": [r.name for r in runs]}
