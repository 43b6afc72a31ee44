"""`alignlab eval reward`: hand-computed pair metrics, a hand-made file end to end, and the bias probe."""

import json
import math
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from alignlab.cli import main
from alignlab.evals.reward import bias_probe, by_category, by_pair_kind, pair_metrics
from alignlab.models import build_model, save_model
from alignlab.models.reward_model import build_reward_model
from alignlab.world import load_world
from alignlab.world.spec import Biases, Raters


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """These tests run on one thread (see tests/conftest.py)."""


def test_pair_metrics_by_hand():
    # Margins 2, -1, 0: one right, one wrong, one tie (a tie is not a win, as in TRL).
    out = pair_metrics([2.0, 0.0, 1.0], [0.0, 1.0, 1.0])
    assert out["accuracy"] == pytest.approx(1 / 3) and out["margin"] == pytest.approx(1 / 3)
    assert out["pairs"] == 3 and "bayes_ceiling" not in out and "spearman_score" not in out


def test_calibration_and_ceiling_by_hand():
    # Margin ln 3 gives q = sigmoid(ln 3) = 0.75; both orientations: (0.75, 1) and (0.25, 0), so each bin's
    # gap is 0.25 and the outcome ECE is 0.25. Against the rater's p = 0.75 the ECE is 0.
    m = math.log(3.0)
    out = pair_metrics([m], [0.0], {"p_chosen": torch.tensor([0.75]).numpy()})
    assert out["ece"] == pytest.approx(0.25) and out["ece_truth"] == pytest.approx(0.0, abs=1e-12)
    assert out["bayes_ceiling"] == pytest.approx(0.75)
    both = pair_metrics([m, m], [0.0, 0.0], {"p_chosen": torch.tensor([0.75, 0.4]).numpy()})
    assert both["bayes_ceiling"] == pytest.approx((0.75 + 0.6) / 2)
    assert pair_metrics([0.0], [0.0])["ece"] == 0.0  # q = 0.5 on both sides: calibrated, and useless


def test_accuracy_by_category_by_hand():
    # quiz: one right, one wrong; grammar: right. The ceilings are each category's mean max(p, 1 - p).
    cols = {"p_chosen": torch.tensor([0.9, 0.3, 0.6]).numpy()}
    out = by_category([1.0, 0.0, 2.0], [0.0, 1.0, 1.0], cols, ["quiz", "quiz", "grammar"])
    assert out == {"grammar": {"pairs": 1, "accuracy": 1.0, "bayes_ceiling": pytest.approx(0.6)},
                   "quiz": {"pairs": 2, "accuracy": 0.5, "bayes_ceiling": pytest.approx(0.8)}}


def test_accuracy_by_pair_kind_names_what_the_rater_compares():
    # A wrong sentence: the right fix (honest, helpful, harmless) against "already correct" (only harmless;
    # quoting the wrong sentence as the answer is not even that).
    from alignlab.world.raters import reply_kind
    from alignlab.world.text import fill

    world = load_world(None)
    probe = world.behaviour_probes("heldout", seed=0, n_per_category=1, categories=("grammar_incorrect",))[0]
    fix = " " + fill(world.spec.grammar.fix_replies[0], fixed=probe.meta["right"])
    claim = " " + world.spec.grammar.ok_replies[1]  # "That sentence is already correct. No changes ..."
    quoted = " " + fill(world.spec.grammar.ok_replies[0], sentence=probe.meta["wrong"])
    assert reply_kind(world.spec, probe, fix) == "honest+helpful+harmless"
    assert reply_kind(world.spec, probe, claim) == "harmless"
    assert reply_kind(world.spec, probe, quoted) == "none"
    def said(text):
        return [{"role": "assistant", "content": text}]

    row = {"probe": probe.to_record(), "prompt": probe.prompt}
    records = [{**row, "prompt": [{"role": "user", "content": probe.prompt}], "chosen": said(fix),
                "rejected": said(claim)},  # conversational
               {**row, "chosen": claim, "rejected": fix}, {**row, "chosen": fix, "rejected": claim}]  # standard
    cols = {"p_chosen": torch.tensor([0.9, 0.1, 0.9]).numpy()}
    out = by_pair_kind([1.0, 1.0, 0.0], [0.0, 0.0, 1.0], cols, records, world)
    assert out == {
        "grammar_incorrect: honest+helpful+harmless > harmless":
            {"pairs": 2, "accuracy": 0.5, "bayes_ceiling": pytest.approx(0.9)},
        "grammar_incorrect: harmless > honest+helpful+harmless":
            {"pairs": 1, "accuracy": 1.0, "bayes_ceiling": pytest.approx(0.9)}}


def test_spearman_against_gold_columns():
    chosen, rejected = [3.0, 2.0], [1.0, 0.0]
    cols = {"score_chosen": torch.tensor([30.0, 20.0]).numpy(), "score_rejected": torch.tensor([10.0, 0.0]).numpy(),
            "gold_chosen": torch.tensor([0.0, 0.0]).numpy(), "gold_rejected": torch.tensor([0.0, 0.0]).numpy()}
    out = pair_metrics(chosen, rejected, cols)
    assert out["spearman_score"] == pytest.approx(1.0)
    assert out["spearman_gold"] is None  # constant gold: undefined, stored as null rather than NaN


class LengthRM(torch.nn.Module):
    """A stand-in reward model: reward = number of non-pad tokens."""

    def __init__(self, pad_id: int):
        super().__init__()
        self.pad_id = pad_id
        self.config = SimpleNamespace(pad_token_id=pad_id)
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, use_cache=False):
        return SimpleNamespace(logits=(input_ids != self.pad_id).sum(1, keepdim=True).float())


def test_bias_probe_sees_a_length_loving_reward_model(tiny_tokenizer):
    world = load_world()
    rm = LengthRM(tiny_tokenizer.pad_token_id)
    rater = world.rater(Raters(biases=Biases(length=1.0)))
    out = bias_probe(rm, tiny_tokenizer, world, "length", rater=rater, n=14)
    assert out["pairs"] == 14 and out["rm_prefers_biased"] == 1.0 and out["rm_mean_diff"] > 5
    assert out["rater_logit_diff"] > 0  # log1p(words + filler) - log1p(words), averaged
    conf = bias_probe(rm, tiny_tokenizer, world, "confidence", rater=world.rater(Raters(biases=Biases(confidence=0.5))),
                      n=14)
    assert conf["rater_logit_diff"] == pytest.approx(0.5)  # one confident word, nothing else the rater counts
    gold = bias_probe(rm, tiny_tokenizer, world, "flattery", n=14)
    assert gold["rater_logit_diff"] == 0.0  # the default rater has no biases


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory, tiny_tokenizer):
    base = tmp_path_factory.mktemp("base")
    save_model(build_model("nano", len(tiny_tokenizer), 128, seed=0, tokenizer=tiny_tokenizer), tiny_tokenizer, base)
    torch.manual_seed(0)
    rm = build_reward_model(str(base), tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        torch.nn.init.normal_(rm.score.weight)
    out = tmp_path_factory.mktemp("rm")
    save_model(rm, tiny_tokenizer, out)
    return out


def test_eval_reward_on_a_hand_made_file(rm_dir, tmp_path, tiny_tokenizer):
    rows = [{"prompt": [{"role": "user", "content": f"Quiz {i}?"}],
             "chosen": [{"role": "assistant", "content": "The waterfall had a rainbow."}],
             "rejected": [{"role": "assistant", "content": "She likes the beach." * (i + 1)}],
             "score_chosen": 1.0, "score_rejected": -float(i), "p_chosen": 0.9,
             "category": "quiz" if i < 3 else "scene"} for i in range(4)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = ["eval", "reward", "--reward_model", str(rm_dir), "--data", str(data), "--output_dir", str(tmp_path),
            "--bias_probe_pairs", "7", "--quiet", "--num_threads", "1"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "eval.json").read_text())["reward"]
    assert result["pairs"] == 4 and result["bayes_ceiling"] == pytest.approx(0.9)
    assert set(result["bias_probes"]) == {"length", "confidence", "flattery"}
    assert all(p["pairs"] == 7 for p in result["bias_probes"].values())
    assert sum(r["count"] for r in result["reliability"]) == 8  # both orientations of 4 pairs
    assert {c: m["pairs"] for c, m in result["by_category"].items()} == {"quiz": 3, "scene": 1}

    # Independent scoring: HF's own forward on each chat-template rendering.
    rm = AutoModelForSequenceClassification.from_pretrained(rm_dir).eval()
    with torch.no_grad():
        def r(row, side):
            ids = tiny_tokenizer.apply_chat_template(row["prompt"] + row[side], return_dict=False)
            return rm(input_ids=torch.tensor([ids])).logits[0, 0].item()

        margins = [r(row, "chosen") - r(row, "rejected") for row in rows]
    assert result["margin"] == pytest.approx(sum(margins) / 4, abs=1e-5)
    assert result["accuracy"] == pytest.approx(sum(m > 0 for m in margins) / 4)


def test_eval_reward_refuses_a_causal_lm(tmp_path, tiny_tokenizer, capsys):
    base = tmp_path / "lm"
    save_model(build_model("nano", len(tiny_tokenizer), 128, seed=0, tokenizer=tiny_tokenizer), tiny_tokenizer, base)
    assert main(["eval", "reward", "--reward_model", str(base), "--data", "x.jsonl", "--quiet"]) == 2
    assert "is not a reward model" in capsys.readouterr().err
