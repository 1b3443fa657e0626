"""The statistics behind the figures (selfbias.stats._figure_data): clustered means against
statsmodels and by simulation, equal-count bins, per-judge regressions against single fits,
pairwise health."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats as st

from selfbias.stats import (
    PerJudgeRegression,
    binned_clustered_means,
    clustered_mean,
    equal_count_bins,
    judge_health,
    likelihood_regression,
    pairwise_verdict_health,
    per_judge_regression,
    require_columns,
    simulate,
)


def _clustered(rng, n_items=40, per_item=5, mean=0.4, item_sd=0.15, noise_sd=0.1):
    items = np.repeat(np.arange(n_items), per_item)
    y = mean + rng.normal(0, item_sd, n_items)[items] + rng.normal(0, noise_sd, items.size)
    return y, items


def test_clustered_mean_matches_statsmodels_cluster_robust_interval():
    y, items = _clustered(np.random.default_rng(0))
    m, lo, hi, g = clustered_mean(y, items)
    # intercept-only OLS with cluster-robust errors, no small-sample correction, times G/(G-1)
    fit = sm.OLS(y, np.ones((y.size, 1))).fit(cov_type="cluster", cov_kwds={"groups": items, "use_correction": False})
    se = float(fit.bse[0]) * np.sqrt(g / (g - 1))
    half = st.t.ppf(0.975, g - 1) * se
    assert g == 40
    assert m == pytest.approx(float(fit.params[0]))
    assert lo == pytest.approx(m - half) and hi == pytest.approx(m + half)


def test_clustered_mean_covers_the_planted_mean():
    """A 95% interval covers the true mean in about 95% of simulated clustered samples."""
    rng = np.random.default_rng(1)
    hits = []
    for _ in range(400):
        y, items = _clustered(rng)
        _, lo, hi, _ = clustered_mean(y, items)
        hits.append(lo <= 0.4 <= hi)
    # binomial SE of a 95% rate over 400 draws is 0.011
    assert abs(np.mean(hits) - 0.95) < 0.035


def test_clustered_mean_edges():
    m, lo, hi, g = clustered_mean(np.array([0.2, 0.4]), np.array(["a", "a"]))
    assert m == pytest.approx(0.3) and np.isnan(lo) and np.isnan(hi) and g == 1
    m, lo, hi, _ = clustered_mean(np.array([0.0, 1.0, 1.0, 1.0]), np.array([1, 2, 3, 4]))
    assert hi == 1.0 and lo >= 0.0  # clipped to the range of a probability


def test_equal_count_bins_partition_in_order():
    x = np.random.default_rng(2).normal(size=23)
    bins = equal_count_bins(x, 5)
    sizes = [b.size for b in bins]
    assert len(bins) == 5 and max(sizes) - min(sizes) <= 1 and sum(sizes) == 23
    assert sorted(np.concatenate(bins).tolist()) == list(range(23))
    for a, b in zip(bins, bins[1:]):
        assert x[a].max() <= x[b].min()
    assert len(equal_count_bins(x[:3], 10)) == 3


def test_binned_clustered_means_agrees_with_per_bin_means():
    rng = np.random.default_rng(3)
    y, items = _clustered(rng)
    x = rng.normal(size=y.size)
    table = binned_clustered_means(x, y, items, n_bins=6, min_per_bin=8)
    assert list(table["bin"]) == list(range(6)) and table["n"].sum() == y.size
    for row, idx in zip(table.itertuples(index=False), equal_count_bins(x, 6)):
        assert row.mean == pytest.approx(y[idx].mean())
        assert (row.x_min, row.x_max) == (x[idx].min(), x[idx].max())
        assert row.n_items == len(set(items[idx]))
    # min_per_bin caps the number of bins
    assert len(binned_clustered_means(x[:20], y[:20], items[:20], n_bins=6, min_per_bin=8)) == 2


def test_per_judge_regression_equals_one_fit_per_judge():
    a = simulate.simulate_run(n_items=40, seed=4).analysis
    b = simulate.simulate_run(n_items=40, seed=5).analysis
    frame = pd.concat([a.assign(judge="j1"), b.assign(judge="j2"), a.head(3).assign(judge="tiny")],
                      ignore_index=True)
    fit = per_judge_regression(frame)
    assert isinstance(fit, PerJudgeRegression)
    assert set(fit.coefficients["judge"]) == {"j1", "j2"}
    assert [j for j, _ in fit.failed] == ["tiny"] and "rank-deficient" in fit.failed[0][1]
    for judge, df in (("j1", a), ("j2", b)):
        alone = likelihood_regression(df)
        got = fit.coefficients[fit.coefficients["judge"] == judge].reset_index(drop=True)
        np.testing.assert_allclose(got["estimate"], alone.coefficients["estimate"])
        assert (got["n_obs"] == alone.n_obs).all() and (got["n_clusters"] == alone.n_clusters).all()


def test_pairwise_health_flags_coin_flip_verdicts():
    pw = simulate.simulate_run(n_items=40, seed=6).pairwise
    flat = pw.assign(judge="flat", pref_a=0.5, p_a_first=0.5, p_a_second=0.5)
    health = pairwise_verdict_health(pd.concat([pw, flat], ignore_index=True), n_boot=50)
    assert set(health["mode"]) == {"pairwise"}
    row = health.set_index("judge").loc["flat"]
    assert row["degenerate"] and "P(chosen)" in row["reasons"] and "P(Yes)" not in row["reasons"]
    # the long form by hand: each pair is two candidates with P and 1 - P
    long = pd.DataFrame({"item_id": np.r_[pw["item_id"], pw["item_id"]], "judge": "sim-judge",
                         "mode": "pairwise", "p_yes": np.r_[pw["pref_a"], 1 - pw["pref_a"]],
                         "correct": np.r_[pw["a_correct"], pw["b_correct"]].astype(bool)})
    by_hand = judge_health(long, n_boot=50).iloc[0]
    got = health.set_index("judge").loc[str(pw["judge"].iloc[0])]
    assert got["auroc"] == pytest.approx(by_hand["auroc"])
    assert pairwise_verdict_health(pw.assign(pref_a=np.nan, p_a_first=np.nan, p_a_second=np.nan)).empty


def test_require_columns():
    require_columns(pd.DataFrame({"a": [1]}), ["a"], "f")
    with pytest.raises(ValueError, match=r"f: missing column\(s\) \['b'\]"):
        require_columns(pd.DataFrame({"a": [1]}), ["a", "b"], "f")
    with pytest.raises(TypeError, match="expected a pandas DataFrame"):
        require_columns([1], ["a"], "f")
