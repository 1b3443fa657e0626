"""Issue 27, finding 1: the within-item likelihood slope must be within-item when another covariate
(answer length) varies within items too.

Data: `length_run` (tests/stats/_generators.py, independent of `selfbias.stats.simulate`): answer
length varies within items and drives the summed log-probability; an item effect tied to the
item's mean log-length moves P(Yes); there is no within-item effect of likelihood.  Before the
fix only z_loglik was split into item mean and deviation, `log_n_tokens` entered whole and the
within slope absorbed the item effect (the old formula below: mean -0.36 where the truth is 0, no
interval covering 0 in 60 datasets).  With the item means of every within-varying covariate
(Mundlak 1978) the slope is unbiased with or without a true length effect on P(Yes).
"""

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from selfbias.stats import likelihood_regression, mixed_effects_regression
from selfbias.stats._regression import design_frame

from ._generators import length_run
from ._slow import slow

OLD = "p_yes ~ z_loglik + z_loglik_between + log_n_tokens + correct + self_authored + z_loglik:correct + z_loglik:self_authored"


def _replicate(n: int, length_effect: float, estimator=likelihood_regression, **extra):
    est, cover, cover_len, old = [], [], [], []
    for seed in range(n):
        df, truth = length_run(seed=seed, length_effect=length_effect, **extra)
        fit = estimator(df)
        row, length = fit.term("z_loglik"), fit.term("log_n_tokens")
        est.append(row["estimate"])
        cover.append(row["ci_low"] <= 0.0 <= row["ci_high"])
        cover_len.append(length["ci_low"] <= length_effect <= length["ci_high"])
        if estimator is likelihood_regression:
            old.append(likelihood_regression(df, formula=OLD).term("z_loglik")["estimate"])
    return np.array(est), float(np.mean(cover)), float(np.mean(cover_len)), np.array(old)


@pytest.mark.parametrize("length_effect", [0.0, 0.5])
def test_slope_is_within_item_when_length_varies_within_items_short(length_effect):
    est, cover, cover_len, old = _replicate(12, length_effect)
    se = est.std(ddof=1) / np.sqrt(est.size)
    assert abs(est.mean()) < 3.5 * se, (est.mean(), se)
    assert old.mean() < -0.2 and abs(old.mean()) > 6 * se  # the pre-fix estimator is clearly biased
    assert cover >= 0.75 and cover_len >= 0.75, (cover, cover_len)  # 12 runs: a loose band


def test_every_within_varying_covariate_gets_its_item_mean():
    df, _ = length_run(seed=3)
    fit = likelihood_regression(df)
    terms = set(fit.coefficients["term"])
    assert {"log_n_tokens_between", "correct_between", "z_loglik_x_correct_between"} <= terms
    assert "self_authored_between" not in terms  # one self answer per item: its item mean is constant
    assert any("Mundlak" in n for n in fit.notes)


def test_mixed_model_within_coefficients_equal_the_fixed_effects_estimator():
    """With the item means of every within-varying term, the random-intercept GLS coefficients of
    the within-varying terms are the within (item fixed effects) estimator exactly for balanced
    items (Mundlak 1978): checked against OLS with one dummy per item."""
    df, _ = length_run(seed=4, n_items=40, k=5, p_model="logit_normal", length_effect=0.3)
    mixed = mixed_effects_regression(df).coefficients.set_index("term")["estimate"]
    data, _ = design_frame(df)
    fe = smf.ols("logit_p_yes ~ z_loglik + log_n_tokens + correct + self_authored + z_loglik:correct"
                 " + z_loglik:self_authored"
                 " + C(item_id)", data).fit().params
    for term in ("z_loglik", "log_n_tokens", "correct", "z_loglik:correct", "z_loglik:self_authored"):
        assert mixed[term] == pytest.approx(fe[term], rel=1e-6, abs=1e-8), term
    # and the pooled OLS with the item means is the same estimator again (exact for any panel)
    ols = smf.ols("logit_p_yes ~ " + " + ".join(mixed.index[1:]), data).fit().params
    for term in ("z_loglik", "log_n_tokens", "correct"):
        assert ols[term] == pytest.approx(fe[term], rel=1e-8), term


def test_item_means_are_taken_per_judge_and_item():
    df, _ = length_run(seed=5, n_items=10)
    two = pd.concat([df, df.assign(judge="K", n_tokens=df["n_tokens"] + 3)], ignore_index=True)
    data, _ = design_frame(two)
    expected = np.log(two["n_tokens"].astype(float)).groupby([two["judge"], two["item_id"]]).transform("mean")
    np.testing.assert_allclose(data["log_n_tokens_between"], expected)


@slow
@pytest.mark.parametrize("length_effect", [0.0, 0.5])
def test_slope_is_within_item_with_nominal_coverage(length_effect):
    # 400 runs: coverage SD 1.1%; band [92%, 98%]
    est, cover, cover_len, old = _replicate(400, length_effect)
    assert abs(est.mean()) < 3 * est.std(ddof=1) / np.sqrt(est.size)
    assert 0.92 <= cover <= 0.98 and 0.92 <= cover_len <= 0.98, (cover, cover_len)
