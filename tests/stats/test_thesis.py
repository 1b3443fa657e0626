"""thesis_effect: own wrong answers, external alternatives vs own samples (issue 10)."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

from selfbias.stats import ThesisResult, thesis_effect
from selfbias.stats._regression import design_frame
from selfbias.stats.simulate import simulate_run

MODES = ("own_samples", "alternatives")


@pytest.fixture(scope="module")
def planted():
    return simulate_run(n_items=300, n_candidates=5, modes=MODES, external_shift=-1.0,
                        external_slope_change=-0.8, seed=1)


def test_recovers_the_planted_slope_change_and_shift(planted):
    res = thesis_effect(planted.analysis, n_boot=300, n_perm=300)
    assert isinstance(res, ThesisResult)
    t = res.table.set_index("estimand")
    for estimand in ("slope_change_own_wrong", "slope_change_vs_other"):
        r = t.loc[estimand]
        se = (r["ci_high"] - r["ci_low"]) / (2 * 1.97)
        assert abs(r["estimate"] - planted.truth["thesis"][estimand]) < 4 * se, estimand
    assert t.loc["p_yes_shift", "ci_high"] < 0  # planted -1.0 logit on own wrong answers
    (sentence,) = res.sentences
    assert "lowers P(Yes) on its own wrong answers" in sentence and "weakens" in sentence


def test_three_way_term_is_statsmodels_formula(planted):
    """The slope changes are statsmodels' fractional logit on wrong answers with the item means
    (over the wrong answers, by pandas) of every within-varying term and the whole-frame item
    means; their intervals are t with the Bell-McCaffrey df of the CR2 covariance computed from
    statsmodels' fit (`cluster_cr2` on the IRLS-weighted design; the df by reparametrising, so
    that the sum of two coefficients is one coefficient)."""
    from scipy import stats

    from selfbias.stats._regression import _cr2

    a = planted.analysis
    res = thesis_effect(a, n_boot=0, n_perm=0)
    d, _ = design_frame(a)
    d["external"] = (d["mode"] == "alternatives").astype(float)
    wrong = d[d["correct"] == 0].reset_index(drop=True)
    for name, values in {"z": wrong["z_loglik"], "n": wrong["log_n_tokens"], "s": wrong["self_authored"],
                         "zs": wrong["z_loglik"] * wrong["self_authored"]}.items():
        wrong[f"m_{name}"] = values.groupby(wrong["item_id"]).transform("mean")
    formula = ("p_yes ~ z_loglik * external * self_authored + log_n_tokens + z_loglik_between"
               " + log_n_tokens_between + m_z + m_n + m_s + m_zs")
    fit = smf.glm(formula, wrong, family=sm.families.Binomial()).fit()
    t = res.table.set_index("estimand")
    three = fit.params["z_loglik:external:self_authored"]
    assert t.loc["slope_change_vs_other", "estimate"] == pytest.approx(three, rel=1e-6)
    assert t.loc["slope_change_own_wrong", "estimate"] == pytest.approx(
        three + fit.params["z_loglik:external"], rel=1e-6)
    groups = pd.factorize(wrong["item_id"])[0]
    mu = fit.fittedvalues.to_numpy()
    x = pd.DataFrame(fit.model.exog, columns=fit.model.exog_names)
    # own_wrong = b(z:ext) + b(z:ext:self): with the column z:ext:self replaced by z:ext:self - z:ext,
    # the coefficient of z:ext is that sum
    x["z_loglik:external:self_authored"] -= x["z_loglik:external"]
    xw = np.sqrt(mu * (1 - mu))[:, None] * x.to_numpy()
    cov, dfs = _cr2(xw, (wrong["p_yes"].to_numpy() - mu) / np.sqrt(mu * (1 - mu)), groups)
    j = list(x.columns).index("z_loglik:external")
    half = stats.t.ppf(0.975, dfs[j]) * np.sqrt(cov[j, j])
    row = t.loc["slope_change_own_wrong"]
    assert row["ci_high"] - row["estimate"] == pytest.approx(half, rel=1e-5)
    # the paired shift by hand
    ow = a[a["self_authored"] & ~a["correct"]].pivot(index="candidate_id", columns="mode", values="p_yes")
    assert t.loc["p_yes_shift", "estimate"] == pytest.approx((ow["alternatives"] - ow["own_samples"]).mean())


def test_null_intervals_cover_zero():
    run = simulate_run(n_items=200, n_candidates=5, modes=MODES, seed=2)
    t = thesis_effect(run.analysis, n_boot=300, n_perm=300).table.set_index("estimand")
    for estimand in t.index:
        assert t.loc[estimand, "ci_low"] < 0 < t.loc[estimand, "ci_high"], estimand


def test_gold_shown_list_length_and_ungraded_rows_are_dropped_and_counted():
    a = simulate_run(n_items=60, n_candidates=5, modes=MODES, seed=3).analysis
    a["gold_shown"] = np.arange(len(a)) % 5 == 0
    a["list_length"] = 3
    a.loc[a.index[:4], "list_length"] = 4  # own_samples rows of item 0: lengths now differ
    a["correct"] = a["correct"].astype("boolean")
    a.loc[a.index[10:13], "correct"] = pd.NA
    res = thesis_effect(a, n_boot=0, n_perm=0)
    notes = " | ".join(res.notes)
    assert "left out 3 ungraded rows" in notes
    kept = a[a["correct"].notna()]
    assert f"dropped {int(kept['gold_shown'].sum())} of {len(kept)} judgments" in notes
    everything = thesis_effect(a, exclude_gold_shown=False, n_boot=0, n_perm=0)
    assert everything.table["n"].iloc[0] >= res.table["n"].iloc[0]
    # without the new columns it still works, and says so
    plain = thesis_effect(a.drop(columns=["gold_shown", "list_length"]).assign(
        correct=lambda d: d["correct"].fillna(False).astype(bool)), n_boot=0, n_perm=0)
    assert any("no gold_shown column" in n for n in plain.notes)


def test_needs_both_modes():
    a = simulate_run(n_items=10, modes=("isolated", "alternatives"), seed=4).analysis
    with pytest.raises(ValueError, match="own_samples"):
        thesis_effect(a)
