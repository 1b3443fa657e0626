"""Discrimination: does a score separate correct from wrong candidates?

AUROC of P(Yes), of the answer's log-likelihood and of sample agreement (Kadavath et al. 2022), and
the prediction rejection ratio (PRR) of lm-polygraph (Fadeeva et al. 2023). Intervals are
item-clustered bootstraps (:mod:`selfbias.stats._bootstrap`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from ._bootstrap import (
    ESTIMATE_COLUMNS,
    DEFAULT_CONFIDENCE,
    DEFAULT_N_BOOT,
    per_group,
    check_columns,
)

__all__ = ["agreement_discrimination", "discrimination", "likelihood_discrimination", "prediction_rejection_ratio"]


def weighted_auc(scores: np.ndarray, labels: np.ndarray, w: np.ndarray) -> np.ndarray:
    """AUROC of ``scores`` for ``labels`` under row weights ``w`` (shape ``(B, n)``), vectorised.

    Equal to ``sklearn.metrics.roc_auc_score(labels, scores, sample_weight=w[b])`` for every ``b``
    (the Mann-Whitney form: pairs ranked correctly count 1, ties 1/2); integer weights are the
    bootstrap multiplicities, so this is the AUROC of each resample. NaN where a class is absent.
    Used only inside the bootstrap, where calling scikit-learn 2000 times per group is too slow;
    the tests check it against scikit-learn.
    """
    scores = np.asarray(scores, float)
    labels = np.asarray(labels, bool)
    w = np.atleast_2d(np.asarray(w, float))
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    y = labels[order]
    wo = w[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    pos = np.add.reduceat(wo * y, starts, axis=1)
    neg = np.add.reduceat(wo * ~y, starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    num = (pos * (below + 0.5 * neg)).sum(axis=1)
    den = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(all="ignore"):
        return np.where(den > 0, num / den, np.nan)


def auc_score(labels: np.ndarray, scores: np.ndarray) -> float:
    """``roc_auc_score`` that returns NaN instead of raising when only one class is present."""
    labels = np.asarray(labels, bool)
    if labels.all() or not labels.any():
        return np.nan
    return float(roc_auc_score(labels, np.asarray(scores, float)))


def _auroc_table(
    df: pd.DataFrame, what: str, by: Sequence[str], score: str, label: str, *, n_boot: int, seed: int,
    confidence: float,
) -> pd.DataFrame:
    """AUROC of ``score`` for ``label`` per group, with item-bootstrap intervals."""
    keys, groups = per_group(df, what=what, needed=[score, label], by=by, n_boot=n_boot, seed=seed,
                              confidence=confidence)
    rows = []
    for grp in groups:
        s = grp.frame[score].to_numpy(float)
        y = grp.labels(label)
        est = auc_score(y, s)
        lo = hi = np.nan
        if np.isfinite(est):
            lo, hi = grp.boot.ci_weighted(lambda w: weighted_auc(s, y, w))
        rows.append(
            {**grp.key, "score": score, "estimate": est, "ci_low": lo, "ci_high": hi, "n": grp.n,
             "n_items": grp.n_items, "n_correct": int(y.sum()), "n_wrong": int((~y).sum())}
        )
    return pd.DataFrame(rows, columns=[*keys, "score", *ESTIMATE_COLUMNS, "n_correct", "n_wrong"])


def discrimination(
    df: pd.DataFrame,
    score: str = "p_yes",
    by: Sequence[str] = ("judge", "mode"),
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Discrimination: AUROC of ``score`` (default P(Yes)) for correct vs wrong candidates.

    AUROC is the probability that a random correct candidate gets a higher score than a random
    wrong one (ties count 1/2); 0.5 is chance. Computed with
    :func:`sklearn.metrics.roc_auc_score`; the interval is an item-clustered bootstrap (the
    candidates of an item are correlated). Kadavath et al. 2022 report the same AUROC for P(True).

    Columns: ``*by, score, estimate, ci_low, ci_high, n, n_items, n_correct, n_wrong``. The
    estimate is NaN when a group has only correct or only wrong candidates. Rows with a missing
    score are dropped.

    Parameters
    ----------
    df : DataFrame
        The analysis frame (ARCHITECTURE.md); rows with a missing score or ``correct`` (ungraded) are left out.
    score : str
        The score column.
    by : sequence of str
        Grouping columns (the judge is never pooled).
    n_boot : int
        Item-bootstrap resamples (0: no intervals).
    seed : int
        Seed of the bootstrap / permutations / simulations.
    confidence : float
        Two-sided interval level.

    Returns
    -------
    DataFrame
        ``*by, score, estimate, ci_low, ci_high, n, n_items, n_correct, n_wrong``.
    """
    return _auroc_table(df, "discrimination", by, score, "correct", n_boot=n_boot, seed=seed,
                        confidence=confidence)


def likelihood_discrimination(
    df: pd.DataFrame,
    scores: Sequence[str] = ("sum_logprob", "mean_logprob"),
    by: Sequence[str] = ("judge",),
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """AUROC of the answer's own log-likelihood under the judge, for correct vs wrong candidates.

    The baseline a judge has to beat: does P(Yes) separate correct from wrong answers better than
    how likely the judge model finds the answer text? The log-likelihood does not depend on the
    judge mode, so each candidate x judge is counted once (duplicates over modes are dropped).
    Same columns and interval as :func:`discrimination`, one row per ``by`` group x score.

    Parameters
    ----------
    df : DataFrame
        The analysis frame (ARCHITECTURE.md); rows with a missing score or ``correct`` (ungraded) are left out.
    scores : sequence of str
        Log-likelihood columns to score.
    by : sequence of str
        Grouping columns (the judge is never pooled).
    n_boot : int
        Item-bootstrap resamples (0: no intervals).
    seed : int
        Seed of the bootstrap / permutations / simulations.
    confidence : float
        Two-sided interval level.

    Returns
    -------
    DataFrame
        As :func:`discrimination`, one row per group x score.
    """
    check_columns(df, ["item_id", "candidate_id", "correct", *scores, *by], "likelihood_discrimination")
    dedup = [c for c in ("item_id", "candidate_id", *by) if c in df.columns]
    data = df.drop_duplicates(subset=list(dict.fromkeys(dedup)))
    out = [
        discrimination(data, score=s, by=by, n_boot=n_boot, seed=seed, confidence=confidence)
        for s in scores
    ]
    return pd.concat(out, ignore_index=True)


def agreement_discrimination(
    agreement_df: pd.DataFrame,
    by: Sequence[str] = ("model",),
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """AUROC of sample agreement for whether the model's greedy answer is correct.

    Takes the ``agreement`` table (one row per model x item: ``item_id, model, agreement,
    greedy_correct``): agreement is the share of sampled answers equal to the greedy one, the
    self-consistency signal of Wang et al. 2023 used as a confidence score. Columns: ``*by, score
    ("agreement"), estimate, ci_low, ci_high, n, n_items, n_correct, n_wrong``; interval by item
    bootstrap.

    Parameters
    ----------
    agreement_df : DataFrame
        The ``agreement`` table (one row per model x item).
    by : sequence of str
        Grouping columns (the judge is never pooled).
    n_boot : int
        Item-bootstrap resamples (0: no intervals).
    seed : int
        Seed of the bootstrap / permutations / simulations.
    confidence : float
        Two-sided interval level.

    Returns
    -------
    DataFrame
        ``*by, score, estimate, ci_low, ci_high, n, n_items, n_correct, n_wrong``.
    """
    return _auroc_table(agreement_df, "agreement_discrimination", by, "agreement", "greedy_correct",
                        n_boot=n_boot, seed=seed, confidence=confidence)


def _rejection_area(order_key: np.ndarray, target: np.ndarray) -> float:
    """Area under the prediction-rejection curve as lm-polygraph's ``PredictionRejectionArea``:
    keep the k most confident rows (smallest ``order_key`` first) for k = N..1 and average the
    mean target of the kept rows over the N rejection levels -- with tied keys broken at random
    and the area averaged over those orders (its expectation): within a block of tied rows the
    first j kept carry j times the block's mean target in expectation, and the area is linear in
    those cumulative sums.  lm-polygraph's ``argsort`` keeps input order instead, which makes the
    area depend on how rows happen to be sorted (issue 27: a constant judge got PRR 1.0 or -0.76)."""
    order = np.argsort(order_key, kind="stable")
    key, sorted_target = np.asarray(order_key)[order], target[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    block = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, key.size]))
    sizes = np.diff(np.r_[starts, key.size])
    block_sum = np.add.reduceat(sorted_target, starts)
    before = (np.cumsum(block_sum) - block_sum)[block]  # target of the blocks ranked above
    position = np.arange(key.size) - starts[block] + 1  # rows kept so far inside the block
    expected = before + position * (block_sum / sizes)[block]
    return float(np.mean(expected / np.arange(1, target.size + 1)))


def _prr(score: np.ndarray, target: np.ndarray) -> float:
    """PRR = (AUC_unc - AUC_random) / (AUC_oracle - AUC_random) (areas under quality-retained
    curves; the same number as (AUC_random - AUC_unc) / (AUC_random - AUC_oracle) on risk curves).
    NaN when the oracle is no better than random (all rows equally correct)."""
    target = np.asarray(target, float)
    if target.size == 0:
        return np.nan
    unc = _rejection_area(-np.asarray(score, float), target)
    oracle = _rejection_area(-target, target)
    random = float(target.mean())  # every level of a random rejection keeps the mean in expectation
    den = oracle - random
    return (unc - random) / den if den > 1e-12 else np.nan


def prediction_rejection_ratio(
    df: pd.DataFrame,
    score: str = "p_yes",
    by: Sequence[str] = ("judge", "mode"),
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Prediction rejection ratio (PRR) of ``score`` as a confidence for correctness.

    Reject candidates from the least confident (lowest ``score``) upwards; the prediction-rejection
    curve is the share correct among those kept, at every rejection level. PRR compares the area
    under it with a random rejection (the flat mean) and an oracle that rejects the wrong ones
    first: ``(AUC_unc - AUC_random) / (AUC_oracle - AUC_random)`` -- 1 perfect, 0 no better than
    random, < 0 worse. Areas as lm-polygraph's ``PredictionRejectionArea`` (Fadeeva et al. 2023,
    "LM-Polygraph: Uncertainty Estimation for Language Models", EMNLP demo; Malinin et al. 2017
    introduced PRR): the mean over k = 1..N of the accuracy of the k most confident rows. Tied
    scores are broken at random and the areas averaged over those orders (their exact expectation,
    so the result does not depend on row order); lm-polygraph's ``argsort`` keeps input order
    instead, and the two agree when no scores tie. A judge that gives every row the same score
    has PRR exactly 0 (no better than random), and so does each bootstrap resample.

    Parameters
    ----------
    df : DataFrame
        The analysis frame (``item_id, correct``, ``score`` and ``by``); ungraded rows (NA
        ``correct``) are left out.
    score : str
        Confidence column (higher = more confident).
    by : sequence of str
        Grouping columns.
    n_boot, seed, confidence
        Item-bootstrap resamples, seed and level.

    Returns
    -------
    DataFrame
        ``*by, score, estimate, ci_low, ci_high, n, n_items, n_correct, n_wrong``; the interval
        is an item-clustered percentile bootstrap (rows reordered on every resample).
    """
    keys, groups = per_group(df, what="prediction_rejection_ratio", needed=[score, "correct"], by=by,
                              n_boot=n_boot, seed=seed, confidence=confidence)
    rows = []
    for grp in groups:
        s = grp.frame[score].to_numpy(float)
        y = grp.labels().astype(float)
        est = _prr(s, y)
        lo = hi = np.nan
        if np.isfinite(est):
            lo, hi = grp.boot.ci_rows(lambda r: _prr(s[r], y[r]))
        rows.append({**grp.key, "score": score, "estimate": est, "ci_low": lo, "ci_high": hi, "n": grp.n,
                     "n_items": grp.n_items, "n_correct": int(y.sum()), "n_wrong": int((1 - y).sum())})
    return pd.DataFrame(rows, columns=[*keys, "score", *ESTIMATE_COLUMNS, "n_correct", "n_wrong"])
