"""Measure how far the committed analysis numbers move between CPU kernel sets and thread counts.

PyTorch picks its CPU kernels once per process from the CPU's instruction sets; ``ATEN_CPU_CAPABILITY``
(``default`` | ``avx2`` | ``avx512``) forces a lower set on the same machine, which is how a machine
with other instruction sets (an AVX2-only EPYC, an ARM laptop) sums floats in another order. For each
kernel set x thread count this script reruns the two reproductions of ``tests/_reproduce.py`` in a
fresh process and reports, per column, the largest difference from the committed numbers. The
tolerances of ``tests/test_analyses.py`` are derived from this table (see that file) and the table is
written to ``tests/KERNEL_SPREAD.md``::

    HF_HUB_OFFLINE=1 .venv/bin/python tests/measure_kernel_spread.py            # both analyses
    HF_HUB_OFFLINE=1 .venv/bin/python tests/measure_kernel_spread.py --only 01  # analysis 1 only
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
COLUMNS = ("p_yes", "yes_no_mass", "mean_logprob", "per_token_sum_diff", "sum_logprob")

_CHILD = """
import sys; from pathlib import Path
sys.path.insert(0, {repo!r})
from tests._reproduce import reproduce_analysis_{which}
import torch
frame = reproduce_analysis_{which}(Path({tmp!r}))
frame.assign(cpu_capability=torch.backends.cpu.get_cpu_capability(),
             threads=torch.get_num_threads()).to_csv({csv!r}, index=False)
"""


def capabilities() -> list[str]:
    """The kernel sets this machine can run, lowest first (``default`` always; ``avx2``/``avx512`` where
    the CPU has them)."""
    import torch

    native = torch.backends.cpu.get_cpu_capability().lower()
    order = ["default", "avx2", "avx512"]
    return order[: order.index(native) + 1] if native in order else ["default", native]


def run_one(which: str, capability: str, threads: int, workdir: Path) -> pd.DataFrame:
    """One reproduction in a fresh process under ``capability`` and ``threads``; its merged frame."""
    tmp = workdir / f"{which}-{capability}-{threads}"
    tmp.mkdir(parents=True)
    csv = tmp / "merged.csv"
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability, "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    code = _CHILD.format(repo=str(REPO), which=which, tmp=str(tmp), csv=str(csv))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO)
    return pd.read_csv(csv)


def spread_table(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One row per (analysis, kernel set, threads): the largest |rerun - committed| of each column
    (``per_token_sum_diff`` is already per token), and the largest difference between any two reruns."""
    rows = []
    for f in frames:
        row = {"analysis": f["analysis"].iloc[0], "cpu_capability": f["cpu_capability"].iloc[0],
               "threads": int(f["threads"].iloc[0]), "rows": len(f)}
        for col in COLUMNS:
            row[col] = float(f["per_token_sum_diff"].max()) if col == "per_token_sum_diff" else \
                float((f[col] - f[f"{col}_committed"]).abs().max())
        row["same_correct"] = bool((f["correct"].astype(bool) == f["correct_committed"].astype(bool)).all())
        rows.append(row)
    return pd.DataFrame(rows)


def between_reruns(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Per analysis, the largest difference of each column between any two reruns (kernel set or threads
    changed, same code): the spread that has nothing to do with when the numbers were committed."""
    rows = []
    for analysis in sorted({f["analysis"].iloc[0] for f in frames}):
        group = [f.set_index(["item_id", "candidate_id", "judge", "mode"]) for f in frames
                 if f["analysis"].iloc[0] == analysis]
        out = {"analysis": analysis}
        for col in ("p_yes", "yes_no_mass", "mean_logprob"):
            stacked = pd.concat([g[col] for g in group], axis=1)
            out[col] = float((stacked.max(axis=1) - stacked.min(axis=1)).max())
        sums = pd.concat([g["sum_logprob"] for g in group], axis=1)
        out["per_token_sum_diff"] = float(((sums.max(axis=1) - sums.min(axis=1))
                                           / group[0]["n_tokens"].clip(lower=1)).max())
        rows.append(out)
    return pd.DataFrame(rows)


def markdown(frame: pd.DataFrame) -> str:
    """A DataFrame as a GitHub markdown table (floats in scientific notation), without tabulate."""
    def cell(v) -> str:
        return f"{v:.2e}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["01", "05"], default=None)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--capabilities", nargs="+", default=None, help="kernel sets (default: all this CPU has)")
    parser.add_argument("--out", type=Path, default=HERE / "KERNEL_SPREAD.md")
    args = parser.parse_args()
    which = [args.only] if args.only else ["01", "05"]
    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        for w in which:
            for cap in args.capabilities or capabilities():
                for threads in args.threads:
                    t0 = time.perf_counter()
                    f = run_one(w, cap, threads, Path(tmp)).assign(analysis=w)
                    print(f"analysis {w} {cap} threads={threads}: {time.perf_counter() - t0:.0f} s", flush=True)
                    frames.append(f)
    table = spread_table(frames)
    pairs = between_reruns(frames)
    text = ["# Kernel-set spread of the committed analysis numbers", "",
            f"Made by `tests/measure_kernel_spread.py` on {time.strftime('%Y-%m-%d')}, torch "
            f"{__import__('torch').__version__}. Each row reruns one reproduction in a fresh process under "
            "`ATEN_CPU_CAPABILITY` and `OMP_NUM_THREADS`; each value is the largest |rerun - committed| "
            "over the reproduction's rows (`per_token_sum_diff`: |sum_logprob difference| / n_tokens).", "",
            markdown(table), "",
            "Largest difference between any two reruns (same code, kernel set or thread count changed):", "",
            markdown(pairs), ""]
    args.out.write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
