"""Matplotlib figures from instrument results (plain dicts): each `*_figure` returns a Figure, `png_bytes`
renders one (the HTML report embeds it), `save_figure` writes it as a PNG file."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on CI machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from alignlab.io import atomic_write_bytes  # noqa: E402


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def save_figure(fig, path: str | Path) -> None:
    atomic_write_bytes(path, png_bytes(fig))


def reliability_figure(tables: dict[str, list[dict]], title: str):
    """Mean predicted probability vs mean true frequency per bin, one panel per split."""
    fig, axes = plt.subplots(1, len(tables), figsize=(4.2 * len(tables), 4), squeeze=False)
    for ax, (split, rows) in zip(axes[0], tables.items(), strict=True):
        rows = [r for r in rows if r["count"] > 0]
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect calibration")
        ax.scatter([r["mean_pred"] for r in rows], [r["mean_target"] for r in rows],
                   s=[20 + 3 * r["count"] for r in rows], alpha=0.7, label="bins (size = probes)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("model probability q")
        ax.set_ylabel("true frequency p in the world")
        ax.set_title(f"{split} phrasings")
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(title)
    return fig


def reliability_diagram(tables: dict[str, list[dict]], path: str | Path, title: str) -> None:
    save_figure(reliability_figure(tables, title), path)


def answer_distribution_figure(facts_by_stage: dict[str, list[dict]], beta_by_stage: dict[str, float]):
    """Per stage, each fact's P(attribute) under the reference, the policy and the exact optimum, against
    the world's truth (rows of eval.json["optimum"]["facts"])."""
    n = len(facts_by_stage)
    fig, axes = plt.subplots(1, n, figsize=(4.4 * n, 4.2), squeeze=False)
    for ax, (stage, rows) in zip(axes[0], facts_by_stage.items(), strict=True):
        truth = [r["truth"] for r in rows]
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="truth")
        ax.scatter(truth, [r["ref"] for r in rows], s=45, facecolors="none", edgecolors="tab:grey",
                   label="reference π_ref")  # hollow: π* = π_ref on every unrewarded fact
        ax.scatter(truth, [r["policy"] for r in rows], s=22, color="tab:blue", alpha=0.8, label="policy π")
        ax.scatter(truth, [r["optimum"] for r in rows], s=30, color="tab:orange", marker="x",
                   label=f"optimum π* (β={beta_by_stage[stage]:g})")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("true frequency p of the attribute")
        ax.set_ylabel("probability of the attribute answer")
        ax.set_title(stage)
        ax.legend(loc="upper left", fontsize=8)
    return fig


def grouped_bars(values: dict[str, list[float | None]], labels: list[str], ylabel: str, title: str,
                 errors: dict[str, list[tuple[float, float] | None]] | None = None, ylim=(0, 1)):
    """Bars of several series (one per stage) over the same labels; None leaves a gap.

    errors: per series, (lo, hi) interval per label (drawn as error bars), or None.
    """
    n_series = max(len(values), 1)
    width = 0.8 / n_series
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * len(labels) * max(1, n_series / 2) + 2), 4.2))
    for k, (series, ys) in enumerate(values.items()):
        pos = x - 0.4 + width * (k + 0.5)
        heights = [np.nan if y is None else y for y in ys]
        yerr = None
        if errors and errors.get(series):
            # max(0, ...): a Wilson bound at 0 or 1 can sit a rounding error inside the rate itself
            lo = [0 if e is None or y is None else max(0.0, y - e[0]) for y, e in zip(ys, errors[series], strict=True)]
            hi = [0 if e is None or y is None else max(0.0, e[1] - y) for y, e in zip(ys, errors[series], strict=True)]
            yerr = [lo, hi]
        ax.bar(pos, heights, width, label=series, yerr=yerr, capsize=2, error_kw={"elinewidth": 0.8})
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    if ylim is not None:  # headroom above the top tick, so the legend never covers a full bar
        ax.set_ylim(ylim[0], ylim[1] + 0.18 * (ylim[1] - ylim[0]))
        ax.set_yticks(np.linspace(*ylim, 6))
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper center", ncol=min(n_series, 4))
    ax.grid(axis="y", alpha=0.3)
    return fig


def reward_kl_figure(points: dict[str, dict], curves: dict[str, dict]):
    """Gold reward against KL from the reference: a marker per evaluated model (95% interval) and a line
    per training run or best-of-n curve (the frontier the KL-regularised objective trades along).

    points: {label: {"kl", "gold", "err" (half-width or None), "colour", "marker"}};
    curves: {label: {"rows": [{"kl", "gold", ...}], "colour", "marker"}} (rows without gold are left out).
    """
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for label, c in curves.items():
        rows = [r for r in c["rows"] if r["gold"] is not None]
        if rows:
            ax.plot([r["kl"] for r in rows], [r["gold"] for r in rows], lw=1.2, color=c["colour"],
                    marker=c["marker"], ms=4, label=label)
    for label, p in points.items():
        ax.errorbar([p["kl"]], [p["gold"]], yerr=[[p["err"] or 0]], fmt=p["marker"], color=p["colour"],
                    mfc="white" if p["marker"] == "D" else p["colour"], capsize=3, label=label)
    kls = [p["kl"] for p in points.values()] + [r["kl"] for c in curves.values() for r in c["rows"]]
    if kls and max(kls) > 20:  # SFT sits ~100x further from the base than preference tuning from SFT
        ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("KL(π ‖ π_ref), nats per sequence" + (" (linear below 1, log above)" if kls and max(kls) > 20 else ""))
    ax.set_ylabel("gold reward (rater taste units)")
    ax.set_title("reward vs KL frontier")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def overoptimisation_figure(curves: dict[str, dict]):
    """Proxy (dashed) and gold (solid) reward against KL (Gao et al. 2023, fig. 1); curves as in
    reward_kl_figure, each row with "proxy" and "gold"."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for label, c in curves.items():
        kl = [r["kl"] for r in c["rows"]]
        for key, ls in (("proxy", "--"), ("gold", "-")):
            ax.plot(kl, [np.nan if r[key] is None else r[key] for r in c["rows"]], ls=ls, color=c["colour"],
                    marker=c["marker"], ms=4, label=f"{label}: {key}")
    ax.set_xlabel("KL(π ‖ π_ref), nats per sequence")
    ax.set_ylabel("reward (rater taste units)")
    ax.set_title("over-optimisation: proxy vs gold reward")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
