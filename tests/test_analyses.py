"""The committed figures are what the analysis scripts produce: a reduced run of analysis 1 gives the
same per-candidate numbers as the committed full run, for the items both contain."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "figures" / "01_likelihood_confidence"


def test_reduced_analysis_reproduces_committed_numbers(tmp_path):
    if not (COMMITTED / "analysis_frame.csv").exists():
        pytest.fail("figures/01_likelihood_confidence/analysis_frame.csv is missing: run analyses/01_likelihood_confidence.py")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    subprocess.run([sys.executable, str(REPO / "analyses" / "01_likelihood_confidence.py"), "--reduced",
                    "--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs")],
                   check=True, env=env, capture_output=True, cwd=REPO)
    reduced = pd.read_csv(tmp_path / "out" / "analysis_frame.csv")
    committed = pd.read_csv(COMMITTED / "analysis_frame.csv")
    # Arithmetic candidates depend only on their own item (capitals perturbations borrow other items'
    # answers, so a smaller task has other candidates there).
    key = ["item_id", "candidate_id", "judge", "mode"]
    reduced = reduced[reduced["task"] == "arithmetic"]
    merged = reduced.merge(committed, on=key, suffixes=("", "_committed"), how="left", validate="one_to_one")
    assert len(merged) > 20 and merged["p_yes_committed"].notna().all()
    for col in ("p_yes", "sum_logprob", "mean_logprob", "yes_no_mass"):
        diff = (merged[col] - merged[f"{col}_committed"]).abs().max()
        assert diff <= 1e-4, f"{col}: max difference {diff:.2e} from the committed numbers"
    for col in ("correct", "source", "self_authored", "n_tokens"):
        assert (merged[col] == merged[f"{col}_committed"]).all(), col
    assert (tmp_path / "out" / "likelihood_vs_confidence.png").stat().st_size > 1000
