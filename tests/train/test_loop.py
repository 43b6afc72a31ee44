"""The shared loop: schedule, accumulation, checkpoints and bit-for-bit resume."""

import json

import pytest
import torch

from alignlab.models import build_model
from alignlab.rundir import RunDir
from alignlab.train.loop import TIMING_KEYS, TrainingConfig, TrainLoop, lr_lambda

VOCAB, T = 64, 16


def data_for(step: int, batch: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(1000 + step)  # data order is a function of the step
    return torch.randint(0, VOCAB, (batch, T), generator=g)


def train(run_dir, total, stop_after=None, resume=False, **overrides):
    cfg = TrainingConfig(output_dir=str(run_dir), quiet=True, logging_steps=2, save_steps=3,
                         learning_rate=1e-2, resume=resume, **overrides)
    torch.manual_seed(0)
    model = build_model("nano", VOCAB, T, seed=0)
    run = RunDir.claim(run_dir, resume=resume)
    loop = TrainLoop(cfg, model, run, total_steps=total)
    for step in loop.remaining_steps():
        if stop_after is not None and step == stop_after:
            break  # simulates a kill: nothing after the last checkpoint survives
        x = data_for(step)
        with loop.forward_context():
            loss = model(input_ids=x, labels=x).loss
        loop.backward(loss)
        loop.optimizer_step({"loss": loss.detach()}, tokens=x.numel())
    loop.finish()
    return model, run


def deterministic(rows):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    full_model, full = train(tmp_path / "full", total=10)
    _, part = train(tmp_path / "part", total=10, stop_after=5)  # last checkpoint at step 3, rows to 4
    assert [p.name for p in part.path.glob("checkpoint-*")] == ["checkpoint-3"]
    resumed_model, resumed = train(tmp_path / "part", total=10, resume=True)
    assert deterministic(resumed.read_metrics()) == deterministic(full.read_metrics())
    for a, b in zip(full_model.parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_gradient_accumulation_equals_larger_batch(tmp_path):
    torch.manual_seed(0)
    x = data_for(0, batch=8)
    grads = []
    for accum, name in ((1, "big"), (4, "accum")):
        cfg = TrainingConfig(output_dir=str(tmp_path / name), quiet=True, gradient_accumulation_steps=accum)
        model = build_model("nano", VOCAB, T, seed=0)
        loop = TrainLoop(cfg, model, RunDir.claim(tmp_path / name), total_steps=1)
        for chunk in x.chunk(accum):
            loop.backward(model(input_ids=chunk, labels=chunk).loss)
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


def test_schedule_warms_up_then_decays_to_floor():
    cfg = TrainingConfig(warmup_ratio=0.1, min_lr_ratio=0.1)
    f = lr_lambda(cfg, 100)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(100) == pytest.approx(0.1)
    assert f(55) == pytest.approx(0.55)


def test_metrics_rows_and_checkpoint_pruning(tmp_path):
    _, run = train(tmp_path / "r", total=7)
    rows = run.read_metrics()
    assert [r["step"] for r in rows] == [2, 4, 6, 7]
    assert {"loss", "lr", "grad_norm", "tokens_seen", "tokens_per_s"} <= set(rows[0])
    assert [p.name for p in run.path.glob("checkpoint-*")] == ["checkpoint-7"]
    state = json.loads((run.path / "checkpoint-7" / "trainer_state.json").read_text())
    assert state["step"] == 7 and state["tokens_seen"] == 7 * 4 * T


def test_report_to_tensorboard_writes_every_metrics_row_as_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(tmp_path / "run", 4, report_to="tensorboard")
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    loss = events.Scalars("loss")
    assert [e.step for e in loss] == [r["step"] for r in rows]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in rows])


def test_report_to_tensorboard_without_the_package_is_a_clear_error(tmp_path, monkeypatch):
    import sys

    from alignlab.errors import UsageError

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    with pytest.raises(UsageError, match="--report_to tensorboard: the tensorboard package is not installed"):
        train(tmp_path / "run", 2, report_to="tensorboard")


def test_fused_llama_ops_keep_the_loss_curve(tmp_path):
    _, fused = train(tmp_path / "fused", total=6, bf16=False)
    _, plain = train(tmp_path / "plain", total=6, bf16=False, fused_ops=False)
    losses = [[row["loss"] for row in run.read_metrics() if "loss" in row] for run in (fused, plain)]
    assert len(losses[0]) == 3
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)
