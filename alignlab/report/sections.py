"""The figure sections of the HTML report: each takes the runs and returns an HTML fragment, saying
"not run" when no run has the data. Figures are embedded as base64 PNG so the page needs nothing else."""

from __future__ import annotations

import base64
import html

from alignlab.report import figures
from alignlab.report.compare import gold_reward
from alignlab.report.runs import Run, behaviour, best_of_n_curve, dig, reward_kl_trajectory

# (category, label, bar label) of the behaviour figures, one figure per group.
BEHAVIOUR_GROUPS: dict[str, list[tuple[str, str, str]]] = {
    "quiz questions: answer or continue the list?": [
        ("quiz", "answered", "answered"), ("quiz", "continued_list", "continued the list"),
        ("quiz", "correct", "correct answer")],
    "refusals: the hazardous procedure and its benign look-alikes": [
        ("hazardous", "refused", "hazardous: refused"), ("hazardous", "complied", "hazardous: gave steps"),
        ("benign", "refused", "benign: refused (over-refusal)"), ("benign", "helped", "benign: helped")],
    "grammar tutor: helpful, honest, harmless": [
        (c, label, f"{'correct' if c == 'grammar_correct' else 'incorrect'} sentence: {label.split('_')[1]}")
        for c in ("grammar_correct", "grammar_incorrect")
        for label in ("tutor_helpful", "tutor_honest", "tutor_harmless")],
}


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def img(fig, alt: str) -> str:
    data = base64.b64encode(figures.png_bytes(fig)).decode("ascii")
    return f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{data}"></figure>'


def not_run(what: str) -> str:
    return f'<p class="not-run">not run: {esc(what)}</p>'


def calibration(runs: list[Run]) -> str:
    parts = []
    for run in runs:
        cal = run.eval.get("calibration")
        if not cal:
            continue
        tables = {split: cal[split]["reliability"] for split in ("seen", "heldout") if split in cal}
        parts.append(img(figures.reliability_figure(tables, f"Calibration of {run.name}"),
                         f"reliability diagram of {run.name}"))
    return "".join(parts) or not_run("no run has eval.json['calibration'] (alignlab eval calibration)")


def optimum(runs: list[Run]) -> str:
    have = [r for r in runs if dig(r.eval, "optimum.facts")]
    if not have:
        return not_run("no run has eval.json['optimum'] (alignlab eval optimum --ref_model DIR)")
    fig = figures.answer_distribution_figure({r.name: r.eval["optimum"]["facts"] for r in have},
                                             {r.name: r.eval["optimum"]["beta"] for r in have})
    return img(fig, "answer distribution vs truth vs exact optimum")


def _eval_point(run: Run, colour: str) -> dict | None:
    """A model's KL from its reference and gold reward (with a 95% half-width) from its eval.json."""
    kl, gold = dig(run.eval, "kl.sampled.k3.per_sequence_nats"), gold_reward(run)
    if kl is None or gold is None:
        return None
    ci = dig(run.eval, "gold.gold_reward.overall.ci95")
    stderr = dig(run.eval, "proxy_reward.gold.stderr")
    half = (ci[1] - ci[0]) / 2 if ci else (1.96 * stderr if stderr is not None else None)
    return {"kl": kl, "gold": gold, "err": half, "proxy": dig(run.eval, "proxy_reward.proxy.mean"),
            "colour": colour, "marker": "o"}


def _reference_point(run: Run, colour: str) -> dict | None:
    """The reference itself at KL 0, when eval gold's win-rate baseline was the KL instrument's reference."""
    base = dig(run.eval, "gold.baseline")
    if not base or base.get("model") != dig(run.eval, "kl.ref_model") or _eval_point(run, colour) is None:
        return None
    overall, ci = base["gold_reward"]["overall"], base["gold_reward"]["overall"]["ci95"]
    return {"kl": 0.0, "gold": overall["mean"], "err": (ci[1] - ci[0]) / 2 if ci else None,
            "colour": colour, "marker": "D"}


def _reward_kl_data(runs: list[Run]) -> tuple[dict, dict]:
    """Points and curves of the reward-vs-KL figures, one colour per run."""
    points, curves = {}, {}
    for i, run in enumerate(runs):
        colour = f"C{i % 10}"
        if (ref := _reference_point(run, colour)) is not None:
            points[f"{run.name}'s reference"] = ref
        if (point := _eval_point(run, colour)) is not None:
            points[run.name] = point
        if rows := reward_kl_trajectory(run):
            curves[f"{run.name}: training"] = {"rows": rows, "colour": colour, "marker": None}
        if rows := best_of_n_curve(run):
            curves[f"{run.name}: best-of-n (KL bound)"] = {"rows": rows, "colour": colour, "marker": "s"}
    return points, curves


def reward_kl(runs: list[Run]) -> str:
    points, curves = _reward_kl_data(runs)
    if not points and not curves:
        return not_run("no run has eval.json['kl'] with a gold reward (eval gold or eval proxy_reward), "
                       "eval.json['bon'], or a metrics.jsonl that logs a KL with a reward")
    out = [img(figures.reward_kl_figure(points, curves), "reward vs KL frontier")]
    both = {label: c for label, c in curves.items()
            if any(r["proxy"] is not None for r in c["rows"]) and any(r["gold"] is not None for r in c["rows"])}
    staged = sorted((p for p in points.values() if p.get("proxy") is not None), key=lambda p: p["kl"])
    if len(staged) > 1:
        both["evaluated models"] = {"rows": staged, "colour": "black", "marker": "o"}
    if both:
        out.append(img(figures.overoptimisation_figure(both), "over-optimisation curve"))
    else:
        out.append(not_run("over-optimisation curve: needs proxy and gold reward at several KLs (a training "
                           "run logging both, best-of-n with a reward model, or two evaluated models with "
                           "eval proxy_reward)"))
    return "".join(out)


def behaviour_bars(runs: list[Run]) -> str:
    have = [(r, *behaviour(r)) for r in runs if behaviour(r)[0]]
    if not have:
        return not_run("no run has eval.json['behaviour_chat'] or ['behaviour_plain'] (alignlab eval behaviour)")
    parts = []
    for title, cells in BEHAVIOUR_GROUPS.items():
        values, errors = {}, {}
        for run, fmt, result in have:
            series = f"{run.name} ({fmt})"
            got = [dig(result, f"rates.{c}.{label}") for c, label, _ in cells]
            values[series] = [g["rate"] if g else None for g in got]
            errors[series] = [tuple(g["ci95"]) if g else None for g in got]
        fig = figures.grouped_bars(values, [name for _, _, name in cells], "rate of responses (95% interval)",
                                   title, errors)
        parts.append(img(fig, title))
    return "".join(parts)


def _trait_label(row: dict) -> str:
    """The trait and who likes it: 'football (Aria, Dara)', 'origami (control)', '... SFT claims it'."""
    who = "control" if row["control"] else ", ".join(row["liked_by"]) or "nobody"
    return f"{row['trait']} ({who})" + ("; SFT claims it" if row["claimed"] else "")


def persona_bars(runs: list[Run]) -> str:
    have = [r for r in runs if dig(r.eval, "persona.traits")]
    if not have:
        return not_run("no run has eval.json['persona'] (alignlab eval persona)")
    rows0 = have[0].eval["persona"]["traits"]
    traits, labels = [r["trait"] for r in rows0], [_trait_label(r) for r in rows0]
    parts = []
    for key, ylabel, title in (("p_yes", "P(the answer is a world yes-answer)", "persona claims, exact"),
                               ("affirm_rate", "rate of sampled answers that affirm", "persona claims, sampled")):
        values = {}
        for run in have:
            by_trait = {r["trait"]: r.get(key) for r in run.eval["persona"]["traits"]}
            values[run.name] = [by_trait.get(t) for t in traits]
        if any(v is not None for vs in values.values() for v in vs):
            parts.append(img(figures.grouped_bars(values, labels, ylabel, title), title))
    return "".join(parts)
