"""KTO stage: a smoke run from policy = reference, the mismatched KL pairs, the cached reference."""

import json

import pytest
import torch
from transformers.models.llama import modeling_llama

from alignlab.cli import main
from alignlab.errors import UsageError
from alignlab.models import load_causal_lm
from alignlab.train.kto import mismatched_partners

N = 10
BATCH = 4


@pytest.fixture(scope="module")
def unpaired(tmp_path_factory):
    # Two completions per prompt, one good and one bad: the shape KTO data usually has.
    rows = []
    for i in range(N // 2):
        rows.append({"prompt": f"Quiz {i}. What is the capital?", "completion": f" Zorbia {i}.", "label": True})
        rows.append({"prompt": f"Quiz {i}. What is the capital?", "completion": " She likes the beach.", "label": False})
    path = tmp_path_factory.mktemp("data") / "kto.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def kto(base_dir, data, out, *extra):
    argv = ["kto", "--model_name_or_path", str(base_dir), "--dataset", str(data), "--output_dir", str(out),
            "--max_steps", "2", "--per_device_train_batch_size", str(BATCH), "--logging_steps", "1",
            "--precompute_ref_batch_size", "8", "--num_threads", "1", "--quiet", *extra]
    assert main(argv) == 0
    return [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]


def test_kto_smoke_run_starts_at_one_half_and_changes_weights(base_dir, unpaired, tmp_path, monkeypatch):
    no_grad_rows = []
    real_forward = modeling_llama.LlamaModel.forward

    def counting_forward(self, input_ids=None, *args, **kwargs):
        if not torch.is_grad_enabled():
            no_grad_rows.append(input_ids.shape[0])
        return real_forward(self, input_ids, *args, **kwargs)

    monkeypatch.setattr(modeling_llama.LlamaModel, "forward", counting_forward)
    rows = kto(base_dir, unpaired, tmp_path / "run")
    # Reference pass: every matched and every mismatched row once; then the policy's no-grad KL rows per step.
    assert sum(no_grad_rows) == 2 * N + 2 * BATCH
    # policy = reference: r = 0 and z0 = 0, so each example's loss is 1 - sigmoid(0) = 1/2.
    assert rows[0]["loss"] == pytest.approx(0.5, abs=1e-6)
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-6)
    assert {"rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected"} <= set(rows[0]) | set(rows[1])
    before, after = load_causal_lm(str(base_dir)), load_causal_lm(str(tmp_path / "run"))
    assert not torch.equal(before.model.layers[0].self_attn.q_proj.weight, after.model.layers[0].self_attn.q_proj.weight)

    no_grad_rows.clear()
    kto(base_dir, unpaired, tmp_path / "again", "--ref_cache", str(tmp_path / "run" / "ref_logps.pt"))
    assert sum(no_grad_rows) == 2 * BATCH  # only the policy's KL rows: the reference came from the cache
    assert json.loads((tmp_path / "again" / "summary.json").read_text())["reference"] == "cache hit"


def test_mismatched_partners_pair_each_completion_with_another_prompt():
    prompts = [[1], [1], [2], [2], [3], [3]]
    partners = mismatched_partners(prompts, seed=0)
    assert partners == mismatched_partners(prompts, seed=0)  # fixed once, so the reference can be cached
    assert all(prompts[j] != prompts[i] for i, j in enumerate(partners))
    assert sorted(mismatched_partners([[1]] * 3, seed=0)) == [0, 1, 2]  # one prompt only: the next example
    assert all(i != j for i, j in enumerate(mismatched_partners([[1]] * 3, seed=0)))
    with pytest.raises(UsageError, match="at least 2 examples"):
        mismatched_partners([[1]], seed=0)


def test_kto_rejects_paired_data(base_dir, tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "Hi", "chosen": " a", "rejected": " b"}) + "\n")
    argv = ["kto", "--model_name_or_path", str(base_dir), "--dataset", str(pairs), "--output_dir",
            str(tmp_path / "x"), "--quiet"]
    assert main(argv) == 2
    assert f"{pairs}: dataset is standard_preference; kto needs one of" in capsys.readouterr().err
