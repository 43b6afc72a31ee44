"""The deliverables of `alignlab experiment conditioning`: the one-sentence finding, the summary tables and the
figure, all read off its results dict (see `conditioning.run_conditioning`); nothing here measures or trains."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from alignlab.experiments.bayes import cap_bits
from alignlab.experiments.common import fmt_interval, markdown_table, write_deliverables

if TYPE_CHECKING:
    from alignlab.experiments.conditioning import ConditioningConfig

CONVINCED = 0.9  # the finding reports the first n whose mean P(target) reaches this


def write_report(cfg: ConditioningConfig, results: dict, root: Path) -> None:
    """conditioning.png, and results.json, summary.md and the rest of the deliverables, under root."""
    from alignlab.report.figures import save_figure

    save_figure(conditioning_figure(cfg, results), root / "conditioning.png")
    write_deliverables(root, "conditioning", results, finding(cfg, results), tables=summary_tables(cfg, results),
                       figures=["conditioning.png"])


def _label(r: dict) -> str:
    return f"lr {r['lr']:g} x {r['epochs']} ep"


def _ns(rows: list[dict]) -> str:
    by: dict[str, list[int]] = {}
    for r in rows:
        by.setdefault(_label(r), []).append(r["n"])
    return "; ".join(f"{k} at n = {', '.join(map(str, v))}" for k, v in by.items())


def _first_convinced(rows: list[dict], key: str) -> str:
    return next((str(r["n"]) for r in rows if r[key]["mean"] >= CONVINCED), "never")


def finding(cfg: ConditioningConfig, results: dict) -> str:
    """One sentence, every claim in it chosen by the measured numbers."""
    rows, target, author = results["rows"], results["authors"].index(cfg.author), cfg.author
    counts = {v: [r for r in rows if r["verdict"] == v] for v in ("over", "under", "saturated", "matches")}
    first = [r for r in rows if r["n"] == min(cfg.n)]
    per_ex = [r["model_bits_per_example"]["mean"] for r in first]
    share = np.median([r["model_bits"]["mean"] / r["bayes_bits"]["mean"] for r in rows if r["bayes_bits"]["mean"] > 0])
    over = counts["over"]
    text = (f"Fine-tuned on n = {min(cfg.n)}-{max(cfg.n)} {author} documents (prior P({author}) "
            f"{results['prior'][target]:.2f}, the base's implied {results['base']['implied'][target]:.2f}), the model"
            + (f" over-updates relative to exact Bayes in {len(over)} of {len(rows)} (lr, epochs, n) cells ({_ns(over)})"
               if over else f" over-updates relative to exact Bayes in none of {len(rows)} (lr, epochs, n) cells")
            + f", under-updates in {len(counts['under'])}, stays below Bayes at its "
            f"{cap_bits(results['base']['implied'], target):.0f}-bit measurable cap in {len(counts['saturated'])}"
            f" and is within seed noise of Bayes in {len(counts['matches'])}, with a median {100 * share:.0f}% of "
            f"Bayes's bits per cell (at n = {min(cfg.n)}: {min(per_ex):.1f} to {max(per_ex):.1f} bits per example "
            f"against Bayes's {first[0]['bayes_bits_per_example']['mean']:.1f}); its implied P({author}) first reaches "
            f"{CONVINCED} at n = "
            + ", ".join(f"{_first_convinced([r for r in rows if _label(r) == _label(f)], 'model_p')} ({_label(f)})"
                        for f in first)
            + f" against n = {_first_convinced([r for r in rows if _label(r) == _label(first[0])], 'bayes_p')} for Bayes")
    kl = results["kl"]
    if kl:
        sft = [v["mean"] for r in kl for v in r["sft_tv"].values() if v["mean"] is not None]
        text += (f", and the KL-regularised optimum (r = beta log P(E | o)) ends at TV "
                 f"{np.mean([r['tv_exact']['mean'] for r in kl]):.3f} from the exact posterior predictive over "
                 f"n = {', '.join(str(r['n']) for r in kl)}"
                 + (f" against {np.mean(sft):.3f} for SFT (mean over its settings)" if sft else ""))
    return text + "."


def summary_tables(cfg: ConditioningConfig, results: dict) -> list[str]:
    base = results["base"]
    icl = [{"observed sentences k": r["k"], "MAE base vs exact predictive": f"{r['mae_base']:.3f}",
            "MAE ignoring the context": f"{r['mae_prior_only']:.3f}"} for r in base["in_context"]]
    head = (f"Base at zero evidence: MAE {base['mae_zero_evidence']:.4f} to the prior predictive; implied "
            f"posterior {', '.join(f'{a} {w:.2f}' for a, w in zip(results['authors'], base['implied'], strict=True))}"
            f" (prior {', '.join(f'{p:.2f}' for p in results['prior'])}). Is the base an in-context Bayesian?")
    p = f"P({cfg.author})"
    main = [{"lr": f"{r['lr']:g}", "epochs": r["epochs"], "n": r["n"], "steps": r["steps"],
             f"Bayes {p}": fmt_interval(r["bayes_p"], 3), f"model {p}": fmt_interval(r["model_p"], 3),
             "Bayes bits": fmt_interval(r["bayes_bits"], 1), "model bits": fmt_interval(r["model_bits"], 1),
             "model bits/example": fmt_interval(r["model_bits_per_example"], 2), "verdict": r["verdict"],
             "TV to exact predictive": fmt_interval(r["tv"], 3),
             "TV to evidence frequencies": fmt_interval(r["tv_empirical"], 3), "fit KL": fmt_interval(r["fit_kl"], 3)}
            for r in results["rows"]]
    tables = [head + "\n\n" + markdown_table(icl, list(icl[0])), markdown_table(main, list(main[0]))]
    if results["kl"]:
        kl = [{"n": r["n"], "KL arm TV to exact": fmt_interval(r["tv_exact"], 3),
               "KL arm TV to pi*": fmt_interval(r["tv_optimum"], 3), "TV(pi*, exact)": fmt_interval(r["tv_optimum_exact"], 3),
               **{f"SFT TV ({k})": fmt_interval(v, 3) for k, v in r["sft_tv"].items()}} for r in results["kl"]]
        tables.append(markdown_table(kl, list(kl[0])))
    return tables


def conditioning_figure(cfg: ConditioningConfig, results: dict):
    """(a) implied P(target) against n, (b) bits of evidence against n, (c) the KL arm's TV against SFT's."""
    from alignlab.report.figures import plt

    panels = 3 if results["kl"] else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.2))
    rows = results["rows"]
    settings = sorted({(r["lr"], r["epochs"]) for r in rows})
    first = [r for r in rows if (r["lr"], r["epochs"]) == settings[0]]
    ns = [r["n"] for r in first]
    for ax, key, label in ((axes[0], "p", f"P({cfg.author} | evidence)"), (axes[1], "bits", "bits of evidence")):
        ax.plot(ns, [r[f"bayes_{key}"]["mean"] for r in first], "k-", lw=2, label="exact Bayes (mean over seeds)")
        ax.fill_between(ns, [r[f"bayes_{key}"]["lo"] for r in first], [r[f"bayes_{key}"]["hi"] for r in first],
                        color="k", alpha=0.12, lw=0)
        for lr, ep in settings:
            rs = [r for r in rows if (r["lr"], r["epochs"]) == (lr, ep)]
            mean = np.array([r[f"model_{key}"]["mean"] for r in rs])
            ax.errorbar([r["n"] for r in rs], mean, capsize=3, marker="o", ms=4,
                        yerr=[mean - [r[f"model_{key}"]["lo"] for r in rs], [r[f"model_{key}"]["hi"] for r in rs] - mean],
                        label=f"fine-tuned, lr {lr:g}, {ep} ep")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_xlabel(f"n ({cfg.author} documents fine-tuned on)")
        ax.set_ylabel(label)
    target = results["authors"].index(cfg.author)
    axes[0].axhline(results["prior"][target], color="grey", ls="--", lw=1, label="prior")
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].set_title("implied posterior (model) vs exact posterior")
    axes[1].axhline(cap_bits(results["base"]["implied"], target), color="grey", ls=":", lw=1,
                    label="the model's measurable cap")
    axes[1].set_yscale("symlog", linthresh=1)
    axes[1].set_title("log2 odds gained over the start")
    for ax in axes[:2]:
        ax.legend(fontsize=7)
    if results["kl"]:
        kl, ax = results["kl"], axes[2]
        ax.plot([r["n"] for r in kl], [r["tv_exact"]["mean"] for r in kl], "k-o", label="KL-regularised arm")
        for name in kl[0]["sft_tv"]:
            ax.plot([r["n"] for r in kl], [r["sft_tv"].get(name, {}).get("mean") or np.nan for r in kl], "o--",
                    label=f"SFT {name}")
        ax.set_xscale("log", base=2)
        ax.set_xticks([r["n"] for r in kl], [str(r["n"]) for r in kl])
        ax.set_xlabel("n (evidence documents)")
        ax.set_ylabel("TV to the exact posterior predictive")
        ax.set_ylim(0, 1.6 * max([r["tv_exact"]["mean"] for r in kl] + [v["mean"] or 0 for r in kl
                                                                           for v in r["sft_tv"].values()]))
        ax.set_title("matching P(o | E)")
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig
