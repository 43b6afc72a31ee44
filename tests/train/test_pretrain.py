"""Pretraining on a local corpus: outputs in HF format, held-out loss, resume through the CLI."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from alignlab.cli import main
from alignlab.train import loop as loop_module
from alignlab.train.loop import TIMING_KEYS, batch_indices
from alignlab.train.pretrain import PretrainConfig, two_phase_schedule


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "docs.jsonl"
    colours = ["red", "blue", "green", "amber"]
    rows = [{"text": f"The {colours[i % 4]} kite number {i} flew over the hill. It landed softly."} for i in range(400)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def args(corpus, out, *extra):
    return ["pretrain", "--corpus", str(corpus), "--output_dir", str(out), "--preset", "nano", "--vocab_size", "300",
            "--context_length", "32", "--per_device_train_batch_size", "8", "--max_steps", "8", "--logging_steps",
            "2", "--eval_steps", "4", "--eval_blocks", "8", "--heldout_fraction", "0.1", "--quiet", *extra]


def test_pretrain_writes_a_loadable_base_model(corpus, tmp_path):
    out = tmp_path / "run"
    assert main(args(corpus, out)) == 0
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "config.json", "model.safetensors",
                 "tokenizer.json", "checkpoint-8"):
        assert (out / name).exists(), name
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval_loss" in r] == [4, 8]
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    ids = torch.tensor([tok("The red kite")["input_ids"]])
    assert model(ids).logits.shape[-1] == len(tok)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 8 and summary["final_eval_loss"] < 6.0


def test_pretrain_without_heldout_documents_trains_without_a_heldout_loss(corpus, tmp_path):
    out = tmp_path / "run"
    assert main([*args(corpus, out)[:-3], "--heldout_fraction", "0", "--quiet"]) == 0
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert not any("eval_loss" in r for r in rows)
    assert json.loads((out / "summary.json").read_text())["final_eval_loss"] is None


@pytest.mark.parametrize("copy", [[], ["--copy_warmup_steps", "3", "--copy_fraction", "0.25"]],
                         ids=["corpus", "copy-warmup"])
def test_interrupted_pretraining_resumes_identically(corpus, tmp_path, monkeypatch, copy):
    assert main(args(corpus, tmp_path / "full", *copy)) == 0
    real_step = loop_module.TrainLoop.optimizer_step

    def dying_step(self, metrics, tokens):
        real_step(self, metrics, tokens)
        if self.step == 6:
            raise KeyboardInterrupt  # killed after step 6; the last checkpoint is step 4

    monkeypatch.setattr(loop_module.TrainLoop, "optimizer_step", dying_step)
    assert main(args(corpus, tmp_path / "cut", "--save_steps", "4", *copy)) == 130
    monkeypatch.undo()
    assert main(args(corpus, tmp_path / "cut", "--save_steps", "4", "--resume", *copy)) == 0

    def rows(run):
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(r).items() if k not in TIMING_KEYS} for r in lines]

    assert rows("cut") == rows("full")


def test_batch_indices_is_a_permutation_per_epoch():
    seen = torch.cat([batch_indices(10, step, 5, seed=1) for step in range(2)])
    assert sorted(seen.tolist()) == list(range(10))
    straddle = torch.cat([batch_indices(10, step, 4, seed=1) for step in range(5)])  # 20 = two epochs
    assert sorted(straddle[:10].tolist()) == list(range(10)) and sorted(straddle[10:].tolist()) == list(range(10))


def test_copy_warmup_comes_before_the_corpus_with_its_own_rate(corpus, tmp_path):
    out = tmp_path / "run"
    assert main(args(corpus, out, "--copy_warmup_steps", "4", "--copy_learning_rate", "1e-3",
                     "--learning_rate", "3e-3", "--logging_steps", "1")) == 0
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in rows if "lr" in r]
    assert len(lrs) == 12 and lrs[:4] == pytest.approx([1e-3] * 4)  # warmup ratio 0.03 of 4 steps: 1 step
    assert lrs[4] == pytest.approx(3e-3) and lrs[-1] < 1e-3  # then the corpus schedule: warmup, cosine
    evals = [r for r in rows if "eval_loss" in r]
    assert [r["step"] for r in evals] == [4, 8, 12] and all(0 <= r["copy/second_copy_acc"] <= 1 for r in evals)


def test_two_phase_schedule_by_hand():
    cfg = PretrainConfig(learning_rate=4e-3, copy_learning_rate=1e-3, copy_warmup_steps=100, warmup_ratio=0.1,
                         lr_scheduler_type="cosine", min_lr_ratio=0.0)
    f = two_phase_schedule(cfg, corpus_steps=20)
    # copy phase: 10 warmup steps to 1e-3 / 4e-3, then constant
    assert [f(s) for s in (0, 9, 50, 99)] == pytest.approx([0.025, 0.25, 0.25, 0.25])
    # corpus phase: warmup of 2 steps (0.1 × 20), then cosine from 1 to 0 over the other 18
    assert [f(100), f(101), f(102), f(111)] == pytest.approx([0.5, 1.0, 1.0, 0.5])


@pytest.mark.parametrize("bad", [["--copy_fraction", "1"], ["--copy_fraction", "0.95"],
                                 ["--copy_warmup_steps", "-1"]], ids=["one", "rounds-to-all", "negative"])
def test_bad_copy_options_are_usage_errors_before_anything_is_written(corpus, tmp_path, capsys, bad):
    assert main(args(corpus, tmp_path / "run", *bad)) == 2  # a batch of 8: 0.95 rounds to 8 copy blocks
    assert bad[0] in capsys.readouterr().err and not (tmp_path / "run").exists()
