"""Likelihood regressions and mediation: planted values recovered, statsmodels reproduced, edge cases."""

from dataclasses import FrozenInstanceError

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.multitest import multipletests

from selfbias.stats._regression import (
    MediationResult,
    RegressionResult,
    likelihood_regression,
    mediation,
    mixed_effects_regression,
)
from selfbias.stats.simulate import simulate_run

TIDY = ["term", "estimate", "std_error", "z", "p_value", "ci_low", "ci_high", "p_holm", "df"]


@pytest.fixture(scope="module")
def beta_run():
    """Large enough that SE(z_loglik) ~ 0.05; both modes, so the comparison terms are fitted."""
    return simulate_run(n_items=300, n_candidates=5, seed=21)


@pytest.fixture(scope="module")
def normal_run():
    return simulate_run(n_items=300, n_candidates=5, p_model="logit_normal", seed=22)


@pytest.fixture(scope="module")
def small_run():
    return simulate_run(n_items=40, n_candidates=4, seed=23).analysis


def hand_frame(analysis: pd.DataFrame) -> pd.DataFrame:
    """The design columns computed independently of `design_frame`."""
    s = analysis["sum_logprob"]
    std = s.groupby(analysis["judge"]).transform(lambda v: v.std(ddof=0))
    total = (s - s.groupby(analysis["judge"]).transform("mean")) / std
    between = total.groupby([analysis["judge"], analysis["item_id"]]).transform("mean")
    keys = [analysis["judge"], analysis["item_id"]]
    log_n = np.log(analysis["n_tokens"].astype(float))
    correct = analysis["correct"].astype(float)
    self_ = analysis["self_authored"].astype(float)
    alt = (analysis["mode"] == "alternatives").astype(float)

    def item_mean(v):  # the Mundlak item means, computed by pandas
        return v.groupby(keys).transform("mean")
    return pd.DataFrame({
        "log_n_tokens_between": item_mean(log_n),
        "correct_between": item_mean(correct),
        "self_authored_between": item_mean(self_),
        "z_loglik_x_correct_between": item_mean((total - between) * correct),
        "z_loglik_x_self_authored_between": item_mean((total - between) * self_),
        "mode_alternatives_x_correct_between": item_mean(alt * correct),
        "p_yes": analysis["p_yes"],
        "verdict": (analysis["p_yes"] > 0.5).astype(float),
        "z_loglik": total - between,  # within-item deviation (issue 10: the headline slope)
        "z_loglik_between": between,
        "log_n_tokens": np.log(analysis["n_tokens"].astype(float)),
        "correct": analysis["correct"].astype(float),
        "self_authored": analysis["self_authored"].astype(float),
        "mode_alternatives": (analysis["mode"] == "alternatives").astype(float),
        "item_id": analysis["item_id"],
    }).reset_index(drop=True)


def assert_recovers(result: RegressionResult, truth: dict, n_se: float = 4.0):
    """|estimate - truth| < n_se * SE for every planted term.  The estimators are consistent and
    asymptotically normal for these truths, so each check fails with probability ~6e-5 (4 SE);
    the SE bound makes sure the check has teeth."""
    table = result.coefficients.set_index("term")
    assert set(truth) == set(table.index)
    for term, value in truth.items():
        row = table.loc[term]
        assert abs(row["estimate"] - value) < n_se * row["std_error"], (term, row["estimate"], value)
        assert row["std_error"] < 0.35, term


# ----------------------------------------------------------------------------- recovery


@pytest.mark.parametrize("method", ["glm", "gee"])
def test_fractional_logit_recovers_planted_coefficients(beta_run, method):
    result = likelihood_regression(beta_run.analysis, method=method)
    assert result.method == method and result.n_clusters == 300 and result.n_obs == 3000
    assert_recovers(result, beta_run.truth["coefficients"])
    assert result.term("z_loglik")["std_error"] < 0.1


def test_single_mode_recovers_the_mode_specific_truth(beta_run):
    result = likelihood_regression(beta_run.analysis, mode="alternatives")
    assert_recovers(result, beta_run.truth["coefficients_by_mode"]["alternatives"])


def test_mixed_model_recovers_planted_coefficients(normal_run):
    result = mixed_effects_regression(normal_run.analysis)
    assert result.method == "mixedlm"
    assert_recovers(result, normal_run.truth["coefficients"])
    sd = float(next(n for n in result.notes if n.startswith("item random-intercept SD")).split("=")[1])
    assert sd == pytest.approx(0.5, abs=0.1)  # planted item_sd; 300 items give SE ~ 0.03


def test_verdict_response_runs_and_sees_the_slope(beta_run):
    result = likelihood_regression(beta_run.analysis, response="verdict")
    assert result.formula.startswith("verdict ~")
    assert result.term("z_loglik")["estimate"] > 0 and result.term("z_loglik")["p_value"] < 0.01


# ----------------------------------------------------------------------------- same as statsmodels


def test_glm_is_statsmodels_with_the_same_formula(small_run):
    """Estimates are statsmodels' GLM with the same formula; the errors are the CR2 sandwich on the
    IRLS-weighted working model, whose unadjusted (CR0) form is statsmodels' cluster covariance
    without its small-sample factor; intervals are t with the reported Bell-McCaffrey df."""
    from selfbias.stats._regression import cluster_cr2

    result = likelihood_regression(small_run)
    data = hand_frame(small_run)
    groups = pd.factorize(data["item_id"])[0]
    direct = smf.glm(result.formula, data, family=sm.families.Binomial()).fit(
        cov_type="cluster", cov_kwds={"groups": groups, "use_correction": False})
    table = result.coefficients.set_index("term")
    np.testing.assert_allclose(table["estimate"], direct.params[table.index], rtol=1e-8, atol=1e-10)
    mu = direct.fittedvalues.to_numpy()
    w = mu * (1 - mu)
    x = direct.model.exog
    xw, ew = np.sqrt(w)[:, None] * x, (data["p_yes"].to_numpy() - mu) / np.sqrt(w)
    np.testing.assert_allclose(np.sqrt(np.diag(cluster_cr2(xw, ew, groups, adjust=False))), direct.bse, rtol=1e-6)
    cr2 = np.sqrt(np.diag(cluster_cr2(xw, ew, groups)))
    np.testing.assert_allclose(table["std_error"], cr2, rtol=1e-6)
    assert (table["std_error"].to_numpy() > direct.bse.to_numpy()).all()
    half = stats.t.ppf(0.975, table["df"]) * table["std_error"]
    np.testing.assert_allclose(table["ci_high"] - table["estimate"], half, rtol=1e-9)
    np.testing.assert_allclose(table["p_value"], 2 * stats.t.sf(np.abs(table["z"]), table["df"]), rtol=1e-9)
    assert (table["df"] > 1).all() and (table["df"] <= 39 + 1e-9).all()  # Bell-McCaffrey df <= G - 1
    assert result.n_obs == int(direct.nobs) and result.n_clusters == 40


def test_gee_verdict_and_mixed_are_statsmodels_too(small_run):
    data = hand_frame(small_run)
    groups = pd.factorize(data["item_id"])[0]
    gee = likelihood_regression(small_run, method="gee")
    direct = smf.gee(gee.formula, groups=groups, data=data, family=sm.families.Binomial(),
                     cov_struct=sm.cov_struct.Exchangeable()).fit(cov_type="bias_reduced")
    np.testing.assert_allclose(gee.coefficients["estimate"], direct.params, rtol=1e-9)
    np.testing.assert_allclose(gee.coefficients["std_error"], direct.bse, rtol=1e-9)
    half = stats.t.ppf(0.975, 39) * direct.bse.to_numpy()  # t with G - 1 = 39 df
    np.testing.assert_allclose(gee.coefficients["ci_high"] - gee.coefficients["estimate"], half, rtol=1e-9)
    assert (gee.coefficients["df"] == 39).all()
    verdict = likelihood_regression(small_run, response="verdict")
    direct = smf.glm(verdict.formula, data, family=sm.families.Binomial()).fit()
    np.testing.assert_allclose(verdict.coefficients["estimate"], direct.params, rtol=1e-7, atol=1e-9)
    mixed = mixed_effects_regression(small_run, robust=False)
    data["logit_p_yes"] = np.log(data["p_yes"].clip(1e-4, 1 - 1e-4) / (1 - data["p_yes"].clip(1e-4, 1 - 1e-4)))
    direct = smf.mixedlm(mixed.formula, data, groups=groups).fit(reml=True)
    np.testing.assert_allclose(mixed.coefficients["estimate"], direct.fe_params, rtol=1e-6)
    np.testing.assert_allclose(mixed.coefficients["std_error"], direct.bse_fe, rtol=1e-6)


def test_mixed_model_robust_errors_are_the_clustered_sandwich_of_the_gls_fit(small_run):
    """The robust errors whitened another way: the random-intercept GLS fit is OLS on
    quasi-demeaned data y - theta_g ybar_g (theta_g = 1 - sqrt(s2 / (s2 + n_g s2u))); statsmodels'
    cluster sandwich of that OLS without its correction (CR0) equals `cluster_cr2(adjust=False)`;
    the CR2 errors are larger (each cluster's residuals are inflated by (I - H_gg)^(-1/2))."""
    from selfbias.stats._regression import _design, cluster_cr2

    data = hand_frame(small_run)
    groups = pd.factorize(data["item_id"])[0]
    robust = mixed_effects_regression(small_run)
    data["logit_p_yes"] = np.log(data["p_yes"].clip(1e-4, 1 - 1e-4) / (1 - data["p_yes"].clip(1e-4, 1 - 1e-4)))
    fit = smf.mixedlm(robust.formula, data, groups=groups).fit(reml=True)
    s2u, s2 = float(fit.cov_re.iloc[0, 0]), float(fit.scale)
    n_g = pd.Series(groups).map(pd.Series(groups).value_counts()).to_numpy()
    theta = 1 - np.sqrt(s2 / (s2 + n_g * s2u))
    design = _design(small_run, mode=None, judge=None, loglik="sum_logprob", response="logit_p_yes",
                     formula=None, covariates=("correct", "self_authored"), cluster="item_id")
    x = design.exog
    xs = x - theta[:, None] * x.groupby(groups).transform("mean").to_numpy()
    ys = data["logit_p_yes"] - theta * data["logit_p_yes"].groupby(groups).transform("mean")
    ols = sm.OLS(ys.to_numpy(), xs.to_numpy()).fit(cov_type="cluster",
                                                   cov_kwds={"groups": groups, "use_correction": False})
    np.testing.assert_allclose(ols.params, fit.fe_params, rtol=1e-5, atol=1e-7)  # GLS = quasi-demeaned OLS
    cr0 = cluster_cr2(xs.to_numpy(), ols.resid, groups, adjust=False)
    np.testing.assert_allclose(np.sqrt(np.diag(cr0)), ols.bse, rtol=1e-6)
    cr2 = np.sqrt(np.diag(cluster_cr2(xs.to_numpy() / np.sqrt(s2), ols.resid / np.sqrt(s2), groups)))
    np.testing.assert_allclose(robust.coefficients["std_error"], cr2, rtol=1e-4)
    assert (cr2 > ols.bse).all()
    row = robust.term("z_loglik")
    assert 1 < row["df"] <= robust.n_clusters - 1
    half = stats.t.ppf(0.975, row["df"]) * row["std_error"]
    assert row["ci_high"] - row["estimate"] == pytest.approx(half, rel=1e-9)


def test_cr2_is_unbiased_for_independent_homoscedastic_errors():
    """Bell & McCaffrey's property: with independent equal-variance errors, E[CR2] equals the
    true covariance sigma^2 (X'X)^-1 exactly (the CR0 sandwich is too small).  Monte Carlo over
    4000 error draws on a fixed design of 12 unequal clusters: the mean CR2 variance is within 3%
    of the truth (its Monte Carlo SE is about 1%), CR0 is clearly below."""
    from selfbias.stats._regression import _cr2, cluster_cr2

    rng = np.random.default_rng(0)
    sizes = rng.integers(2, 9, 12)
    groups = np.repeat(np.arange(12), sizes)
    x = np.column_stack([np.ones(groups.size), rng.normal(size=groups.size), rng.exponential(size=groups.size)])
    truth = np.diag(np.linalg.inv(x.T @ x))
    draws, cr0 = [], np.zeros(3)
    for _ in range(4000):
        e = rng.normal(size=groups.size)
        resid = e - x @ np.linalg.lstsq(x, e, rcond=None)[0]
        draws.append(np.diag(cluster_cr2(x, resid, groups)))
        cr0 += np.diag(cluster_cr2(x, resid, groups, adjust=False)) / 4000
    draws = np.array(draws)
    np.testing.assert_allclose(draws.mean(axis=0), truth, rtol=0.03)
    assert (cr0 < 0.9 * truth).all()
    # Bell-McCaffrey df: the Satterthwaite df of the variance estimate, 2 E[v]^2 / Var(v), which
    # the Monte Carlo gives directly (its SE is ~3% here); and G - 1 for a balanced intercept-only fit
    _, dfs = _cr2(x, np.zeros(groups.size), groups)
    np.testing.assert_allclose(2 * draws.mean(axis=0) ** 2 / draws.var(axis=0), dfs, rtol=0.12)
    assert (dfs < 11).all()
    balanced = np.repeat(np.arange(9), 4)
    assert _cr2(np.ones((36, 1)), np.zeros(36), balanced)[1][0] == pytest.approx(8.0)


def test_tidy_table_and_holm(small_run):
    result = likelihood_regression(small_run)
    table = result.coefficients
    assert list(table.columns) == TIDY and table["term"].iloc[0] == "Intercept"
    assert np.isnan(table["p_holm"].iloc[0])
    rest = table.iloc[1:]
    controls = rest["term"].str.endswith("_between") & (rest["term"] != "z_loglik_between")
    assert controls.sum() >= 3 and rest.loc[controls, "p_holm"].isna().all()  # item-mean controls: no Holm
    rest = rest[~controls]
    np.testing.assert_allclose(rest["p_holm"], multipletests(rest["p_value"], method="holm")[1])
    assert (rest["p_holm"] >= rest["p_value"]).all()
    assert (table["ci_low"] < table["estimate"]).all() and (table["estimate"] < table["ci_high"]).all()
    with pytest.raises(FrozenInstanceError):
        result.n_obs = 0
    with pytest.raises(KeyError):
        result.term("nope")


def test_mean_logprob_and_custom_formula(small_run):
    result = likelihood_regression(small_run, loglik="mean_logprob")
    data = hand_frame(small_run)
    m = small_run["mean_logprob"]
    total = (m - m.mean()) / m.std(ddof=0)
    between = total.groupby(small_run["item_id"]).transform("mean")
    data["z_loglik"] = (total - between).to_numpy()
    data["z_loglik_between"] = between.to_numpy()
    for c in ("correct", "self_authored"):
        data[f"z_loglik_x_{c}_between"] = (data["z_loglik"] * data[c]).groupby(data["item_id"]).transform("mean")
    direct = smf.glm(result.formula, data, family=sm.families.Binomial()).fit()
    np.testing.assert_allclose(result.coefficients["estimate"], direct.params, rtol=1e-7, atol=1e-9)
    custom = likelihood_regression(small_run, formula="p_yes ~ z_sum_logprob + z_mean_logprob + correct")
    assert list(custom.coefficients["term"]) == ["Intercept", "z_sum_logprob", "z_mean_logprob", "correct"]


# ----------------------------------------------------------------------------- degenerate input


def test_constant_covariate_is_dropped_with_a_note(small_run):
    no_self = small_run.assign(self_authored=False)
    result = likelihood_regression(no_self)
    assert "self_authored" not in result.formula
    assert not any("self_authored" in t for t in result.coefficients["term"])
    assert any("'self_authored'" in n and "dropped" in n for n in result.notes)
    all_correct = small_run.assign(correct=True)
    result = mixed_effects_regression(all_correct)
    assert "correct" not in result.formula and "mode_alternatives" in result.formula
    assert any("'correct'" in n for n in result.notes)


def test_few_clusters_missing_rows_and_pooled_judges_are_noted(small_run):
    few = small_run[small_run["item_id"].isin(small_run["item_id"].unique()[:12])]
    assert any("12 item clusters" in n for n in likelihood_regression(few).notes)
    holes = small_run.copy()
    holes.loc[holes.index[:3], "sum_logprob"] = np.nan
    result = likelihood_regression(holes)
    assert result.n_obs == len(small_run) - 3 and any("dropped 3 rows" in n for n in result.notes)
    shifted = small_run.assign(judge="other", sum_logprob=small_run["sum_logprob"] * 3 - 5)
    pooled = likelihood_regression(pd.concat([small_run, shifted], ignore_index=True))
    assert pooled.formula.endswith("+ judge_sim_judge") and any("judges pooled" in n for n in pooled.notes)
    single = likelihood_regression(small_run)
    # identical z-scores within each judge, so the slope equals the single-judge fit
    assert pooled.term("z_loglik")["estimate"] == pytest.approx(single.term("z_loglik")["estimate"], rel=1e-6)


def test_one_cluster_falls_back_to_robust_errors(small_run):
    result = likelihood_regression(small_run, cluster="judge")
    assert result.n_clusters == 1 and any("HC1" in n for n in result.notes)
    with pytest.raises(ValueError, match="rank-deficient"):  # 4 rows, 5 coefficients
        likelihood_regression(small_run[small_run["item_id"] == "sim-0000"], mode="isolated")


@pytest.mark.parametrize("change, message", [
    (lambda d: d.drop(columns="n_tokens"), "lacks columns"),
    (lambda d: d.assign(sum_logprob=-3.0), "log-likelihood is constant within every item"),
    (lambda d: d.assign(p_yes=d["p_yes"] + 1), "p_yes must lie"),
    (lambda d: d.assign(self_authored=d["correct"]), "rank-deficient"),
    (lambda d: d.iloc[0:0], "empty"),
    (lambda d: d.assign(p_yes=0.2), "response 'p_yes' is constant"),
])
def test_degenerate_inputs_raise_clearly(small_run, change, message):
    with pytest.raises(ValueError, match=message):
        likelihood_regression(change(small_run))


def test_bad_arguments_raise(small_run):
    for kwargs, message in [({"mode": "critique"}, "no rows with mode"), ({"response": "probit"}, "response"),
                            ({"method": "ols"}, "method"), ({"loglik": "rank"}, "loglik"),
                            ({"covariates": ("nope",)}, "unknown covariates")]:
        with pytest.raises(ValueError, match=message):
            likelihood_regression(small_run, **kwargs)


# ----------------------------------------------------------------------------- mediation


def test_mediation_matches_the_linear_closed_form(normal_run):
    # Linear mediator and outcome models without interaction: ACME = a * b and ADE = d, where a is
    # the treatment coefficient of the mediator model and b, d the mediator and treatment
    # coefficients of the outcome model.  The simulation estimate differs from a * b only by
    # Monte Carlo error, ~ (interval width / 3.9) / sqrt(n_sims); allow a tenth of the width
    # (~12 Monte Carlo SE at n_sims=1000).
    iso = normal_run.analysis[normal_run.analysis["mode"] == "isolated"]
    result = mediation(iso, n_sims=1000, seed=3)
    s = iso["sum_logprob"].to_numpy()
    m = (s - s.mean()) / s.std()
    t, c = iso["self_authored"].to_numpy(float), iso["correct"].to_numpy(float)
    y = np.log(iso["p_yes"] / (1 - iso["p_yes"])).to_numpy()
    a = np.linalg.lstsq(np.column_stack([np.ones_like(t), t, c]), m, rcond=None)[0][1]
    _, d, _, b = np.linalg.lstsq(np.column_stack([np.ones_like(t), t, c, m]), y, rcond=None)[0]
    e = result.effects.set_index("effect")
    width = e["ci_high"] - e["ci_low"]
    assert abs(e.loc["acme", "estimate"] - a * b) < 0.1 * width["acme"]
    assert abs(e.loc["ade", "estimate"] - d) < 0.1 * width["ade"]
    assert abs(e.loc["total", "estimate"] - (a * b + d)) < 0.1 * width["total"]


def test_mediation_recovers_the_planted_decomposition(normal_run):
    # logit-normal P(Yes) makes both OLS models correct, so the truth is the estimand; each
    # estimate must lie within one full interval width (~4 SE) of it.
    iso = normal_run.analysis[normal_run.analysis["mode"] == "isolated"]
    result = mediation(iso, n_sims=300)
    assert isinstance(result, MediationResult) and result.n_obs == len(iso)
    assert list(result.effects.columns) == ["effect", "estimate", "ci_low", "ci_high", "p_value"]
    assert list(result.effects["effect"]) == ["acme", "ade", "total", "prop_mediated"]
    truth = normal_run.truth["mediation"]
    for _, row in result.effects.iterrows():
        assert abs(row["estimate"] - truth[row["effect"]]) < row["ci_high"] - row["ci_low"], row["effect"]
    assert result.effect("acme") > 0 and result.effects.set_index("effect").loc["acme", "p_value"] < 0.05


def test_mediation_is_seeded_and_leaves_numpy_alone(small_run):
    iso = small_run[small_run["mode"] == "isolated"]
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a, b = mediation(iso, n_sims=100, seed=1), mediation(iso, n_sims=100, seed=1)
    assert (np.random.get_state()[1] == before).all()
    pd.testing.assert_frame_equal(a.effects, b.effects)
    assert not mediation(iso, n_sims=100, seed=2).effects.equals(a.effects)


def test_mediation_rejects_ambiguous_or_degenerate_input(small_run):
    with pytest.raises(ValueError, match="single mode"):
        mediation(small_run)
    iso = small_run[small_run["mode"] == "isolated"]
    with pytest.raises(ValueError, match="both values"):
        mediation(iso.assign(self_authored=False))
    result = mediation(iso.assign(correct=True), n_sims=50)
    assert any("'correct'" in n for n in result.notes)


def test_results_show_as_html_tables():
    from selfbias.stats import likelihood_regression, mediation
    from selfbias.stats.simulate import simulate_run

    sim = simulate_run(n_items=30, modes=("isolated",), seed=1, p_model="logit_normal")
    html = likelihood_regression(sim.analysis)._repr_html_()
    assert "<table" in html and "z_loglik" in html and "item clusters" in html
    med = mediation(sim.analysis, n_sims=50)._repr_html_()
    assert "<table" in med and "acme" in med
