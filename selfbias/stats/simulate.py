"""Synthetic runs with planted effects, to check that the statistics recover what was put in.

`simulate_run` returns the tables a real run would give (`analysis`, `pairwise`, `agreement`, in
the columns of ARCHITECTURE.md) together with `truth`: the planted values on the scale each
estimator reports.  `simulate_null` is the same generator with every effect set to zero.

The generative model, for one judge (`sim-judge`) and items i = 1..n_items
--------------------------------------------------------------------------
Items: difficulty d_i ~ N(0, 1); a log-likelihood offset v_i ~ U(-1.5, 1.5) shared by the item's
candidates; an item latent w_i ~ N(0, 1) shared by all of the item's P(Yes) residuals.

Candidates (n_candidates per item): candidate 0 is `own_greedy` and, when n_candidates >= 4,
candidate 1 is `own_sample` (self_authored = True); the others are not self-authored and are
labelled `reference` (the first correct one), `other_model` (other correct ones) or `distractor`.
Correctness: self answers ~ Bernoulli(expit(0.5 - d_i)), the first non-self candidate is correct,
the other non-self ~ Bernoulli(expit(-1 - d_i)).  n_tokens = 1 + Poisson(3) and
    sum_logprob = -6.5 - n_tokens + 2.0 self + 1.5 correct + v_i + U(-2, 2)   (always < 0)
    mean_logprob = sum_logprob / n_tokens.
So log-likelihood is higher for the judge's own answers and for correct answers, as in real runs.
z_loglik is sum_logprob z-scored over the candidates with ddof=0 — the same number
`likelihood_regression` computes from the analysis frame.

P(Yes), one row per candidate x mode, from the linear predictor
    eta = intercept + likelihood_slope * z_loglik + self_effect * self + correct_effect * correct
          + item_likelihood_effect * zbar_i
          + comparison_effect * [mode != "isolated"] * (1 - correct)
where zbar_i is the mean z_loglik of item i's candidates.  `item_likelihood_effect` (default 0)
plants an item effect on P(Yes) that is correlated with the item's mean likelihood -- the
confound of a pooled likelihood slope: questions whose answers are all likely get higher P(Yes)
whatever the answer.  The within-item slope (the coefficient of the within-item deviation
z_loglik - zbar_i) stays likelihood_slope; the between-item coefficient (of zbar_i) becomes
likelihood_slope + item_likelihood_effect; a pooled regression on z_loglik alone mixes the two.
and p_model:
* "beta" (default): p_yes ~ Beta(mean expit(eta), precision phi), so E[p_yes | x] = expit(eta)
  exactly and the fractional logit (GLM or GEE; Papke & Wooldridge 1996) is consistent for the
  planted coefficients.  The
  Beta draws are tied within an item through a Gaussian copula driven by w_i (correlation
  rho = item_sd^2 / (item_sd^2 + noise_sd^2)), which makes residuals correlated within items
  without moving E[p_yes | x]; phi solves 2 trigamma(phi / 2) = item_sd^2 + noise_sd^2, i.e. the
  SD of logit(p_yes) at a mean of 1/2 equals that of the logit-normal model.
* "logit_normal": logit(p_yes) = eta + item_sd * w_i + noise_sd * e, e ~ N(0, 1): the linear mixed
  model with item random intercepts, so `mixed_effects_regression` and `mediation` (OLS on
  logit P(Yes)) target the planted coefficients exactly; the fractional logit then estimates
  attenuated population-averaged effects (no exact truth is given for it).
With calibrated=True the isolated P(Yes) ignores correctness (eta without correct_effect, and the
log-likelihood without its correctness term), correctness is drawn as Bernoulli(isolated p_yes), so
P(correct | p_yes) = p_yes exactly, and only then are the other modes drawn.

Pairwise rows: every pair of an item's candidates, with scores s = likelihood_slope * z_loglik +
self_effect * self + correct_effect * correct (correct_effect omitted when calibrated) and
p_a_first = P(a chosen | a shown first) drawn as P(Yes) with eta = s_a - s_b + position_bias,
p_a_second with eta = s_a - s_b - position_bias (fresh draws, tied within the item through w_i).

Agreement: per item, 10 samples of which Binomial(10, expit(agreement_effect * greedy_correct))
agree with the greedy answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import optimize, special
from scipy import stats as st

__all__ = ["SimulatedRun", "simulate_null", "simulate_run"]

JUDGE = "sim-judge"
MODES = ("isolated", "own_samples", "alternatives")
N_AGREEMENT_SAMPLES = 10
# log-likelihood model: sum_logprob = BASE + TOKEN_COST * n + SELF * self + CORRECT * correct + v_i + noise
LOGLIK_BASE = -6.5
LOGLIK_TOKEN_COST = -1.0
LOGLIK_SELF = 2.0
LOGLIK_CORRECT = 1.5
LOGLIK_ITEM_HALF_WIDTH = 1.5
LOGLIK_NOISE_HALF_WIDTH = 2.0
MEAN_EXTRA_TOKENS = 3.0

ANALYSIS_COLUMNS = [
    "item_id", "candidate_id", "judge", "mode", "p_yes", "yes_no_mass", "correct", "source",
    "self_authored", "sum_logprob", "mean_logprob", "n_tokens",
]
PAIRWISE_COLUMNS = [
    "item_id", "judge", "candidate_a", "candidate_b", "p_a_first", "p_a_second", "pref_a",
    "orders_agree", "a_correct", "b_correct", "a_self", "b_self", "a_sum_logprob", "b_sum_logprob",
    "a_mean_logprob", "b_mean_logprob",
]
AGREEMENT_COLUMNS = ["item_id", "model", "greedy_answer", "n_samples", "agreement", "greedy_correct"]


@dataclass(frozen=True, eq=False)
class SimulatedRun:
    """The tables of a synthetic run and the values planted in it (see `simulate_run`)."""

    analysis: pd.DataFrame
    pairwise: pd.DataFrame
    agreement: pd.DataFrame
    truth: dict


@lru_cache(maxsize=64)
def _beta_precision(logit_variance: float) -> float:
    """Beta precision phi with 2 trigamma(phi / 2) = logit_variance: Var(logit p) at mean 1/2."""
    return float(optimize.brentq(lambda phi: 2 * special.polygamma(1, phi / 2) - logit_variance, 1e-8, 1e12))


@dataclass(frozen=True)
class _Noise:
    """How P(Yes) scatters around expit(eta)."""

    p_model: str
    item_sd: float
    noise_sd: float

    @property
    def total_sd(self) -> float:
        return float(np.hypot(self.item_sd, self.noise_sd))

    def precision(self) -> float:
        return _beta_precision(self.total_sd**2)

    def draw(self, eta: np.ndarray, item_latent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        own = rng.standard_normal(eta.shape)
        if self.total_sd == 0:
            return special.expit(eta)
        if self.p_model == "logit_normal":
            return special.expit(eta + self.item_sd * item_latent + self.noise_sd * own)
        rho = self.item_sd**2 / self.total_sd**2
        uniform = st.norm.cdf(np.sqrt(rho) * item_latent + np.sqrt(1 - rho) * own)
        mean, phi = special.expit(eta), self.precision()
        return st.beta.ppf(uniform, mean * phi, (1 - mean) * phi)


def _validate(n_items: int, n_candidates: int, modes, p_model: str, noise: tuple[float, float]) -> None:
    if n_items < 1 or n_candidates < 2:
        raise ValueError("need n_items >= 1 and n_candidates >= 2")
    if not modes or any(m not in MODES for m in modes) or len(set(modes)) != len(modes):
        raise ValueError(f"modes must be distinct values from {MODES}, got {modes}")
    if p_model not in ("beta", "logit_normal"):
        raise ValueError(f"p_model must be 'beta' or 'logit_normal', not {p_model!r}")
    if min(noise) < 0:
        raise ValueError("item_sd and noise_sd must be >= 0")


def _candidates(n_items: int, n_candidates: int, calibrated: bool, rng: np.random.Generator) -> pd.DataFrame:
    """Candidate table without P(Yes): item, k, self_authored, correct, lengths, log-likelihoods.

    When calibrated, `correct` is redrawn later from P(Yes), so the log-likelihood omits it."""
    item = np.repeat(np.arange(n_items), n_candidates)
    k = np.tile(np.arange(n_candidates), n_items)
    n_self = 2 if n_candidates >= 4 else 1
    self_authored = k < n_self
    difficulty = rng.standard_normal(n_items)[item]
    p_correct = np.where(self_authored, special.expit(0.5 - difficulty), special.expit(-1.0 - difficulty))
    correct = (rng.random(item.size) < p_correct) | (k == n_self)
    n_tokens = 1 + rng.poisson(MEAN_EXTRA_TOKENS, item.size)
    item_offset = rng.uniform(-LOGLIK_ITEM_HALF_WIDTH, LOGLIK_ITEM_HALF_WIDTH, n_items)[item]
    noise = rng.uniform(-LOGLIK_NOISE_HALF_WIDTH, LOGLIK_NOISE_HALF_WIDTH, item.size)
    correct_term = 0.0 if calibrated else LOGLIK_CORRECT * correct
    sum_logprob = (
        LOGLIK_BASE + LOGLIK_TOKEN_COST * n_tokens + LOGLIK_SELF * self_authored + correct_term
        + item_offset + noise
    )
    return pd.DataFrame(
        {
            "item": item, "k": k, "self_authored": self_authored, "correct": correct,
            "n_tokens": n_tokens, "sum_logprob": sum_logprob, "mean_logprob": sum_logprob / n_tokens,
            "z_loglik": (sum_logprob - sum_logprob.mean()) / sum_logprob.std(),
        }
    )


def _label_sources(cand: pd.DataFrame) -> np.ndarray:
    source = np.where(cand["correct"], "other_model", "distractor").astype(object)
    non_self_correct = cand[~cand["self_authored"] & cand["correct"]]
    source[non_self_correct.groupby("item").head(1).index] = "reference"
    source[cand["self_authored"].to_numpy()] = "own_sample"
    source[(cand["k"] == 0).to_numpy()] = "own_greedy"
    return source


def _ids(cand: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    item_id = np.array([f"sim-{i:04d}" for i in cand["item"]], dtype=object)
    return item_id, np.array([f"{i}#{k}" for i, k in zip(item_id, cand["k"])], dtype=object)


def _planted_coefficients(modes, effects: dict, calibrated: bool) -> dict[str, float] | None:
    """True coefficients of the default `likelihood_regression` formula on rows of `modes`."""
    if calibrated:
        return None
    comparison_only = "isolated" not in modes
    shift = effects["comparison_effect"] if comparison_only else 0.0
    coefficients = {
        "Intercept": effects["intercept"] + shift,
        "z_loglik": effects["likelihood_slope"],
        "z_loglik_between": effects["likelihood_slope"] + effects.get("item_likelihood_effect", 0.0),
        "log_n_tokens": 0.0,
        "correct": effects["correct_effect"] - shift,
        "self_authored": effects["self_effect"],
        "z_loglik:correct": 0.0,
        "z_loglik:self_authored": 0.0,
        # the item means (Mundlak terms) of the within-varying covariates: P(Yes) depends on none
        # of them (self_authored's item mean is constant here, so it is not fitted)
        "log_n_tokens_between": 0.0,
        "correct_between": 0.0,
        "z_loglik_x_correct_between": 0.0,
        "z_loglik_x_self_authored_between": 0.0,
    }
    step = 0.0 if comparison_only else effects["comparison_effect"]  # vs the reference mode
    for mode in sorted(set(modes) - {"isolated" if not comparison_only else min(modes)}):
        coefficients[f"mode_{mode}"] = step
        coefficients[f"mode_{mode}:correct"] = -step
    return coefficients


def _pairwise(cand: pd.DataFrame, score: np.ndarray, item_latent, position_bias, noise, rng) -> pd.DataFrame:
    n_candidates = int(cand["k"].max()) + 1  # candidates are stored item by item, k = 0..K-1
    within = np.array(list(combinations(range(n_candidates), 2)))
    first_row = n_candidates * np.arange(cand["item"].nunique())[:, None]
    a, b = (first_row + within[:, 0]).ravel(), (first_row + within[:, 1]).ravel()
    delta = score[a] - score[b]
    latent = item_latent[cand["item"].to_numpy()[a]]
    first = noise.draw(delta + position_bias, latent, rng)
    second = noise.draw(delta - position_bias, latent, rng)
    names = ("candidate_id", "correct", "self_authored", "sum_logprob", "mean_logprob")
    col = {name: cand[name].to_numpy() for name in names}
    return pd.DataFrame(
        {
            "item_id": cand["item_id"].to_numpy()[a], "judge": JUDGE,
            "candidate_a": col["candidate_id"][a], "candidate_b": col["candidate_id"][b],
            "p_a_first": first, "p_a_second": second, "pref_a": (first + second) / 2,
            "orders_agree": (first > 0.5) == (second > 0.5),
            "a_correct": col["correct"][a], "b_correct": col["correct"][b],
            "a_self": col["self_authored"][a], "b_self": col["self_authored"][b],
            "a_sum_logprob": col["sum_logprob"][a], "b_sum_logprob": col["sum_logprob"][b],
            "a_mean_logprob": col["mean_logprob"][a], "b_mean_logprob": col["mean_logprob"][b],
        }
    )[PAIRWISE_COLUMNS]


def _agreement(cand: pd.DataFrame, agreement_effect: float, rng) -> pd.DataFrame:
    greedy = cand[cand["k"] == 0]
    share = rng.binomial(N_AGREEMENT_SAMPLES, special.expit(agreement_effect * greedy["correct"].to_numpy()))
    return pd.DataFrame(
        {
            "item_id": greedy["item_id"].to_numpy(), "model": JUDGE,
            "greedy_answer": [f"answer {c}" for c in greedy["candidate_id"]],
            "n_samples": N_AGREEMENT_SAMPLES, "agreement": share / N_AGREEMENT_SAMPLES,
            "greedy_correct": greedy["correct"].to_numpy(),
        }
    )[AGREEMENT_COLUMNS]


def simulate_run(
    *,
    n_items: int = 60,
    n_candidates: int = 5,
    likelihood_slope: float = 0.8,
    self_effect: float = 0.5,
    comparison_effect: float = -0.3,
    correct_effect: float = 1.0,
    item_sd: float = 0.5,
    noise_sd: float = 0.5,
    modes: tuple[str, ...] = ("isolated", "alternatives"),
    calibrated: bool = False,
    seed: int = 0,
    intercept: float = -0.5,
    position_bias: float = 0.0,
    agreement_effect: float = 1.0,
    p_model: str = "beta",
    item_likelihood_effect: float = 0.0,
    item_mode_sd: float = 0.0,
    external_shift: float = 0.0,
    external_slope_change: float = 0.0,
    p_list_correct: float | None = None,
    list_correct_effect: float = 0.0,
    external_correct_shift: float = 0.0,
) -> SimulatedRun:
    """A synthetic run with planted effects (the generative model is in the module docstring).

    truth (all effects on the logit scale of P(Yes)):
    * "intercept", "likelihood_slope", "self_effect", "correct_effect", "comparison_effect",
      "position_bias", "agreement_effect", "item_sd", "noise_sd", "p_model", "calibrated": the
      arguments.  likelihood_slope is the change in logit P(Yes) per SD of sum_logprob
      (z_loglik); self_effect the shift for the judge's own answers; correct_effect for correct
      ones; comparison_effect the shift of a *wrong* answer's logit P(Yes) in a mode that shows
      other answers (alternatives, own_samples) relative to isolated; "item_likelihood_effect"
      the shift of logit P(Yes) per unit of the item's mean z_loglik (an item effect correlated
      with the item's mean likelihood; see the module docstring); "item_mode_sd" the SD of an
      extra item x mode shift of logit P(Yes), N(0, item_mode_sd^2) drawn independently for every
      item and mode (default 0): candidates of one item then move together from one mode to
      another, the null of the comparison table's tests with item-shared shifts (with
      item_mode_sd > 0, "coefficients" are exact only for the conditional model);
      "external_shift" and "external_slope_change": in mode `alternatives` only, the judge's own
      wrong answers get logit P(Yes) + external_shift + external_slope_change * (z_loglik minus
      its item mean) -- the thesis of `thesis_effect` (both 0 by default; when not 0 the
      "coefficients" of the default regression no longer describe the alternatives rows).
    * "thesis": {"slope_change_own_wrong": external_slope_change, "slope_change_vs_other":
      external_slope_change, "external_shift": external_shift} -- the fractional-logit
      estimands of `thesis_effect` (exact for p_model="beta" when item_mode_sd = 0).
    * the list design (issue 23), only with ``p_list_correct`` (default None: no column, and the
      draws of every other table are unchanged): each candidate's lists hold a correct answer
      (``list_has_correct``, the same in both list modes, False in ``isolated``) with probability
      ``p_list_correct``, drawn from its own generator, independent of everything else; in both
      list modes a wrong answer's logit P(Yes) moves by ``list_correct_effect`` when it does, and
      in ``alternatives`` the judge's own wrong answers move by a further
      ``external_correct_shift`` (the planted interaction of `thesis_effect`'s cells).
      truth["thesis"]["cells"]: the cell estimands of `thesis_effect` on the P(Yes) scale
      (``p_yes_own_list_<cell>``, ``p_yes_outside_list_<cell>``, ``p_yes_shift_<cell>``,
      ``p_yes_shift_interaction``), the means of expit(eta) over the realised own wrong answers
      of each cell: exact expectations for p_model="beta" with item_mode_sd = 0, and 0 for the
      shifts and the interaction whenever external_shift, external_slope_change and
      external_correct_shift are 0 (the modes are then exchangeable).
    * "coefficients": {term: value} for the default formula of `likelihood_regression` and
      `mixed_effects_regression` on the whole analysis frame (all modes): z_loglik = slope,
      self_authored = self_effect, correct = correct_effect, mode_<m> = comparison_effect,
      mode_<m>:correct = -comparison_effect, log_n_tokens and the z_loglik interactions = 0,
      z_loglik (the within-item slope) = likelihood_slope, z_loglik_between =
      likelihood_slope + item_likelihood_effect, and the item means of the other within-varying
      terms (log_n_tokens_between, correct_between, z_loglik_x_correct_between,
      z_loglik_x_self_authored_between) = 0.
      "coefficients_by_mode": the same for the rows of one mode (for a comparison mode alone the
      intercept is intercept + comparison_effect and correct is correct_effect -
      comparison_effect).  None when calibrated (correctness is then an outcome of P(Yes)).
    * "targets": the estimators whose estimand these coefficients are exactly: the fractional
      logit (`likelihood_regression`, glm or gee, response="logit") for p_model="beta";
      `mixed_effects_regression` and `mediation` for p_model="logit_normal".
    * "mediation": acme = likelihood_slope * 2.0 / SD(sum_logprob) (self-authorship raises
      sum_logprob by 2.0 nats, i.e. 2.0 / SD in z units, times the slope; SD is the realised
      ddof=0 SD over candidates, as `mediation` standardises), ade = self_effect, total = acme +
      ade, prop_mediated = acme / total (NaN if total = 0); None when calibrated or when
      item_likelihood_effect != 0 (the pooled mediator then carries the item confound).
    * "pairwise": coefficients of a fractional logit of p_a_first on the differences
      (a minus b) of z_loglik, self_authored and correct: Intercept = position_bias,
      d_z_loglik = likelihood_slope, d_self_authored = self_effect, d_correct = correct_effect
      (0 when calibrated).  For p_a_second the intercept is -position_bias.  Exact for "beta".
    * "calibration": {"intercept": 0.0, "slope": 1.0} when calibrated — a logistic regression of
      correct on logit(isolated p_yes) — else None.
    * "agreement": {"Intercept": 0.0, "greedy_correct": agreement_effect}, a binomial logit of
      agreement (n_samples trials) on greedy_correct.
    * "sd_sum_logprob": the SD used for z_loglik.
    """
    _validate(n_items, n_candidates, modes, p_model, (item_sd, noise_sd))
    rng = np.random.default_rng(seed)
    noise = _Noise(p_model, float(item_sd), float(noise_sd))
    cand = _candidates(n_items, n_candidates, calibrated, rng)
    cand["item_id"], cand["candidate_id"] = _ids(cand)
    item_latent = rng.standard_normal(n_items)
    latent = item_latent[cand["item"].to_numpy()]
    z, self_ = cand["z_loglik"].to_numpy(), cand["self_authored"].to_numpy()
    correct_weight = 0.0 if calibrated else correct_effect
    item_mean_z = cand.groupby("item")["z_loglik"].transform("mean").to_numpy()
    base = intercept + likelihood_slope * z + self_effect * self_ + item_likelihood_effect * item_mean_z
    item_index = cand["item"].to_numpy()
    # an item x mode shift (item_mode_sd): drawn per mode, so under the null the two modes stay
    # exchangeable while the candidates of an item move together between them
    mode_shift = {m: item_mode_sd * rng.standard_normal(n_items)[item_index] if item_mode_sd > 0 else 0.0
                  for m in modes}
    p_isolated = noise.draw(base + correct_weight * cand["correct"].to_numpy()
                            + (mode_shift["isolated"] if "isolated" in modes else 0.0), latent, rng)
    if calibrated:
        cand["correct"] = rng.random(len(cand)) < p_isolated
    correct = cand["correct"].to_numpy()
    cand["source"] = _label_sources(cand)
    eta = base + correct_weight * correct
    shown_others = eta + comparison_effect * (1 - correct)
    # the thesis (thesis_effect): in `alternatives` only, the judge's own wrong answers move by
    # external_shift + external_slope_change * (within-item z_loglik)
    own_wrong = (self_ & ~correct).astype(float)
    external = own_wrong * (external_shift + external_slope_change * (z - item_mean_z))
    # the list design's cell (issue 23): own generator, so every other draw is as without it
    listed = np.zeros(len(cand), dtype=bool)
    if p_list_correct is not None:
        listed = np.random.default_rng([seed, 23]).random(len(cand)) < p_list_correct
    cell_shift = {
        m: listed * (list_correct_effect * (1 - correct)
                     + (external_correct_shift * own_wrong if m == "alternatives" else 0.0))
        for m in modes if m != "isolated"
    }
    p_by_mode = {
        m: p_isolated if m == "isolated"
        else noise.draw(shown_others + mode_shift[m] + (external if m == "alternatives" else 0.0) + cell_shift[m],
                        latent, rng)
        for m in modes
    }
    analysis = pd.concat(
        [cand.assign(mode=mode, p_yes=p, judge=JUDGE) for mode, p in p_by_mode.items()], ignore_index=True
    )
    analysis["yes_no_mass"] = rng.uniform(0.85, 1.0, len(analysis))
    columns = list(ANALYSIS_COLUMNS)
    if p_list_correct is not None:
        analysis["list_has_correct"] = np.concatenate(
            [listed & (mode != "isolated") for mode in p_by_mode])
        columns.append("list_has_correct")
    analysis = analysis[columns].astype({"n_tokens": "int64", "correct": bool, "self_authored": bool})
    score = likelihood_slope * z + self_effect * self_ + correct_weight * correct
    pairwise = _pairwise(cand, score, item_latent, position_bias, noise, rng)
    agreement = _agreement(cand, agreement_effect, rng)
    effects = {
        "intercept": intercept, "likelihood_slope": likelihood_slope, "self_effect": self_effect,
        "correct_effect": correct_effect, "comparison_effect": comparison_effect,
        "item_likelihood_effect": float(item_likelihood_effect), "item_mode_sd": float(item_mode_sd),
    }
    thesis = {"slope_change_own_wrong": float(external_slope_change),
              "slope_change_vs_other": float(external_slope_change), "external_shift": float(external_shift)}
    if p_list_correct is not None and {"own_samples", "alternatives"} <= set(modes):
        thesis["cells"] = _cell_truth(
            {m: shown_others + (external if m == "alternatives" else 0.0) + cell_shift[m]
             for m in ("own_samples", "alternatives")}, own_wrong.astype(bool), listed)
    sd = float(cand["sum_logprob"].std(ddof=0))
    truth = _truth(effects, modes, calibrated, sd, position_bias, agreement_effect, noise)
    truth["thesis"] = thesis
    return SimulatedRun(analysis, pairwise, agreement, truth)


def _cell_truth(eta: dict[str, np.ndarray], own_wrong: np.ndarray, listed: np.ndarray) -> dict[str, float]:
    """The cell estimands of `thesis_effect` as means of expit(eta) over the own wrong answers of a cell."""
    out: dict[str, float] = {}
    for name, flag in (("no_correct", False), ("with_correct", True)):
        sel = own_wrong & (listed == flag)
        own, ext = special.expit(eta["own_samples"][sel]), special.expit(eta["alternatives"][sel])
        out[f"p_yes_own_list_{name}"] = float(own.mean()) if sel.any() else float("nan")
        out[f"p_yes_outside_list_{name}"] = float(ext.mean()) if sel.any() else float("nan")
        out[f"p_yes_shift_{name}"] = float((ext - own).mean()) if sel.any() else float("nan")
    out["p_yes_shift_interaction"] = out["p_yes_shift_with_correct"] - out["p_yes_shift_no_correct"]
    return out


def _truth(effects, modes, calibrated, sd, position_bias, agreement_effect, noise: _Noise) -> dict:
    acme = effects["likelihood_slope"] * LOGLIK_SELF / sd
    total = acme + effects["self_effect"]
    return {
        **effects,
        "position_bias": position_bias,
        "agreement_effect": agreement_effect,
        "item_sd": noise.item_sd,
        "noise_sd": noise.noise_sd,
        "p_model": noise.p_model,
        "calibrated": calibrated,
        "coefficients": _planted_coefficients(tuple(modes), effects, calibrated),
        "coefficients_by_mode": {m: _planted_coefficients((m,), effects, calibrated) for m in modes},
        "targets": ("likelihood_regression",) if noise.p_model == "beta"
        else ("mixed_effects_regression", "mediation"),
        "mediation": None if calibrated or effects["item_likelihood_effect"] != 0 else {
            "acme": acme, "ade": effects["self_effect"], "total": total,
            "prop_mediated": acme / total if total != 0 else float("nan"),
        },
        "pairwise": {
            "Intercept": position_bias, "d_z_loglik": effects["likelihood_slope"],
            "d_self_authored": effects["self_effect"],
            "d_correct": 0.0 if calibrated else effects["correct_effect"],
        },
        "calibration": {"intercept": 0.0, "slope": 1.0} if calibrated else None,
        "agreement": {"Intercept": 0.0, "greedy_correct": agreement_effect},
        "sd_sum_logprob": sd,
    }


def simulate_null(
    *,
    n_items: int = 60,
    n_candidates: int = 5,
    item_sd: float = 0.5,
    noise_sd: float = 0.5,
    modes: tuple[str, ...] = ("isolated", "alternatives"),
    seed: int = 0,
    intercept: float = -0.5,
    p_model: str = "beta",
    item_mode_sd: float = 0.0,
) -> SimulatedRun:
    """`simulate_run` with every effect zero: P(Yes) ignores likelihood, authorship, correctness,
    mode, order and agreement ignores correctness.  Tests on it should reject at their nominal
    rate."""
    return simulate_run(
        n_items=n_items, n_candidates=n_candidates, likelihood_slope=0.0, self_effect=0.0,
        comparison_effect=0.0, correct_effect=0.0, item_sd=item_sd, noise_sd=noise_sd, modes=modes,
        calibrated=False, seed=seed, intercept=intercept, position_bias=0.0, agreement_effect=0.0,
        p_model=p_model, item_mode_sd=item_mode_sd,
    )
