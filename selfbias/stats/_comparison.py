"""The comparison effect: does showing other answers change how the judge rates a candidate?"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as _st
from sklearn.metrics import brier_score_loss

from ._bootstrap import (
    ESTIMATE_COLUMNS,
    DEFAULT_CONFIDENCE,
    DEFAULT_N_BOOT,
    DEFAULT_N_PERM,
    bool_array,
    drop_missing,
    ClusterBootstrap,
    ratio_of_sums,
    check_columns,
    holm,
)
from ._discrimination import auc_score

__all__ = ["COMPARISON_MEASURES", "comparison_effect"]

#: Measures of :func:`comparison_effect`, in output order.
COMPARISON_MEASURES = ("mean_p_yes_wrong", "false_acceptance", "verdict_accuracy", "brier", "auroc")


#: 2^items up to which the sign-flip test enumerates every sign vector (exact) instead of sampling.
_EXACT_ITEMS = 12


def sign_flip_test(item_codes: np.ndarray, d: np.ndarray, n_perm: int, seed: int) -> tuple[float, float]:
    """Paired test of ``mean(d) = 0`` flipping the sign of whole items, with a mid-p value.

    The differences of one item flip together (the candidates of an item are correlated), so the
    statistic is ``T = sum_i s_i D_i`` over item sums ``D_i`` with signs ``s_i = +-1``: every sign
    vector when there are at most ``_EXACT_ITEMS`` items with a non-zero sum, else ``n_perm``
    random ones (the observed one counted in). Two-sided mid-p:
    ``p = P(|T*| > |t|) + P(|T*| = |t|) / 2``. Why mid-p: for thresholded (0/1) measures most
    item sums are 0 or +-1, so ``|T*|`` ties ``|t|`` often and the ordinary p-value is
    conservative -- it rejected 2.5-3.5% of true nulls at the 5% level in the issue 10
    simulation; the mid-p value corrects for the ties (Lancaster 1961; Agresti 2013, sec. 1.4.5).
    Returns ``(observed mean of d, p)``.
    """
    if d.size == 0:
        return np.nan, np.nan
    sums = np.bincount(item_codes, weights=d)
    sums = sums[np.abs(sums) > 1e-12]
    observed = float(d.mean())
    if sums.size == 0:
        return observed, 1.0
    t = abs(float(sums.sum()))
    tol = 1e-9 * max(1.0, float(np.abs(sums).sum()))
    if sums.size <= _EXACT_ITEMS:
        signs = 1 - 2 * ((np.arange(2**sums.size)[:, None] >> np.arange(sums.size)) & 1)
        stat = np.abs(signs @ sums)
        greater, equal, total = (stat > t + tol).sum(), (np.abs(stat - t) <= tol).sum(), stat.size
    else:
        rng = np.random.default_rng(seed)
        greater = equal = 0
        for start in range(0, n_perm, 1000):  # batches bound the memory of the sign matrix
            b = min(1000, n_perm - start)
            stat = np.abs(rng.choice([-1.0, 1.0], size=(b, sums.size)) @ sums)
            greater += int((stat > t + tol).sum())
            equal += int((np.abs(stat - t) <= tol).sum())
        equal += 1  # the observed sign vector
        total = n_perm + 1
    return observed, float((greater + 0.5 * equal) / total)


def _swap_auc_test(
    item_codes: np.ndarray, y: np.ndarray, p_against: np.ndarray, p_base: np.ndarray,
    n_perm: int, seed: int,
) -> float:
    """Paired permutation test of AUROC(against) = AUROC(baseline): swap the two conditions of
    whole items (scipy ``permutation_test``, ``permutation_type="samples"`` on item labels);
    AUROC of each permutation through Mann-Whitney ranks (:func:`scipy.stats.rankdata`)."""
    n_items = int(item_codes.max()) + 1 if item_codes.size else 0
    if n_items == 0 or y.all() or not y.any():
        return np.nan
    if n_items == 1:  # swapping the only item just flips the sign of the difference
        return 1.0
    n_pos, n_neg = int(y.sum()), int((~y).sum())

    def auc_rows(scores):  # scores (B, n)
        r = _st.rankdata(scores, axis=-1)
        return (r[..., y].sum(axis=-1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)

    def statistic(a, b, axis=-1):
        a2 = np.atleast_2d(a)
        swapped = (a2 >= n_items)[:, item_codes]
        sa = np.where(swapped, p_base, p_against)
        sb = np.where(swapped, p_against, p_base)
        out = auc_rows(sa) - auc_rows(sb)
        return out if np.ndim(a) > 1 else out[0]

    codes = np.arange(n_items)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = _st.permutation_test(
            (codes, codes + n_items), statistic, permutation_type="samples", vectorized=True,
            n_resamples=n_perm, alternative="two-sided", rng=np.random.default_rng(seed),
        )
    return float(res.pvalue)


def _placements(score: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong placement values: for each correct row the share of wrong rows it outranks (ties
    1/2), for each wrong row the share of correct rows that outrank it."""
    pos, neg = np.sort(score[y]), np.sort(score[~y])
    v10 = (np.searchsorted(neg, score[y], "left") + np.searchsorted(neg, score[y], "right")) / (2 * neg.size)
    v01 = (2 * pos.size - np.searchsorted(pos, score[~y], "left") - np.searchsorted(pos, score[~y], "right")) / (
        2 * pos.size)
    return v10, v01


def clustered_auc_difference(
    codes: np.ndarray, y: np.ndarray, p_against: np.ndarray, p_base: np.ndarray, confidence: float,
) -> tuple[float, float, float, float]:
    """AUROC(against) - AUROC(baseline) on the same candidates, its item-clustered standard error
    and a t interval with G - 1 degrees of freedom.

    The variance is Obuchowski's (1997, "Nonparametric analysis of clustered ROC curve data",
    Biometrics 53) for clustered data, applied to the difference of the two scores' structural
    (DeLong placement) components, which is how DeLong, DeLong & Clarke-Pearson (1988) compare
    correlated AUROCs: with ``D10_i`` (``D01_i``) the item-i sum over its correct (wrong)
    candidates of the difference of their placement values, M (N) correct (wrong) candidates and
    G items, ``S10 = G / ((G - 1) M) sum (D10_i - m_i D)^2``, ``S01`` alike, ``S11 = G / (G - 1)
    sum (D10_i - m_i D)(D01_i - n_i D)`` and ``Var(D) = S10 / M + S01 / N + 2 S11 / (M N)``.
    Replaces a percentile item bootstrap that covered 90% at 30 items (issue 27).
    """
    n_items = int(codes.max()) + 1 if codes.size else 0
    if n_items < 2 or y.all() or not y.any():
        return np.nan, np.nan, np.nan, np.nan
    a10, a01 = _placements(p_against, y)
    b10, b01 = _placements(p_base, y)
    d = float(a10.mean() - b10.mean())
    m_i = np.bincount(codes[y], minlength=n_items)
    n_i = np.bincount(codes[~y], minlength=n_items)
    r10 = np.bincount(codes[y], a10 - b10, minlength=n_items) - m_i * d
    r01 = np.bincount(codes[~y], a01 - b01, minlength=n_items) - n_i * d
    m, n, g = float(y.sum()), float((~y).sum()), n_items
    s10 = g / ((g - 1) * m) * (r10**2).sum()
    s01 = g / ((g - 1) * n) * (r01**2).sum()
    s11 = g / (g - 1) * (r10 * r01).sum()
    se = float(np.sqrt(max(s10 / m + s01 / n + 2 * s11 / (m * n), 0.0)))
    q = _st.t.ppf(0.5 + confidence / 2, g - 1)
    return d, se, d - q * se, d + q * se


def _measure(measure, pb, pa, y, codes, items, boot, threshold, n_perm, seed, confidence=0.95) -> dict:
    """One paired measure of :func:`comparison_effect` with its interval and item-aware test."""
    wrong = ~y
    if measure in ("mean_p_yes_wrong", "false_acceptance"):
        if measure == "mean_p_yes_wrong":
            xb, xa = pb, pa
        else:
            xb, xa = (pb > threshold).astype(float), (pa > threshold).astype(float)
        mask = wrong
    elif measure == "verdict_accuracy":
        xb = ((pb > threshold) == y).astype(float)
        xa = ((pa > threshold) == y).astype(float)
        mask = np.ones_like(y)
    elif measure == "brier":
        xb, xa = (pb - y) ** 2, (pa - y) ** 2
        mask = np.ones_like(y)
    else:  # auroc
        bv, av = auc_score(y, pb), auc_score(y, pa)
        lo = hi = np.nan
        if np.isfinite(bv) and np.isfinite(av) and boot.n_boot > 0:
            _, _, lo, hi = clustered_auc_difference(codes, y, pa, pb, confidence)
        p = _swap_auc_test(codes, y, pa, pb, n_perm, seed) if n_perm > 0 else np.nan
        return dict(baseline_value=bv, against_value=av, estimate=av - bv, ci_low=lo, ci_high=hi,
                    n=int(y.size), n_items=int(pd.unique(items).size), test="cluster_swap",
                    statistic=av - bv, p_value=p)
    mw = mask.astype(float)
    bv, av = ratio_of_sums(xb * mw, mw), ratio_of_sums(xa * mw, mw)
    if measure == "brier" and y.size:
        bv = float(brier_score_loss(y.astype(int), pb, pos_label=1))
        av = float(brier_score_loss(y.astype(int), pa, pos_label=1))
    lo, hi = boot.ci_ratio((xa - xb) * mw, mw) if mask.any() else (np.nan, np.nan)
    stat, p = (
        sign_flip_test(codes[mask], (xa - xb)[mask], n_perm, seed)
        if n_perm > 0 and mask.any() else (np.nan, np.nan)
    )
    return dict(baseline_value=bv, against_value=av, estimate=av - bv, ci_low=lo, ci_high=hi,
                n=int(mask.sum()), n_items=int(pd.unique(items[mask]).size), test="cluster_sign_flip",
                statistic=stat, p_value=p)


def comparison_effect(
    df: pd.DataFrame,
    baseline: str = "isolated",
    against: Sequence[str] | str = ("own_samples", "alternatives"),
    *,
    contrasts: Sequence[tuple[str, str]] | None = None,
    by: Sequence[str] = (),
    threshold: float = 0.5,
    measures: Sequence[str] | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    n_perm: int = DEFAULT_N_PERM,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Comparison effect: does showing other answers change how the judge rates the same candidate?

    For each judge, each ``by`` group and each contrast ``(baseline, against)`` -- by default
    ``baseline`` against every mode in ``against``; ``contrasts=[("own_samples", "alternatives")]``
    asks whether *where the shown list came from* matters, with the list shown in both --
    candidates judged in both modes are matched on ``(item_id, candidate_id, judge)`` and paired
    differences ``against - baseline`` are reported for

    * ``mean_p_yes_wrong``: mean P(Yes) on wrong candidates (misplaced confidence);
    * ``false_acceptance``: share of wrong candidates with P(Yes) > ``threshold``;
    * ``verdict_accuracy``: share of all candidates whose thresholded verdict matches correctness;
    * ``brier``: Brier score on all candidates;
    * ``auroc``: AUROC of P(Yes) for correct vs wrong.

    Every test respects items, because the candidates of one item share a question and their
    differences move together (issue 10: McNemar treating candidates as independent rejected
    14-24% of true nulls with item-shared shifts). ``cluster_sign_flip``: the paired differences
    of one item flip sign together (:func:`scipy.stats.permutation_test` on item sums); for the
    two thresholded measures this is the randomisation form of the clustered McNemar test
    (Durkalski et al. 2003, "Analysis of clustered matched-pair data", Stat Med 22: the
    statistic is the sum over items of the discordant-pair difference). ``cluster_swap`` (AUROC):
    the two conditions of whole items are swapped. p-values resolve to 1 / (n_perm + 1); keep
    ``n_perm`` large enough for the Holm step. ``p_holm`` is the Holm adjustment over every test
    in the returned table.

    ``by`` splits further (e.g. ``by=("source",)``: own answers, references, distractors ...);
    its columns are read from the baseline rows. The ``own_samples`` mode is the setting of
    Kadavath et al. 2022 ("Language Models (Mostly) Know What They Know"); ``alternatives``
    shows answers from other sources. Rows whose ``correct`` is missing (ungraded) are left out.

    Parameters
    ----------
    df : DataFrame
        The analysis frame (``item_id, candidate_id, judge, mode, p_yes, correct`` and ``by``).
    baseline, against : str, sequence of str
        The contrasts ``(baseline, m) for m in against`` when ``contrasts`` is None.
    contrasts : sequence of (str, str), optional
        Explicit ``(baseline mode, against mode)`` pairs.
    by : sequence of str
        Extra grouping columns besides the judge.
    threshold : float
        P(Yes) above which a verdict is "accept".
    measures : sequence of str, optional
        A subset of :data:`COMPARISON_MEASURES`.
    n_boot, n_perm, seed, confidence
        Bootstrap resamples (0: no intervals), permutations (0: no tests), seed, interval level.

    Returns
    -------
    DataFrame
        ``judge, *by, baseline, against, measure, baseline_value, against_value, estimate
        (against - baseline), ci_low, ci_high, n (matched candidates used), n_items, test,
        statistic (the observed difference), p_value, p_holm``.
    """
    check_columns(df, ["item_id", "candidate_id", "judge", "mode", "p_yes", "correct", *by], "comparison_effect")
    if isinstance(against, str):
        against = (against,)
    if contrasts is None:
        contrasts = [(baseline, m) for m in against]
    measures = tuple(COMPARISON_MEASURES if measures is None else measures)
    unknown = set(measures) - set(COMPARISON_MEASURES)
    if unknown:
        raise ValueError(f"unknown measures {sorted(unknown)}; choose from {COMPARISON_MEASURES}")
    key = ["item_id", "candidate_id", "judge"]
    by = [b for b in by if b not in key]
    data = drop_missing(df, ["p_yes", "correct"])
    rows = []
    for base_mode, mode in contrasts:
        base = data[data["mode"] == base_mode][[*key, *by, "p_yes", "correct"]].drop_duplicates(subset=key)
        other = data[data["mode"] == mode][[*key, "p_yes"]].drop_duplicates(subset=key)
        m = base.merge(other, on=key, suffixes=("_base", "_against"), how="inner")
        for values, g in m.groupby(["judge", *by], sort=True, dropna=False):
            values = values if isinstance(values, tuple) else (values,)
            pb = g["p_yes_base"].to_numpy(float)
            pa = g["p_yes_against"].to_numpy(float)
            y = bool_array(g["correct"])
            items = g["item_id"].to_numpy(dtype=object)
            codes, _ = pd.factorize(items, sort=True)
            boot = ClusterBootstrap(items, n_boot=n_boot, seed=seed, confidence=confidence)
            common = {**dict(zip(["judge", *by], values)), "baseline": base_mode, "against": mode}
            for measure in measures:
                rec = _measure(measure, pb, pa, y, codes, items, boot, threshold, n_perm, seed, confidence)
                rows.append({**common, "measure": measure, **rec})
    cols = ["judge", *by, "baseline", "against", "measure", "baseline_value", "against_value", *ESTIMATE_COLUMNS,
            "test", "statistic", "p_value", "p_holm"]
    out = pd.DataFrame(rows, columns=[c for c in cols if c != "p_holm"])
    out["p_holm"] = holm(out["p_value"].to_numpy(float)) if len(out) else pd.Series(dtype=float)
    return out[cols]
