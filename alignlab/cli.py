"""The command line: a thin layer that parses a config dataclass and calls one `run_*` function.

`alignlab <command> [<subcommand>] [--config FILE.yaml] [--key value ...]`. Commands are imported lazily
so that `alignlab --help` is instant. Bad input (UsageError) is one line on stderr and exit code 2.
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import os
import sys
from dataclasses import dataclass

from alignlab.errors import UsageError


@dataclass(frozen=True)
class Command:
    target: str  # "module:function"; the module also exposes the config class as `config_class`
    config: str  # "module:ConfigClass"
    help: str
    positional: str | None = None  # the list key that bare leading words fill: `alignlab report DIR DIR`


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
    "ppo": Command("alignlab.train.ppo:run_ppo", "alignlab.train.ppo:PpoConfig",
                   "online RL: PPO with a value head, GAE and a per-token KL penalty (reward model or world rater)"),
    "grpo": Command("alignlab.train.grpo:run_grpo", "alignlab.train.grpo:GrpoConfig",
                    "online RL: GRPO, group-normalised advantages over k samples per prompt, no critic"),
    "rloo": Command("alignlab.train.grpo:run_rloo", "alignlab.train.grpo:RlooConfig",
                    "online RL: RLOO, REINFORCE with a leave-one-out baseline over k samples per prompt"),
    "bon": Command("alignlab.evals.bon:run_bon", "alignlab.evals.bon:BonConfig",
                   "best-of-n sampling by a reward model or the rater: reward vs n, KL bound and exact KL"),
    "constitution revise": Command("alignlab.train.constitution.revise:run_revise",
                                   "alignlab.train.constitution.revise:ReviseConfig",
                                   "response -> critique under a random principle -> revision, N rounds (jsonl)"),
    "constitution distill": Command("alignlab.train.constitution.distill:run_distill",
                                    "alignlab.train.constitution.distill:DistillConfig",
                                    "SFT on (prompt, final revision) pairs of a revise run (SL-CAI)"),
    "constitution label": Command("alignlab.train.constitution.label:run_label",
                                  "alignlab.train.constitution.label:LabelConfig",
                                  "RLAIF: a judge model's (A)/(B) preference in both orders -> TRL preference pairs"),
    "eval kl": Command("alignlab.evals.kl:run_kl", "alignlab.evals.kl:KlConfig",
                       "KL(policy || reference) in nats and bits: sampled k1/k2/k3, exact over answer sets"),
    "eval optimum": Command("alignlab.evals.optimum:run_optimum", "alignlab.evals.optimum:OptimumConfig",
                            "distance of a policy from the exact KL-regularised optimum on the world's facts"),
    "eval calibration": Command("alignlab.evals.calibration:run_calibration",
                                "alignlab.evals.calibration:CalibrationConfig",
                                "exact and sampled fact frequencies of a model against the world's truth"),
    "eval reward": Command("alignlab.evals.reward:run_reward_eval", "alignlab.evals.reward:RewardEvalConfig",
                           "reward model: pairwise accuracy, margin, calibration, Spearman vs gold, bias probes"),
    "eval implicit_reward": Command("alignlab.evals.implicit_reward:run_implicit_reward",
                                    "alignlab.evals.implicit_reward:ImplicitRewardConfig",
                                    "DPO's implicit reward beta*log(pi/pi_ref) on a preference file: accuracy, "
                                    "correlation with gold"),
    "eval gold": Command("alignlab.evals.gold:run_gold", "alignlab.evals.gold:GoldConfig",
                         "gold-rater reward of a policy's answers, and its win rate against a baseline model"),
    "eval behaviour": Command("alignlab.evals.behaviour:run_behaviour", "alignlab.evals.behaviour:BehaviourConfig",
                              "answer vs continue, refusals, tutor honesty: sampled rates with intervals"),
    "eval diversity": Command("alignlab.evals.diversity:run_diversity", "alignlab.evals.diversity:DiversityConfig",
                              "answer entropy and distinct-1/2 of sampled answers to open prompts"),
    "eval skills": Command("alignlab.evals.skills:run_skills", "alignlab.evals.skills:SkillsConfig",
                           "in-context copying (a repeated random sequence), subject-verb agreement and "
                           "judging a sentence after reading it, by log-prob, no sampling"),
    "eval persona": Command("alignlab.evals.persona:run_persona", "alignlab.evals.persona:PersonaConfig",
                            "which persona traits the model claims: exact P(yes) and sampled rates per trait"),
    "eval proxy_reward": Command("alignlab.evals.proxy_reward:run_proxy_reward",
                                 "alignlab.evals.proxy_reward:ProxyRewardConfig",
                                 "proxy reward-model score and gold score of the same answers of a policy"),
    "eval": Command("alignlab.evals.suite:run_eval", "alignlab.evals.suite:EvalConfig",
                    "run several instruments on one model (--instruments calibration,behaviour,...)"),
    "compare": Command("alignlab.report.compare:run_compare", "alignlab.report.compare:CompareConfig",
                       "headline numbers of run directories side by side (terminal, CSV, markdown)",
                       positional="runs"),
    "report": Command("alignlab.report.html:run_report", "alignlab.report.html:ReportConfig",
                      "a self-contained HTML report (tables, figures, samples, configs) of run directories",
                      positional="runs"),
    "experiment overoptimization": Command(
        "alignlab.experiments.overoptimization:run_overoptimization",
        "alignlab.experiments.overoptimization:OveroptimizationConfig",
        "proxy vs gold reward under best-of-n and PPO against sqrt(KL), with Gao et al.'s fits and a figure"),
    "experiment calibration": Command(
        "alignlab.experiments.calibration:run_calibration_experiment",
        "alignlab.experiments.calibration:CalibrationExperimentConfig",
        "calibration from base to SFT to DPO/PPO, against truth and the exact KL-optimum, with a fitted temperature"),
    "experiment conditioning": Command(
        "alignlab.experiments.conditioning:run_conditioning",
        "alignlab.experiments.conditioning:ConditioningConfig",
        "fine-tuning on n documents of one hidden author against the exact Bayesian posterior over authors"),
    "experiment persona": Command(
        "alignlab.experiments.persona:run_persona_experiment",
        "alignlab.experiments.persona:PersonaExperimentConfig",
        "claim one trait in SFT; which pretraining persona's other traits follow, by document ratio and order"),
    "experiment elicitation": Command(
        "alignlab.experiments.elicitation:run_elicitation",
        "alignlab.experiments.elicitation:ElicitationConfig",
        "fine-tuning on n examples of common, rare and unseen cipher skills: held-out accuracy against n"),
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
    if " ".join(argv[:2]) in COMMANDS:
        return " ".join(argv[:2]), argv[2:]
    subs = [n.split()[1] for n in COMMANDS if n.startswith(argv[0] + " ")]
    # A group that is also a command (`alignlab eval --model X`) takes options, never a bare word.
    misspelt = bool(subs) and len(argv) > 1 and not argv[1].startswith("-")
    if argv[0] in COMMANDS and not misspelt:
        return argv[0], argv[1:]
    if subs:
        lead = f"has no subcommand {argv[1]!r}" if misspelt else "needs a subcommand"
        raise UsageError(f"'alignlab {argv[0]}' {lead}: {', '.join(subs)}")
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

        words = list(itertools.takewhile(lambda a: not a.startswith("-"), rest)) if command.positional else []
        cfg = parse_config(config_class, rest[len(words):])
        if words:
            cfg = dataclasses.replace(cfg, **{command.positional: words})
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
