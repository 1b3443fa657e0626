"""The synthetic-run generator: tables in the documented columns, planted values as documented."""

from dataclasses import FrozenInstanceError
from math import comb

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.special import expit, logit

from selfbias.stats.simulate import SimulatedRun, simulate_null, simulate_run

ANALYSIS = ["item_id", "candidate_id", "judge", "mode", "p_yes", "yes_no_mass", "correct", "source",
            "self_authored", "sum_logprob", "mean_logprob", "n_tokens"]
PAIRWISE = ["item_id", "judge", "candidate_a", "candidate_b", "p_a_first", "p_a_second", "pref_a",
            "orders_agree", "a_correct", "b_correct", "a_self", "b_self", "a_sum_logprob",
            "b_sum_logprob", "a_mean_logprob", "b_mean_logprob"]
AGREEMENT = ["item_id", "model", "greedy_answer", "n_samples", "agreement", "greedy_correct"]
SOURCES = {"own_greedy", "own_sample", "reference", "distractor", "perturbation", "other_model"}


def z_loglik(analysis: pd.DataFrame) -> np.ndarray:
    s = analysis["sum_logprob"].to_numpy()
    return (s - s.mean()) / s.std()


def linear_predictor(analysis: pd.DataFrame, coefficients: dict) -> np.ndarray:
    """x'b for the default regression terms, computed from the frame by hand."""
    total = pd.Series(z_loglik(analysis), index=analysis.index)
    between = total.groupby(analysis["item_id"]).transform("mean").to_numpy()
    x = {
        "Intercept": np.ones(len(analysis)),
        "z_loglik": total.to_numpy() - between,  # within-item deviation
        "z_loglik_between": between,
        "log_n_tokens": np.log(analysis["n_tokens"].to_numpy()),
        "correct": analysis["correct"].to_numpy(float),
        "self_authored": analysis["self_authored"].to_numpy(float),
    }
    for mode in analysis["mode"].unique():
        x[f"mode_{mode}"] = (analysis["mode"] == mode).to_numpy(float)
    eta = np.zeros(len(analysis))
    for term, value in coefficients.items():
        if term.endswith("_between") and term != "z_loglik_between":
            assert value == 0.0, term  # the Mundlak item means of the other covariates carry nothing
            continue
        eta += value * np.prod([x[v] for v in term.split(":")], axis=0)
    return eta


def test_tables_have_the_documented_columns_and_types():
    run = simulate_run(n_items=7, n_candidates=5, seed=3)
    assert isinstance(run, SimulatedRun)
    assert list(run.analysis.columns) == ANALYSIS
    assert list(run.pairwise.columns) == PAIRWISE
    assert list(run.agreement.columns) == AGREEMENT
    a = run.analysis
    assert len(a) == 7 * 5 * 2 and set(a["mode"]) == {"isolated", "alternatives"}
    assert a["correct"].dtype == bool and a["self_authored"].dtype == bool
    assert a["n_tokens"].dtype == np.int64 and (a["n_tokens"] >= 1).all()
    assert a["p_yes"].between(0, 1).all() and a["yes_no_mass"].between(0, 1).all()
    assert (a["sum_logprob"] < 0).all()
    np.testing.assert_allclose(a["mean_logprob"], a["sum_logprob"] / a["n_tokens"])
    assert set(a["source"]) <= SOURCES
    assert (a["candidate_id"] == a["item_id"] + "#" + a["candidate_id"].str.split("#").str[1]).all()
    assert a["self_authored"].equals(a["source"].isin(["own_greedy", "own_sample"]))
    assert (a.loc[a["source"] == "reference", "correct"]).all()
    assert (~a.loc[a["source"] == "distractor", "correct"]).all()
    assert len(run.pairwise) == 7 * comb(5, 2) and len(run.agreement) == 7
    p = run.pairwise
    np.testing.assert_allclose(p["pref_a"], (p["p_a_first"] + p["p_a_second"]) / 2)
    assert p["orders_agree"].equals((p["p_a_first"] > 0.5) == (p["p_a_second"] > 0.5))
    assert run.agreement["agreement"].between(0, 1).all()


def test_seeded_and_frozen():
    a, b, c = simulate_run(seed=5), simulate_run(seed=5), simulate_run(seed=6)
    pd.testing.assert_frame_equal(a.analysis, b.analysis)
    pd.testing.assert_frame_equal(a.pairwise, b.pairwise)
    pd.testing.assert_frame_equal(a.agreement, b.agreement)
    assert not np.allclose(a.analysis["p_yes"], c.analysis["p_yes"])
    with pytest.raises(FrozenInstanceError):
        a.truth = {}


def test_truth_lists_the_planted_values():
    run = simulate_run(likelihood_slope=0.7, self_effect=0.4, comparison_effect=-0.2, correct_effect=1.1)
    t = run.truth
    assert (t["likelihood_slope"], t["self_effect"], t["comparison_effect"], t["correct_effect"]) == (0.7, 0.4, -0.2, 1.1)
    assert t["coefficients"]["z_loglik"] == 0.7 and t["coefficients"]["self_authored"] == 0.4
    assert t["coefficients"]["mode_alternatives"] == -0.2
    assert t["coefficients"]["mode_alternatives:correct"] == pytest.approx(0.2)
    alt = t["coefficients_by_mode"]["alternatives"]
    assert alt["Intercept"] == pytest.approx(t["intercept"] - 0.2) and alt["correct"] == pytest.approx(1.3)
    assert t["targets"] == ("likelihood_regression",)
    assert t["sd_sum_logprob"] == pytest.approx(run.analysis.drop_duplicates("candidate_id")["sum_logprob"].std(ddof=0))
    m = t["mediation"]
    assert m["acme"] == pytest.approx(0.7 * 2.0 / t["sd_sum_logprob"]) and m["total"] == pytest.approx(m["acme"] + 0.4)


@pytest.mark.parametrize("item_effect", [0.0, 1.5])
def test_without_noise_p_yes_is_exactly_the_planted_curve(item_effect):
    run = simulate_run(item_sd=0.0, noise_sd=0.0, seed=2, item_likelihood_effect=item_effect)
    truth = run.truth["coefficients"]
    assert truth["z_loglik_between"] == truth["z_loglik"] + item_effect
    eta = linear_predictor(run.analysis, truth)
    np.testing.assert_allclose(run.analysis["p_yes"], expit(eta), rtol=1e-12)


def test_beta_model_has_the_planted_conditional_mean():
    # E[p_yes | x] = expit(x'b) is what makes the fractional logit consistent.  Within each
    # self x correct cell the mean residual must be 0: tolerance 4 standard errors of the mean.
    run = simulate_run(n_items=1500, n_candidates=4, modes=("isolated",), item_sd=0.6, noise_sd=0.6, seed=11)
    a = run.analysis
    residual = a["p_yes"] - expit(linear_predictor(a, run.truth["coefficients"]))
    for _, r in residual.groupby([a["self_authored"], a["correct"]]):
        assert abs(r.mean()) < 4 * r.std() / np.sqrt(len(r)) + 1e-12


def test_logit_normal_model_has_the_planted_mean_and_variance():
    run = simulate_run(n_items=1500, n_candidates=4, modes=("isolated",), p_model="logit_normal",
                       item_sd=0.5, noise_sd=0.5, seed=12)
    a = run.analysis
    residual = logit(a["p_yes"]) - linear_predictor(a, run.truth["coefficients"])
    # mean 0 with SE ~ sqrt(0.5^2/1500 + 0.5^2/6000) ~ 0.014; total SD sqrt(0.5) ~ 0.707
    assert abs(residual.mean()) < 0.06
    assert residual.std() == pytest.approx(np.sqrt(0.5), rel=0.05)
    assert run.truth["targets"] == ("mixed_effects_regression", "mediation")


def test_calibrated_runs_are_calibrated():
    # correct ~ Bernoulli(isolated p_yes): a logistic regression of correct on logit(p_yes) has
    # intercept 0 and slope 1 (truth["calibration"]); tolerance 4 standard errors.
    run = simulate_run(n_items=800, n_candidates=5, calibrated=True, seed=4)
    assert run.truth["calibration"] == {"intercept": 0.0, "slope": 1.0}
    assert run.truth["coefficients"] is None and run.truth["mediation"] is None
    iso = run.analysis[run.analysis["mode"] == "isolated"]
    x = sm.add_constant(logit(iso["p_yes"].clip(1e-6, 1 - 1e-6)).to_numpy())
    fit = sm.GLM(iso["correct"].to_numpy(float), x, family=sm.families.Binomial()).fit()
    assert abs(fit.params[0] - 0.0) < 4 * fit.bse[0]
    assert abs(fit.params[1] - 1.0) < 4 * fit.bse[1]


def test_pairwise_and_agreement_truths_are_recovered():
    # Both are fractional/binomial logits with exactly the planted mean, so the estimates must lie
    # within 4 standard errors (item-clustered for the pairs, which share an item latent).
    run = simulate_run(n_items=300, n_candidates=4, position_bias=0.4, seed=8)
    p, a = run.pairwise, run.analysis.drop_duplicates("candidate_id").set_index("candidate_id")
    z = pd.Series(z_loglik(a), index=a.index)
    x = pd.DataFrame({
        "Intercept": 1.0,
        "d_z_loglik": z[p["candidate_a"]].to_numpy() - z[p["candidate_b"]].to_numpy(),
        "d_self_authored": p["a_self"].astype(float) - p["b_self"].astype(float),
        "d_correct": p["a_correct"].astype(float) - p["b_correct"].astype(float),
    })
    groups = pd.factorize(p["item_id"])[0]
    fit = sm.GLM(p["p_a_first"], x, family=sm.families.Binomial()).fit(cov_type="cluster", cov_kwds={"groups": groups})
    for term, value in run.truth["pairwise"].items():
        assert abs(fit.params[term] - value) < 4 * fit.bse[term], term
    g = run.agreement
    y = np.column_stack([g["agreement"] * g["n_samples"], (1 - g["agreement"]) * g["n_samples"]])
    fit = sm.GLM(y, sm.add_constant(g["greedy_correct"].astype(float)), family=sm.families.Binomial()).fit()
    assert abs(fit.params["greedy_correct"] - run.truth["agreement"]["greedy_correct"]) < 4 * fit.bse["greedy_correct"]


def test_null_plants_nothing():
    t = simulate_null(seed=1).truth
    assert all(t[k] == 0.0 for k in ("likelihood_slope", "self_effect", "comparison_effect", "correct_effect",
                                       "position_bias", "agreement_effect"))
    assert all(v == 0.0 for k, v in t["coefficients"].items() if k != "Intercept")
    assert t["mediation"]["acme"] == 0.0 and np.isnan(t["mediation"]["prop_mediated"])


@pytest.mark.parametrize("kwargs", [
    {"n_candidates": 1}, {"n_items": 0}, {"modes": ("pairwise",)}, {"modes": ()},
    {"modes": ("isolated", "isolated")}, {"p_model": "normal"}, {"noise_sd": -1.0},
])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        simulate_run(**kwargs)


def test_only_comparison_modes_and_small_candidate_sets():
    run = simulate_run(n_items=5, n_candidates=2, modes=("alternatives", "own_samples"), seed=0)
    assert set(run.analysis["source"][run.analysis["self_authored"]]) == {"own_greedy"}
    coefficients = run.truth["coefficients"]
    assert coefficients["Intercept"] == pytest.approx(run.truth["intercept"] + run.truth["comparison_effect"])
    assert coefficients["mode_own_samples"] == 0.0
