"""Offline preference stage: DPO smoke runs, the reference cache, LoRA reference, the concatenated forward."""

import copy
import json
import math
import os

import pytest
import torch
from transformers.models.llama import modeling_llama

from alignlab.cli import main
from alignlab.data import tokenize_preference
from alignlab.generation import score_continuations
from alignlab.models import build_model, load_causal_lm
from alignlab.objectives.preference import LOSSES, PairedLogps
from alignlab.train import ref_cache
from alignlab.train.lora import LoraOptions, apply_lora
from alignlab.train.preference import (
    DpoConfig,
    collate_rows,
    completion_logps,
    concatenated_logps,
    preference_loss,
)

N_PAIRS = 12


def pair_records(n=N_PAIRS):
    return [{"prompt": f"Quiz {i}. What is the capital?", "chosen": f" Zorbia {i}.",
             "rejected": " The waterfall had a rainbow and she likes the beach."} for i in range(n)]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in pair_records()))
    return path


@pytest.fixture
def reference_rows(monkeypatch):
    """Rows through the decoder with gradients off: the reference pass (policy forwards keep gradients)."""
    counter = {"rows": 0}
    real_forward = modeling_llama.LlamaModel.forward

    def counting_forward(self, input_ids=None, *args, **kwargs):
        if not torch.is_grad_enabled():
            counter["rows"] += input_ids.shape[0]
        return real_forward(self, input_ids, *args, **kwargs)

    monkeypatch.setattr(modeling_llama.LlamaModel, "forward", counting_forward)
    return counter


def dpo(base_dir, pairs, out, *extra, command="dpo"):
    argv = [command, "--model_name_or_path", str(base_dir), "--dataset", str(pairs), "--output_dir", str(out),
            "--max_steps", "2", "--per_device_train_batch_size", "4", "--logging_steps", "1",
            "--precompute_ref_batch_size", "8", "--num_threads", "1", "--quiet", *extra]
    assert main(argv) == 0
    return [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]


def test_dpo_smoke_run_changes_weights_logs_trl_metrics_and_starts_at_log2(base_dir, pairs, tmp_path):
    rows = dpo(base_dir, pairs, tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2]
    for key in ("loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
                "logps/chosen", "logps/rejected", "kl/k1_chosen", "grad_norm"):
        assert key in rows[0], key
    # Step 1's loss is computed before the first update, with policy = reference: -log sigmoid(0) = log 2.
    assert rows[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert rows[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-5)
    assert rows[1]["loss"] != rows[0]["loss"]
    before, after = load_causal_lm(str(base_dir)), load_causal_lm(str(tmp_path / "run"))
    assert not torch.equal(before.model.layers[0].mlp.up_proj.weight, after.model.layers[0].mlp.up_proj.weight)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["reference"] == "computed" and summary["steps"] == 2
    assert (tmp_path / "run" / "ref_logps.pt").is_file()


def test_reference_is_one_pass_over_the_data_then_reused_from_the_cache(base_dir, pairs, tmp_path, reference_rows):
    first = dpo(base_dir, pairs, tmp_path / "a")
    assert reference_rows["rows"] == 2 * N_PAIRS  # chosen + rejected of every pair, once
    reference_rows["rows"] = 0
    second = dpo(base_dir, pairs, tmp_path / "b", "--ref_cache", str(tmp_path / "a" / "ref_logps.pt"),
                 "--beta", "0.5")
    assert reference_rows["rows"] == 0
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["reference"] == "cache hit"
    assert second[0]["logps/chosen"] == pytest.approx(first[0]["logps/chosen"], rel=1e-6)
    assert not (tmp_path / "b" / "ref_logps.pt").exists()


def test_cache_key_changes_with_the_reference_weights(tmp_path):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    calls = []

    def score(model, idx):
        calls.append(len(idx))
        return {"x": idx.float() * 2}

    def get():
        return ref_cache.reference_logps(torch.nn.Linear(2, 2), model_dir=str(model_dir), ref_dir=None,
                                         cache_path=tmp_path / "c.pt", digest="d", n_items=5, batch_size=2,
                                         score_batch=score)

    tensors, hit = get()
    assert not hit and calls == [2, 2, 1] and tensors["x"].tolist() == [0, 2, 4, 6, 8]
    assert get()[1] and calls == [2, 2, 1]
    os.utime(model_dir / "config.json", ns=(1, 1))  # the reference changed on disk: a new entry
    assert not get()[1] and len(calls) == 6


def test_lora_reference_is_the_base_model_with_the_adapter_disabled(tiny_tokenizer):
    base = build_model("nano", len(tiny_tokenizer), 128, seed=0, tokenizer=tiny_tokenizer)
    policy = apply_lora(copy.deepcopy(base), LoraOptions(use_peft=True, lora_r=4))
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # a trained adapter: the policy no longer equals the base
    examples = tokenize_preference(pair_records(4), tiny_tokenizer, None, None)
    idx = torch.arange(4)
    with torch.no_grad():
        expected = concatenated_logps(base, examples, idx, 0)
        with ref_cache.reference_model(policy, None) as ref:
            as_reference = concatenated_logps(ref, examples, idx, 0)
        adapted = concatenated_logps(policy, examples, idx, 0)
    torch.testing.assert_close(as_reference["chosen"], expected["chosen"])
    torch.testing.assert_close(as_reference["rejected"], expected["rejected"])
    assert not torch.allclose(adapted["chosen"], expected["chosen"])  # the adapter is back on afterwards


def test_lora_dpo_run_saves_an_adapter_and_starts_at_log2(base_dir, pairs, tmp_path, reference_rows):
    # transformers' own norm and RoPE, as the checkpointed run below must use: under bf16 autocast the fused
    # ones round differently (a bf16 ulp after one update), which would hide what this compares.
    rows = dpo(base_dir, pairs, tmp_path / "lora", "--use_peft", "--lora_r", "4", "--fused_ops", "false")
    assert reference_rows["rows"] == 2 * N_PAIRS
    assert rows[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert (tmp_path / "lora" / "adapter_config.json").is_file()
    assert not (tmp_path / "lora" / "model.safetensors").exists()
    # Activation checkpointing recomputes the same numbers: the second step (after one update) agrees.
    checkpointed = dpo(base_dir, pairs, tmp_path / "gc", "--use_peft", "--lora_r", "4", "--gradient_checkpointing",
                       "--ref_cache", str(tmp_path / "lora" / "ref_logps.pt"))
    assert checkpointed[1]["loss"] == pytest.approx(rows[1]["loss"], rel=1e-5)


def test_concatenated_forward_equals_separate_forwards_and_the_scorer(tiny_tokenizer):
    model = build_model("nano", len(tiny_tokenizer), 128, seed=1, tokenizer=tiny_tokenizer).eval()
    examples = tokenize_preference(pair_records(3), tiny_tokenizer, None, None)
    prompts = [e.prompt_ids for e in examples]
    with torch.no_grad():
        together = concatenated_logps(model, examples, torch.arange(3), 0)
        chosen, n_chosen = completion_logps(model, *collate_rows(prompts, [e.chosen_ids for e in examples], 0))
        rejected, _ = completion_logps(model, *collate_rows(prompts, [e.rejected_ids for e in examples], 0))
    torch.testing.assert_close(together["chosen"], chosen, atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(together["rejected"], rejected, atol=1e-5, rtol=1e-6)
    assert together["chosen_lengths"].tolist() == n_chosen.tolist() == [len(e.chosen_ids) for e in examples]
    scored = score_continuations(model, prompts, [e.rejected_ids for e in examples])  # independent code
    torch.testing.assert_close(together["rejected"], scored, atol=1e-4, rtol=1e-5)


def test_orpo_uses_no_reference(base_dir, pairs, tmp_path, reference_rows):
    rows = dpo(base_dir, pairs, tmp_path / "orpo", command="orpo")
    assert reference_rows["rows"] == 0
    assert not (tmp_path / "orpo" / "ref_logps.pt").exists()
    assert {"nll_loss", "log_odds_ratio", "rewards/margins"} <= set(rows[0])
    assert "kl/k1_chosen" not in rows[0]
    assert json.loads((tmp_path / "orpo" / "summary.json").read_text())["loss_type"] == "orpo"


@pytest.mark.parametrize("loss_type", sorted(LOSSES))
def test_every_loss_type_gives_a_finite_loss_and_trl_metrics(loss_type):
    g = torch.Generator().manual_seed(0)
    lp = -torch.rand(4, 4, generator=g) * 20 - 1
    batch = PairedLogps(lp[0].requires_grad_(), lp[1].requires_grad_(), lp[2], lp[3],
                        torch.tensor([3, 4, 5, 6]), torch.tensor([6, 5, 4, 3]))
    loss, metrics = preference_loss(DpoConfig(loss_type=loss_type, label_smoothing=0.1), batch)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(batch.policy_chosen.grad).all()
    assert {"loss", "rewards/accuracies", "logps/rejected"} <= set(metrics)


def test_bad_dataset_is_a_one_line_error(base_dir, tmp_path, capsys):
    unpaired = tmp_path / "kto.jsonl"
    unpaired.write_text(json.dumps({"prompt": "Hi", "completion": " there", "label": True}) + "\n")
    argv = ["dpo", "--model_name_or_path", str(base_dir), "--output_dir", str(tmp_path / "x"), "--quiet"]
    assert main(argv + ["--dataset", str(unpaired)]) == 2
    assert "dataset is standard_unpaired_preference; dpo needs one of" in capsys.readouterr().err
    empty = tmp_path / "empty_prompt.jsonl"
    empty.write_text(json.dumps({"prompt": "", "chosen": " a", "rejected": " b"}) + "\n")
    assert main(argv + ["--dataset", str(empty), "--overwrite"]) == 2
    assert f"{empty}: record 1: field 'prompt': no tokens after tokenization" in capsys.readouterr().err
