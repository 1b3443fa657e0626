"""Statistics the figures draw (kept here so that :mod:`selfbias.plots` only draws).

* :func:`require_columns` -- the column check every figure starts with;
* :func:`clustered_mean`, :func:`binned_clustered_means` -- binned means of P(Yes) with
  item-clustered t intervals (the lines of ``plots.likelihood_vs_confidence``);
* :func:`per_judge_regression` -- :func:`likelihood_regression` fitted once per judge (the series
  of ``plots.regression_forest``);
* :func:`pairwise_verdict_health` -- :func:`judge_health` of pairwise verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as _st

# From the package, not its private modules (stats/__init__ imports this module last), so that
# this module survives the split of the modules behind these names.
from . import DEFAULT_CONFIDENCE, DEFAULT_N_BOOT, judge_health, likelihood_regression


def require_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise a one-line error unless ``df`` is a DataFrame with every column of ``columns``.

    Parameters
    ----------
    df : pandas.DataFrame
        The table to check.
    columns : sequence of str
        Columns it must have.
    what : str
        The caller's name, the start of the error message.

    Raises
    ------
    TypeError
        ``df`` is not a DataFrame.
    ValueError
        Columns are missing (the message names them and the columns present).
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; got {list(df.columns)}")


def clustered_mean(
    y: np.ndarray, items: np.ndarray, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float, float, int]:
    """Mean of ``y`` with an item-clustered (sandwich) t interval.

    The variance of the mean ``sum(y) / n`` with clusters ``g`` (Cameron & Miller 2015) is
    ``G / (G - 1) * sum_g (sum_{i in g} (y_i - mean))^2 / n^2``; the interval is
    ``mean -/+ t_{G-1} * sd``, clipped to [0, 1] (``y`` is a probability).

    Parameters
    ----------
    y : array of float
        Values (P(Yes)).
    items : array
        Cluster (item) of each value.
    confidence : float
        Coverage of the interval (0.95).

    Returns
    -------
    tuple of (float, float, float, int)
        ``(mean, low, high, n_items)``; low and high are NaN with fewer than two items, the mean
        is NaN for no values.
    """
    y = np.asarray(y, float)
    codes, uniques = pd.factorize(np.asarray(items, dtype=object))
    g = len(uniques)
    m = float(y.mean()) if y.size else np.nan
    if g < 2:
        return m, np.nan, np.nan, g
    resid = np.bincount(codes, weights=y - m, minlength=g)
    var = g / (g - 1) * float(np.sum(resid**2)) / y.size**2
    half = float(_st.t.ppf(0.5 + confidence / 2, g - 1)) * math.sqrt(var)
    return m, max(0.0, m - half), min(1.0, m + half), g


def equal_count_bins(x: np.ndarray, n_bins: int) -> list[np.ndarray]:
    """Row indices of at most ``n_bins`` equal-count bins of ``x``, in ascending order of ``x``.

    Parameters
    ----------
    x : array of float
        The binned variable.
    n_bins : int
        Bins wanted; fewer when ``x`` has fewer values (at least one bin).

    Returns
    -------
    list of numpy.ndarray
        Indices into ``x`` per bin; sizes differ by at most one (as :func:`numpy.array_split`),
        ties kept in input order.
    """
    order = np.argsort(np.asarray(x, float), kind="stable")
    return [b for b in np.array_split(order, max(1, min(int(n_bins), order.size))) if b.size]


def binned_clustered_means(
    x: np.ndarray,
    y: np.ndarray,
    items: np.ndarray,
    *,
    n_bins: int = 6,
    min_per_bin: int = 8,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Mean of ``y`` in equal-count bins of ``x``, with item-clustered t intervals.

    ``min(n_bins, len(x) // min_per_bin)`` bins (at least one) of :func:`equal_count_bins`; each
    bin's mean and interval from :func:`clustered_mean`. Used for P(Yes) against log-likelihood.

    Parameters
    ----------
    x, y : array of float
        Binned variable (log-likelihood) and averaged variable (P(Yes)).
    items : array
        Item (cluster) of each row.
    n_bins : int
        Most bins.
    min_per_bin : int
        Fewest rows per bin.
    confidence : float
        Coverage of the intervals.

    Returns
    -------
    pandas.DataFrame
        One row per bin: ``bin, x_mean, x_min, x_max, mean, ci_low, ci_high, n, n_items``.
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    items = np.asarray(items, dtype=object)
    k = max(1, min(int(n_bins), x.size // max(1, int(min_per_bin))))
    rows = []
    for b, idx in enumerate(equal_count_bins(x, k)):
        m, lo, hi, n_items = clustered_mean(y[idx], items[idx], confidence)
        rows.append({"bin": b, "x_mean": float(x[idx].mean()), "x_min": float(x[idx].min()),
                     "x_max": float(x[idx].max()), "mean": m, "ci_low": lo, "ci_high": hi,
                     "n": int(idx.size), "n_items": n_items})
    return pd.DataFrame(rows, columns=["bin", "x_mean", "x_min", "x_max", "mean", "ci_low", "ci_high", "n",
                                       "n_items"])


@dataclass(frozen=True)
class PerJudgeRegression:
    """:func:`likelihood_regression` fitted separately for every judge.

    Attributes
    ----------
    coefficients : pandas.DataFrame
        The tidy coefficient rows of every judge that could be fitted, with columns ``judge``,
        ``n_obs``, ``n_clusters`` and ``method`` added.
    failed : tuple of (str, str)
        ``(judge, error message)`` of each judge whose fit raised.
    notes : tuple of (str, str)
        ``(judge, note)`` of each fit's notes (dropped rows and terms, fitting warnings).
    """

    coefficients: pd.DataFrame
    failed: tuple[tuple[str, str], ...]
    notes: tuple[tuple[str, str], ...]


def per_judge_regression(analysis_df: pd.DataFrame, **kwargs) -> PerJudgeRegression:
    """Fit :func:`likelihood_regression` once per judge (judges are never pooled).

    Parameters
    ----------
    analysis_df : pandas.DataFrame
        An analysis frame (``Run.analysis_frame()``) with a ``judge`` column.
    **kwargs
        Passed to :func:`likelihood_regression` (not ``judge``).

    Returns
    -------
    PerJudgeRegression
        Coefficients of the judges that could be fitted (in sorted judge order), the judges that
        could not and why (a ``ValueError`` or singular design), and each fit's notes.
    """
    require_columns(analysis_df, ["judge"], "per_judge_regression")
    parts, failed, notes = [], [], []
    for judge in sorted(analysis_df["judge"].astype(str).unique()):
        try:
            res = likelihood_regression(analysis_df, judge=judge, **kwargs)
        except (ValueError, np.linalg.LinAlgError) as e:
            failed.append((judge, str(e)))
            continue
        parts.append(res.coefficients.assign(judge=judge, n_obs=res.n_obs, n_clusters=res.n_clusters,
                                             method=res.method))
        notes.extend((judge, n) for n in res.notes)
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["term", "estimate", "ci_low", "ci_high", "judge", "n_obs", "n_clusters", "method"])
    return PerJudgeRegression(table, tuple(failed), tuple(notes))


def pairwise_verdict_health(
    pairwise_df: pd.DataFrame, *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0
) -> pd.DataFrame:
    """:func:`judge_health` of pairwise verdicts.

    Each judged pair gives two rows: candidate a with P = the order-averaged preference for a
    (``pref_a``, else the mean of ``p_a_first`` and ``p_a_second``) and candidate b with
    ``1 - P``, each with its correctness, mode ``"pairwise"``. The reasons speak of P(chosen).

    Parameters
    ----------
    pairwise_df : pandas.DataFrame
        A pairwise frame (``Run.pairwise_frame()``).
    n_boot : int
        Bootstrap resamples of the AUROC interval.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        The judge_health table (no rows, but the ``judge, mode, degenerate, reasons`` columns,
        when no pair has a preference and correctness on both sides).
    """
    require_columns(pairwise_df, ["item_id", "judge", "pref_a", "a_correct", "b_correct"], "pairwise_verdict_health")
    pw = pairwise_df
    pref = pw["pref_a"].astype(float)
    if {"p_a_first", "p_a_second"} <= set(pw.columns):
        pref = pref.fillna(pw[["p_a_first", "p_a_second"]].astype(float).mean(axis=1))
    items = pw["item_id"].to_numpy(dtype=object)
    judges = pw["judge"].astype(str).to_numpy(dtype=object)
    long = pd.DataFrame({
        "item_id": np.r_[items, items],
        "judge": np.r_[judges, judges],
        "mode": "pairwise",
        "p_yes": np.r_[pref.to_numpy(float), 1.0 - pref.to_numpy(float)],
        "correct": np.r_[pw["a_correct"].to_numpy(dtype=object), pw["b_correct"].to_numpy(dtype=object)],
    }).dropna(subset=["p_yes", "correct"])
    if long.empty:
        return pd.DataFrame(columns=["judge", "mode", "degenerate", "reasons"])
    long["correct"] = long["correct"].astype(bool)
    health = judge_health(long, n_boot=n_boot, seed=seed)
    health["reasons"] = health["reasons"].str.replace("P(Yes)", "P(chosen)", regex=False)
    return health
