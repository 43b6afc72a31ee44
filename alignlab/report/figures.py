"""Matplotlib figures from instrument results (plain dicts), written as PNG."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on CI machines
import matplotlib.pyplot as plt  # noqa: E402

from alignlab.io import atomic_write_bytes  # noqa: E402


def save_figure(fig, path: str | Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def reliability_diagram(tables: dict[str, list[dict]], path: str | Path, title: str) -> None:
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
    save_figure(fig, path)
