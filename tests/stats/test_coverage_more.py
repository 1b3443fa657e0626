"""Coverage of the other interval estimators on data with item effects shared by an item's
candidates (issue 10, finding 8): the item bootstrap, GEE, the mixed model and mediation.

Each kind has a short unmarked check (a loose band, so CI exercises it) and a slow one behind
``@slow`` (``SELFBIAS_SLOW=1``) with the nominal band: 95% intervals must cover the planted value
in 93-97% of the runs (with 800 runs the coverage has SD 0.8%, so the band is +-2.5 SD).
"""

import numpy as np
import pandas as pd

from selfbias.stats import (
    likelihood_regression,
    mediation,
    misplaced_confidence,
    mixed_effects_regression,
)
from selfbias.stats.simulate import simulate_run

from ._slow import slow

N_SLOW = 800


def _bootstrap_hits(n_runs: int) -> float:
    """misplaced_confidence's item-bootstrap interval of mean P(Yes) on wrong answers; P(Yes) =
    0.5 + u_item + e, u ~ N(0, 0.1^2) shared by the item's 5 candidates, e ~ N(0, 0.1^2): the
    population mean is exactly 0.5 (the clip at [0, 1] is symmetric)."""
    hits = []
    for seed in range(n_runs):
        rng = np.random.default_rng(seed)
        n_items, k = 50, 5
        item = np.repeat(np.arange(n_items), k)
        p = np.clip(0.5 + rng.normal(0, 0.1, n_items)[item] + rng.normal(0, 0.1, item.size), 0, 1)
        df = pd.DataFrame({"item_id": item.astype(str), "judge": "J", "mode": "isolated", "source": "x",
                           "p_yes": p, "correct": False})
        t = misplaced_confidence(df, by=(), n_boot=1000, seed=seed)
        r = t[(t["measure"] == "mean_p_yes") & (t["correctness"] == "wrong")].iloc[0]
        hits.append(r["ci_low"] <= 0.5 <= r["ci_high"])
    return float(np.mean(hits))


def _regression_hits(n_runs: int, fit, p_model: str, term: str = "z_loglik") -> float:
    hits = []
    for seed in range(n_runs):
        run = simulate_run(n_items=60, n_candidates=4, modes=("isolated",), p_model=p_model, item_sd=0.7,
                           seed=seed)
        row = fit(run.analysis).term(term)
        hits.append(row["ci_low"] <= run.truth["coefficients"][term] <= row["ci_high"])
    return float(np.mean(hits))


def _mediation_hits(n_runs: int) -> float:
    hits = []
    for seed in range(n_runs):
        run = simulate_run(n_items=60, n_candidates=4, modes=("isolated",), p_model="logit_normal", item_sd=0.7,
                           seed=seed)
        effects = mediation(run.analysis, n_sims=200, seed=seed).effects.set_index("effect")
        acme = run.truth["mediation"]["acme"]
        hits.append(effects.loc["acme", "ci_low"] <= acme <= effects.loc["acme", "ci_high"])
    return float(np.mean(hits))


def _gee(df):
    return likelihood_regression(df, method="gee")


def test_item_bootstrap_coverage_short():
    assert _bootstrap_hits(40) >= 0.85


def test_gee_coverage_short():
    assert _regression_hits(30, _gee, "beta") >= 0.85


def test_mixed_model_coverage_short():
    assert _regression_hits(30, mixed_effects_regression, "logit_normal") >= 0.85


def test_mediation_coverage_short():
    assert _mediation_hits(10) >= 0.8  # P(>= 8 of 10 | 95%) = 0.99


@slow
def test_item_bootstrap_coverage():
    assert 0.93 <= _bootstrap_hits(N_SLOW) <= 0.97


@slow
def test_gee_coverage():
    assert 0.93 <= _regression_hits(N_SLOW, _gee, "beta") <= 0.97


@slow
def test_mixed_model_coverage():
    assert 0.93 <= _regression_hits(N_SLOW, mixed_effects_regression, "logit_normal") <= 0.97


@slow
def test_mediation_coverage():
    assert 0.93 <= _mediation_hits(N_SLOW) <= 0.97
