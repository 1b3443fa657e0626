"""Benchmark: training throughput of ``selfbias train`` (transformers' Trainer) on SmolLM2-135M (fp32, CPU).

Prints figures; asserts nothing about time. ``.venv/bin/python benchmarks/bench_train.py [--quick]
[--steps N] [--threads N]``.

Workload: ``selfbias.train.train("smollm2-135m", objective, "arithmetic", n=32, steps=N,
tokens_per_step=48)`` for the imitation and critique objectives (N = 6, 2 with ``--quick``),
checkpointing off (one save at the end is included in the time).

Compute bound: a forward + backward pass costs about 6 x P FLOPs per token read (P = parameters,
Kaplan et al. 2020), and the Trainer reads the prompt tokens too, so the bound on *trained*
(completion) tokens/s is ``F / (6 P) x trained/read``, with F the machine's matmul FLOP/s measured
here (the best of a few fp32 ``torch.matmul`` of 1024 x 1024 matrices, 2 n^3 FLOPs each). Attention
FLOPs are ignored (sequences are < 200 tokens). The report gives tokens/s and the share of the bound.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, table  # noqa: E402


def matmul_flops(n: int = 1024, repeats: int = 5) -> float:
    """Best measured fp32 matmul throughput (FLOP/s) on n x n matrices."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    import torch

    import selfbias
    from selfbias.train import train

    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or (2 if args.quick else 6)
    print(machine())
    flops = matmul_flops()
    lm = selfbias.load_model("smollm2-135m")
    params = sum(p.numel() for p in lm.model.parameters())
    print(f"matmul: {flops / 1e9:.1f} GFLOP/s; SmolLM2 parameters: {params / 1e6:.1f} M; "
          f"bound on tokens read: {flops / (6 * params):.0f} tokens/s")
    rows = []
    for objective in ("imitation", "critique"):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            rec = train(lm, objective, "arithmetic", out=Path(tmp) / "m", n=32, steps=steps, tokens_per_step=48,
                        save_steps=10**6, progress=False).record
            seconds = time.perf_counter() - start
        b = rec["budget"]
        bound = flops / (6 * params) * b["trained_tokens"] / b["read_tokens"]
        rate = b["trained_tokens"] / seconds
        rows.append((objective, steps, b["batch_size"], b["trained_tokens"], b["read_tokens"], f"{seconds:.1f}",
                     f"{seconds / steps:.2f}", f"{rate:.1f}", f"{bound:.1f}", f"{rate / bound:.0%}"))
    print(table(("objective", "steps", "batch", "trained tok", "read tok", "seconds", "s/step", "trained tok/s",
                 "bound tok/s", "of bound"), rows))
    print("seconds include loading the copy, tokenising, the Trainer's set-up and one final save.")


if __name__ == "__main__":
    main()
