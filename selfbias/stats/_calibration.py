"""Calibration of P(Yes) as the probability that the candidate is correct: Brier score, ECE, RMS
calibration error (Kadavath et al. 2022) and reliability-diagram data. Intervals are item-clustered
bootstraps (:mod:`selfbias.stats._bootstrap`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss
from statsmodels.stats.proportion import proportion_confint

from ._bootstrap import (
    ESTIMATE_COLUMNS,
    DEFAULT_CONFIDENCE,
    DEFAULT_N_BOOT,
    per_group,
)

__all__ = ["calibration", "reliability_table"]


def equal_count_bin_indices(p: np.ndarray, n_bins: int) -> list[np.ndarray]:
    """Row indices of ``n_bins`` equal-count bins of ``p`` (ascending).

    Rows are sorted by ``p`` (ties kept in input order) and split into ``min(n_bins, len(p))``
    consecutive chunks whose sizes differ by at most one (the first chunks take the extra rows,
    as :func:`numpy.array_split`).
    """
    p = np.asarray(p, float)
    if p.size == 0:
        return []
    order = np.argsort(p, kind="stable")
    return [b for b in np.array_split(order, min(int(n_bins), p.size)) if b.size]


def ece_rms(p: np.ndarray, y: np.ndarray, n_bins: int) -> tuple[float, float]:
    """ECE and RMS calibration error with equal-count bins (Kadavath et al. 2022).

    ``ECE = sum_b (n_b / N) |acc_b - conf_b|``, ``RMS = sqrt(sum_b (n_b / N) (acc_b - conf_b)^2)``.
    """
    p = np.asarray(p, float)
    y = np.asarray(y, float)
    n = p.size
    if n == 0:
        return np.nan, np.nan
    ece = 0.0
    ms = 0.0
    for b in equal_count_bin_indices(p, n_bins):
        gap = y[b].mean() - p[b].mean()
        ece += b.size / n * abs(gap)
        ms += b.size / n * gap * gap
    return float(ece), float(np.sqrt(ms))



def _debiased_sq_ce(p: np.ndarray, y: np.ndarray, clusters: np.ndarray, n_bins: int) -> float:
    """Debiased squared calibration error with equal-count bins, item-aware.

    The plug-in ``sum_b (n_b/N) (acc_b - conf_b)^2`` is biased upward: even a perfectly
    calibrated judge has ``E[(acc_b - conf_b)^2] = Var(acc_b - conf_b) > 0``. As Kumar, Liang &
    Ma (2019, "Verified Uncertainty Calibration", NeurIPS) do, the estimated variance of each
    bin's gap is subtracted; here it is estimated clustered by item,
    ``v_b = sum_i (sum_{j in b, item i} (y_j - p_j))^2 / n_b^2``, because the candidates of an
    item are not independent. Given the bins (which depend on P(Yes) only), ``E[v_b]`` equals the
    gap's variance when the judge is calibrated, so the estimate is unbiased for 0 there and can be
    negative. With one candidate per item, ``v_b = sum_j (y_j - p_j)^2 / n_b^2``.
    """
    p = np.asarray(p, float)
    y = np.asarray(y, float)
    n = p.size
    if n == 0:
        return np.nan
    codes = pd.factorize(np.asarray(clusters))[0]
    total = 0.0
    for b in equal_count_bin_indices(p, n_bins):
        r = y[b] - p[b]
        sums = np.bincount(codes[b], weights=r)
        total += b.size / n * (r.mean() ** 2 - float((sums**2).sum()) / b.size**2)
    return float(total)


def _bin_codes(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-count bin index of every row (the bins of :func:`equal_count_bin_indices`)."""
    codes = np.empty(p.size, int)
    for i, b in enumerate(equal_count_bin_indices(p, n_bins)):
        codes[b] = i
    return codes


def consistency_test(p: np.ndarray, y: np.ndarray, n_bins: int, n_resamples: int = 2000,
                     seed: int = 0) -> tuple[float, float]:
    """ECE and its consistency-resampling p-value (Broecker & Smith 2007, "Increasing the
    reliability of reliability diagrams", Weather and Forecasting 22).

    Under the null of calibration, P(correct | P(Yes) = p) = p; the test draws correctness anew
    as independent Bernoulli(p) for every candidate ``n_resamples`` times, recomputes the ECE
    with the same equal-count bins (they depend on P(Yes) only) and returns
    ``(1 + #{ECE* >= ECE}) / (n_resamples + 1)``.  Its null distribution is exact given P(Yes),
    so the ECE's upward bias (a calibrated judge with 300 candidates shows ECE ~0.06) is
    compared with itself rather than with 0.  It assumes correctness is independent across
    candidates given P(Yes); correctness that clusters by item beyond what P(Yes) says makes it
    reject too often.
    """
    p = np.asarray(p, float)
    y = np.asarray(y, float)
    if p.size == 0:
        return np.nan, np.nan
    codes = _bin_codes(p, n_bins)
    counts = np.bincount(codes).astype(float)
    conf = np.bincount(codes, p)
    weight = counts / p.size

    def ece(sums):  # sums: (..., n_bins) of correct per bin
        return (weight * np.abs(sums - conf) / counts).sum(axis=-1)

    observed = float(ece(np.bincount(codes, y)))
    rng = np.random.default_rng(seed)
    exceed = 0
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0])
    for start in range(0, n_resamples, 500):  # batches bound the memory
        b = min(500, n_resamples - start)
        draws = (rng.random((b, p.size)) < p[order]).astype(float)
        exceed += int((ece(np.add.reduceat(draws, starts, axis=1)) >= observed - 1e-12).sum())
    return observed, (1 + exceed) / (n_resamples + 1)


def calibration(
    df: pd.DataFrame,
    n_bins: int = 10,
    by: Sequence[str] = ("judge", "mode"),
    *,
    score: str = "p_yes",
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = 2000,
) -> pd.DataFrame:
    """Calibration of P(Yes) as a probability that the candidate is correct.

    Three measures (Kadavath et al. 2022, "Language Models (Mostly) Know What They Know"):

    * ``brier``: mean squared error ``mean((p - y)^2)``
      (:func:`sklearn.metrics.brier_score_loss`);
    * ``ece``: expected calibration error with ``n_bins`` *equal-count* bins,
      ``sum_b (n_b/N) |acc_b - conf_b|``;
    * ``rms_ce``: RMS calibration error, ``sqrt(sum_b (n_b/N) (acc_b - conf_b)^2)``;
    * ``sq_ce_debiased``: the squared calibration error ``rms_ce^2`` with its upward bias removed
      (Kumar, Liang & Ma 2019; the variance term is item-clustered, see ``_debiased_sq_ce``).
      ECE and RMS are biased upward -- a perfectly calibrated judge with 300 candidates shows an
      ECE near 0.06 whose interval excludes 0 (issue 10) -- so read *this* interval to ask "is the
      judge miscalibrated at all": its interval (the bootstrap percentile interval's half-width
      centred on the estimate) covers 0 for a calibrated judge (tests/stats/test_prr_calibration.py),
      but too often: it covered 0 in 100% of calibrated runs and caught a clearly overconfident
      judge in 30% (issue 27), so it says little.

    **The test of calibration** is the ``p_value`` of the ``ece`` row (NaN in the other rows): the
    consistency-resampling test of :func:`consistency_test` (``n_resamples`` draws of correctness
    from P(Yes)).  Measured (tests/stats/CALIBRATION_TEST.md, ``python -m
    tests.stats.calibration_power 2000 100 500``: 2000 calibrated runs, 500 per power scenario),
    40 items x 8 candidates: size 4.7% on calibrated judges, power 99.4% against an
    overconfident judge (logit x 2.2, ECE ~0.12) and 69% against one shifted by +0.09, where the
    debiased interval excluding 0 caught 40% and 17% (100 runs); 100 items x 5: size 4.2%, power
    100% and 92%; 20 items x 4: size 5.0%, power 70% and 19% (80 candidates in 10 bins is little
    to detect a shift with).  The size is exact given P(Yes) (ties are negligible).  It assumes
    correctness independent across candidates given P(Yes).

    Equal-count bins: candidates sorted by P(Yes) (ties in input order) and split into
    ``min(n_bins, N)`` consecutive chunks whose sizes differ by at most one (first chunks larger).
    Returns one row per group x measure: ``*by, measure, n_bins, estimate, ci_low, ci_high, n,
    n_items, p_value``; intervals by item-clustered bootstrap (bins are recomputed on each
    resample).

    Parameters
    ----------
    df : DataFrame
        The analysis frame (ARCHITECTURE.md); rows with a missing score or ``correct`` (ungraded) are left out.
    n_bins : int
        Number of equal-count bins.
    by : sequence of str
        Grouping columns (the judge is never pooled).
    score : str
        The score column.
    n_boot : int
        Item-bootstrap resamples (0: no intervals).
    seed : int
        Seed of the bootstrap / permutations / simulations.
    confidence : float
        Two-sided interval level.
    n_resamples : int
        Draws of the consistency-resampling test of the ECE (0: no test).

    Returns
    -------
    DataFrame
        One row per group x measure (columns above).
    """
    keys, groups = per_group(df, what="calibration", needed=[score, "correct"], by=by, n_boot=n_boot,
                              seed=seed, confidence=confidence)
    rows = []
    for grp in groups:
        key, items, boot = grp.key, grp.items, grp.boot
        p = grp.frame[score].to_numpy(float)
        y = grp.labels().astype(float)
        sq = (p - y) ** 2
        brier = float(brier_score_loss(y.astype(int), p, pos_label=1)) if p.size else np.nan
        b_lo, b_hi = boot.ci_ratio(sq, np.ones_like(sq))
        ece, rms = ece_rms(p, y, n_bins)
        (e_lo, r_lo), (e_hi, r_hi) = boot.ci_rows(
            lambda r: np.array(ece_rms(p[r], y[r], n_bins)), k=2
        )
        dsq = _debiased_sq_ce(p, y, items, n_bins)
        # Centred interval: the percentile interval's half-width around the estimate. The bootstrap
        # distribution of a debiased estimator sits above the estimate (the resampled world's truth
        # is the *plug-in* value), so percentile intervals missed 0 for calibrated judges: 88% of
        # 150 simulated calibrated judges covered 0 (300 candidates, 60 items), centred 100%.
        p_lo, p_hi = boot.ci_rows_clustered(lambda r, c: _debiased_sq_ce(p[r], y[r], c, n_bins))
        half = (p_hi - p_lo) / 2
        s_lo, s_hi = dsq - half, dsq + half
        common = {"n_bins": int(n_bins), "n": int(p.size), "n_items": int(pd.unique(items).size)}
        ece_p = consistency_test(p, y, n_bins, n_resamples, seed)[1] if n_resamples > 0 else np.nan
        for measure, est, lo, hi, pv in (
            ("brier", brier, b_lo, b_hi, np.nan),
            ("ece", ece, e_lo, e_hi, ece_p),
            ("rms_ce", rms, r_lo, r_hi, np.nan),
            ("sq_ce_debiased", dsq, s_lo, s_hi, np.nan),
        ):
            rows.append({**key, "measure": measure, "estimate": est, "ci_low": lo, "ci_high": hi, **common,
                         "p_value": pv})
    cols = [*keys, "measure", "n_bins", *ESTIMATE_COLUMNS, "p_value"]
    return pd.DataFrame(rows, columns=cols)


def reliability_table(
    df: pd.DataFrame,
    n_bins: int = 10,
    by: Sequence[str] = ("judge", "mode"),
    *,
    score: str = "p_yes",
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Reliability diagram data: accuracy against mean P(Yes) in equal-count bins.

    Bins as in :func:`calibration`. One row per group x bin with ``bin`` (0 = lowest P(Yes)),
    ``conf_min, conf_max, mean_confidence, accuracy, count`` and a Wilson interval for the
    accuracy (:func:`statsmodels.stats.proportion.proportion_confint`, ``method="wilson"``; it
    treats the candidates of a bin as independent). ``estimate`` repeats ``accuracy`` and ``n``
    repeats ``count`` to follow the package-wide column convention. The reliability diagram of
    Kadavath et al. 2022 (and Guo et al. 2017, "On Calibration of Modern Neural Networks").

    Parameters
    ----------
    df : DataFrame
        The analysis frame (ARCHITECTURE.md); rows with a missing score or ``correct`` (ungraded) are left out.
    n_bins : int
        Number of equal-count bins.
    by : sequence of str
        Grouping columns (the judge is never pooled).
    score : str
        The score column.
    confidence : float
        Two-sided interval level.

    Returns
    -------
    DataFrame
        One row per group x bin (columns above).
    """
    keys, groups = per_group(df, what="reliability_table", needed=[score, "correct"], by=by, n_boot=0,
                              seed=0, confidence=confidence)
    rows = []
    alpha = 1.0 - confidence
    for grp in groups:
        key, items = grp.key, grp.items
        p = grp.frame[score].to_numpy(float)
        y = grp.labels()
        for i, b in enumerate(equal_count_bin_indices(p, n_bins)):
            k, n = int(y[b].sum()), int(b.size)
            lo, hi = proportion_confint(k, n, alpha=alpha, method="wilson")
            acc = k / n
            rows.append(
                {**key, "bin": i, "conf_min": float(p[b].min()), "conf_max": float(p[b].max()),
                 "mean_confidence": float(p[b].mean()), "accuracy": acc, "count": n,
                 "estimate": acc, "ci_low": float(lo), "ci_high": float(hi), "n": n,
                 "n_items": int(pd.unique(items[b]).size)}
            )
    cols = [*keys, "bin", "conf_min", "conf_max", "mean_confidence", "accuracy", "count", *ESTIMATE_COLUMNS]
    return pd.DataFrame(rows, columns=cols)
