"""`alignlab constitution distill`: supervised learning on the revised answers (SL-CAI, Bai et al. 2022 Sec. 3).

The (prompt, revision) pairs of a `constitution revise` run become conversations in TRL's `messages`
format, `distill.jsonl` in the run directory, optionally mixed with the world's SFT transcripts (Bai et
al. mix in helpful samples so that harmlessness training does not cost helpfulness), and the SFT stage
(`train/sft.py`) trains on them with every one of its options: full or LoRA, packing, resume.

Deliberately left out: filtering revisions by any score (that would need the gold rater, which the
constitutional pipeline is meant to do without).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import yaml

from alignlab.config import option
from alignlab.data import load_records
from alignlab.errors import UsageError
from alignlab.io import atomic_write_jsonl
from alignlab.rundir import RunDir
from alignlab.train.sft import SftConfig, run_sft


@dataclass
class DistillConfig(SftConfig):
    output_dir: str = option("runs/distill", "run directory: distill.jsonl, config, metrics, the model")
    model_name_or_path: str = option("runs/sft", "local model directory to fine-tune on the revisions")
    dataset: str = option("runs/revise", "a `constitution revise` run directory or its revisions.jsonl")
    revision_round: int = option(-1, "which round's answer is the target: -1 = the final revision, "
                                 "0 = the unrevised first response (a control)")
    world_conversations: int = option(0, "world SFT transcripts mixed into the revisions (0 = none)")
    world: str | None = option(None, "world YAML spec of --world_conversations; the built-in default when not given")
    learning_rate: float = option(1e-3, "peak learning rate")


def revision_conversations(path: str, revision_round: int = -1) -> list[dict]:
    """{"messages": prompt + [assistant answer of that round], "category"?} per revise record.

    Assistant turns inside a multi-turn prompt get `"weight": 0`: only the revised answer is learnt.
    """
    file = Path(path) / "revisions.jsonl" if Path(path).is_dir() else Path(path)
    records = load_records(file)
    out = []
    for number, record in enumerate(records, start=1):
        rounds = record.get("rounds")
        if not isinstance(record.get("prompt"), list) or not isinstance(rounds, list) or not rounds:
            raise UsageError(f"{file}: record {number}: expected the 'prompt' and 'rounds' of a constitution "
                             "revise record")
        if not -len(rounds) <= revision_round < len(rounds):
            raise UsageError(f"--revision_round: {file}: record {number} has rounds 0-{len(rounds) - 1}, "
                             f"got {revision_round}")
        prompt = [{**m, "weight": 0} if m["role"] == "assistant" else m for m in record["prompt"]]
        answer = rounds[revision_round]["response"]
        extra = {"category": record["category"]} if "category" in record else {}
        out.append({"messages": [*prompt, {"role": "assistant", "content": answer}], **extra})
    return out


def run_distill(cfg: DistillConfig) -> dict:
    """Write distill.jsonl into the claimed run directory, then run SFT there on it."""
    run = RunDir.claim(cfg.output_dir, cfg.overwrite, cfg.resume)
    records = revision_conversations(cfg.dataset, cfg.revision_round)
    n_revisions = len(records)
    if cfg.world_conversations > 0:
        from alignlab.world import load_world

        records += load_world(cfg.world).sft_conversations(cfg.world_conversations, cfg.seed, cfg.correct_fraction)
    data = run.path / "distill.jsonl"
    atomic_write_jsonl(data, records)
    # resume=True only lets SFT use the directory we just wrote into; with no checkpoint it starts afresh.
    sft_fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(SftConfig)}
    summary = run_sft(SftConfig(**{**sft_fields, "dataset": str(data), "overwrite": False, "resume": True}))
    resolved = yaml.safe_load((run.path / "config.yaml").read_text(encoding="utf-8")).get("resolved", {})
    run.write_config(cfg, {"resolved": {**resolved, "sft_dataset": str(data), "revisions": n_revisions,
                                        "world_conversations": len(records) - n_revisions}})
    summary = {**summary, "stage": "constitution distill", "revisions": n_revisions,
               "world_conversations": len(records) - n_revisions, "revision_round": cfg.revision_round}
    run.write_summary(summary)
    return summary
