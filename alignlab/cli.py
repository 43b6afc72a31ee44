"""The command line: a thin layer that parses a config dataclass and calls one `run_*` function.

`alignlab <command> [<subcommand>] [--config FILE.yaml] [--key value ...]`. Commands are imported lazily
so that `alignlab --help` is instant. Bad input (UsageError) is one line on stderr and exit code 2.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass

from alignlab.errors import UsageError


@dataclass(frozen=True)
class Command:
    target: str  # "module:function"; the module also exposes the config class as `config_class`
    config: str  # "module:ConfigClass"
    help: str


COMMANDS: dict[str, Command] = {
    "world sample": Command("alignlab.world.cli:run_sample", "alignlab.world.cli:SampleConfig",
                            "write the world's pretraining corpus and truth table"),
    "world stats": Command("alignlab.world.cli:run_stats", "alignlab.world.cli:StatsConfig",
                           "print the world's truth table and corpus statistics"),
    "pretrain": Command("alignlab.train.pretrain:run_pretrain", "alignlab.train.pretrain:PretrainConfig",
                        "train a fresh model (and its tokenizer) on the world corpus or a local corpus"),
    "sft": Command("alignlab.train.sft:run_sft", "alignlab.train.sft:SftConfig",
                   "fine-tune a causal LM on conversations (TRL formats or the world's transcripts), full or LoRA"),
    "preferences": Command("alignlab.train.preferences:run_preferences",
                           "alignlab.train.preferences:PreferencesConfig",
                           "preference pairs from a simulated rater over sampled answers (or import a TRL file)"),
    "reward": Command("alignlab.train.reward:run_reward", "alignlab.train.reward:RewardConfig",
                      "train a Bradley-Terry reward model on chosen/rejected pairs, full or LoRA"),
    "dpo": Command("alignlab.train.preference:run_dpo", "alignlab.train.preference:DpoConfig",
                   "offline preference optimisation on chosen/rejected pairs: DPO, IPO, cDPO, robust, hinge, RPO, SimPO"),
    "orpo": Command("alignlab.train.preference:run_orpo", "alignlab.train.preference:OrpoConfig",
                    "ORPO: SFT and preference in one reference-free loss on chosen/rejected pairs"),
    "kto": Command("alignlab.train.kto:run_kto", "alignlab.train.kto:KtoConfig",
                   "KTO on unpaired completions labelled desirable or undesirable"),
    "eval kl": Command("alignlab.evals.kl:run_kl", "alignlab.evals.kl:KlConfig",
                       "KL(policy || reference) in nats and bits: sampled k1/k2/k3, exact over answer sets"),
    "eval optimum": Command("alignlab.evals.optimum:run_optimum", "alignlab.evals.optimum:OptimumConfig",
                            "distance of a policy from the exact KL-regularised optimum on the world's facts"),
    "eval calibration": Command("alignlab.evals.calibration:run_calibration",
                                "alignlab.evals.calibration:CalibrationConfig",
                                "exact and sampled fact frequencies of a model against the world's truth"),
    "eval reward": Command("alignlab.evals.reward:run_reward_eval", "alignlab.evals.reward:RewardEvalConfig",
                           "reward model: pairwise accuracy, margin, calibration, Spearman vs gold, bias probes"),
    "eval behaviour": Command("alignlab.evals.behaviour:run_behaviour", "alignlab.evals.behaviour:BehaviourConfig",
                              "answer vs continue, refusals, tutor honesty: sampled rates with intervals"),
    "demo": Command("alignlab.experiments.demo:run_demo", "alignlab.experiments.demo:DemoConfig",
                    "the whole pipeline on the built-in world, stage by stage (resumable)"),
}


def _load(ref: str):
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: alignlab <command> [--config FILE.yaml] [--key value ...]", "",
             "Post-training pipeline and instruments over a world with known probabilities.", "", "commands:"]
    lines += [f"  {name:<{width}}  {cmd.help}" for name, cmd in COMMANDS.items()]
    lines += ["", "`alignlab <command> --help` lists a command's keys, types and defaults."]
    return "\n".join(lines)


def _match_command(argv: list[str]) -> tuple[str, list[str]]:
    for n_words in (2, 1):
        name = " ".join(argv[:n_words])
        if name in COMMANDS:
            return name, argv[n_words:]
    groups = sorted({n.split()[0] for n in COMMANDS if " " in n})
    if argv and argv[0] in groups:
        subs = ", ".join(n.split()[1] for n in COMMANDS if n.startswith(argv[0] + " "))
        raise UsageError(f"'alignlab {argv[0]}' needs a subcommand: {subs}")
    raise UsageError(f"unknown command {argv[0]!r}; run 'alignlab --help' for the list")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # alignlab never downloads; fail fast instead of hanging
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    try:
        name, rest = _match_command(argv)
        command = COMMANDS[name]
        config_class = _load(command.config)
        if "-h" in rest or "--help" in rest:
            from alignlab.config import format_help

            print(format_help(config_class, name, command.help))
            return 0
        from alignlab.config import parse_config

        cfg = parse_config(config_class, rest)
        if getattr(cfg, "quiet", False):
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # "Loading weights" / "Writing model shards" bars
        _load(command.target)(cfg)
    except UsageError as e:
        print(f"alignlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("alignlab: interrupted; rerun with --resume to continue from the last checkpoint", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
