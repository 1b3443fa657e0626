# Over 600 lines: the likelihood regressions (logistic, mixed effects, per judge, mediation) share design matrices and fits.
"""Does the judge trust likely text?  Regressions of the verdict on the judge's own log-likelihood.

Self-preference is thought to run through familiarity: text with a high likelihood (low perplexity)
under the judge reads as correct to it, so a model rates its own answers highly (Wataoka et al. 2024,
"Self-Preference Bias in LLM-as-a-Judge", arXiv:2410.21819).  The functions here take the analysis
frame of ARCHITECTURE.md and measure

* `likelihood_regression`: how logit P(Yes) moves with the standardised log-likelihood of the
  candidate, holding correctness, self-authorship and length fixed (fractional logit GLM with
  item-clustered standard errors, Papke & Wooldridge 1996, or GEE);
* `mixed_effects_regression`: the same question as a linear mixed model on logit(P(Yes)) with item
  random intercepts;
* `mediation`: how much of the self-authorship effect on P(Yes) flows through log-likelihood
  (Imai, Keele & Tingley 2010).

Every function returns a frozen result holding a tidy DataFrame and the notes explaining what was
dropped or why an interval may be unreliable.

References
----------
Papke, L. E. & Wooldridge, J. M. (1996). Econometric methods for fractional response variables with
an application to 401(k) plan participation rates. Journal of Applied Econometrics 11(6), 619-632.
Imai, K., Keele, L. & Tingley, D. (2010). A general approach to causal mediation analysis.
Psychological Methods 15(4), 309-334.
Wataoka, K., Takahashi, T. & Ri, R. (2024). Self-preference bias in LLM-as-a-judge. arXiv:2410.21819.
Cameron, A. C. & Miller, D. L. (2015). A practitioner's guide to cluster-robust inference. Journal of
Human Resources 50(2), 317-372.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats as st
from statsmodels.stats.mediation import Mediation

from ._bootstrap import holm

__all__ = [
    "MediationResult",
    "RegressionResult",
    "likelihood_regression",
    "mediation",
    "mixed_effects_regression",
]

REQUIRED_COLUMNS = (
    "item_id", "judge", "mode", "p_yes", "correct", "self_authored",
    "sum_logprob", "mean_logprob", "n_tokens",
)
LOGLIK_COLUMNS = ("sum_logprob", "mean_logprob")
MIN_CLUSTERS = 30  # below this, cluster-robust standard errors are known to be too small
CLIP_EPS = 1e-4  # logit(p_yes) is taken on p_yes clipped to [eps, 1 - eps]
REFERENCE_MODE = "isolated"
TIDY_COLUMNS = ["term", "estimate", "std_error", "z", "p_value", "ci_low", "ci_high", "p_holm"]
ROBUST_NOTE = ("standard errors: item-clustered sandwich with the CR2 small-sample correction and t intervals "
               "with Bell-McCaffrey degrees of freedom (column df)")


@dataclass(frozen=True, eq=False)
class RegressionResult:
    """A fitted regression in tidy form.

    coefficients: one row per term: `term, estimate, std_error, z` (estimate / std_error),
    `p_value, ci_low, ci_high` (95%; t with Bell-McCaffrey degrees of freedom for the CR2 errors
    of the GLM and the mixed model, normal otherwise) and `p_holm` (Holm-adjusted across the non-intercept terms; NaN for the intercept
    and the item-mean controls), then `df`: the degrees of freedom of the t reference (Bell-McCaffrey
    for the CR2 errors; inf for normal intervals).
    n_obs / n_clusters: rows used and distinct clusters (items).  method: `glm`, `gee` or
    `mixedlm`.  formula: the formula fitted on `design_frame(df)` (statsmodels formula syntax; it
    reproduces the fit exactly).  notes: what was dropped and why, and warnings raised while
    fitting.
    """

    coefficients: pd.DataFrame
    n_obs: int
    n_clusters: int
    method: str
    formula: str
    notes: tuple[str, ...]

    def _repr_html_(self) -> str:
        return _html(f"{self.method} regression, {self.n_obs} rows in {self.n_clusters} item clusters",
                     self.coefficients, (f"formula: {self.formula}", *self.notes))

    def term(self, name: str) -> pd.Series:
        """The coefficient row of one term (e.g. `result.term("z_loglik")["estimate"]`).

        Parameters
        ----------
        name : str
            A term of :attr:`coefficients`.

        Returns
        -------
        pandas.Series

        Raises
        ------
        KeyError
            No such term.
        """
        rows = self.coefficients[self.coefficients["term"] == name]
        if rows.empty:
            raise KeyError(f"no term {name!r}; terms: {list(self.coefficients['term'])}")
        return rows.iloc[0]


@dataclass(frozen=True, eq=False)
class MediationResult:
    """A mediation analysis in tidy form.

    effects: rows `acme` (average causal mediated effect), `ade` (average direct effect), `total`,
    `prop_mediated`, with `estimate, ci_low, ci_high, p_value` (quasi-Bayesian simulation).
    Effects are on the outcome's scale (logit P(Yes) by default) per unit change of the treatment.
    """

    effects: pd.DataFrame
    n_obs: int
    notes: tuple[str, ...]

    def _repr_html_(self) -> str:
        return _html(f"mediation, {self.n_obs} rows", self.effects, self.notes)

    def effect(self, name: str) -> float:
        """Point estimate of one effect (`acme`, `ade`, `total`, `prop_mediated`)."""
        return float(self.effects.set_index("effect").loc[name, "estimate"])


def _html(title: str, table: pd.DataFrame, notes) -> str:
    """A titled table with notes, for Jupyter."""
    import html

    items = "".join(f"<li>{html.escape(str(n))}</li>" for n in notes)
    return (f"<p><b>{html.escape(title)}</b></p>" + table.to_html(index=False, float_format="{:.4g}".format)
            + (f"<ul>{items}</ul>" if items else ""))


# ----------------------------------------------------------------------------- design frame


def _select(df: pd.DataFrame, *, mode: str | None, judge: str | None) -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"analysis frame lacks columns {missing}")
    out = df
    for column, value in (("mode", mode), ("judge", judge)):
        if value is not None:
            present = sorted(map(str, out[column].unique()))
            out = out[out[column] == value]
            if out.empty:
                raise ValueError(f"no rows with {column} == {value!r}; present: {present}")
    if out.empty:
        raise ValueError("the analysis frame is empty")
    return out


def _drop_incomplete(df: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    complete = df[list(REQUIRED_COLUMNS)].notna().all(axis=1)
    if not complete.all():
        notes.append(f"dropped {int((~complete).sum())} rows with missing values")
        df = df[complete]
    if df.empty:
        raise ValueError("no complete rows left")
    p = df["p_yes"].astype(float)
    if ((p < 0) | (p > 1)).any():
        raise ValueError("p_yes must lie in [0, 1]")
    if (df["n_tokens"] < 1).any():
        raise ValueError("n_tokens must be >= 1")
    return df


def _zscore_within(values, groups) -> np.ndarray:
    """Population z-score (ddof=0) of `values` within each group; a constant group gets 0."""
    values = np.asarray(values, dtype=float)
    codes = pd.factorize(np.asarray(groups))[0]
    counts = np.bincount(codes)
    centred = values - (np.bincount(codes, values) / counts)[codes]
    sd = np.sqrt(np.bincount(codes, centred**2) / counts)[codes]
    return np.divide(centred, sd, out=np.zeros_like(centred), where=sd > 0)


def _logit(p, eps: float = CLIP_EPS) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=float), eps, 1 - eps)
    return np.log(q / (1 - q))


def _indicators(prefix: str, values: np.ndarray, reference: str) -> dict[str, np.ndarray]:
    """0/1 columns `<prefix>_<level>` for every level but `reference` (names made formula-safe)."""
    columns: dict[str, np.ndarray] = {}
    for level in sorted(set(values) - {reference}):
        name = f"{prefix}_" + "".join(ch if ch.isalnum() else "_" for ch in level)
        while name in columns:  # two levels that differ only in punctuation
            name += "_"
        columns[name] = (values == level).astype(float)
    return columns


def _item_codes(judges: np.ndarray, items: np.ndarray) -> np.ndarray:
    """One integer per (judge, item) pair."""
    return pd.factorize(pd.MultiIndex.from_arrays([judges, items]))[0]


def _item_means(values: np.ndarray, judges: np.ndarray, items: np.ndarray, codes: np.ndarray | None = None
                ) -> np.ndarray:
    """Mean of `values` over the rows of the same judge and item, repeated on every row (``codes``:
    :func:`_item_codes` of the two, when already computed)."""
    codes = _item_codes(judges, items) if codes is None else codes
    return (np.bincount(codes, values) / np.bincount(codes))[codes]


def design_frame(
    df: pd.DataFrame,
    *,
    mode: str | None = None,
    judge: str | None = None,
    loglik: str = "sum_logprob",
    keep: Sequence[str] = (),
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The analysis frame prepared for fitting, and notes on dropped rows.

    Columns: `item_id`, `judge`, `mode`, `p_yes`, `verdict` (p_yes > 0.5, as 0/1), `logit_p_yes`
    (on p_yes clipped to [1e-4, 1 - 1e-4]), `z_sum_logprob`, `z_mean_logprob` (z-scores within
    judge, ddof=0, because log-likelihoods under different scorers are not comparable),
    `z_loglik_total` (the one named by `loglik`), split into its item mean `z_loglik_between`
    (mean over the judge's rows of the same item) and the within-item deviation
    `z_loglik = z_loglik_total - z_loglik_between` (the headline predictor: it compares
    candidates of the same question, so anything the question itself does to P(Yes) cannot load
    on it; the Mundlak 1978 / within-between decomposition), `log_n_tokens`, `correct` and `self_authored` as 0/1,
    one 0/1 indicator `mode_<name>` per mode other than `isolated` (or the first mode), one
    `judge_<name>` per judge but the first (alphabetically), the columns named in `keep`, and
    the item means (over the judge's rows of the item; see :func:`between_name`) of the other
    terms that can vary within items: `log_n_tokens_between`, `correct_between`,
    `self_authored_between`, `z_loglik_x_correct_between`, `z_loglik_x_self_authored_between`,
    `mode_<name>_between` and `mode_<name>_x_correct_between`.
    """
    if loglik not in LOGLIK_COLUMNS:
        raise ValueError(f"loglik must be one of {LOGLIK_COLUMNS}, not {loglik!r}")
    notes: list[str] = []
    raw = _drop_incomplete(_select(df, mode=mode, judge=judge), notes)
    judges = raw["judge"].astype(str).to_numpy()
    modes = raw["mode"].astype(str).to_numpy()
    p_yes = raw["p_yes"].to_numpy(dtype=float)
    columns = {
        "item_id": raw["item_id"].astype(str).to_numpy(),
        "judge": judges,
        "mode": modes,
        "p_yes": p_yes,
        "verdict": (p_yes > 0.5).astype(float),
        "logit_p_yes": _logit(p_yes),
        **{f"z_{c}": _zscore_within(raw[c], judges) for c in LOGLIK_COLUMNS},
        "log_n_tokens": np.log(raw["n_tokens"].to_numpy(dtype=float)),
        "correct": raw["correct"].to_numpy(dtype=bool).astype(float),
        "self_authored": raw["self_authored"].to_numpy(dtype=bool).astype(float),
    }
    total = columns[f"z_{loglik}"]
    codes = _item_codes(judges, columns["item_id"])
    between = _item_means(total, judges, columns["item_id"], codes)
    columns["z_loglik_total"] = total
    columns["z_loglik_between"] = between
    columns["z_loglik"] = total - between
    levels = sorted(set(modes))
    mode_columns = _indicators("mode", modes, REFERENCE_MODE if REFERENCE_MODE in levels else levels[0])
    columns.update(mode_columns)
    columns.update(_indicators("judge", judges, min(judges)))
    for column in keep:
        if column not in raw.columns:
            raise ValueError(f"no column {column!r} in the analysis frame")
        columns.setdefault(column, raw[column].to_numpy())
    out = pd.DataFrame(columns)
    standard = ["log_n_tokens", "correct", "self_authored", "z_loglik:correct", "z_loglik:self_authored"]
    for m in mode_columns:
        standard += [m, f"{m}:correct"]
    for term in standard:
        out[between_name(term)] = _item_means(_term_values(out, term), judges, columns["item_id"], codes)
    return out, tuple(notes)


def between_name(term: str) -> str:
    """Name of the item-mean (Mundlak) column of a design term: ``log_n_tokens`` ->
    ``log_n_tokens_between``, ``z_loglik:correct`` -> ``z_loglik_x_correct_between``."""
    return term.replace(":", "_x_") + "_between"


def _term_values(data: pd.DataFrame, term: str) -> np.ndarray:
    return np.prod([data[v].to_numpy(dtype=float) for v in term.split(":")], axis=0)


# ----------------------------------------------------------------------------- formula


def _candidate_terms(data: pd.DataFrame, covariates: Sequence[str]) -> list[str]:
    """Main effects, z_loglik x covariate interactions, mode shifts (and mode x correct), judges."""
    unknown = [c for c in covariates if c not in data.columns]
    if unknown:
        raise ValueError(f"unknown covariates {unknown}; available: {list(data.columns)}")
    terms = ["z_loglik", "z_loglik_between", "log_n_tokens", *covariates,
             *(f"z_loglik:{c}" for c in covariates)]
    for column in (c for c in data.columns if c.startswith("mode_") and not c.endswith("_between")):
        terms += [column, f"{column}:correct"] if "correct" in covariates else [column]
    return terms + [c for c in data.columns if c.startswith("judge_") and not c.endswith("_between")]


def _drop_constant(data: pd.DataFrame, terms: list[str], notes: list[str]) -> list[str]:
    """Remove every term that involves a variable constant in `data`, noting each drop."""
    variables = dict.fromkeys(v for t in terms for v in t.split(":"))
    constant = [v for v in variables if data[v].nunique() < 2]
    if "z_loglik" in constant:
        raise ValueError("the log-likelihood is constant within every item; the within-item likelihood "
                         "slope is not identified (it needs items with >= 2 candidates of different "
                         "log-likelihood)")
    for v in constant:
        notes.append(f"dropped {v!r} (constant = {data[v].iloc[0]:g}) and its interactions from the formula")
    return [t for t in terms if not set(t.split(":")) & set(constant)]


def _default_terms(data: pd.DataFrame, covariates: Sequence[str], notes: list[str]) -> list[str]:
    terms = _drop_constant(data, _candidate_terms(data, covariates), notes)
    terms = _with_item_means(data, terms, notes)
    if any(t.startswith("judge_") for t in terms):
        notes.append("several judges pooled: judge fixed effects added, log-likelihood z-scored within judge")
    return terms


def _with_item_means(data: pd.DataFrame, terms: list[str], notes: list[str]) -> list[str]:
    """`terms` with the item mean (``<term>_between``) of every term that varies within items
    placed right after it (Mundlak 1978), skipping a mean that is collinear with the columns
    before it (constant, or the mean of another term).

    Only with the item means of *every* within-varying term is the coefficient of each term a
    within-item contrast: a term that enters whole carries between-item variation, and where it
    is correlated with z_loglik inside items (answer length drives the summed log-probability)
    the item effect it picks up leaks into the z_loglik slope (issue 27: 0.65 where the truth is
    0).  Adds missing mean columns to `data` in place."""
    judges, items = data["judge"].to_numpy(), data["item_id"].to_numpy()
    codes = _item_codes(judges, items)
    out: list[str] = []
    added: list[str] = []
    basis = np.ones((len(data), 1))
    for term in terms:
        out.append(term)
        values = _term_values(data, term)
        basis = np.column_stack([basis, values])
        if term == "z_loglik" or term.startswith(("judge_", "z_loglik_between")) or term.endswith("_between"):
            continue
        name = between_name(term)
        if name not in data.columns:
            data[name] = _item_means(values, judges, items, codes)
        mean = data[name].to_numpy(dtype=float)
        if np.allclose(values, mean):  # constant within every item: no within-item part to protect
            continue
        trial = np.column_stack([basis, mean])
        if np.linalg.matrix_rank(trial) > np.linalg.matrix_rank(basis):
            basis = trial
            out.append(name)
            added.append(term)
    if added:
        notes.append("within-item estimands: item means of " + ", ".join(added)
                     + " added (Mundlak 1978), so every slope on these terms compares candidates of the same item")
    return out


def _exog(data: pd.DataFrame, terms: Sequence[str]) -> pd.DataFrame:
    """The design matrix of `1 + terms`, named and ordered as the formula engine would build it."""
    columns = {"Intercept": np.ones(len(data))}
    for term in terms:
        columns[term] = _term_values(data, term)
    return pd.DataFrame(columns)


def _redundant_columns(exog: pd.DataFrame) -> list[str]:
    """Design columns that are linear combinations of earlier ones (greedy, left to right)."""
    kept: list[str] = []
    redundant: list[str] = []
    for column in exog.columns:
        trial = exog[[*kept, column]].to_numpy()
        (kept if np.linalg.matrix_rank(trial) > len(kept) else redundant).append(column)
    return redundant


def _check_rank(exog: pd.DataFrame) -> None:
    if np.linalg.matrix_rank(exog.to_numpy()) < exog.shape[1]:
        raise ValueError(
            f"design matrix is rank-deficient: {_redundant_columns(exog)} are collinear with "
            "earlier terms; drop them with `covariates=` or pass a `formula=`"
        )


# ----------------------------------------------------------------------------- fitting helpers


def _fit_capturing(fit, notes: list[str]):
    """Call `fit()`, turning each distinct warning into a note."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit()
    for message in dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught):
        notes.append(message)
    return result


def _holm_column(terms: pd.Series, p_values: pd.Series) -> np.ndarray:
    """Holm over the reported terms: not the intercept, nor the item-mean controls added for the
    within-item design (``*_between`` other than ``z_loglik_between``, which is reported)."""
    adjusted = np.full(len(terms), np.nan)
    control = terms.str.endswith("_between") & (terms != "z_loglik_between")
    testable = (terms != "Intercept").to_numpy() & ~control.to_numpy() & np.isfinite(p_values.to_numpy())
    adjusted[testable] = holm(p_values.to_numpy()[testable])  # the package's one Holm (statsmodels)
    return adjusted


def _tidy(params: pd.Series, bse: pd.Series, z: pd.Series, p: pd.Series, ci: pd.DataFrame) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "term": list(params.index),
            "estimate": params.to_numpy(dtype=float),
            "std_error": bse.to_numpy(dtype=float),
            "z": z.to_numpy(dtype=float),
            "p_value": p.to_numpy(dtype=float),
            "ci_low": ci.iloc[:, 0].to_numpy(dtype=float),
            "ci_high": ci.iloc[:, 1].to_numpy(dtype=float),
        }
    )
    table["p_holm"] = _holm_column(table["term"], table["p_value"])
    return table[TIDY_COLUMNS]


def _cluster_note(n_clusters: int, notes: list[str]) -> None:
    if n_clusters < MIN_CLUSTERS:
        notes.append(
            f"only {n_clusters} item clusters (< {MIN_CLUSTERS}): cluster-robust standard errors "
            "are likely too small"
        )


@dataclass(frozen=True)
class _Design:
    data: pd.DataFrame  # design_frame(df)
    endog: pd.Series
    exog: pd.DataFrame
    formula: str
    groups: np.ndarray  # cluster codes 0..G-1
    notes: list[str]

    @property
    def n_clusters(self) -> int:
        return int(self.groups.max()) + 1


def _design(df, *, mode, judge, loglik, response, formula, covariates, cluster) -> _Design:
    """Design frame, response, design matrix (default terms, or a user formula), cluster codes."""
    data, dropped = design_frame(df, mode=mode, judge=judge, loglik=loglik, keep=(cluster,))
    notes = list(dropped)
    if formula is None:
        terms = _default_terms(data, covariates, notes)
        endog, exog = data[response], _exog(data, terms)
        formula = f"{response} ~ " + " + ".join(terms)
    else:
        parsed = sm.OLS.from_formula(formula, data, missing="raise")  # statsmodels' formula engine
        endog = pd.Series(parsed.endog, name=parsed.endog_names)
        exog = pd.DataFrame(parsed.exog, columns=parsed.exog_names)
    if endog.nunique() < 2:
        raise ValueError(f"the response {endog.name!r} is constant; there is nothing to regress")
    _check_rank(exog)
    groups = pd.factorize(data[cluster])[0]
    _cluster_note(int(groups.max()) + 1, notes)
    return _Design(data, endog, exog, formula, groups, notes)


# ----------------------------------------------------------------------------- public API


def likelihood_regression(
    df: pd.DataFrame,
    *,
    response: Literal["logit", "verdict"] = "logit",
    formula: str | None = None,
    mode: str | None = None,
    judge: str | None = None,
    cluster: str = "item_id",
    covariates: Sequence[str] = ("correct", "self_authored"),
    loglik: Literal["sum_logprob", "mean_logprob"] = "sum_logprob",
    method: Literal["glm", "gee"] = "glm",
) -> RegressionResult:
    """How the judge's verdict moves with its own log-likelihood of the candidate.

    Measures the *within-item likelihood slope*: the change in logit P(Yes) per standard
    deviation of the candidate's log-likelihood under the judge (z-scored within judge) when
    comparing candidates *of the same item* (`z_loglik`, the deviation from the item's mean),
    with the between-item part (`z_loglik_between`, the item's mean z) reported beside it.  The
    split (Mundlak 1978) matters: questions differ in how likely all their answers are and in how
    readily the judge says Yes, and a pooled slope mixes the two (issue 10: 0.63 pooled against
    0.07 within on data with no within-item effect); only the within-item slope answers "does
    the judge trust the likelier of two answers to the same question".  The split is made for
    *every* term that varies within items: the item mean of each (``<term>_between``, e.g.
    ``log_n_tokens_between``) is added beside it, so each slope compares candidates of the same
    item.  Without it a covariate entering whole carries between-item variation, and where it is
    tied to z_loglik inside items -- answer length drives the summed log-probability -- the item
    effect it picks up leaks into the z_loglik slope (issue 27: 0.65 where the truth was 0 when
    only z_loglik was split).  The item-mean controls get no Holm adjustment.  Holding length
    (`log_n_tokens`), correctness and self-authorship fixed, plus the interactions
    `z_loglik:correct` (does likelihood matter less for correct answers?) and
    `z_loglik:self_authored` (does it matter more for the judge's own answers?).  A positive slope
    with correctness held fixed is the mechanism proposed by Wataoka et al. (2024): familiar
    (low-perplexity) text is judged correct.

    response="logit": fractional logit (Papke & Wooldridge 1996): a Binomial GLM with logit link
    on p_yes in [0, 1], a quasi-likelihood estimator consistent for b whenever
    E[p_yes | x] = expit(x'b), whatever the distribution of p_yes.  Coefficients are
    population-averaged log odds.  response="verdict": a logistic regression of the thresholded
    verdict p_yes > 0.5.

    method="glm": standard errors clustered by `cluster`: the CR2 sandwich (Bell & McCaffrey
    2002; :func:`cluster_cr2`) on the IRLS-weighted working model, with p-values and 95% intervals
    from t with the Bell-McCaffrey degrees of freedom of each coefficient (column ``df``; at most
    G - 1, much less when a few items dominate; Cameron & Miller 2015, Pustejovsky & Tipton
    2018); with a single cluster, HC1 errors.  The statsmodels cluster option (CR1, t with G - 1
    df) covered 87% under heteroscedastic items (30 items x 8, 150 runs), this 91%.
    method="gee": GEE with an exchangeable working correlation within clusters and the
    bias-reduced robust (sandwich) standard errors of Mancl & DeRouen (2001, Biometrics 57),
    p-values and intervals from t with G - 1 df (normal intervals covered 86% with 30
    heteroscedastic items); it is consistent for the same b and usually more efficient, but the
    GLM is the headline.

    When several modes are present, `mode_<name>` indicators (reference: `isolated`) and their
    interaction with `correct` are added, so `mode_alternatives` is the shift of wrong answers'
    logit P(Yes) when alternatives are shown (the comparison effect).  When several judges are
    pooled, judge fixed effects are added.  A covariate constant in the data is dropped (with its
    interactions) and noted; collinear designs raise ValueError.  `formula` overrides the default
    and is fitted verbatim on `design_frame(df)` (response column `p_yes` or `verdict`).

    Parameters
    ----------
    df : DataFrame
        The analysis frame (ARCHITECTURE.md); rows with a missing score or ``correct`` (ungraded) are left out.
    response : {"logit", "verdict"}
        Fractional logit of P(Yes), or logistic regression of P(Yes) > 0.5.
    formula : str, optional
        A statsmodels formula fitted verbatim on ``design_frame(df)``.
    mode : str, optional
        Keep only this judge mode.
    judge : str, optional
        Keep only this judge.
    cluster : str
        Column whose values are the clusters (items).
    covariates : sequence of str
        Design columns held fixed (and interacted with ``z_loglik``).
    loglik : {"sum_logprob", "mean_logprob"}
        The log-likelihood measure.
    method : {"glm", "gee"}
        Clustered GLM or GEE with an exchangeable working correlation.

    Returns
    -------
    RegressionResult
        Tidy coefficients (``term, estimate, std_error, z, p_value, ci_low, ci_high, p_holm, df``), counts, formula, notes.
    """
    if response not in ("logit", "verdict"):
        raise ValueError(f"response must be 'logit' or 'verdict', not {response!r}")
    if method not in ("glm", "gee"):
        raise ValueError(f"method must be 'glm' or 'gee', not {method!r}")
    design = _design(
        df, mode=mode, judge=judge, loglik=loglik, response="p_yes" if response == "logit" else "verdict",
        formula=formula, covariates=covariates, cluster=cluster,
    )
    notes, family = design.notes, sm.families.Binomial()
    if method == "gee":
        model = sm.GEE(design.endog, design.exog, groups=design.groups, family=family,
                       cov_struct=sm.cov_struct.Exchangeable())
        # Mancl & DeRouen (2001) bias-reduced sandwich: the plain robust one was short with 60
        # items (coverage 91-92% per term in issue 10's simulation)
        result = _fit_capturing(lambda: model.fit(cov_type="bias_reduced"), notes)
        # t with G - 1 df rather than normal intervals: with 30 heteroscedastic items the normal
        # intervals covered 86% (issue 27)
        df_t = max(design.n_clusters - 1, 1)
        q = st.t.ppf(0.975, df_t)
        ci = pd.DataFrame({"low": result.params - q * result.bse, "high": result.params + q * result.bse})
        p = pd.Series(2 * st.t.sf(np.abs(result.tvalues), df_t), index=result.params.index)
        table = _tidy(result.params, result.bse, result.tvalues, p, ci)
        table["df"] = float(df_t)
    else:
        model = sm.GLM(design.endog, design.exog, family=family)
        if design.n_clusters >= 2:
            result = _fit_capturing(model.fit, notes)
            mu = result.fittedvalues.to_numpy(float)
            w = np.clip(mu * (1 - mu), 1e-12, None)  # the IRLS weights at the solution
            x, y = design.exog.to_numpy(float), design.endog.to_numpy(float)
            table = _robust_table(result.params, np.sqrt(w)[:, None] * x, (y - mu) / np.sqrt(w), design.groups)
            notes.append(ROBUST_NOTE)
        else:
            notes.append("a single cluster: heteroskedasticity-robust (HC1) standard errors instead")
            result = _fit_capturing(lambda: model.fit(cov_type="HC1"), notes)
            table = _tidy(result.params, result.bse, result.tvalues, result.pvalues, result.conf_int())
            table["df"] = np.inf
    return RegressionResult(table, int(result.nobs), design.n_clusters, method, design.formula, tuple(notes))


def mixed_effects_regression(
    df: pd.DataFrame,
    *,
    formula: str | None = None,
    mode: str | None = None,
    judge: str | None = None,
    group: str = "item_id",
    covariates: Sequence[str] = ("correct", "self_authored"),
    loglik: Literal["sum_logprob", "mean_logprob"] = "sum_logprob",
    reml: bool = True,
    robust: bool = True,
) -> RegressionResult:
    """The within-item likelihood slope as a linear mixed model on logit P(Yes) with item random
    intercepts.

    The design is that of `likelihood_regression`: `z_loglik` is the within-item deviation and
    `z_loglik_between` the item mean, so an item effect correlated with the item's mean likelihood
    (which a random intercept assumes away) loads on the between part, not on the slope.

    Fits logit(clip(p_yes, 1e-4, 1 - 1e-4)) = x'b + u_item + e with u_item ~ N(0, s_u^2)
    (statsmodels `MixedLM`, REML by default) and the same default terms as
    `likelihood_regression`.  The coefficients are *conditional* effects on the logit of P(Yes)
    (for a linear model they are also the average effects on that logit), so they are not the
    population-averaged log odds of the fractional logit: when P(Yes) varies around its mean, the
    fractional-logit coefficients are smaller in magnitude.  Standard errors are item-clustered
    sandwich errors on the GLS fit with the CR2 small-sample correction (Bell & McCaffrey 2002;
    :func:`cluster_cr2`) and 95% intervals from t with Bell-McCaffrey degrees of freedom (column ``df``): the model-based
    errors assume every item has the same noise, and when an item's noise grows with the spread
    of its candidates' likelihoods they covered 81% (issue 27; 30 items x 8, 200 runs).  The
    model-based fit is kept as ``robust=False``.  The estimated item SD is in the notes.

    Parameters
    ----------
    df : DataFrame
        The analysis frame (ARCHITECTURE.md); rows with a missing score or ``correct`` (ungraded) are left out.
    formula : str, optional
        A statsmodels formula fitted verbatim on ``design_frame(df)``.
    mode : str, optional
        Keep only this judge mode.
    judge : str, optional
        Keep only this judge.
    group : str
        Column of the random-intercept groups (items).
    covariates : sequence of str
        Design columns held fixed (and interacted with ``z_loglik``).
    loglik : {"sum_logprob", "mean_logprob"}
        The log-likelihood measure.
    reml : bool
        REML (default) or ML.
    robust : bool
        Item-clustered CR2 sandwich errors with t(G - 1) intervals (default), or the model-based
        errors with normal intervals (a secondary fit, too narrow when items differ in noise).

    Returns
    -------
    RegressionResult
        As :func:`likelihood_regression`; method ``mixedlm``.
    """
    design = _design(
        df, mode=mode, judge=judge, loglik=loglik, response="logit_p_yes",
        formula=formula, covariates=covariates, cluster=group,
    )
    if design.n_clusters < 2:
        raise ValueError("a mixed model needs at least two groups")
    notes = design.notes
    model = sm.MixedLM(design.endog, design.exog, groups=design.groups)
    result = _fit_capturing(lambda: model.fit(reml=reml), notes)
    fe = result.fe_params
    s2u, scale = float(result.cov_re.iloc[0, 0]), float(result.scale)
    notes.append(f"item random-intercept SD = {float(np.sqrt(s2u)):.4g}")
    if robust:
        # the GLS fit whitened item by item: V_g = scale I + s2u J, V_g^(-1/2) = (I - c J) / sqrt(scale)
        # with c = (1 - sqrt(scale / (scale + n_g s2u))) / n_g
        x, y = design.exog.to_numpy(float), design.endog.to_numpy(float)
        n_g = np.bincount(design.groups)[design.groups]
        c = (1 - np.sqrt(scale / (scale + n_g * s2u))) / n_g

        def whiten(a):
            sums = np.stack([np.bincount(design.groups, a[:, j]) for j in range(a.shape[1])], axis=1)
            return (a - c[:, None] * sums[design.groups]) / np.sqrt(scale)

        resid = whiten((y - x @ fe.to_numpy())[:, None])[:, 0]
        table = _robust_table(fe, whiten(x), resid, design.groups)
        notes.append(ROBUST_NOTE + " on the GLS fit; the model-based errors (robust=False) assume equal "
                     "noise in every item and were too narrow when it differs")
    else:
        bse = result.bse_fe
        z = fe / bse
        p = pd.Series(2 * st.norm.sf(np.abs(z)), index=fe.index)
        q = st.norm.ppf(0.975)
        ci = pd.DataFrame({"low": fe - q * bse, "high": fe + q * bse})
        table = _tidy(fe, bse, z, p, ci)
        table["df"] = np.inf
        notes.append("standard errors: model-based (robust=False), a secondary fit: too narrow when the "
                     "noise differs between items")
    return RegressionResult(table, int(result.nobs), design.n_clusters, "mixedlm", design.formula, tuple(notes))


def cluster_cr2(x: np.ndarray, resid: np.ndarray, groups: np.ndarray, *, adjust: bool = True) -> np.ndarray:
    """Cluster-robust (sandwich) covariance of OLS coefficients with the CR2 bias reduction.

    ``(X'X)^-1 [sum_g X_g' A_g e_g e_g' A_g X_g] (X'X)^-1`` with ``A_g = (I - H_gg)^(-1/2)``,
    ``H_gg = X_g (X'X)^-1 X_g'`` (Bell & McCaffrey 2002, "Bias reduction in standard errors for
    linear regression with multi-stage samples", Survey Methodology 28; Pustejovsky & Tipton 2018,
    JBES 36).  It is exactly unbiased when the errors are independent and homoscedastic and nearly
    so otherwise, where the plain (CR0/CR1) sandwich is too small with few clusters.  For a GLS or
    GLM fit pass the whitened design and residuals (``V^(-1/2) X``, ``V^(-1/2) e``; for a GLM
    ``sqrt(w) X`` and ``(y - mu) / sqrt(w)``).  ``adjust=False``: the plain CR0 sandwich.
    """
    return _cr2(x, resid, groups, adjust=adjust)[0]


def _cr2(x: np.ndarray, resid: np.ndarray, groups: np.ndarray, *, adjust: bool = True,
         contrasts: np.ndarray | None = None):
    """CR2 covariance and, per coefficient, the Bell-McCaffrey (Satterthwaite) degrees of freedom.

    For coefficient j the CR2 variance is ``sum_g (w_g' y)^2``; under the working model
    (independent, equal-variance whitened errors) its df is ``tr(O)^2 / ||O||_F^2`` with
    ``O = diag(|u_g|^2) - C' (X'X)^-1 C``, ``u_g = A_g X_g (X'X)^-1 e_j`` and ``C[:, g] = X_g' u_g``
    (Bell & McCaffrey 2002, section 4; the ``O`` form is ``W'W`` for ``w_g = (I - H)_{., g} u_g``).
    With few clusters or one dominant cluster it is far below G - 1, which is what makes t
    intervals hold their level there.  With ``contrasts`` (k x m, one linear combination of the
    coefficients per column) the df are those of each combination (``e_j`` replaced by its column)."""
    x = np.asarray(x, float)
    resid = np.asarray(resid, float)
    groups = np.asarray(groups)
    bread = np.linalg.pinv(x.T @ x)
    lmat = np.eye(x.shape[1]) if contrasts is None else np.asarray(contrasts, float)
    k = lmat.shape[1]
    meat = np.zeros_like(bread)
    order = np.argsort(groups, kind="stable")
    bounds = np.flatnonzero(np.r_[True, groups[order][1:] != groups[order][:-1], True])
    norms, cross = [], []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        rows = order[lo:hi]
        xg, eg = x[rows], resid[rows]
        if adjust:
            vals, vecs = np.linalg.eigh(np.eye(rows.size) - xg @ bread @ xg.T)
            a = (vecs / np.sqrt(np.clip(vals, 1e-12, None))) @ vecs.T
        else:
            a = np.eye(rows.size)
        score = xg.T @ (a @ eg)
        meat += np.outer(score, score)
        u = a @ xg @ bread @ lmat  # (n_g, m): u_g for every coefficient (contrast) at once
        norms.append((u**2).sum(axis=0))
        cross.append(xg.T @ u)  # (k, k): column j is C[:, g] for coefficient j
    norms_arr = np.array(norms)  # (G, m)
    cross_arr = np.array(cross)  # (G, p, m)
    dfs = np.empty(k)
    for j in range(k):
        c = cross_arr[:, :, j].T  # (p, G)
        omega = np.diag(norms_arr[:, j]) - c.T @ bread @ c
        dfs[j] = np.trace(omega) ** 2 / max(float((omega**2).sum()), 1e-300)
    return bread @ meat @ bread, dfs


def _robust_table(params: pd.Series, xw: np.ndarray, resid_w: np.ndarray, groups: np.ndarray) -> pd.DataFrame:
    """Tidy table with CR2 errors and t intervals with Bell-McCaffrey degrees of freedom."""
    cov, dfs = _cr2(xw, resid_w, groups)
    bse = pd.Series(np.sqrt(np.clip(np.diag(cov), 0, None)), index=params.index)
    dfs = np.clip(dfs, 1.0, None)
    z = params / bse
    p = pd.Series(2 * st.t.sf(np.abs(z), dfs), index=params.index)
    q = st.t.ppf(0.975, dfs)
    ci = pd.DataFrame({"low": params - q * bse, "high": params + q * bse})
    table = _tidy(params, bse, z, p, ci)
    table["df"] = dfs
    return table


def cr2_contrasts(params: np.ndarray, xw: np.ndarray, resid_w: np.ndarray, groups: np.ndarray,
                  contrasts: np.ndarray, confidence: float = 0.95) -> pd.DataFrame:
    """Linear combinations of coefficients with CR2 item-clustered errors and Bell-McCaffrey t.

    ``contrasts`` is k x m (one combination per column); ``xw``, ``resid_w`` as for
    :func:`cluster_cr2` (whitened design and residuals; for a GLM ``sqrt(w) X`` and
    ``(y - mu) / sqrt(w)`` at the solution).  Returns one row per combination: ``estimate,
    std_error, df, ci_low, ci_high, p_value`` (two-sided, t with the combination's own
    Bell-McCaffrey df, at least 1)."""
    lmat = np.asarray(contrasts, float)
    cov, dfs = _cr2(xw, resid_w, groups, contrasts=lmat)
    est = lmat.T @ np.asarray(params, float)
    se = np.sqrt(np.clip(np.einsum("km,kl,lm->m", lmat, cov, lmat), 0, None))
    dfs = np.clip(dfs, 1.0, None)
    q = st.t.ppf(0.5 + confidence / 2, dfs)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2 * st.t.sf(np.abs(est / se), dfs)
    return pd.DataFrame({"estimate": est, "std_error": se, "df": dfs, "ci_low": est - q * se,
                         "ci_high": est + q * se, "p_value": p})


def within_item_exog(data: pd.DataFrame, terms: Sequence[str], items: np.ndarray,
                     controls: Sequence[str] = ()) -> pd.DataFrame:
    """Design matrix ``1 + terms + controls`` plus the item means, over the rows of ``data``, of
    every term that varies within items (Mundlak 1978), for a fit on a subset of the analysis
    frame (the thesis' wrong answers): each mean is named ``<term>_in_item`` and kept only where
    it is not collinear with the columns before it.  The means are taken over the rows fitted, so
    every coefficient of ``terms`` compares rows of the same item -- for a linear fit exactly the
    item fixed-effects (within) estimator.  ``controls`` are item-level columns entered as they
    are (e.g. ``z_loglik_between``, the item mean over all of the item's candidates)."""
    exog = _exog(data, [*terms, *controls])
    # an orthonormal basis of the columns so far; a mean joins when it leaves a residual off it
    u, sv, _ = np.linalg.svd(exog.to_numpy(float), full_matrices=False)
    basis = u[:, sv > sv.max() * max(exog.shape) * np.finfo(float).eps]
    codes = pd.factorize(np.asarray(items))[0]
    counts = np.bincount(codes)
    for term in terms:
        values = exog[term].to_numpy(float)
        mean = (np.bincount(codes, values) / counts)[codes]
        if np.allclose(values, mean):
            continue
        resid = mean - basis @ (basis.T @ mean)
        resid -= basis @ (basis.T @ resid)  # twice: Gram-Schmidt loses orthogonality once
        norm = np.linalg.norm(resid)
        if norm > 1e-8 * max(np.linalg.norm(mean), 1.0):
            basis = np.column_stack([basis, resid / norm])
            exog[term.replace(":", "_x_") + "_in_item"] = mean
    return exog


def _single(data: pd.DataFrame, column: str) -> None:
    values = sorted(map(str, data[column].unique()))
    if len(values) > 1:
        raise ValueError(f"mediation needs a single {column}; pass {column}= one of {values}")


def mediation(
    df: pd.DataFrame,
    *,
    treatment: str = "self_authored",
    mediator: str = "sum_logprob",
    outcome: str = "p_yes",
    covariates: Sequence[str] = ("correct",),
    mode: str | None = None,
    judge: str | None = None,
    cluster: str | None = "item_id",
    n_sims: int = 500,
    seed: int = 0,
) -> MediationResult:
    """How much of the self-authorship effect on P(Yes) runs through log-likelihood.

    Causal mediation analysis (Imai, Keele & Tingley 2010) of treatment (self-authorship) ->
    mediator (the judge's log-likelihood of the candidate, z-scored) -> outcome (logit P(Yes),
    on p_yes clipped to [1e-4, 1 - 1e-4]), with `covariates` in both models.  Both models are OLS:
        z_mediator   = a0 + a * treatment + c'covariates + e_m
        logit(p_yes) = b0 + b * z_mediator + d * treatment + g'covariates + e_y
    so ACME = a * b (the part of the effect that flows through likelihood), ADE = d, total = ACME +
    ADE, prop_mediated = ACME / total (median over simulations), all on the logit scale.  Estimates
    and 95% intervals come from statsmodels' quasi-Bayesian simulation (`n_sims` draws from the
    estimated sampling distributions, seeded by `seed` through a private Generator; the global
    numpy state is untouched).  With `cluster`, both models use item-clustered covariances.
    The effects are causal only under sequential ignorability (no unmeasured mediator-outcome
    confounding given treatment and covariates).  Requires a single mode and judge.

    Parameters
    ----------
    df : DataFrame
        The analysis frame (ARCHITECTURE.md); rows with a missing score or ``correct`` (ungraded) are left out.
    treatment : str
        0/1 treatment column.
    mediator : str
        Mediator column (z-scored within judge).
    outcome : str
        Outcome column (``p_yes`` is taken on the logit scale).
    covariates : sequence of str
        Design columns held fixed (and interacted with ``z_loglik``).
    mode : str, optional
        Keep only this judge mode.
    judge : str, optional
        Keep only this judge.
    cluster : str
        Column whose values are the clusters (items).
    n_sims : int
        Quasi-Bayesian simulations.
    seed : int
        Seed of the bootstrap / permutations / simulations.

    Returns
    -------
    MediationResult
        ``effects`` rows ``acme, ade, total, prop_mediated`` with intervals and p-values.
    """
    notes: list[str] = []
    raw = _drop_incomplete(_select(df, mode=mode, judge=judge), notes).reset_index(drop=True)
    _single(raw, "mode")
    _single(raw, "judge")
    covariates = [c for c in covariates if c != treatment]
    for name in (treatment, mediator, outcome, *covariates, *([cluster] if cluster else [])):
        if name not in raw.columns:
            raise ValueError(f"no column {name!r} in the analysis frame")
    t = raw[treatment].astype(float).to_numpy()
    if set(np.unique(t)) != {0.0, 1.0}:
        raise ValueError(f"treatment {treatment!r} must take both values 0 and 1")
    m = _zscore_within(raw[mediator], raw["judge"])
    if m.std() == 0:
        raise ValueError(f"mediator {mediator!r} is constant")
    y = _logit(raw[outcome]) if outcome == "p_yes" else raw[outcome].astype(float)
    exog = pd.DataFrame({"Intercept": 1.0, treatment: t})
    for c in covariates:
        values = raw[c].astype(float).to_numpy()
        if np.unique(values).size < 2:
            notes.append(f"dropped covariate {c!r} (constant)")
        else:
            exog[c] = values
    mediator_name = f"z_{mediator}"
    mediator_model = sm.OLS(m, exog)
    outcome_exog = exog.assign(**{mediator_name: m})
    _check_rank(outcome_exog)
    outcome_model = sm.OLS(np.asarray(y, dtype=float), outcome_exog)
    fit_kwargs = {}
    if cluster is not None:
        groups = pd.factorize(raw[cluster])[0]
        _cluster_note(int(groups.max()) + 1, notes)
        fit_kwargs = {"cov_type": "cluster", "cov_kwds": {"groups": groups}}
    analysis = Mediation(
        outcome_model, mediator_model, treatment, mediator_name,
        outcome_fit_kwargs=fit_kwargs, mediator_fit_kwargs=fit_kwargs,
    )
    result = _fit_capturing(lambda: analysis.fit(n_rep=n_sims, rng=np.random.default_rng(seed)), notes)
    return MediationResult(_tidy_mediation(result.summary()), len(raw), tuple(notes))


_MEDIATION_ROWS = {
    "acme": "ACME (average)",
    "ade": "ADE (average)",
    "total": "Total effect",
    "prop_mediated": "Prop. mediated (average)",
}


def _tidy_mediation(summary: pd.DataFrame) -> pd.DataFrame:
    rows = summary.loc[list(_MEDIATION_ROWS.values())]
    return pd.DataFrame(
        {
            "effect": list(_MEDIATION_ROWS),
            "estimate": rows["Estimate"].to_numpy(dtype=float),
            "ci_low": rows["Lower CI bound"].to_numpy(dtype=float),
            "ci_high": rows["Upper CI bound"].to_numpy(dtype=float),
            "p_value": rows["P-value"].to_numpy(dtype=float),
        }
    )
