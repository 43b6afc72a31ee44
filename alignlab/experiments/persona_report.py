"""The deliverables of `alignlab experiment persona`, read off the per-seed claims of its sub-runs (see
`persona.run_persona_experiment`; nothing here trains or measures): one summary row per (order, ratio) with
seed intervals of p_claim before and after SFT per trait and of the base's persona separation; where football
becomes reliable, against the Bayesian yardstick (the beach does not tell Aria from Bram, so an assistant that
became "a persona with prior n_A / (n_A + n_B)" would claim football with p = Aria's share; football is reliable
at the smallest share whose seed interval's lower bound is >= `threshold`); the sweep and before/after figures;
the one-sentence finding and the markdown tables of summary.md.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from alignlab.experiments.common import fmt_interval, markdown_table, seed_interval, write_deliverables

if TYPE_CHECKING:
    from alignlab.experiments.persona import PersonaExperimentConfig

SHOWN = ("football", "Renaissance art", "basketball", "Dutch Golden Age art", "control")


def write_report(cfg: PersonaExperimentConfig, rows: list[dict], traits: list[str], root: Path) -> dict:
    """persona_sweep.png (if an order sweeps >= 2 ratios), persona_before_after.png (each order's row nearest
    1:1, over `traits` + control), results.json and summary.md under root; returns the results, printing the
    finding unless quiet."""
    from alignlab.report.figures import save_figure

    reliable = {o: reliable_share([(r["aria_share"], r["traits"]["football"]["after"]) for r in rows
                                   if r["order"] == o and r["aria_share"] is not None], cfg.threshold)
                for o in _orders(rows)}
    figures = []
    if _swept(rows):
        save_figure(sweep_figure(rows, cfg.threshold), root / "persona_sweep.png")
        figures.append("persona_sweep.png")
    middle = [min((r for r in rows if r["order"] == o), key=lambda r: abs((r["aria_share"] or 0.5) - 0.5))
              for o in _orders(rows)]
    save_figure(before_after_figure(middle, [*traits, "control"]), root / "persona_before_after.png")
    figures.append("persona_before_after.png")
    text = finding(rows, reliable, cfg.threshold)
    results = {"config": dataclasses.asdict(cfg), "rows": rows, "reliable": reliable}
    write_deliverables(root, "persona", results, text, tables(rows, reliable, cfg.threshold), figures)
    if not cfg.quiet:
        print(text)
    return results


# --- summary rows and the threshold -------------------------------------------------------------

def _other(name: str) -> str:
    return "Bram" if name == "Aria" else "Aria"


def _interval(per_seed: list[dict], key: str, trait: str, controls: list[str], field: str = "p_claim") -> dict:
    if trait == "control":
        return seed_interval((np.mean([r[key][t][field] for t in controls]) for r in per_seed), (0.0, 1.0))
    return seed_interval((r[key][trait][field] for r in per_seed), (0.0, 1.0))


def summarise(runs: dict, traits: list[str], controls: list[str], owners: dict[str, str],
              shares: dict[str, float | None]) -> list[dict]:
    """One row per (order, ratio) of runs ({(order, ratio): [claims.json of each seed]}): seed intervals of
    p_claim before/after per trait and "control" (the mean of `controls`), and of the base's persona separation
    (claim as the owner minus as the other, over `owners` = {trait only one persona likes: that persona}).
    shares: Aria's share of the bios per ratio (None for a given base)."""
    rows = []
    for (order, ratio), per_seed in runs.items():
        by_trait = {t: {"before": _interval(per_seed, "before", t, controls),
                        "after": _interval(per_seed, "after", t, controls),
                        "after_p_yes": _interval(per_seed, "after", t, controls, "p_yes")}
                    for t in [*traits, "control"]}
        sep = seed_interval(np.mean([r["base_as"][n][t]["p_claim"] - r["base_as"][_other(n)][t]["p_claim"]
                                     for t, n in owners.items()]) for r in per_seed)
        rows.append({"order": order, "ratio": ratio, "aria_share": shares[ratio], "seeds": len(per_seed),
                     "traits": by_trait, "base_separation": sep})
    return rows


def reliable_share(points: list[tuple[float, dict]], threshold: float) -> dict:
    """The smallest share whose interval's lower bound is >= threshold; else None, with the best mean.

    points: (share, seed_interval) pairs. Returns {"share", "best_share", "best"}."""
    done = sorted(((s, iv) for s, iv in points if iv["mean"] is not None), key=lambda p: p[0])
    if not done:
        return {"share": None, "best_share": None, "best": None}
    reached = [s for s, iv in done if iv["lo"] >= threshold]
    best_share, best = max(done, key=lambda p: p[1]["mean"])
    return {"share": reached[0] if reached else None, "best_share": best_share, "best": best}


def _orders(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["order"] for r in rows))


def _swept(rows: list[dict]) -> list[str]:
    """The orders with rows at >= 2 ratios."""
    return [o for o in _orders(rows) if sum(r["order"] == o for r in rows) > 1]


# --- figures ------------------------------------------------------------------------------------

def bars(ivs: list[dict]) -> tuple[list[float], list[list[float]]]:
    """Means and (lower, upper) error-bar lengths of seed intervals (matplotlib's yerr)."""
    return [iv["mean"] for iv in ivs], [[iv["mean"] - iv["lo"] for iv in ivs], [iv["hi"] - iv["mean"] for iv in ivs]]


def sweep_figure(rows: list[dict], threshold: float):
    """p_claim after SFT against log2(n_A / n_B), one panel per order swept over >= 2 ratios; football before
    SFT dashed; the dotted line is the reliability threshold."""
    from alignlab.report.figures import plt

    orders = _swept(rows)
    fig, axes = plt.subplots(1, len(orders), figsize=(5 * len(orders), 4), squeeze=False, sharey=True)
    for ax, order in zip(axes[0], orders, strict=True):
        rs = sorted((r for r in rows if r["order"] == order), key=lambda r: r["aria_share"])
        x = [math.log2(r["aria_share"] / (1 - r["aria_share"])) for r in rs]
        for trait, colour in zip(SHOWN, ("tab:red", "tab:orange", "tab:blue", "tab:cyan", "grey"), strict=True):
            means, err = bars([r["traits"][trait]["after"] for r in rs])
            ax.errorbar(x, means, yerr=err, marker="o", capsize=3, color=colour, label=trait)
        ax.plot(x, [r["traits"]["football"]["before"]["mean"] for r in rs], ls="--", color="tab:red", alpha=0.6,
                label="football, before SFT")
        ax.axhline(threshold, color="black", lw=0.8, ls=":")
        ax.set_xticks(x, [r["ratio"] for r in rs])
        ax.set(xlabel="Aria : Bram documents (log2 scale)", title=f"order: {order}", ylim=(0, 1.02))
    axes[0][0].set_ylabel("p_claim after beach-only SFT")
    axes[0][-1].legend(fontsize=7)
    return fig


def before_after_figure(rows: list[dict], traits: list[str]):
    """Grouped bars of p_claim before and after SFT for every probed trait, one panel per given row."""
    from alignlab.report.figures import plt

    fig, axes = plt.subplots(1, len(rows), figsize=(5.5 * len(rows), 4), squeeze=False, sharey=True)
    x = np.arange(len(traits))
    for ax, r in zip(axes[0], rows, strict=True):
        for k, (when, colour) in enumerate((("before", "tab:grey"), ("after", "tab:green"))):
            means, err = bars([r["traits"][t][when] for t in traits])
            ax.bar(x + (k - 0.5) * 0.4, means, 0.4, yerr=err, capsize=2, color=colour, label=f"{when} SFT")
        ax.set_xticks(x, traits, rotation=40, ha="right", fontsize=8)
        ax.set(title=f"order {r['order']}, Aria:Bram {r['ratio']}", ylim=(0, 1.02))
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("p_claim (yes among the world's answers)")
    return fig


# --- the finding and the tables -----------------------------------------------------------------

def finding(rows: list[dict], reliable: dict, threshold: float) -> str:
    """One sentence from the measured numbers: football, basketball and control after SFT (football also
    before) at the ends of the main order's sweep, whether and where football becomes reliable, how much the
    base ties traits to names, and the order effect at 1:1."""
    main = "mixed" if any(r["order"] == "mixed" for r in rows) else rows[0]["order"]
    rs = sorted((r for r in rows if r["order"] == main), key=lambda r: r["aria_share"] or 0.0)
    ends = [rs[0], rs[-1]] if len(rs) > 1 else rs

    def at(trait: str, when: str = "after") -> str:
        return " and ".join(fmt_interval(r["traits"][trait][when]) + (f" at {r['ratio']}" if len(ends) > 1 else "")
                            for r in ends)

    text = (f"After beach-only SFT ({main} order) the assistant says it likes football with p = {at('football')} "
            f"(before SFT: {at('football', 'before')}), against basketball {at('basketball')} and the control "
            f"traits {at('control')}")
    rel = reliable.get(main, {})
    if rel.get("best") is not None:
        text += (f"; football is reliable (lower bound >= {threshold}) from Aria share {rel['share']:.2f} on"
                 if rel["share"] is not None else
                 f"; football never becomes reliable (>= {threshold}; best {fmt_interval(rel['best'])} at Aria "
                 f"share {rel['best_share']:.2f})")
    top = rs[-1]["traits"]  # selectivity: a yes-to-everything assistant claims basketball and controls too
    gap = {t: top["football"]["after"]["mean"] - top[t]["after"]["mean"] for t in ("basketball", "control")}
    text += (f"; {'at ' + rs[-1]['ratio'] + ' ' if len(rs) > 1 else ''}football exceeds basketball by "
             f"{gap['basketball']:+.2f} and the controls by {gap['control']:+.2f} after SFT")
    sep = np.mean([r["base_separation"]["mean"] for r in rs])
    text += f"; the base ties traits to names by {sep:+.2f} (its claim as the trait's owner minus as the other)"
    seq = {r["order"]: r for r in rows if r["ratio"] == "1:1" and r["order"] in ("aria_first", "bram_first")}
    if len(seq) == 2:
        text += (f"; at 1:1 football gets {fmt_interval(seq['bram_first']['traits']['football']['after'])} with "
                 f"Aria's bios last and {fmt_interval(seq['aria_first']['traits']['football']['after'])} with "
                 "Bram's last")
    return text + "."


def tables(rows: list[dict], reliable: dict, threshold: float) -> list[str]:
    """summary.md's tables: one line per row (p_claim intervals of the shown traits), and reliability per order."""
    shown = (*SHOWN, "the beach")
    main = [{"order": r["order"], "Aria:Bram": r["ratio"],
             "Aria share": "-" if r["aria_share"] is None else f"{r['aria_share']:.2f}",
             "football before": fmt_interval(r["traits"]["football"]["before"]),
             **{f"{t} after": fmt_interval(r["traits"][t]["after"]) for t in shown},
             "base separation": fmt_interval(r["base_separation"])} for r in rows]
    columns = ["order", "Aria:Bram", "Aria share", "football before", *[f"{t} after" for t in shown],
               "base separation"]
    rel = [{"order": o, f"football reliable (lower bound >= {threshold}) from Aria share":
            "not reached" if v["share"] is None else f"{v['share']:.2f}",
            "best football after": "-" if v["best"] is None else f"{fmt_interval(v['best'])} at {v['best_share']:.2f}"}
           for o, v in reliable.items()]
    return ["p_claim = P(yes-answers) / P(yes- or no-answers), held-out phrasings, mean [95% interval over seeds]; "
            "control = mean of the control traits; base separation = the base's claim of a persona's own traits "
            "speaking as that persona minus as the other.\n\n" + markdown_table(main, columns),
            markdown_table(rel, list(rel[0])) if rel else ""]
