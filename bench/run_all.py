"""`make bench`: every benchmark script in turn, each printing JSON lines; the side-by-side comparisons run
at fp32 and, where bf16 runs in hardware (AMX, AVX512-BF16, CUDA), again at bf16 autocast."""

import subprocess
import sys

from alignlab.train.loop import FAST_BF16

SCRIPTS = ["bench.bench_pretrain", "bench.bench_sampler", "bench.bench_sft", "bench.bench_sft_world",
           "bench.bench_reward", "bench.bench_dpo", "bench.bench_grpo"]
DTYPE_SCRIPTS = SCRIPTS[1:]  # bench_pretrain times every dtype itself

if __name__ == "__main__":
    for script in SCRIPTS:
        for dtype in ("fp32", "bf16") if FAST_BF16 and script in DTYPE_SCRIPTS else (None,):
            argv = [] if dtype is None else ["--dtype", dtype]
            print(f"# {script} {' '.join(argv)}".rstrip(), flush=True)
            subprocess.run([sys.executable, "-m", script, *argv], check=True)
