"""`alignlab world sample` and `alignlab world stats`."""

from __future__ import annotations

from dataclasses import dataclass

from alignlab.config import CommonConfig, option
from alignlab.rundir import RunDir
from alignlab.world.world import load_world, write_sample


@dataclass
class SampleConfig(CommonConfig):
    output_dir: str = option("runs/world", "where corpus.jsonl, truth.json and stats.json go")
    world: str | None = option(None, "world YAML spec; the built-in default when not given")
    scale: float = option(1.0, "multiplies every document count")
    overwrite: bool = option(False, "replace a non-empty output_dir")


@dataclass
class StatsConfig(CommonConfig):
    world: str | None = option(None, "world YAML spec; the built-in default when not given")
    scale: float = option(1.0, "multiplies every document count")


def _world(path: str | None, scale: float):
    return load_world(path, {"scale": scale} if scale != 1.0 else None)


def run_sample(cfg: SampleConfig) -> dict:
    run = RunDir.claim(cfg.output_dir, cfg.overwrite)
    stats = write_sample(_world(cfg.world, cfg.scale), run.path, cfg.seed)
    if not cfg.quiet:
        print(f"wrote {run.path}/corpus.jsonl ({stats['documents']} documents), truth.json, stats.json")
    return stats


def run_stats(cfg: StatsConfig) -> dict:
    from rich.console import Console
    from rich.table import Table

    world = _world(cfg.world, cfg.scale)
    stats = world.stats(cfg.seed)
    console = Console()
    truth = Table(title="facts: P(attribute | entity), exact")
    for col in ("entity", "attribute", "p", "documents"):
        truth.add_column(col)
    for row in world.truth():
        truth.add_row(row["entity"], row["attribute"], f"{row['p']:.2f}", str(row["docs"]))
    console.print(truth)
    families = Table(title="corpus by family")
    for col in ("family", "documents", "characters", "≈ tokens"):
        families.add_column(col)
    for family, row in stats["families"].items():
        families.add_row(family, str(row["documents"]), str(row["chars"]), str(row["approx_tokens"]))
    console.print(families)
    return stats
