"""Pretraining throughput and model FLOPs utilisation at the `tiny` and `small` presets.

One JSON line per (preset, dtype): tokens/s of the alignlab pretraining step (the same forward, loss,
backward and fused AdamW step as `alignlab pretrain`), and MFU = 6 · matmul params · tokens/s divided by a
square-matmul peak of the same dtype measured in this run. Usage: `python -m bench.bench_pretrain`.
"""

from __future__ import annotations

import argparse
import time

import torch

from alignlab.models import build_model
from alignlab.train.loop import FAST_BF16, TrainingConfig, build_optimizer, set_threads
from bench.common import emit, matmul_params, matmul_peak_gflops, peak_rss_gib


def tokens_per_second(preset: str, bf16: bool, steps: int, batch: int, context: int, vocab: int) -> float:
    model = build_model(preset, vocab, context, seed=0)
    optimizer = build_optimizer(model.parameters(), TrainingConfig())
    x = torch.randint(0, vocab, (batch, context), generator=torch.Generator().manual_seed(0))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(2):  # warm-up
        step()
    tick = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch * context / (time.perf_counter() - tick), matmul_params(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presets", default="tiny,small")
    # bf16 only where it runs in hardware: emulated bf16 (AVX2-only CPUs) is ~75x slower than fp32.
    parser.add_argument("--dtypes", default="fp32,bf16" if FAST_BF16 else "fp32")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    threads = set_threads(args.threads)
    peaks = {}
    for dtype in args.dtypes.split(","):
        peaks[dtype] = matmul_peak_gflops(torch.float32 if dtype == "fp32" else torch.bfloat16)
        emit({"bench": "matmul_peak", "dtype": dtype, "threads": threads, "gflops": round(peaks[dtype], 1)})
    for preset in args.presets.split(","):
        for dtype in args.dtypes.split(","):
            tps, params = tokens_per_second(preset, dtype == "bf16", args.steps, args.batch, args.context, args.vocab)
            mfu = 6 * params * tps / (peaks[dtype] * 1e9)
            emit({"bench": "pretrain", "preset": preset, "dtype": dtype, "threads": threads,
                  "matmul_params": params, "tokens_per_s": round(tps, 1), "mfu": round(mfu, 3),
                  "peak_rss_gib": round(peak_rss_gib(), 2)})


if __name__ == "__main__":
    main()
