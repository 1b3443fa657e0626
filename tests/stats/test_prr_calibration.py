"""PRR (lm-polygraph's prediction rejection ratio) and the debiased squared calibration error."""

import numpy as np
import pandas as pd
import pytest

from selfbias.stats import calibration, prediction_rejection_ratio
from selfbias.stats._calibration import _debiased_sq_ce, ece_rms as _ece_rms
from selfbias.stats._discrimination import _prr
from selfbias.stats.simulate import simulate_run

from ._slow import slow


def test_prr_by_hand():
    # confident first: 0.9 (right), 0.8 (wrong), 0.3 (right), 0.1 (wrong)
    # accuracy of the k kept: 1, 1/2, 2/3, 1/2 -> area 2.6667 / 4
    # oracle keeps 1, 1, 2/3, 1/2 -> 3.1667 / 4; random: 1/2 at every level
    # PRR = (0.66667 - 0.5) / (0.79167 - 0.5) = 4/7
    assert _prr(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1.0, 0, 1, 0])) == pytest.approx(4 / 7)
    assert _prr(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1.0, 1, 0, 0])) == pytest.approx(1.0)
    assert _prr(np.array([0.1, 0.3, 0.8, 0.9]), np.array([1.0, 1, 0, 0])) == pytest.approx(-1.0)
    assert np.isnan(_prr(np.array([0.2, 0.4]), np.array([1.0, 1.0])))


def _argsort_prr(score, target):
    """lm-polygraph's PRR: stable argsort of -score, areas of cumulative accuracies (no tie rule)."""
    def area(key):
        t = target[np.argsort(key, kind="stable")]
        return np.mean(np.cumsum(t) / np.arange(1, t.size + 1))
    random = target.mean()
    return (area(-score) - random) / (area(-target) - random)


def test_prr_with_ties_is_the_average_over_all_orders_of_the_tied_rows():
    # the mean of lm-polygraph's argsort PRR over every permutation of the rows (7! = 5040
    # orders, so every way of breaking the ties) must equal the tie-averaged PRR
    from itertools import permutations

    score = np.array([0.9, 0.5, 0.5, 0.5, 0.2, 0.2, 0.7])
    target = np.array([1.0, 1, 0, 0, 1, 0, 0])
    values = [_argsort_prr(score[list(o)], target[list(o)]) for o in permutations(range(7))]
    assert _prr(score, target) == pytest.approx(np.mean(values), rel=1e-12)
    assert np.ptp(values) > 0.3  # the argsort value depends on the row order; ours does not
    rng = np.random.default_rng(1)
    for _ in range(5):
        o = rng.permutation(7)
        assert _prr(score[o], target[o]) == pytest.approx(_prr(score, target), rel=1e-12)
    # without ties the two definitions agree
    distinct = np.array([0.9, 0.5, 0.4, 0.3, 0.2, 0.1, 0.7])
    assert _prr(distinct, target) == pytest.approx(_argsort_prr(distinct, target))


def test_a_constant_judge_has_prr_zero_whatever_the_row_order():
    run = simulate_run(n_items=40, modes=("isolated",), seed=6).analysis.assign(p_yes=0.62)
    for frame in (run, run.sort_values("correct"), run.sort_values("correct", ascending=False)):
        r = prediction_rejection_ratio(frame, n_boot=200).iloc[0]
        assert r["estimate"] == pytest.approx(0.0, abs=1e-12)
        assert r["ci_low"] <= r["estimate"] <= r["ci_high"]
        assert r["ci_low"] == pytest.approx(0.0, abs=1e-12) and r["ci_high"] == pytest.approx(0.0, abs=1e-12)


def test_prr_random_scores_average_zero_and_the_table():
    # a score unrelated to correctness: PRR 0 on average (random rejection's area is the mean)
    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.4).astype(float)
    prrs = [_prr(rng.random(200), y) for _ in range(400)]
    assert abs(np.mean(prrs)) < 4 * np.std(prrs) / np.sqrt(400)
    run = simulate_run(n_items=80, seed=3)
    t = prediction_rejection_ratio(run.analysis, n_boot=300)
    assert list(t.columns[:3]) == ["judge", "mode", "score"]
    for _, r in t.iterrows():
        g = run.analysis[run.analysis["mode"] == r["mode"]]
        assert r["estimate"] == pytest.approx(_prr(g["p_yes"].to_numpy(), g["correct"].to_numpy(float)))
        assert r["ci_low"] < r["estimate"] < r["ci_high"] and r["estimate"] > 0


def test_debiased_sq_ce_closed_form():
    # one candidate per item, 2 bins of 2: residuals bin 1 (0.1, 0.3 vs y 0, 1) -> r = -0.1, 0.7,
    # gap 0.3, v = (0.01 + 0.49) / 4 = 0.125; bin 2 (0.6, 0.8 vs 1, 1) -> r = 0.4, 0.2, gap 0.3,
    # v = (0.16 + 0.04) / 4 = 0.05. Debiased = 0.5 (0.09 - 0.125) + 0.5 (0.09 - 0.05) = 0.0025
    p = np.array([0.1, 0.3, 0.6, 0.8])
    y = np.array([0.0, 1.0, 1.0, 1.0])
    assert _debiased_sq_ce(p, y, np.arange(4), 2) == pytest.approx(0.0025)
    # the plug-in part is RMS^2
    assert _ece_rms(p, y, 2)[1] ** 2 == pytest.approx(0.09)
    # the same two items of two candidates: clustered sums (-0.1 + 0.7), (0.4 + 0.2)
    # bin 1 v = 0.36 / 4, bin 2 v = 0.36 / 4 -> 0.5 (0.09 - 0.09) * 2 = 0
    assert _debiased_sq_ce(p, y, np.array([0, 0, 1, 1]), 2) == pytest.approx(0.0)


def _calibrated_coverage(n_runs: int, n_boot: int = 500) -> tuple[float, float, float]:
    covered, est, ece_excludes = [], [], []
    for seed in range(n_runs):
        a = simulate_run(n_items=60, n_candidates=5, modes=("isolated",), calibrated=True, seed=seed).analysis
        t = calibration(a, n_boot=n_boot, seed=seed).set_index("measure")
        r = t.loc["sq_ce_debiased"]
        covered.append(r["ci_low"] <= 0.0 <= r["ci_high"])
        est.append(r["estimate"])
        ece_excludes.append(t.loc["ece", "ci_low"] > 0)
    return float(np.mean(covered)), float(np.mean(est)), float(np.mean(ece_excludes))


def test_calibrated_judge_interval_covers_zero_short():
    coverage, mean, ece_excludes = _calibrated_coverage(20, n_boot=300)
    assert coverage >= 0.9, coverage
    assert abs(mean) < 0.002, mean
    assert ece_excludes > 0.9  # the plug-in ECE interval misses 0 (issue 10, finding 4)


@slow
def test_calibrated_judge_interval_covers_zero():
    coverage, mean, _ = _calibrated_coverage(300)
    assert coverage >= 0.90, coverage


def test_miscalibrated_judge_is_detected():
    a = simulate_run(n_items=80, modes=("isolated",), calibrated=True, seed=4).analysis
    a["p_yes"] = np.clip(a["p_yes"] + 0.2, 0, 1)  # overconfident by 0.2
    t = calibration(a, n_boot=300).set_index("measure")
    assert t.loc["sq_ce_debiased", "ci_low"] > 0
    assert t.loc["sq_ce_debiased", "estimate"] < t.loc["rms_ce", "estimate"] ** 2


def test_ungraded_rows_are_left_out_not_counted_wrong():
    a = simulate_run(n_items=30, modes=("isolated",), seed=5).analysis
    graded = calibration(a, n_boot=0)
    b = pd.concat([a, a.head(10).assign(candidate_id=lambda d: d["candidate_id"] + "x")], ignore_index=True)
    b["correct"] = b["correct"].astype("boolean")
    b.loc[len(a):, "correct"] = pd.NA
    t = calibration(b, n_boot=0)
    pd.testing.assert_frame_equal(t, graded)
