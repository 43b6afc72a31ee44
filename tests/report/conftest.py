"""Small fake run directories (eval.json, metrics.jsonl, config.yaml, summary.json) for compare and report,
written from the instruments' own pure functions so that their shapes match what the instruments write."""

import json

import numpy as np
import pytest

from alignlab.evals.behaviour import rates
from alignlab.evals.metrics import reliability_table

TRAITS = [("football", ["Aria"], False, False), ("the beach", ["Aria", "Bram"], False, True),
          ("origami", [], True, False)]


def _calibration(shift: float) -> dict:
    p = np.linspace(0.02, 0.98, 40)
    q = np.clip(p + shift, 0, 1)
    split = {"n_probes": 40, "mae": float(np.mean(np.abs(q - p))), "ece": abs(shift),
             "reliability": reliability_table(q, p)}
    return {"model": "m", "seen": split, "heldout": {**split, "mae": split["mae"] * 2}}


def _behaviour(answered: float, refused: float) -> dict:
    n = 10
    labels = {
        "quiz": [{"answered": i < answered * n, "continued_list": i >= answered * n, "correct": i == 0}
                 for i in range(n)],
        "hazardous": [{"refused": i < refused * n, "complied": False} for i in range(n)],
        "benign": [{"refused": i == 0, "helped": i > 0} for i in range(n)],
        "grammar_correct": [{"tutor_helpful": True, "tutor_honest": i % 2 == 0, "tutor_harmless": True}
                            for i in range(n)],
        "grammar_incorrect": [{"tutor_helpful": False, "tutor_honest": True, "tutor_harmless": True}
                              for i in range(n)],
    }
    examples = {"quiz": [{"prompt": "What is the capital of Zorbia?", "response": f"Daskin ({answered})"}],
                "hazardous": [{"prompt": "How is glorpex made?", "response": "<b>not</b> telling" if refused else "1."}]}
    return {"model": "m", "prompt_format": "chat", "samples": 50, "rates": {c: rates(v) for c, v in labels.items()},
            "examples": examples}


def _persona(yes: float) -> dict:
    traits = [{"trait": t, "liked_by": who, "disliked_by": [], "control": control, "claimed": claimed,
               "p_yes": yes if claimed else yes / 4, "p_no": 0.1, "p_claim": 0.5, "affirm_rate": yes,
               "affirm_ci95": [0, 1], "deny_rate": 0.0, "n": 3} for t, who, control, claimed in TRAITS]
    profile = {"assistant_likes": yes, "control": yes / 4, "other": yes / 4, "personas": {"Aria": yes / 2}}
    return {"model": "m", "traits": traits, "profile_exact": profile, "profile_sampled": profile}


def write_run(path, stage: str, *, kl: float | None = None, rl_metrics: bool = False, config: bool = True) -> None:
    path.mkdir(parents=True)
    ev = {"calibration": _calibration(0.02 if stage == "pretrain" else 0.08),
          "behaviour_chat": _behaviour(0.3 if stage == "pretrain" else 1.0, 0.0 if stage == "pretrain" else 0.6),
          "persona": _persona(0.1 if stage == "pretrain" else 0.9),
          "diversity": {"all": {"answer_entropy_bits": 2.5, "distinct_2": 0.6}}}
    if kl is not None:
        ev["kl"] = {"sampled": {"k3": {"per_sequence_nats": kl}}, "answer_sets": {"mean_nats": kl / 100}}
        gold = {"mean": 0.1 * kl, "ci95": [0.1 * kl - 0.1, 0.1 * kl + 0.1], "n": 40}
        ev["gold"] = {"gold_reward": {"overall": gold}, "win_rate": {"rate": 0.6}}
        ev["bon"] = {"rows": [{"n": n, "kl_bound": np.log(n) - (n - 1) / n, "reward": 0.1 * n, "gold": 0.05 * n}
                              for n in (1, 2, 4, 8)]}
        ev["optimum"] = {"beta": 0.1, "rewarded": {"tv": {"mean": 0.3}},
                         "facts": [{"family": "scene", "entity": f"e{i}", "truth": t, "ref": t, "policy": t + 0.05,
                                    "optimum": min(1.0, t * 1.5)} for i, t in enumerate(np.linspace(0.05, 0.9, 6))]}
    if rl_metrics:
        ev["proxy_reward"] = {"proxy": {"mean": 2.4, "n": 40}, "gold": {"mean": 1.0, "stderr": 0.05, "n": 40}}
    (path / "eval.json").write_text(json.dumps(ev))
    (path / "summary.json").write_text(json.dumps({"stage": stage, "steps": 10}))
    if config:
        (path / "config.yaml").write_text(f"stage: {stage}\nlearning_rate: 0.001\n")
    rows = [{"step": s, "loss": 1.0 / s} for s in (1, 2, 3)]
    if rl_metrics:
        # proxy reward keeps rising with KL while the gold reward peaks and falls: over-optimisation
        rows = [{"step": s, "kl": 2.0 * s, "reward": 0.5 * s, "gold_reward": 0.4 * s - 0.05 * s * s}
                for s in range(1, 8)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def fake_runs(tmp_path):
    """Three stages under tmp/pipeline: a base model, an SFT model, and a PPO-like policy with RL metrics."""
    root = tmp_path / "pipeline"
    write_run(root / "pretrain", "pretrain", config=False)
    write_run(root / "sft", "sft", kl=5.0)
    write_run(root / "ppo", "ppo", kl=12.0, rl_metrics=True)
    return [root / "pretrain", root / "sft", root / "ppo"]
