"""Balance of the list design: are the lists the judge saw the same whether its answer was right or wrong?

The list modes' design (ARCHITECTURE.md, "Matched lists") sets every list feature without looking at
the judged answer's correctness. :func:`list_balance` checks that on a run: each feature by the
judged answer's correctness, per judge and list mode, with a test of the difference -- the balance
table of a randomised experiment (CONSORT's baseline table; Imbens & Rubin 2015, ch. 14).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats as st

from ._bootstrap import check_columns

__all__ = ["BALANCE_FEATURES", "list_balance"]

LIST_MODES = ("own_samples", "alternatives")
BALANCE_FEATURES = ("list_length", "list_has_correct", "correct_position", "list_mean_loglik")
_COLUMNS = ["judge", "mode", "feature", "mean_correct", "mean_wrong", "difference", "ci_low", "ci_high",
            "p_value", "mde_80", "n_correct", "n_wrong", "n_items", "method"]
_POWER = 0.8


def _demean(v: np.ndarray, groups: np.ndarray) -> np.ndarray:
    sums = np.bincount(groups, weights=v)
    counts = np.bincount(groups)
    return v - (sums / counts)[groups]


def _clustered_difference(y: np.ndarray, x: np.ndarray, groups: np.ndarray, alpha: float,
                          within_item: bool) -> dict:
    """OLS of ``y`` on ``x`` (0/1) -- with an intercept, or with item fixed effects (both sides
    demeaned by item) -- and item-clustered errors: the difference, its t interval and p-value on
    G - 1 df, and the difference detectable with 80% power."""
    n_groups = int(groups.max()) + 1
    if np.ptp(y) == 0:  # the feature does not vary: no difference, nothing to test
        return {"difference": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0, "mde_80": 0.0,
                "method": "constant: no variation"}
    if within_item:
        y, x = _demean(y, groups), _demean(x, groups)
        exog = x[:, None]
        method = "OLS on correct with item fixed effects, item-clustered (t, G-1 df)"
    else:
        exog = np.column_stack([np.ones(len(y)), x])
        method = "OLS on correct, item-clustered (t, G-1 df)"
    if n_groups < 2 or np.ptp(x) == 0:
        return {"difference": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "mde_80": np.nan,
                "method": "not tested: correctness does not vary" + (" within items" if within_item else "")}
    fit = sm.OLS(y, exog).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    j = exog.shape[1] - 1
    se = float(np.asarray(fit.bse)[j])
    t_crit = st.t.ppf(1 - alpha / 2, n_groups - 1)
    lo, hi = np.asarray(fit.conf_int(alpha=alpha))[j]
    return {"difference": float(np.asarray(fit.params)[j]), "ci_low": float(lo), "ci_high": float(hi),
            "p_value": float(np.asarray(fit.pvalues)[j]),
            "mde_80": float((t_crit + st.t.ppf(_POWER, n_groups - 1)) * se), "method": method}


def list_balance(frame: pd.DataFrame, *, alpha: float = 0.05, within_item: bool = True) -> pd.DataFrame:
    """Every list feature by the judged answer's correctness, per judge and list mode, with a test.

    Measures whether the list a judge saw depends on whether the answer it judged was right -- a
    design that lets it would tell the judge the verdict (issue 23). Features (columns of the
    analysis frame, :data:`BALANCE_FEATURES`): ``list_length``; ``list_has_correct`` (0/1);
    ``correct_position`` (the correct answer's slot, among rows whose list holds one);
    ``list_mean_loglik`` (mean log-likelihood of the listed answers under the judge: their
    plausibility). Graded rows of the list modes only.

    Test: for each judge, mode and feature, an OLS of the feature on ``correct`` (0/1) with item
    fixed effects (``within_item``, default; else with an intercept only: the pooled difference of
    means), item-clustered (sandwich) errors and a t test on G - 1 degrees of freedom (G items),
    since the candidates of an item share one pool. Within items is what the design promises: its
    draws ignore the judged answer's correctness, while which items can hold a correct answer at
    all (the judge has a correct answer of its own) is a property of the item, and items differ
    in how many wrong candidates they have, so pooled means may differ between correct and wrong
    answers without any list telling the judge which its answer is. ``mean_correct`` and
    ``mean_wrong`` are the raw (pooled) means either way. Power: ``mde_80`` is the difference the test detects with 80% power at level
    ``alpha`` (two-sided), (t_{1-alpha/2} + t_{0.8}) x SE on G - 1 df, i.e. about 2.8 standard
    errors; a balanced design shows differences inside their interval and small against it. A
    feature that does not vary (every list of length k) has difference 0 and p = 1.

    Parameters
    ----------
    frame : DataFrame
        The analysis frame (``judge, mode, item_id, correct`` and the feature columns present;
        missing features are left out).
    alpha : float
        Level of the test and of the ``1 - alpha`` intervals.
    within_item : bool
        Compare correct and wrong answers of the same item (item fixed effects).

    Returns
    -------
    DataFrame
        One row per judge x mode x feature: ``judge, mode, feature, mean_correct, mean_wrong,
        difference, ci_low, ci_high, p_value, mde_80, n_correct, n_wrong, n_items, method``.

    Raises
    ------
    ValueError
        The frame lacks ``judge``, ``mode``, ``item_id`` or ``correct``, or holds no graded
        list-mode rows.
    """
    check_columns(frame, ["judge", "mode", "item_id", "correct"], "list_balance")
    data = frame[frame["mode"].isin(LIST_MODES) & frame["correct"].notna()]
    if data.empty:
        raise ValueError("list_balance needs graded rows of mode own_samples or alternatives; the frame has none")
    features = [f for f in BALANCE_FEATURES if f in data.columns]
    rows = []
    for (judge, mode), g in data.groupby(["judge", "mode"], sort=True):
        correct = g["correct"].astype(bool).to_numpy()
        for feature in features:
            sel = np.ones(len(g), dtype=bool)
            if feature == "correct_position" and "list_has_correct" in g.columns:
                sel = g["list_has_correct"].fillna(False).astype(bool).to_numpy()
            y = pd.to_numeric(g[feature], errors="coerce").astype(float).to_numpy()
            sel = sel & np.isfinite(y)
            yc, xc = y[sel], correct[sel].astype(float)
            groups = pd.factorize(g["item_id"].to_numpy()[sel])[0]
            base = {"judge": judge, "mode": mode, "feature": feature,
                    "mean_correct": float(yc[xc == 1].mean()) if (xc == 1).any() else np.nan,
                    "mean_wrong": float(yc[xc == 0].mean()) if (xc == 0).any() else np.nan,
                    "n_correct": int((xc == 1).sum()), "n_wrong": int((xc == 0).sum()),
                    "n_items": int(groups.max() + 1) if groups.size else 0}
            if yc.size == 0:
                rows.append({**base, "difference": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                             "p_value": np.nan, "mde_80": np.nan, "method": "not tested: no rows"})
                continue
            rows.append({**base, **_clustered_difference(yc, xc, groups, alpha, within_item)})
    return pd.DataFrame(rows, columns=_COLUMNS)
