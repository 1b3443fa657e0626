"""Judge health: is P(Yes) a usable signal at all before reading any bias statistic from it?

A zero-shot judge can be *degenerate*: it answers "Yes" with nearly the same probability to every
candidate, puts little next-token mass on any yes/no spelling, reacts to the question rather than
to the answer, or ranks candidates no better than chance. Statistics computed from such a judge
(misplaced confidence, comparison effects, published self-preference metrics) describe noise.
:func:`judge_health` checks each judge x mode against the thresholds below and says why in plain
words.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ._bootstrap import (
    DEFAULT_CONFIDENCE,
    DEFAULT_N_BOOT,
    drop_missing,
    ClusterBootstrap,
    iter_groups,
    per_group,
    check_columns,
)
from ._discrimination import auc_score, weighted_auc

__all__ = [
    "CHANCE_AUROC",
    "MIN_AUROC",
    "GOOD_AUROC",
    "MIN_LOGIT_SD",
    "MIN_P_YES_SD",
    "MIN_WITHIN_ITEM_SHARE",
    "MIN_YES_NO_MASS",
    "MAX_POSITION_BIAS",
    "MIN_ORDERS_AGREE",
    "judge_health",
    "pairwise_health",
]

#: P(Yes) standard deviation on the probability scale. Before issue 10 this flagged a judge; it
#: flagged good judges whose P(Yes) sits in 0.9-0.99 (sd 0.021, AUROC 0.998), so the spread is now
#: judged on the logit scale (:data:`MIN_LOGIT_SD`); kept for reference lines in figures.
MIN_P_YES_SD = 0.05
#: SD of logit P(Yes) (P(Yes) clipped to [1e-4, 1 - 1e-4]) below which P(Yes) counts as nearly
#: constant. Set by simulation (tests/stats/test_health.py, ``test_thresholds_*``): constant judges
#: (logit P(Yes) = logit(c) + N(0, 0.04), c in 0.05..0.95; the bundled zero-shot judges are
#: 0.62 +- 0.01, i.e. 0.04 on this scale) stay near 0.04; every simulated good judge (AUROC >= 0.9,
#: including P(Yes) in 0.9-0.99) is above 0.3. 0.1 sits between.
MIN_LOGIT_SD = 0.1
#: Mean next-token probability mass on yes/no spellings below which the judge is not answering
#: the yes/no question (P(Yes) is then renormalised from a small remainder).
MIN_YES_NO_MASS = 0.5
#: AUROC (correct vs wrong) below which a judge discriminates too weakly to be read.
MIN_AUROC = 0.6
#: AUROC of a judge that cannot tell correct from wrong.
CHANCE_AUROC = 0.5
#: Share of the variance of logit P(Yes) *left after correctness* that lies between candidates of
#: the same item, below which the judge mostly reacts to the question rather than to the answer.
#: Taken after correctness because correctness itself is often item-level (easy items: all
#: candidates right): a perfect judge then has most of its raw variance between items (issue 10:
#: share 0.18 for AUROC 1.0). Only read when AUROC < :data:`GOOD_AUROC`. Set by simulation: a judge
#: driven by the item (P(Yes) = item value + N(0, 0.01)) gives < 0.05; good judges >= 0.3.
MIN_WITHIN_ITEM_SHARE = 0.2
#: A judge separating correct from wrong this well is usable whatever its item effects: the
#: within-item check is not applied above it.
GOOD_AUROC = 0.9
#: Items with both correct and wrong candidates needed before the within-item ranking is judged
#: (with fewer, its interval is too wide to say anything; the pooled AUROC still applies).
MIN_ITEMS_WITHIN = 5
_CLIP = 1e-4

_COLUMNS = [
    "n", "n_items", "yes_no_mass", "p_yes_mean", "p_yes_sd", "p_yes_min", "p_yes_max",
    "p_yes_range", "logit_sd", "within_item_share", "auroc", "auroc_ci_low", "auroc_ci_high", "top1_rate",
    "chance_rate", "top1_minus_chance", "top1_ci_low", "top1_ci_high", "n_items_ranked",
    "within_auroc", "within_auroc_ci_low", "within_auroc_ci_high", "degenerate", "reasons",
]


def _within_share(p: np.ndarray, codes: np.ndarray) -> float:
    """SS_within / SS_total of ``p`` with items as groups (one-way ANOVA decomposition)."""
    total = float(((p - p.mean()) ** 2).sum())
    if total <= 0:
        return np.nan
    sums = np.bincount(codes, weights=p)
    counts = np.bincount(codes)
    means = sums / np.maximum(counts, 1)
    within = float(((p - means[codes]) ** 2).sum())
    return within / total


def _residual_after_correct(logit: np.ndarray, y: np.ndarray) -> np.ndarray:
    """logit P(Yes) minus its mean within correct and within wrong candidates (OLS on correct)."""
    out = logit.astype(float).copy()
    for mask in (y, ~y):
        if mask.any():
            out[mask] -= out[mask].mean()
    return out


def _top1(p: np.ndarray, y: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per item with >= 2 candidates, both correct and wrong ones: share correct among the
    top-rated (ties split evenly) and the chance rate #correct / #candidates. Items whose
    candidates are all right or all wrong are skipped: there the pick cannot beat chance."""
    top, chance = [], []
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.r_[True, codes[order][1:] != codes[order][:-1], True])
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        r = order[lo:hi]
        if r.size < 2 or y[r].min() == y[r].max():
            continue
        best = p[r] == p[r].max()
        top.append(y[r][best].mean())
        chance.append(y[r].mean())
    return np.asarray(top, float), np.asarray(chance, float)


def _within_pairs(p: np.ndarray, y: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per item with both correct and wrong candidates: the (correct, wrong) pairs that the judge
    orders correctly (ties count 1/2) and the number of such pairs.  Their ratio of sums is the
    within-item AUROC: the chance that, of two answers to the same question, the correct one gets
    the higher P(Yes).  It depends only on the order of P(Yes) inside each item, so it is the
    same for a judge whose P(Yes) spans 0.60-0.64 as for one spanning 0.1-0.9."""
    concordant, pairs = [], []
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.r_[True, codes[order][1:] != codes[order][:-1], True])
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        r = order[lo:hi]
        pos, neg = p[r][y[r]], p[r][~y[r]]
        if pos.size == 0 or neg.size == 0:
            continue
        diff = pos[:, None] - neg[None, :]
        concordant.append(float((diff > 0).sum() + 0.5 * (diff == 0).sum()))
        pairs.append(float(diff.size))
    return np.asarray(concordant, float), np.asarray(pairs, float)


def judge_health(
    df: pd.DataFrame,
    by: Sequence[str] = ("judge", "mode"),
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Health check of each judge x mode: is its P(Yes) informative?

    Per group of the analysis frame:

    * ``yes_no_mass``: mean share of next-token probability on yes/no spellings (NaN when the
      frame has no ``yes_no_mass`` column);
    * ``p_yes_mean, p_yes_sd, p_yes_min, p_yes_max, p_yes_range``: spread of P(Yes) across
      candidates;
    * ``logit_sd``: SD of logit P(Yes) (clipped to [1e-4, 1 - 1e-4]); the spread check uses this
      scale, on which a judge answering 0.9-0.99 varies as much as one answering 0.3-0.7;
    * ``within_item_share``: of the logit-P(Yes) variance left after correctness (residual of
      logit P(Yes) on correct), the share between candidates of the same item,
      ``SS_within / SS_total``;
    * ``auroc`` with item-bootstrap ``auroc_ci_low, auroc_ci_high`` (correct vs wrong);
    * ``top1_rate``: over items with >= 2 candidates, how often the top-rated candidate is correct
      (tied top candidates share the item evenly); ``chance_rate``: mean over those items of
      #correct / #candidates (a random pick); ``top1_minus_chance`` with item-bootstrap interval;
    * ``within_auroc`` with item-bootstrap ``within_auroc_ci_low, within_auroc_ci_high``: over
      items with both correct and wrong candidates, the share of (correct, wrong) pairs of the
      same item in which the correct one gets the higher P(Yes) (ties 1/2) -- discrimination
      *within* items, scale-free: it depends on the order of P(Yes) inside items only.

    ``degenerate`` is True when any check fails; ``reasons`` lists the failed checks in words
    ("; "-separated). The checks are on scale-free quantities (issue 27):
    mean yes/no mass < ``MIN_YES_NO_MASS``; AUROC interval includes 0.5 or lies below it, or
    AUROC < ``MIN_AUROC``; within-item AUROC interval not above 0.5 (with >= ``MIN_ITEMS_WITHIN``
    items to rank, and only while AUROC < ``GOOD_AUROC``); top-1 accuracy significantly *below*
    chance; and logit-P(Yes) sd < ``MIN_LOGIT_SD`` only when neither AUROC interval lies above
    0.5 -- a narrow band that ranks correct above wrong is not degenerate (a judge ranking
    perfectly within 0.60-0.64 was flagged before).  ``within_item_share`` (share < ``MIN_WITHIN_ITEM_SHARE``)
    and a top-1 rate merely not above chance no longer flag a judge: both fired on good judges of
    small unbalanced runs (12.5% false flags at 20 items x 4, 20% correct).  Measured false-flag
    and miss rates over judge quality x run size x class balance: tests/stats/HEALTH_GRID.md
    (``python -m tests.stats.health_grid``).

    Parameters
    ----------
    df : DataFrame
        The analysis frame (``item_id, p_yes, correct``, ``by``; ``yes_no_mass`` optional). Rows
        with missing ``p_yes`` or ``correct`` (ungraded) are left out.
    by : sequence of str
        Grouping columns.
    n_boot, seed, confidence
        Item-bootstrap resamples, seed and interval level.

    Returns
    -------
    DataFrame
        One row per group: ``*by`` then the columns above plus ``n, n_items, n_items_ranked``,
        ``degenerate, reasons``. (One wide row per judge x mode: a report, not a long table.)

    A diagnostic of this package, not a published metric; the AUROC is the discrimination
    measure of Kadavath et al. 2022 and the yes/no mass check guards their P(True) read-out.
    """
    keys, groups = per_group(df, what="judge_health", needed=["p_yes", "correct"], by=by, n_boot=n_boot,
                              seed=seed, confidence=confidence)
    rows = []
    for grp in groups:
        key, g, items, boot = grp.key, grp.frame, grp.items, grp.boot
        p = g["p_yes"].to_numpy(float)
        y = grp.labels()
        codes, _ = pd.factorize(items, sort=True)
        n = int(p.size)
        mass = (
            float(g["yes_no_mass"].astype(float).mean())
            if "yes_no_mass" in g.columns and g["yes_no_mass"].notna().any()
            else np.nan
        )
        sd = float(np.std(p, ddof=1)) if n > 1 else np.nan
        logit = np.log(np.clip(p, _CLIP, 1 - _CLIP) / (1 - np.clip(p, _CLIP, 1 - _CLIP)))
        logit_sd = float(np.std(logit, ddof=1)) if n > 1 else np.nan
        within = _within_share(_residual_after_correct(logit, y), codes)
        auc = auc_score(y, p)
        a_lo = a_hi = np.nan
        if np.isfinite(auc):
            a_lo, a_hi = boot.ci_weighted(lambda w: weighted_auc(p, y, w))
        conc, pairs = _within_pairs(p, y, codes)
        w_auc = w_lo = w_hi = np.nan
        if pairs.size:
            w_auc = float(conc.sum() / pairs.sum())
            pair_boot = ClusterBootstrap(np.arange(pairs.size), n_boot=n_boot, seed=seed, confidence=confidence)
            w_lo, w_hi = pair_boot.ci_ratio(conc, pairs)
        top, chance = _top1(p, y.astype(float), codes)
        if top.size:
            top_rate, chance_rate = float(top.mean()), float(chance.mean())
            item_boot = ClusterBootstrap(np.arange(top.size), n_boot=n_boot, seed=seed, confidence=confidence)
            t_lo, t_hi = item_boot.ci_ratio(top - chance, np.ones_like(top))
        else:
            top_rate = chance_rate = t_lo = t_hi = np.nan

        reasons = []
        # discrimination is shown when the pooled or the within-item AUROC interval lies above chance
        shown = ((np.isfinite(a_lo) and a_lo > CHANCE_AUROC and auc >= MIN_AUROC)
                 or (np.isfinite(w_lo) and w_lo > CHANCE_AUROC))
        if np.isfinite(logit_sd) and logit_sd < MIN_LOGIT_SD and not shown:
            # a narrow band is not a fault in itself (a judge ranking perfectly within 0.60-0.64
            # is usable): only a narrow band that does not separate correct from wrong is flagged
            sd_txt = f"{sd:.2f}" if sd >= 0.01 else f"{sd:.1g}"
            reasons.append(f"P(Yes) nearly constant: sd {sd_txt} ({logit_sd:.2g} on the logit scale) "
                           f"across {n} candidates")
        if np.isfinite(mass) and mass < MIN_YES_NO_MASS:
            reasons.append(f"only {mass:.0%} of next-token mass on yes/no")
        if np.isfinite(auc):
            ci = f"AUROC {auc:.2f} [{a_lo:.2f}, {a_hi:.2f}]"
            if np.isfinite(a_hi) and a_hi < CHANCE_AUROC:
                reasons.append(f"{ci} is below chance: wrong answers get higher P(Yes) than correct ones")
            elif np.isfinite(a_lo) and a_lo <= CHANCE_AUROC <= a_hi:
                reasons.append(f"AUROC CI includes 0.5: {ci}")
            elif auc < MIN_AUROC:
                reasons.append(f"{ci} is weak (below {MIN_AUROC})")
        if (np.isfinite(w_auc) and pairs.size >= MIN_ITEMS_WITHIN and not (np.isfinite(auc) and auc >= GOOD_AUROC)
                and not (np.isfinite(w_lo) and w_lo > CHANCE_AUROC)):
            reasons.append(
                f"does not rank the candidates of the same item: within-item AUROC {w_auc:.2f} "
                f"[{w_lo:.2f}, {w_hi:.2f}] over {pairs.size} items (the judge reacts to the question, "
                "not the answer)"
            )
        if top.size and np.isfinite(t_hi) and t_hi < 0:
            reasons.append(
                f"top-rated candidate is correct in {top_rate:.0%} of {top.size} items "
                f"vs {chance_rate:.0%} by chance"
            )
        rows.append(
            {**key, "n": n, "n_items": int(pd.unique(items).size), "yes_no_mass": mass,
             "p_yes_mean": float(p.mean()) if n else np.nan, "p_yes_sd": sd,
             "p_yes_min": float(p.min()) if n else np.nan, "p_yes_max": float(p.max()) if n else np.nan,
             "p_yes_range": float(p.max() - p.min()) if n else np.nan,
             "logit_sd": logit_sd, "within_item_share": within, "auroc": auc, "auroc_ci_low": a_lo, "auroc_ci_high": a_hi,
             "top1_rate": top_rate, "chance_rate": chance_rate,
             "top1_minus_chance": top_rate - chance_rate if top.size else np.nan,
             "top1_ci_low": t_lo, "top1_ci_high": t_hi, "n_items_ranked": int(top.size),
             "within_auroc": w_auc, "within_auroc_ci_low": w_lo, "within_auroc_ci_high": w_hi,
             "degenerate": bool(reasons), "reasons": "; ".join(reasons)}
        )
    out = pd.DataFrame(rows, columns=[*keys, *_COLUMNS])
    out["degenerate"] = out["degenerate"].astype(bool)
    return out


# --------------------------------------------------------------------------------------------
# pairwise judges
# --------------------------------------------------------------------------------------------

#: Share of pairs whose two presentation orders give the same verdict below which a pairwise
#: judge is position-degenerate. Set by simulation (tests/stats/test_health.py): a judge that
#: always picks the first (or second) position agrees in 0% of pairs; the simulated informative
#: judges of ``simulate_run`` (position bias up to 1 logit) agree in >= 60% of pairs.
MIN_ORDERS_AGREE = 0.35
#: |P(first position chosen) - 0.5| above which a pairwise judge is position-degenerate: a
#: position-locked judge is at 0.5, the simulated informative judges at <= 0.2.
MAX_POSITION_BIAS = 0.3

_PAIR_HEALTH_COLUMNS = ["n", "n_items", "orders_agree", "orders_agree_ci_low", "orders_agree_ci_high",
                        "p_first", "p_first_ci_low", "p_first_ci_high", "degenerate", "reasons"]


def pairwise_health(
    pairwise_df: pd.DataFrame,
    by: Sequence[str] = ("judge",),
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Health check of a pairwise judge: does its verdict depend on the answers or on the order?

    Each pair is judged in both orders. Per group of ``Run.pairwise_frame()``:

    * ``orders_agree``: share of pairs whose two orders pick the same candidate (from the
      ``verdict`` column when present -- ``'a'``, ``'b'`` or ``'inconsistent'`` -- else from the
      probabilities: both ``p_a_first`` and ``p_a_second`` strictly above 0.5, or both strictly
      below; a probability of exactly 0.5 picks nobody, so a constant-0.5 judge agrees in 0% of
      pairs.  A precomputed ``orders_agree`` column is not trusted: ``(p > 0.5) == (q > 0.5)``
      counts two ties at 0.5 as agreement);
    * ``p_first``: mean probability that the candidate shown *first* is chosen,
      ``(p_a_first + 1 - p_a_second) / 2`` per pair (0.5: no position bias).

    Both with item-bootstrap intervals. ``degenerate`` when ``orders_agree <
    MIN_ORDERS_AGREE`` or ``|p_first - 0.5| > MAX_POSITION_BIAS`` (position-locked: the order,
    not the answers, decides), with ``reasons`` in words. The published pairwise metrics of a
    position-degenerate judge (Panickssery, Wataoka pairwise, Chen) are not interpretable:
    :func:`summarize` reports them as such. Order effects in LLM judges: Zheng et al. 2023
    ("Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena"), Wang et al. 2023 ("Large Language
    Models are not Fair Evaluators").

    Parameters
    ----------
    pairwise_df : DataFrame
        ``item_id, judge, p_a_first, p_a_second`` (``orders_agree``, ``verdict`` optional).
    by : sequence of str
        Grouping columns.
    n_boot, seed, confidence
        Item-bootstrap resamples, seed and level.

    Returns
    -------
    DataFrame
        One row per group: ``*by, n, n_items, orders_agree, orders_agree_ci_low,
        orders_agree_ci_high, p_first, p_first_ci_low, p_first_ci_high, degenerate, reasons``.
    """
    check_columns(pairwise_df, ["item_id", "p_a_first", "p_a_second", *by], "pairwise_health")
    data = drop_missing(pairwise_df, ["p_a_first", "p_a_second"])
    keys = list(by)
    rows = []
    for key, g in iter_groups(data, keys):
        f = g["p_a_first"].to_numpy(float)
        s = g["p_a_second"].to_numpy(float)
        if "verdict" in g.columns:
            agree = (g["verdict"].astype(str) != "inconsistent").to_numpy(float)
        else:
            agree = (((f > 0.5) & (s > 0.5)) | ((f < 0.5) & (s < 0.5))).astype(float)
        first = (f + 1.0 - s) / 2.0
        items = g["item_id"].to_numpy(dtype=object)
        boot = ClusterBootstrap(items, n_boot=n_boot, seed=seed, confidence=confidence)
        one = np.ones_like(first)
        a_lo, a_hi = boot.ci_ratio(agree, one)
        f_lo, f_hi = boot.ci_ratio(first, one)
        share, p_first = float(agree.mean()), float(first.mean())
        reasons = []
        if share < MIN_ORDERS_AGREE:
            reasons.append(f"the two presentation orders agree in only {share:.0%} of {len(g)} pairs")
        if abs(p_first - 0.5) > MAX_POSITION_BIAS:
            side = "first" if p_first > 0.5 else "second"
            reasons.append(f"the candidate shown {side} is chosen with probability "
                           f"{max(p_first, 1 - p_first):.2f} (position-locked)")
        rows.append({**key, "n": int(len(g)), "n_items": int(pd.unique(items).size),
                     "orders_agree": share, "orders_agree_ci_low": a_lo, "orders_agree_ci_high": a_hi,
                     "p_first": p_first, "p_first_ci_low": f_lo, "p_first_ci_high": f_hi,
                     "degenerate": bool(reasons), "reasons": "; ".join(reasons)})
    out = pd.DataFrame(rows, columns=[*keys, *_PAIR_HEALTH_COLUMNS])
    out["degenerate"] = out["degenerate"].astype(bool)
    return out
