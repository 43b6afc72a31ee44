"""`make bench`: every benchmark script in turn, each printing JSON lines."""

import subprocess
import sys

SCRIPTS = ["bench.bench_pretrain", "bench.bench_sampler", "bench.bench_sft", "bench.bench_reward", "bench.bench_dpo",
           "bench.bench_grpo"]

if __name__ == "__main__":
    for script in SCRIPTS:
        print(f"# {script}", flush=True)
        subprocess.run([sys.executable, "-m", script], check=True)
