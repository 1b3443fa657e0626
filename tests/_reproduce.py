"""Reproductions of committed analysis numbers, shared by ``tests/test_analyses.py`` and
``tests/measure_kernel_spread.py`` (which measures how far the numbers move between CPU kernel sets and
thread counts, the spread the tests' tolerances are derived from).

Each function reruns part of a committed analysis and returns one row per judged candidate, merged with
the committed row (``<col>`` is the rerun's value, ``<col>_committed`` the committed one), plus
``per_token_sum_diff`` = |sum_logprob - committed| / n_tokens.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
KEY = ["item_id", "candidate_id", "judge", "mode"]
ANALYSIS_01 = REPO / "figures" / "01_likelihood_confidence" / "analysis_frame.csv"
ANALYSIS_05 = REPO / "figures" / "05_critique_vs_imitation" / "analysis_frame.csv"


def _merge(rerun: pd.DataFrame, committed: pd.DataFrame) -> pd.DataFrame:
    merged = rerun.merge(committed, on=KEY, suffixes=("", "_committed"), how="left", validate="one_to_one")
    merged["per_token_sum_diff"] = ((merged["sum_logprob"] - merged["sum_logprob_committed"]).abs()
                                    / merged["n_tokens"].clip(lower=1))
    return merged


def reproduce_analysis_01(tmp: Path, env: dict | None = None) -> pd.DataFrame:
    """Analysis 1 reduced (arithmetic, its first 4 items, every judge mode) against the committed full run.

    Arithmetic candidates depend only on their own item (capitals perturbations borrow other items'
    answers, so a smaller task has other candidates there), so the reduced run's rows are a subset.
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg", **(env or {})}
    subprocess.run([sys.executable, str(REPO / "analyses" / "01_likelihood_confidence.py"), "--reduced",
                    "--out", str(tmp / "out"), "--runs", str(tmp / "runs")],
                   check=True, env=env, capture_output=True, cwd=REPO)
    reduced = pd.read_csv(tmp / "out" / "analysis_frame.csv")
    reduced = reduced[reduced["task"] == "arithmetic"]
    return _merge(reduced, pd.read_csv(ANALYSIS_01))


def reproduce_analysis_05(tmp: Path) -> pd.DataFrame:
    """Analysis 5's imitation arm, seed 0, retrained with the committed settings (20 optimizer steps) and
    evaluated on its first four held-out items, against the committed rows of that arm and seed.

    Runs in this process (the kernel set and thread count are the process's own): call it in a
    subprocess to measure another kernel set.
    """
    import selfbias
    from selfbias.tasks import Task
    from selfbias.train import heldout_task, train

    sys.path.insert(0, str(REPO / "analyses"))
    try:
        spec = importlib.util.spec_from_file_location("analysis05", REPO / "analyses" / "05_critique_vs_imitation.py")
        a5 = importlib.util.module_from_spec(spec)
        sys.modules["analysis05"] = a5
        spec.loader.exec_module(a5)
    finally:
        sys.path.remove(str(REPO / "analyses"))
    cfg = a5.FULL
    objective, errors, _ = a5.ARMS["imitation"]
    base = selfbias.load_model(a5.BASE)
    out = tmp / "imitation-s0"
    train(base, objective, "arithmetic", out=out, n=cfg.n, seed=0, errors=errors, rounds=1, steps=cfg.steps,
          tokens_per_step=cfg.tokens_per_step, learning_rate=cfg.learning_rate, save_steps=max(4, cfg.steps // 2),
          progress=False)
    held = heldout_task(out)
    task = Task(name=held.name, items=held.items[:4], checker=held.checker, source=held.source)
    lm = a5._named(selfbias.load_model(str(out)), "imitation-s0")
    frame, _ = a5._evaluate("imitation-s0", lm, task, cfg, tmp / "runs", True)
    committed = pd.read_csv(ANALYSIS_05)
    committed = committed[(committed["arm"] == "imitation") & (committed["seed"] == 0)]
    return _merge(frame, committed)
