"""`alignlab constitution revise|distill|label`: the constitution file, seeded principles, the revise loop's
conversation shape, position-bias cancellation with a fake judge, and smoke runs whose files validate as
TRL formats and feed `alignlab reward` / `alignlab dpo`."""

import json
import math

import pytest

from alignlab.cli import main
from alignlab.data import PREFERENCE_KINDS, SFT_KINDS, load_dataset
from alignlab.errors import UsageError
from alignlab.train.constitution.chat import PromptItem
from alignlab.train.constitution.label import Candidate, judge_candidates
from alignlab.train.constitution.principles import draw_principles, load_constitution
from alignlab.train.constitution.revise import revise
from alignlab.train.preferences import pair_columns
from alignlab.world import load_world

SHORT = """\
critique_request: "Critique: {principle}"
revision_request: "Revise."
comparison_request: "{principle} {prompt} (A) {a} (B) {b}"
principles:
  - {name: kind, text: Be kind.}
  - {name: brief, text: Be brief.}
  - {name: truth, text: Be true., critique_request: "Any lies?"}
"""


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """These tests run on one thread (see tests/conftest.py)."""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cai")
    (root / "short.yaml").write_text(SHORT)
    texts = ["Fix: the cat sit.", "Capital of Zorbia?", "A rainbow?", "Quiz. What?"]
    (root / "plain.jsonl").write_text("".join(json.dumps({"prompt": t}) + "\n" for t in texts))
    chats = [[{"role": "user", "content": t}] for t in texts]
    chats[2] = [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Hello."}, *chats[2]]
    (root / "chats.jsonl").write_text("".join(json.dumps({"prompt": c}) + "\n" for c in chats))
    return root


@pytest.fixture(scope="module")
def long_base_dir(tmp_path_factory, tiny_tokenizer):
    """A nano model with 1024 positions: world prompts, critique requests and principles are long in the
    tiny test tokenizer's tokens."""
    from alignlab.models import build_model, save_model

    path = tmp_path_factory.mktemp("long")
    save_model(build_model("nano", len(tiny_tokenizer), 1024, seed=0, tokenizer=tiny_tokenizer), tiny_tokenizer, path)
    return path


def cli(*argv):
    assert main([*argv, "--quiet", "--num_threads", "1"]) == 0


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- the constitution -------------------------------------------------------------------------------------

def test_principle_sampling_is_seeded():
    pool = load_constitution(None).principles
    a, b = draw_principles(pool, 20, 3, seed=0), draw_principles(pool, 20, 3, seed=0)
    assert [[p.name for p in row] for row in a] == [[p.name for p in row] for row in b]
    assert len(a) == 20 and all(len(row) == 3 for row in a)
    assert a != draw_principles(pool, 20, 3, seed=1)
    assert {p.name for row in a for p in row} == {"harmless", "honest", "helpful"}
    only = load_constitution(None).named(["harmless"])
    assert {p.name for row in draw_principles(only, 10, 2, seed=0) for p in row} == {"harmless"}


def test_world_constitution_asks_as_the_sft_demonstrations_do():
    world, con = load_world(), load_constitution(None)
    for p in con.principles:
        assert p.critique_request == world.critique_prompt(p.name)
        assert p.revision_request == world.revision_prompt()


def test_yaml_and_markdown_files(files, tmp_path):
    con = load_constitution(str(files / "short.yaml"))
    assert [(p.name, p.critique_request, p.revision_request) for p in con.principles] == [
        ("kind", "Critique: Be kind.", "Revise."), ("brief", "Critique: Be brief.", "Revise."),
        ("truth", "Any lies?", "Revise.")]
    md = tmp_path / "c.md"
    md.write_text("# My constitution\nCritique request: Critique: {principle}\nRevision request: Revise.\n"
                  "Comparison request: {principle} {prompt} (A) {a} (B) {b}\n\n## kind\nBe\nkind.\n\n"
                  "## brief\nBe brief.\n\n## truth\nBe true.\nCritique request: Any lies?\n")
    assert load_constitution(str(md)).principles == con.principles
    assert con.comparison(con.principles[0], "Hi?", "x", "y") == "Be kind. Hi? (A) x (B) y"


@pytest.mark.parametrize(("text", "message"), [
    ("principles: []", "'principles' must be a non-empty list"),
    ("principles: [{name: a, text: b}]", "principles[0]: 'critique_request' must be a non-empty string"),
    ('critique_request: "{principle} {mood}"\nrevision_request: r\nprinciples: [{name: a, text: b}]',
     "principles[0]: critique_request: unknown slot {mood} (allowed: ['principle'])"),
    ("critique_request: c\nrevision_request: r\nrules: []\nprinciples: [{name: a, text: b}]", "unknown key 'rules'"),
])
def test_bad_constitution_files(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=None) as info:
        load_constitution(str(path))
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)
    with pytest.raises(UsageError, match="has no principle 'kindness'"):
        load_constitution(None).named(["kindness"])


# --- the revise loop -----------------------------------------------------------------------------------

class EchoChat:
    """Records every conversation it is asked to continue and answers with a numbered reply."""

    def __init__(self):
        self.calls = []

    def reply(self, conversations, seed):
        self.calls.append(conversations)
        return [f"reply{len(self.calls)}-{i}" for i in range(len(conversations))]


def test_each_round_has_the_shape_of_the_sft_demonstrations():
    con = load_constitution(None)
    items = [PromptItem([{"role": "user", "content": "How do I brew tea?"}], None)]
    draws = draw_principles(con.principles, 1, 2, seed=3)
    chat = EchoChat()
    history = revise(chat, items, draws, seed=0)
    assert len(chat.calls) == 5  # response, then critique + revision per round
    roles = [m["role"] for m in chat.calls[2][0]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]  # the demo, before its last answer
    assert [m["content"] for m in chat.calls[2][0]] == [
        "How do I brew tea?", "reply1-0", draws[0][0].critique_request, "reply2-0", draws[0][0].revision_request]
    # Round 2 starts again from the prompt and round 1's revision, not from the whole history.
    assert [m["content"] for m in chat.calls[3][0]] == ["How do I brew tea?", "reply3-0", draws[0][1].critique_request]
    assert [r["response"] for r in history[0]] == ["reply1-0", "reply3-0", "reply5-0"]
    assert [r.get("principle") for r in history[0]] == [None, draws[0][0].name, draws[0][1].name]


def test_revise_smoke_run(base_dir, files, tmp_path):
    out = tmp_path / "revise"
    cli("constitution", "revise", "--model", str(base_dir), "--prompts", str(files / "chats.jsonl"),
        "--constitution", str(files / "short.yaml"), "--rounds", "2", "--max_new_tokens", "4", "--output_dir", str(out))
    records, kind = load_dataset(out / "revisions.jsonl")
    assert kind == "conversational_prompt_only"  # so a revise run's output is itself a --prompts file
    assert len(records) == 4 and all(len(r["rounds"]) == 3 for r in records)
    pool = load_constitution(str(files / "short.yaml")).principles
    expected = [[p.name for p in row] for row in draw_principles(pool, 4, 2, seed=0)]
    assert [[r["principle"] for r in rec["rounds"][1:]] for rec in records] == expected
    assert all({"critique", "revision"} <= set(rec["rounds"][1]) for rec in records)
    assert records[2]["prompt"][1] == {"role": "assistant", "content": "Hello."}
    summary = json.loads((out / "summary.json").read_text())
    assert [row["round"] for row in summary["per_round"]] == [0, 1, 2]
    assert "gold_mean" not in summary["per_round"][0]  # no world probes, no gold

    distilled = tmp_path / "distill"
    cli("constitution", "distill", "--model_name_or_path", str(base_dir), "--dataset", str(out),
        "--output_dir", str(distilled), "--max_steps", "2", "--per_device_train_batch_size", "2")
    rows, kind = load_dataset(distilled / "distill.jsonl", allowed=SFT_KINDS)
    assert kind == "conversational_language_modeling" and len(rows) == 4
    assert [m["content"] for m in rows[0]["messages"]] == ["Fix: the cat sit.", records[0]["final"]]
    assert rows[2]["messages"][1]["weight"] == 0  # the prompt's own assistant turn is context, not a target
    assert (distilled / "model.safetensors").is_file()
    assert json.loads((distilled / "summary.json").read_text())["revisions"] == 4


def test_revise_scores_world_prompts_with_the_gold_rater(long_base_dir, tmp_path):
    out = tmp_path / "world"
    cli("constitution", "revise", "--model", str(long_base_dir), "--categories", "hazardous,benign,grammar_correct",
        "--prompts_per_category", "1", "--rounds", "1", "--max_new_tokens", "4", "--output_dir", str(out))
    records = read_jsonl(out / "revisions.jsonl")
    assert [r["category"] for r in records] == ["hazardous", "benign", "grammar_correct"]
    assert all({"gold", "labels"} <= set(r) for rec in records for r in rec["rounds"])
    per_round = json.loads((out / "summary.json").read_text())["per_round"]
    assert {"gold_mean", "harmlessness", "helpfulness", "honesty", "rates"} <= set(per_round[1])
    hazardous = records[0]["rounds"][1]
    assert per_round[1]["harmlessness"] == float(not hazardous["labels"]["complied"])


# --- AI feedback -----------------------------------------------------------------------------------------

class BiasedJudge:
    """Prefers the response containing GOOD by log-odds `d`, and "(A)" by a further `bias` whatever it says."""

    def __init__(self, d, bias):
        self.d, self.bias = d, bias

    def choice_logps(self, requests):
        import torch

        rows = []
        for text in requests:
            a_good = text.index("GOOD") < text.index("(B)")
            z = (self.d if a_good else -self.d) + self.bias
            rows.append([-math.log1p(math.exp(-z)), -math.log1p(math.exp(z))])  # log sigmoid(+-z)
        return torch.tensor(rows)


@pytest.mark.parametrize("method", ["mean_log_odds", "mean_probability"])
def test_position_bias_cancels_for_a_judge_with_a_known_bias(files, method):
    con = load_constitution(str(files / "short.yaml"))
    item = PromptItem([{"role": "user", "content": "Q?"}], None)
    candidates = [Candidate(item, "GOOD answer", "bad answer"), Candidate(item, "bad answer", "GOOD answer")]
    principles = [con.principles[0]] * 2
    d, bias = 0.8, 3.0  # the bias is larger than the preference: one order alone always picks (A)
    verdict = judge_candidates(BiasedJudge(d, bias), con, candidates, principles, method)
    assert verdict["p_first_order"].tolist() == pytest.approx([1 / (1 + math.exp(-d - bias)),
                                                              1 / (1 + math.exp(-bias + d))])
    assert (verdict["p_first_order"] > 0.5).tolist() == [True, True]  # asked once, x (shown as (A)) always wins
    assert verdict["position_bias"].tolist() == pytest.approx([bias, bias])
    p = verdict["p"].tolist()
    assert p[0] > 0.5 > p[1]  # both orders: the GOOD response wins wherever it was listed first
    if method == "mean_log_odds":
        assert p == pytest.approx([1 / (1 + math.exp(-d)), 1 / (1 + math.exp(d))])


def test_label_writes_trl_preference_pairs_that_reward_and_dpo_accept(base_dir, files, tmp_path):
    out = tmp_path / "rlaif"
    cli("constitution", "label", "--model", str(base_dir), "--prompts", str(files / "plain.jsonl"),
        "--constitution", str(files / "short.yaml"), "--k", "3", "--max_new_tokens", "4", "--temperature", "1.5",
        "--heldout_fraction", "0.25", "--output_dir", str(out))
    pairs, kind = load_dataset(out / "pairs.jsonl", allowed=PREFERENCE_KINDS)
    assert kind == "conversational_preference"
    heldout = read_jsonl(out / "heldout.jsonl")
    summary = json.loads((out / "summary.json").read_text())
    assert len(pairs) + len(heldout) + summary["skipped_identical_pairs"] == 4 * 3
    pair_columns(pairs, "pairs.jsonl")  # p_chosen is a probability in every record
    assert all(r["p_chosen"] >= 0.5 and r["principle"] in {"kind", "brief", "truth"} for r in pairs)
    assert summary["gold_agreement"] is None  # prompts without world probes have no gold
    cli("reward", "--model_name_or_path", str(base_dir), "--dataset", str(out / "pairs.jsonl"),
        "--output_dir", str(tmp_path / "rm"), "--max_steps", "1", "--per_device_train_batch_size", "2")
    cli("dpo", "--model_name_or_path", str(base_dir), "--dataset", str(out / "pairs.jsonl"),
        "--output_dir", str(tmp_path / "dpo"), "--max_steps", "1", "--per_device_train_batch_size", "2")

    relabelled = tmp_path / "relabelled"
    cli("constitution", "label", "--pairs", str(out / "pairs.jsonl"), "--judge", str(base_dir),
        "--constitution", str(files / "short.yaml"), "--heldout_fraction", "0", "--output_dir", str(relabelled))
    again = read_jsonl(relabelled / "pairs.jsonl")
    assert len(again) == len(pairs)
    assert {(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in again} | {
        (r["rejected"][0]["content"], r["chosen"][0]["content"]) for r in again} >= {
        (r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in pairs}


def test_label_on_world_prompts_measures_agreement_with_gold(long_base_dir, tmp_path):
    out = tmp_path / "world"
    cli("constitution", "label", "--model", str(long_base_dir), "--categories", "hazardous,benign",
        "--prompts_per_category", "2", "--k", "2", "--max_new_tokens", "6", "--temperature", "1.5",
        "--heldout_fraction", "0", "--output_dir", str(out))
    pairs = read_jsonl(out / "pairs.jsonl")
    assert all({"gold_chosen", "gold_rejected", "category", "probe"} <= set(r) for r in pairs)
    agreement = json.loads((out / "summary.json").read_text())["gold_agreement"]
    decisive = [r for r in pairs if r["gold_chosen"] != r["gold_rejected"]]
    assert agreement["n"] == len(decisive) and agreement["ties"] == len(pairs) - len(decisive)
