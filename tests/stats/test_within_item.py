"""Issue 10, finding 1: the likelihood slope must not pick up item effects tied to the item's mean
likelihood.  Data: `simulate_run(item_likelihood_effect=1.5, likelihood_slope=0)` -- no
within-item effect, an item effect on logit P(Yes) of 1.5 x the item's mean z_loglik.  The pooled
slope (the estimator before issue 10) is biased; the within-item slope is unbiased and its 95%
interval covers 0 at the nominal rate."""

import numpy as np

from selfbias.stats import likelihood_regression, mixed_effects_regression
from selfbias.stats.simulate import simulate_run

from ._slow import slow

DESIGN = {"n_items": 60, "n_candidates": 4, "modes": ("isolated",), "likelihood_slope": 0.0,
          "item_likelihood_effect": 1.5}
POOLED = "p_yes ~ z_loglik_total + log_n_tokens + correct + self_authored"


def _replicate(n: int, estimator=likelihood_regression, **extra):
    within, pooled, covered = [], [], []
    for seed in range(n):
        run = simulate_run(**DESIGN, **extra, seed=seed)
        t = estimator(run.analysis).term("z_loglik")
        within.append(t["estimate"])
        covered.append(t["ci_low"] <= 0.0 <= t["ci_high"])
        if estimator is likelihood_regression:
            pooled.append(likelihood_regression(run.analysis, formula=POOLED).term("z_loglik_total")["estimate"])
    return np.array(within), np.array(pooled), float(np.mean(covered))


def test_pooled_slope_is_biased_and_within_item_slope_is_not_short():
    within, pooled, coverage = _replicate(30)
    se = within.std(ddof=1) / np.sqrt(within.size)
    assert abs(within.mean()) < 3 * se, within.mean()
    assert pooled.mean() > 0.4, pooled.mean()  # measured 0.68 (1000 runs)
    assert coverage >= 25 / 30, coverage  # P(< 25 of 30 | 95%) = 0.3%; the slow test pins the rate


def test_between_item_part_is_reported_beside_it():
    run = simulate_run(**{**DESIGN, "n_items": 300}, seed=5)
    table = likelihood_regression(run.analysis).coefficients.set_index("term")
    between = table.loc["z_loglik_between"]
    assert between["ci_low"] <= run.truth["coefficients"]["z_loglik_between"] <= between["ci_high"]
    assert between["ci_low"] > 0.5  # truth 1.5


@slow
def test_within_item_slope_is_unbiased_with_nominal_coverage():
    # 800 runs: coverage SD 0.8%, so [93%, 97%] is +-2.5 SD around 95%.
    within, pooled, coverage = _replicate(800)
    se = within.std(ddof=1) / np.sqrt(within.size)
    assert abs(within.mean()) < 3 * se
    assert pooled.mean() > 0.5
    assert 0.93 <= coverage <= 0.97, coverage


def test_mixed_model_uses_the_within_item_slope_short():
    within, _, coverage = _replicate(25, mixed_effects_regression, p_model="logit_normal")
    assert abs(within.mean()) < 3 * within.std(ddof=1) / np.sqrt(within.size)
    assert coverage >= 21 / 25  # P(< 21 of 25 | 95%) = 0.7%


@slow
def test_mixed_model_within_item_slope_coverage():
    within, _, coverage = _replicate(600, mixed_effects_regression, p_model="logit_normal")
    assert abs(within.mean()) < 3 * within.std(ddof=1) / np.sqrt(within.size)
    assert 0.93 <= coverage <= 0.97, coverage
