"""Shared pieces of the benchmark scripts: matmul peak, peak RSS, JSON output."""

from __future__ import annotations

import json
import resource
import time

import torch


def matmul_peak_gflops(dtype: torch.dtype = torch.float32, size: int = 1024, seconds: float = 2.0) -> float:
    """Best-of-5 square-matmul throughput in GFLOP/s at the current thread count."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(5):
        n, tick = 0, time.perf_counter()
        while time.perf_counter() - tick < seconds / 5:
            a @ b
            n += 1
        best = max(best, 2 * size**3 * n / (time.perf_counter() - tick) / 1e9)
    return best


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def matmul_params(model) -> int:
    """Parameters that take part in a matmul per token: every 2-D weight except the input embedding,
    plus the LM head even when it is tied to the embedding."""
    embed = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    total = sum(p.numel() for p in model.parameters() if p.ndim == 2 and p is not embed)
    return total + (head.numel() if head is embed else 0)


def emit(row: dict) -> None:
    print(json.dumps(row), flush=True)
