"""Misplaced confidence, and the home of the judge-level statistics' old import path.

The statistics live in one module per concept -- :mod:`._bootstrap` (shared machinery),
:mod:`._discrimination`, :mod:`._calibration`, :mod:`._comparison` -- and are re-exported here so
``from selfbias.stats._metrics import ...`` keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ._bootstrap import (  # noqa: F401  (re-exported)
    BOOT_BATCH,
    ESTIMATE_COLUMNS,
    MIN_DEFINED_SHARE,
    DEFAULT_CONFIDENCE,
    DEFAULT_N_BOOT,
    DEFAULT_N_PERM,
    bool_array,
    drop_missing,
    ClusterBootstrap,
    iter_groups,
    keys_with_judge,
    per_group,
    ratio_of_sums,
    check_columns,
    holm,
)
from ._calibration import ece_rms, equal_count_bin_indices, calibration, reliability_table  # noqa: F401
from ._comparison import COMPARISON_MEASURES, comparison_effect  # noqa: F401
from ._discrimination import (  # noqa: F401
    auc_score,
    weighted_auc,
    agreement_discrimination,
    discrimination,
    likelihood_discrimination,
)

__all__ = [
    "COMPARISON_MEASURES",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_N_BOOT",
    "DEFAULT_N_PERM",
    "agreement_discrimination",
    "calibration",
    "comparison_effect",
    "discrimination",
    "holm",
    "likelihood_discrimination",
    "misplaced_confidence",
    "reliability_table",
]


def misplaced_confidence(
    df: pd.DataFrame,
    by: Sequence[str] = ("source", "mode"),
    threshold: float = 0.5,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Misplaced confidence: how much the judge believes wrong answers, next to correct ones.

    For every group (the judge, then ``by``: by default candidate ``source`` -- own greedy, own
    sample, other model, distractor, perturbation, reference -- and judge ``mode``) it reports two
    measures,

    * ``mean_p_yes``: mean P(Yes), and
    * ``share_above_threshold``: share of candidates with P(Yes) > ``threshold`` (on wrong answers
      this is the false-acceptance rate),

    each on wrong answers (``correctness="wrong"``), on correct answers (``"correct"``) and as the
    gap ``correct - wrong`` (``"correct_minus_wrong"``; near 0 means the judge gives wrong answers
    the same confidence as correct ones, i.e. its confidence is misplaced). Cells without rows
    (e.g. correct distractors) are omitted.

    This follows the P(True) self-evaluation of Kadavath et al. 2022 ("Language Models (Mostly)
    Know What They Know"), read on the answers a judge gets wrong.

    Returns one row per group x measure x correctness with columns ``judge, *by, correctness,
    measure, threshold, estimate, ci_low, ci_high, n, n_items``; intervals come from an
    item-clustered bootstrap (the gap is bootstrapped jointly). Rows with missing ``p_yes`` are
    dropped.

    Parameters
    ----------
    df : DataFrame
        The analysis frame (ARCHITECTURE.md); rows with a missing score or ``correct`` (ungraded) are left out.
    by : sequence of str
        Grouping columns (the judge is never pooled).
    threshold : float
        P(Yes) above which a verdict counts as accept.
    n_boot : int
        Item-bootstrap resamples (0: no intervals).
    seed : int
        Seed of the bootstrap / permutations / simulations.
    confidence : float
        Two-sided interval level.
    """
    keys, groups = per_group(df, what="misplaced_confidence", needed=["p_yes", "correct"], by=by,
                              judge_first=True, n_boot=n_boot, seed=seed, confidence=confidence)
    rows = []
    for grp in groups:
        key, g, items, boot = grp.key, grp.frame, grp.items, grp.boot
        p = g["p_yes"].to_numpy(float)
        y = grp.labels()
        for measure, v in (("mean_p_yes", p), ("share_above_threshold", (p > threshold).astype(float))):
            cells = {"wrong": ~y, "correct": y}
            for label, mask in cells.items():
                if not mask.any():
                    continue
                m = mask.astype(float)
                lo, hi = boot.ci_ratio(v * m, m)
                rows.append(
                    {**key, "correctness": label, "measure": measure, "threshold": threshold,
                     "estimate": float(v[mask].mean()), "ci_low": lo, "ci_high": hi,
                     "n": int(mask.sum()), "n_items": int(pd.unique(items[mask]).size)}
                )
            if y.any() and (~y).any():
                mc, mw = y.astype(float), (~y).astype(float)
                lo, hi = boot.ci_ratio_diff(v * mc, mc, v * mw, mw)
                rows.append(
                    {**key, "correctness": "correct_minus_wrong", "measure": measure,
                     "threshold": threshold,
                     "estimate": float(v[y].mean() - v[~y].mean()), "ci_low": lo, "ci_high": hi,
                     "n": int(len(g)), "n_items": int(pd.unique(items).size)}
                )
    cols = [*keys, "correctness", "measure", "threshold", *ESTIMATE_COLUMNS]
    return pd.DataFrame(rows, columns=cols)
