"""Data generators for the issue-27 checks, written independently of `selfbias.stats.simulate`.

`length_run`: items differ in their typical answer length and answers of one item differ in length;
the summed log-probability falls with length (about one nat per token), so the within-item
deviation of the standardised log-likelihood (`z_loglik`) is strongly tied to the within-item
deviation of `log_n_tokens`.  P(Yes) is moved by an item effect tied to the item's mean log-length
(long-answer questions are judged more harshly), by correctness and, optionally, by a true
within-item likelihood slope and a true length effect:

    eta = intercept + item_length_effect * mean_i(log n) + length_effect * log n
          + correct_effect * correct + slope * z_within

with `z_within` computed exactly as `likelihood_regression` does (sum_logprob z-scored over the
frame with ddof=0, minus its item mean).  p_model="beta": P(Yes) ~ Beta(mean expit(eta)), tied
within an item by a Gaussian copula, so E[P(Yes) | x] = expit(eta) and the fractional logit with
the item means of every covariate targets these coefficients exactly; "logit_normal":
logit P(Yes) = eta + item_sd * u_i + sd_i * e (the linear mixed model).  With `hetero` > 0 an
item's noise SD grows with the spread of its candidates' log-likelihoods:
sd_i = noise_sd * (spread_i / mean spread) ** hetero -- questions whose answers differ more are
judged more erratically (issue 27).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special
from scipy import stats as st


def length_run(
    *, n_items: int = 60, k: int = 4, seed: int = 0, slope: float = 0.0, length_effect: float = 0.0,
    item_length_effect: float = -1.0, correct_effect: float = 1.0, p_correct: float = 0.3,
    intercept: float | None = None, item_sd: float = 0.5, noise_sd: float = 0.5, hetero: float = 0.0,
    p_model: str = "beta",
) -> tuple[pd.DataFrame, dict]:
    rng = np.random.default_rng(seed)
    item = np.repeat(np.arange(n_items), k)
    mu = rng.uniform(np.log(5), np.log(80), n_items)  # typical log-length of the item's answers
    n_tokens = np.maximum(1, np.round(np.exp(mu[item] + rng.normal(0, 0.6, item.size)))).astype(int)
    difficulty = rng.normal(0, 1, n_items)
    base = special.logit(p_correct)
    correct = rng.random(item.size) < special.expit(base - difficulty[item])
    self_authored = np.tile(np.arange(k) == 0, n_items)
    sum_logprob = (-1.0 * n_tokens + 1.5 * correct + 1.0 * self_authored + rng.uniform(-3, 3, n_items)[item]
                   + rng.normal(0, 2.0, item.size))
    z = (sum_logprob - sum_logprob.mean()) / sum_logprob.std()
    zbar = pd.Series(z).groupby(item).transform("mean").to_numpy()
    log_n = np.log(n_tokens)
    log_n_bar = pd.Series(log_n).groupby(item).transform("mean").to_numpy()
    if intercept is None:  # centre eta near 0, where P(Yes) is most informative
        intercept = -(item_length_effect + length_effect) * log_n.mean() - correct_effect * correct.mean()
    eta = (intercept + item_length_effect * log_n_bar + length_effect * log_n + correct_effect * correct
           + slope * (z - zbar))
    spread = pd.Series(sum_logprob).groupby(item).transform("std").to_numpy()
    sd = noise_sd * (spread / np.mean(spread)) ** hetero
    w = rng.standard_normal(n_items)[item]
    e = rng.standard_normal(item.size)
    if p_model == "logit_normal":
        p = special.expit(eta + item_sd * w + sd * e)
    else:
        total = np.sqrt(item_sd**2 + sd**2)
        rho = item_sd**2 / total**2
        u = st.norm.cdf(np.sqrt(rho) * w + np.sqrt(1 - rho) * e)
        phi = 4.0 / np.maximum(total**2, 1e-3)  # Var(logit p) ~ 2 trigamma(phi / 2) ~ 4 / phi at p = 1/2
        m = special.expit(eta)
        p = st.beta.ppf(u, m * phi, (1 - m) * phi)
    p = np.clip(p, 1e-6, 1 - 1e-6)
    frame = pd.DataFrame({
        "item_id": [f"q{i:03d}" for i in item], "candidate_id": [f"q{i:03d}#{j}" for i, j in zip(item, np.tile(np.arange(k), n_items))],
        "judge": "J", "mode": "isolated", "p_yes": p, "yes_no_mass": 0.95, "correct": correct,
        "source": np.where(self_authored, "own_greedy", "other_model"), "self_authored": self_authored,
        "sum_logprob": sum_logprob, "mean_logprob": sum_logprob / n_tokens, "n_tokens": n_tokens,
    })
    truth = {"z_loglik": slope, "log_n_tokens": length_effect, "correct": correct_effect}
    return frame, truth


def thesis_length_run(
    *, n_items: int = 30, n_own: int = 3, n_other: int = 3, seed: int = 0, slope: float = 0.5,
    listed_slope: float = 0.0, slope_change: float = 0.0, slope_change_listed: float = 0.0,
    external_shift: float = 0.0, item_length_effect: float = -1.0, correct_effect: float = 1.0,
    p_correct: float = 0.3, p_list_correct: float = 0.5, item_sd: float = 0.5, noise_sd: float = 0.5,
    item_mode_sd: float = 0.0, hetero: float = 0.0,
) -> tuple[pd.DataFrame, dict]:
    """Both list modes (``own_samples``, ``alternatives``) for `thesis_effect`, with answer length
    varying within and between items and driving the summed log-probability, and an item effect
    tied to the item's mean log-length (the confound of issue 27).  Each item has ``n_own``
    self-authored and ``n_other`` other candidates; each candidate's list holds a correct answer
    (``list_has_correct``, the same in both modes) with probability ``p_list_correct``.

        eta = intercept + item_length_effect * mean_i(log n) + correct_effect * correct
              + (slope + listed_slope * listed) * z_within
              + [own wrong, alternatives] * (external_shift + (slope_change + slope_change_listed
                * listed) * z_within) + item x mode shift (SD item_mode_sd)

    P(Yes) as in `length_run` (Beta with mean expit(eta), tied within an item by a Gaussian copula;
    ``hetero`` makes an item's noise grow with the spread of its candidates' log-likelihoods).
    Truth: the within-item slope on own wrong answers per cell (``slope_own_list_no_correct`` =
    slope, ``..._with_correct`` = slope + listed_slope, outside = those + slope_change (+
    slope_change_listed)), the changes and the interaction (``slope_change_interaction`` =
    slope_change_listed), and, with slope_change_listed = 0, ``slope_change_own_wrong`` =
    ``slope_change_vs_other`` = slope_change; exact for the fractional logit when item_mode_sd = 0,
    and the changes are 0 under the null whatever item_mode_sd."""
    rng = np.random.default_rng(seed)
    k = n_own + n_other
    item = np.repeat(np.arange(n_items), k)
    j = np.tile(np.arange(k), n_items)
    self_authored = j < n_own
    mu = rng.uniform(np.log(5), np.log(80), n_items)
    n_tokens = np.maximum(1, np.round(np.exp(mu[item] + rng.normal(0, 0.6, item.size)))).astype(int)
    difficulty = rng.normal(0, 1, n_items)
    correct = rng.random(item.size) < special.expit(special.logit(p_correct) - difficulty[item])
    sum_logprob = (-1.0 * n_tokens + 1.5 * correct + 1.0 * self_authored + rng.uniform(-3, 3, n_items)[item]
                   + rng.normal(0, 2.0, item.size))
    z = (sum_logprob - sum_logprob.mean()) / sum_logprob.std()
    zw = z - pd.Series(z).groupby(item).transform("mean").to_numpy()
    log_n = np.log(n_tokens)
    log_n_bar = pd.Series(log_n).groupby(item).transform("mean").to_numpy()
    listed = rng.random(item.size) < p_list_correct
    own_wrong = self_authored & ~correct
    intercept = -item_length_effect * log_n.mean() - correct_effect * correct.mean()
    base = (intercept + item_length_effect * log_n_bar + correct_effect * correct
            + (slope + listed_slope * listed) * zw)
    spread = pd.Series(sum_logprob).groupby(item).transform("std").to_numpy()
    sd = noise_sd * (spread / np.mean(spread)) ** hetero
    w = rng.standard_normal(n_items)[item]
    frames = []
    for mode in ("own_samples", "alternatives"):
        eta = base + (item_mode_sd * rng.standard_normal(n_items)[item] if item_mode_sd > 0 else 0.0)
        if mode == "alternatives":
            eta = eta + own_wrong * (external_shift + (slope_change + slope_change_listed * listed) * zw)
        total = np.sqrt(item_sd**2 + sd**2)
        rho = item_sd**2 / total**2
        u = st.norm.cdf(np.sqrt(rho) * w + np.sqrt(1 - rho) * rng.standard_normal(item.size))
        phi = 4.0 / np.maximum(total**2, 1e-3)
        m = special.expit(eta)
        p = np.clip(st.beta.ppf(u, m * phi, (1 - m) * phi), 1e-6, 1 - 1e-6)
        frames.append(pd.DataFrame({
            "item_id": [f"q{i:03d}" for i in item], "candidate_id": [f"q{i:03d}#{c}" for i, c in zip(item, j)],
            "judge": "J", "mode": mode, "p_yes": p, "yes_no_mass": 0.95, "correct": correct,
            "source": np.where(self_authored, "own_sample", "other_model"), "self_authored": self_authored,
            "sum_logprob": sum_logprob, "mean_logprob": sum_logprob / n_tokens, "n_tokens": n_tokens,
            "list_has_correct": listed, "list_length": 3,
        }))
    truth = {
        "slope_own_list_no_correct": slope, "slope_own_list_with_correct": slope + listed_slope,
        "slope_outside_list_no_correct": slope + slope_change,
        "slope_outside_list_with_correct": slope + listed_slope + slope_change + slope_change_listed,
        "slope_change_no_correct": slope_change, "slope_change_with_correct": slope_change + slope_change_listed,
        "slope_change_interaction": slope_change_listed,
    }
    if slope_change_listed == 0.0:
        truth["slope_change_own_wrong"] = truth["slope_change_vs_other"] = slope_change
    return pd.concat(frames, ignore_index=True), truth
