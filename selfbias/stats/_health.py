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
    _bool_array,
    _clean,
    _ClusterBootstrap,
    _groups,
    _require,
)
from ._discrimination import _auc, _weighted_auc

__all__ = [
    "CHANCE_AUROC",
    "MIN_AUROC",
    "MIN_P_YES_SD",
    "MIN_WITHIN_ITEM_SHARE",
    "MIN_YES_NO_MASS",
    "judge_health",
]

#: P(Yes) standard deviation (across candidates) below which P(Yes) counts as nearly constant.
MIN_P_YES_SD = 0.05
#: Mean next-token probability mass on yes/no spellings below which the judge is not answering
#: the yes/no question (P(Yes) is then renormalised from a small remainder).
MIN_YES_NO_MASS = 0.5
#: AUROC (correct vs wrong) below which a judge discriminates too weakly to be read.
MIN_AUROC = 0.6
#: AUROC of a judge that cannot tell correct from wrong.
CHANCE_AUROC = 0.5
#: Share of P(Yes) variance that is between candidates of the same item, below which the judge
#: mostly reacts to the question (item) rather than to the answer.
MIN_WITHIN_ITEM_SHARE = 0.2

_COLUMNS = [
    "n", "n_items", "yes_no_mass", "p_yes_mean", "p_yes_sd", "p_yes_min", "p_yes_max",
    "p_yes_range", "within_item_share", "auroc", "auroc_ci_low", "auroc_ci_high", "top1_rate",
    "chance_rate", "top1_minus_chance", "top1_ci_low", "top1_ci_high", "n_items_ranked",
    "degenerate", "reasons",
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


def _top1(p: np.ndarray, y: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per item with >= 2 candidates: share correct among the top-rated (ties split evenly) and
    the chance rate #correct / #candidates."""
    top, chance = [], []
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.r_[True, codes[order][1:] != codes[order][:-1], True])
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        r = order[lo:hi]
        if r.size < 2:
            continue
        best = p[r] == p[r].max()
        top.append(y[r][best].mean())
        chance.append(y[r].mean())
    return np.asarray(top, float), np.asarray(chance, float)


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
    * ``within_item_share``: share of the P(Yes) sum of squares that lies between candidates of
      the same item (the rest is between items), ``SS_within / SS_total``;
    * ``auroc`` with item-bootstrap ``auroc_ci_low, auroc_ci_high`` (correct vs wrong);
    * ``top1_rate``: over items with >= 2 candidates, how often the top-rated candidate is correct
      (tied top candidates share the item evenly); ``chance_rate``: mean over those items of
      #correct / #candidates (a random pick); ``top1_minus_chance`` with item-bootstrap interval.

    ``degenerate`` is True when any check fails; ``reasons`` lists the failed checks in words
    ("; "-separated). The checks, with the module constants as thresholds: P(Yes) sd <
    ``MIN_P_YES_SD``; mean yes/no mass < ``MIN_YES_NO_MASS``; AUROC interval includes 0.5 or lies
    below it, or AUROC < ``MIN_AUROC``; within-item share < ``MIN_WITHIN_ITEM_SHARE``; top-1
    accuracy not above chance (interval of the difference reaches 0).

    Returns one row per group: ``*by`` then the columns above plus ``n, n_items,
    n_items_ranked``. (One wide row per judge x mode: a report, not a long table.)

    A diagnostic of this package, not a published metric; the AUROC is the discrimination
    measure of Kadavath et al. 2022 and the yes/no mass check guards their P(True) read-out.
    """
    _require(df, ["item_id", "p_yes", "correct", *by], "judge_health")
    data = _clean(df, ["p_yes", "correct"])
    keys = list(by)
    rows = []
    for key, g in _groups(data, keys):
        p = g["p_yes"].to_numpy(float)
        y = _bool_array(g["correct"])
        items = g["item_id"].to_numpy(dtype=object)
        codes, _ = pd.factorize(items, sort=True)
        n = int(p.size)
        boot = _ClusterBootstrap(items, n_boot=n_boot, seed=seed, confidence=confidence)
        mass = (
            float(g["yes_no_mass"].astype(float).mean())
            if "yes_no_mass" in g.columns and g["yes_no_mass"].notna().any()
            else np.nan
        )
        sd = float(np.std(p, ddof=1)) if n > 1 else np.nan
        within = _within_share(p, codes)
        auc = _auc(y, p)
        a_lo = a_hi = np.nan
        if np.isfinite(auc):
            a_lo, a_hi = boot.ci_weighted(lambda w: _weighted_auc(p, y, w))
        top, chance = _top1(p, y.astype(float), codes)
        if top.size:
            top_rate, chance_rate = float(top.mean()), float(chance.mean())
            item_boot = _ClusterBootstrap(np.arange(top.size), n_boot=n_boot, seed=seed, confidence=confidence)
            t_lo, t_hi = item_boot.ci_ratio(top - chance, np.ones_like(top))
        else:
            top_rate = chance_rate = t_lo = t_hi = np.nan

        reasons = []
        if np.isfinite(sd) and sd < MIN_P_YES_SD:
            sd_txt = f"{sd:.2f}" if sd >= 0.01 else f"{sd:.1g}"
            reasons.append(f"P(Yes) nearly constant: sd {sd_txt} across {n} candidates")
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
        if np.isfinite(within) and within < MIN_WITHIN_ITEM_SHARE:
            reasons.append(
                f"only {within:.0%} of P(Yes) variance is between candidates of the same item "
                "(the judge reacts to the question, not the answer)"
            )
        if top.size and not (np.isfinite(t_lo) and t_lo > 0):
            reasons.append(
                f"top-rated candidate is correct in {top_rate:.0%} of {top.size} items "
                f"vs {chance_rate:.0%} by chance"
            )
        rows.append(
            {**key, "n": n, "n_items": int(pd.unique(items).size), "yes_no_mass": mass,
             "p_yes_mean": float(p.mean()) if n else np.nan, "p_yes_sd": sd,
             "p_yes_min": float(p.min()) if n else np.nan, "p_yes_max": float(p.max()) if n else np.nan,
             "p_yes_range": float(p.max() - p.min()) if n else np.nan,
             "within_item_share": within, "auroc": auc, "auroc_ci_low": a_lo, "auroc_ci_high": a_hi,
             "top1_rate": top_rate, "chance_rate": chance_rate,
             "top1_minus_chance": top_rate - chance_rate if top.size else np.nan,
             "top1_ci_low": t_lo, "top1_ci_high": t_hi, "n_items_ranked": int(top.size),
             "degenerate": bool(reasons), "reasons": "; ".join(reasons)}
        )
    out = pd.DataFrame(rows, columns=[*keys, *_COLUMNS])
    out["degenerate"] = out["degenerate"].astype(bool)
    return out
