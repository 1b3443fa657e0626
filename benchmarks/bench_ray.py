"""Benchmark: one probe on Ray with 1 vs 2 actors, and an estimate for N GPUs from per-chunk times.

Prints figures; asserts nothing about time. Run alone on a quiet machine:
``.venv/bin/python benchmarks/bench_ray.py [--quick] [--items N] [--cpus C] [--study-items I --study-models M]``
(needs ``pip install 'selfbias[ray]'``).

Workload: ``selfbias.probe("smollm2-135m", "arithmetic", n=N)`` (N = 48, six chunks of 8 items; 9 with
``--quick``), 2 samples, 16 new tokens, judge modes isolated + alternatives, fp32 on CPU. A local Ray
cluster is started with ``--cpus`` CPUs (default 2: this machine's cores); each actor takes one CPU and
runs torch on one thread (the driver too), so 2 actors use both cores. Each run writes into a fresh
temporary folder; both runs' tables are checked equal.

Figures: wall time of the whole probe (driver load, actors' start, generation, scoring, judging,
finalize) with 1 and 2 actors; actors' start-up time; per-chunk seconds on the actors by table (from
the 1-actor run, where actors do not share cores); and the estimate

    wall(N) ~ driver + start + sum over tables of ceil(chunks_table / N) * seconds per chunk_table

for N actors (one GPU each) on a study of ``--study-items`` items and ``--study-models`` models
(chunks per table: models x ceil(items / 8) for generations and scores, models x 2 modes x
ceil(items / 16) for judgments, every model judging). The per-chunk seconds are those of one model's
candidates; with M models an item has more candidates, so judge and score chunks take longer (the
estimate is a lower bound). The per-chunk seconds here are CPU seconds of SmolLM2-135M; for GPUs,
measure them on one GPU (``--actors-only 1 --gpus-per-actor 1``) and read the same formula.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch: the driver on one thread, as each actor
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, table  # noqa: E402

import pandas as pd  # noqa: E402

from selfbias import probe  # noqa: E402
from selfbias.distributed import RayOptions  # noqa: E402
from selfbias.runs import TABLES  # noqa: E402

MODEL = "smollm2-135m"
CHUNK_ITEMS = {"generations": 8, "scores": 8, "judgments": 16}


def run_once(out: Path, items: int, actors: int, samples: int, max_new_tokens: int,
             gpus: float) -> tuple[float, dict, object]:
    """Wall seconds of one probe on ``actors`` actors, the executor's records, and the Run."""
    box: dict = {}

    def keep(executor, job):
        box["executor"] = executor

    start = time.perf_counter()
    run = probe(MODEL, "arithmetic", n=items, samples=samples, max_new_tokens=max_new_tokens, out=out,
                judge_modes=("isolated", "alternatives"), progress=False,
                ray=RayOptions(actors=actors, num_cpus=1, num_gpus=gpus, after_chunk=keep))
    wall = time.perf_counter() - start
    ex = box["executor"]
    return wall, {"startup": list(ex.startup), "timings": list(ex.timings)}, run


def estimate(per_chunk: dict[str, float], driver: float, startup: float, items: int, models: int,
             gpus: list[int]) -> list[list]:
    """The written estimate of the module docstring, one row per N."""
    chunks = {"generations": models * math.ceil(items / 8), "scores": models * math.ceil(items / 8),
              "judgments": models * 2 * math.ceil(items / 16)}
    rows = []
    for n in gpus:
        work = sum(math.ceil(chunks[t] / n) * per_chunk.get(t, 0.0) for t in chunks)
        wall = driver + startup + work
        rows.append([n, f"{wall / 3600:.2f}", f"{work / 3600:.2f}", f"{sum(chunks.values())}"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="9 items, 1 sample, 8 new tokens (a check that it runs)")
    ap.add_argument("--items", type=int, default=None)
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    ap.add_argument("--actors-only", type=int, default=None, help="run only this actor count")
    ap.add_argument("--gpus-per-actor", type=float, default=0.0)
    ap.add_argument("--study-items", type=int, default=5000)
    ap.add_argument("--study-models", type=int, default=3)
    args = ap.parse_args()
    import ray

    items = args.items or (9 if args.quick else 48)
    samples, max_new = (1, 8) if args.quick else (2, 16)
    counts = [args.actors_only] if args.actors_only else [1, 2]
    print(f"bench_ray {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {machine()}")
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, logging_level="ERROR",
             log_to_driver=False, _node_ip_address="127.0.0.1")
    print(f"local Ray cluster: {args.cpus} CPUs; actors take 1 CPU and 1 torch thread each; driver 1 thread; "
          f"{items} items, {samples} samples, {max_new} new tokens, judge modes isolated + alternatives")
    tmp = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    results, runs = {}, {}
    try:
        for n in counts:
            wall, rec, runs[n] = run_once(tmp / f"a{n}", items, n, samples, max_new, args.gpus_per_actor)
            results[n] = (wall, rec)
    finally:
        ray.shutdown()
    first = runs[counts[0]]
    for n in counts[1:]:
        for t in TABLES:
            pd.testing.assert_frame_equal(first.table(t), runs[n].table(t), obj=t)
    shutil.rmtree(tmp, ignore_errors=True)

    rows = []
    for n, (wall, rec) in results.items():
        chunk_sum = sum(r["seconds"] for r in rec["timings"])
        rows.append([n, f"{wall:.1f}", f"{max(rec['startup']):.1f}", len(rec["timings"]), f"{chunk_sum:.1f}",
                     f"{results[counts[0]][0] / wall:.2f}x"])
    print()
    print(table(["actors", "wall s", "actor start s", "chunks", "sum of chunk s", f"vs {counts[0]} actor"], rows))

    wall1, rec1 = results[counts[0]]
    frame = pd.DataFrame(rec1["timings"])
    per_chunk = frame.groupby("table")["seconds"].mean().to_dict()
    # seconds per item: a table's chunk seconds over the items they hold (each stage covers every item;
    # the last chunk of a stage may be short, so the mean chunk time alone would understate a full one)
    per_item = {t: g["seconds"].sum() / (items * g["stage"].nunique()) for t, g in frame.groupby("table")}
    print()
    print(table(["table", "chunks", "mean s per chunk", "s per item"],
                [[t, int((frame["table"] == t).sum()), f"{per_chunk[t]:.2f}", f"{per_item[t]:.3f}"]
                 for t in per_chunk]))
    startup = max(rec1["startup"])
    driver = max(0.0, wall1 - startup - frame["seconds"].sum())  # driver load, candidates, finalize (serial)
    # per-chunk seconds of full chunks: the measured per-item rate times the chunk's items
    full = {t: per_item[t] * CHUNK_ITEMS[t] for t in per_item}
    print()
    print(f"estimate for a study of {args.study_items} items x {args.study_models} models (every model "
          f"judging every model's answers, 2 modes), N actors, one GPU each, from the per-chunk times above "
          f"(driver {driver:.1f} s + actor start {startup:.1f} s + ceil(chunks / N) x s per chunk):")
    print(table(["N", "wall h", "chunk work h", "chunks"],
                estimate(full, driver, startup, args.study_items, args.study_models, [1, 2, 4, 8, 16, 32])))


if __name__ == "__main__":
    main()
