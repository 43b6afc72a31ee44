"""Tokens/s of `alignlab.generation.sample` vs HF `model.generate`, sampling and greedy, side by side.

Model: a 5.3M-parameter Llama (vocab 4096, hidden 256, 4 layers, 4 heads, MLP 688), random weights.
Prompts: random token ids, lengths drawn from 28..36 (so batches are left-padded), 64 new tokens, no stop
tokens (both sides produce exactly 64 per row). After one warm-up call of every side, the sides run in
alternation for `--rounds` rounds and the median time is kept, so drift in machine load hits all sides.
Prints one JSON line per batch size.

    .venv/bin/python -m bench.bench_sampler                 # the numbers quoted in BENCHMARKS.md
    .venv/bin/python -m bench.bench_sampler --hf-caches     # + our loop over HF forward, both caches
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import torch  # noqa: E402
from transformers import LlamaForCausalLM  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from alignlab.generation import SamplingConfig, left_pad, sample  # noqa: E402
from bench.workload import build_llama  # noqa: E402


def build_model(seed: int = 0) -> LlamaForCausalLM:
    return build_llama("reference", seed).eval()  # the model of the TRL comparisons (bench/workload.py)


def make_sides(model, prompts, new_tokens: int, hf_caches: bool) -> dict:
    """name → zero-argument callable producing batch × new_tokens tokens."""
    ids, mask = left_pad(prompts, 0)

    def ours(do_sample: bool, decoder: str = "auto"):
        cfg = SamplingConfig(max_new_tokens=new_tokens, do_sample=do_sample, seed=0)
        return lambda: sample(model, prompts, cfg, pad_token_id=0, decoder=decoder)

    def hf(do_sample: bool):
        kw = dict(
            do_sample=do_sample,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            pad_token_id=0,
            eos_token_id=None,
        )
        if do_sample:
            kw.update(temperature=1.0, top_k=0, top_p=1.0)

        def run():
            with torch.inference_mode():
                return model.generate(ids, attention_mask=mask, **kw)

        return run

    sides = {
        "ours_sample": ours(True),
        "hf_sample": hf(True),
        "ours_greedy": ours(False),
        "hf_greedy": hf(False),
    }
    if hf_caches:
        sides["ours_hf_dynamic_sample"] = ours(True, "hf-dynamic")
        sides["ours_hf_static_sample"] = ours(True, "hf-static")
    return sides


def time_sides(sides: dict, rounds: int, bf16: bool = False) -> dict[str, float]:
    """Median seconds per call of each side; with `bf16`, every side runs under bf16 autocast."""
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)  # noqa: E731
    for run in sides.values():  # warm-up
        with autocast():
            run()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, run in sides.items():
            with autocast():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--hf-caches", action="store_true", help="also time our loop over HF forward, both caches"
    )
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    ap.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"), help="both sides: fp32 or bf16 autocast")
    ap.add_argument("--only", nargs="+", default=None, help="time only these sides (names as in the output)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    model = build_model()
    n_params = sum(p.numel() for p in model.parameters())
    gen = torch.Generator().manual_seed(1)
    for batch in args.batch_sizes:
        lengths = torch.randint(28, 37, (batch,), generator=gen).tolist()
        prompts = [torch.randint(1, 4096, (n,), generator=gen).tolist() for n in lengths]
        sides = make_sides(model, prompts, args.new_tokens, args.hf_caches or bool(args.only))
        if args.only:
            sides = {name: run for name, run in sides.items() if name in args.only}
        secs = time_sides(sides, args.rounds, args.dtype == "bf16")
        tok_s = {name: round(batch * args.new_tokens / s, 1) for name, s in secs.items()}
        row = {
            "batch": batch,
            "dtype": args.dtype,
            "new_tokens": args.new_tokens,
            "params": n_params,
            "threads": torch.get_num_threads(),
            "rounds": args.rounds,
            **{f"{name}_tok_s": v for name, v in tok_s.items()},
        }
        for kind in ("sample", "greedy"):
            if f"ours_{kind}" in tok_s and f"hf_{kind}" in tok_s:
                row[f"{kind}_ratio"] = round(tok_s[f"ours_{kind}"] / tok_s[f"hf_{kind}"], 2)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
