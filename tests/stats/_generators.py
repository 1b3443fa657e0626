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
