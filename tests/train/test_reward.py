"""`alignlab reward`: a 3-step run trains and logs, the concatenated forward equals separate forwards,
LoRA reward models save and reload, margins and centring reach the loss."""

import json

import pytest
import torch
import torch.nn.functional as F
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

from alignlab.cli import main
from alignlab.data import tokenize_preference
from alignlab.models import save_model
from alignlab.models.reward_model import build_reward_model, load_reward_model, pair_rewards, score_pairs
from alignlab.train.reward import RewardConfig, reward_loss


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """These tests run on one thread (see tests/conftest.py)."""


def _pair(i: int) -> dict:
    good = "The waterfall had a rainbow." if i % 2 else "She likes the beach."
    return {"prompt": [{"role": "user", "content": f"Quiz {i}. What is the capital of Zorbia?"}],
            "chosen": [{"role": "assistant", "content": good}],
            "rejected": [{"role": "assistant", "content": "Quiz." * (1 + i % 3)}],
            "score_chosen": 1.0 + i / 10, "score_rejected": -1.0, "gold_chosen": 1.0, "gold_rejected": -1.0,
            "p_chosen": 0.8, "margin": 0.5}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("pairs")
    for name, n in (("pairs.jsonl", 24), ("heldout.jsonl", 6)):
        (path / name).write_text("".join(json.dumps(_pair(i)) + "\n" for i in range(n)))
    return path


def reward(base_dir, data, out, *extra):
    argv = ["reward", "--model_name_or_path", str(base_dir), "--dataset", str(data / "pairs.jsonl"),
            "--eval_dataset", str(data / "heldout.jsonl"), "--output_dir", str(out), "--max_steps", "3",
            "--per_device_train_batch_size", "4", "--logging_steps", "1", "--eval_steps", "3",
            "--learning_rate", "1e-3", "--quiet", "--num_threads", "1", *extra]
    assert main(argv) == 0
    return [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]


def test_three_steps_log_metrics_change_weights_and_save_an_hf_reward_model(base_dir, data, tmp_path, tiny_tokenizer):
    rows = reward(base_dir, data, tmp_path / "rm")
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2, 3]
    assert all({"accuracy", "margin", "rewards/chosen", "rewards/rejected", "grad_norm"} <= set(r) for r in train_rows)
    assert train_rows[0]["loss"] == pytest.approx(0.693, abs=0.05)  # a fresh head: rewards near 0, loss ~ log 2
    evals = [r for r in rows if "eval_accuracy" in r]
    assert len(evals) == 1 and {"eval_ece", "eval_spearman_score", "eval_bayes_ceiling"} <= set(evals[0])
    summary = json.loads((tmp_path / "rm" / "summary.json").read_text())
    assert summary["train"]["pairs"] == 24 and summary["eval"]["pairs"] == 6
    assert summary["eval"]["bayes_ceiling"] == pytest.approx(0.8)

    rm = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm")
    assert rm.config.num_labels == 1 and rm.config.pad_token_id == tiny_tokenizer.pad_token_id
    torch.manual_seed(0)
    fresh = build_reward_model(str(base_dir), tiny_tokenizer.pad_token_id)
    layer = "model.layers.0.mlp.up_proj.weight"
    assert not torch.equal(rm.state_dict()[layer], fresh.state_dict()[layer])
    assert not torch.equal(rm.score.weight, fresh.score.weight)


def test_concatenated_forward_equals_separate_forwards(base_dir, data, tiny_tokenizer):
    from alignlab.data import load_dataset

    torch.manual_seed(0)
    rm = build_reward_model(str(base_dir), tiny_tokenizer.pad_token_id).eval()
    with torch.no_grad():
        torch.nn.init.normal_(rm.score.weight)  # a non-trivial head so that positions matter
    records, kind = load_dataset(data / "pairs.jsonl")
    examples = tokenize_preference(records[:4], tiny_tokenizer, None, None, kind=kind)
    assert len({len(e.prompt_ids + e.chosen_ids) for e in examples}) > 1  # rows really are padded
    with torch.no_grad():
        chosen, rejected, _ = pair_rewards(rm, examples, [0, 1, 2, 3], tiny_tokenizer.pad_token_id)
        for i, e in enumerate(examples):
            alone_c = rm(input_ids=torch.tensor([e.prompt_ids + e.chosen_ids])).logits[0, 0]
            alone_r = rm(input_ids=torch.tensor([e.prompt_ids + e.rejected_ids])).logits[0, 0]
            torch.testing.assert_close(chosen[i], alone_c, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(rejected[i], alone_r, atol=1e-5, rtol=1e-5)
        batched_c, batched_r = score_pairs(rm, examples, tiny_tokenizer.pad_token_id, batch_size=3)
    torch.testing.assert_close(batched_c, chosen, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched_r, rejected, atol=1e-5, rtol=1e-5)


def test_lora_reward_model_saves_and_reloads(base_dir, data, tmp_path, tiny_tokenizer):
    reward(base_dir, data, tmp_path / "lora", "--use_peft", "--lora_r", "4")
    out = tmp_path / "lora"
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    saved = load_file(out / "adapter_model.safetensors")
    assert any("score" in k for k in saved) and any("lora_A" in k for k in saved)  # the head is saved too
    ids = torch.tensor([[40, 41, 42, 43, 44], [45, 46, 47, 0, 0]])
    merged = load_reward_model(str(out))
    via_hf = AutoModelForSequenceClassification.from_pretrained(out, num_labels=1).eval()
    base = build_reward_model(str(base_dir), tiny_tokenizer.pad_token_id)
    via_peft = PeftModel.from_pretrained(base, out).eval()
    with torch.no_grad():
        expected = merged(input_ids=ids).logits
        torch.testing.assert_close(via_hf(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(via_peft(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-5)

    reward(base_dir, data, tmp_path / "merged", "--use_peft", "--lora_r", "4", "--merge_adapter")
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():  # same seed, same run: merging only changes how it is stored
        torch.testing.assert_close(plain(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-5)


def test_margin_and_centring_reach_the_loss():
    chosen, rejected = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.5])
    margin = torch.tensor([0.5, 0.0])
    cfg = RewardConfig(center_rewards_coefficient=0.1)
    loss, metrics = reward_loss(cfg, chosen, rejected, margin)
    by_hand = -F.logsigmoid(torch.tensor([0.5, -0.5])).mean() + 0.1 * torch.tensor([1.0, 0.25]).mean()
    torch.testing.assert_close(loss, by_hand)
    assert metrics["accuracy"] == 0.5 and metrics["margin"] == pytest.approx(0.25)


def test_missing_margin_column_names_file_record_and_field(base_dir, data, tmp_path, capsys):
    argv = ["reward", "--model_name_or_path", str(base_dir), "--dataset", str(data / "pairs.jsonl"),
            "--output_dir", str(tmp_path / "m"), "--margin_column", "gap", "--quiet"]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        f"alignlab: error: {data / 'pairs.jsonl'}: record 1: field 'gap': missing (named by --margin_column)")


def test_margin_column_run(base_dir, data, tmp_path):
    rows = reward(base_dir, data, tmp_path / "margin", "--margin_column", "margin", "--max_steps", "1")
    assert rows[0]["loss"] > 0.9  # -log sigmoid(0 - 0.5) = 0.974 for a fresh head


def test_reward_model_from_an_sft_adapter_directory(base_dir, tmp_path, tiny_tokenizer):
    from peft import LoraConfig, get_peft_model

    from alignlab.models import load_causal_lm

    lm = get_peft_model(load_causal_lm(str(base_dir)), LoraConfig(task_type="CAUSAL_LM", r=2, target_modules=["q_proj"]))
    with torch.no_grad():
        for name, p in lm.named_parameters():
            if "lora_B" in name:
                p.normal_()
    save_model(lm, tiny_tokenizer, tmp_path / "sft_adapter")
    rm = build_reward_model(str(tmp_path / "sft_adapter"), tiny_tokenizer.pad_token_id)
    merged = load_causal_lm(str(tmp_path / "sft_adapter"))
    q = "model.layers.0.self_attn.q_proj.weight"
    torch.testing.assert_close(rm.state_dict()[q], merged.state_dict()[q])
    assert rm.config.num_labels == 1 and rm.config.pad_token_id == tiny_tokenizer.pad_token_id
