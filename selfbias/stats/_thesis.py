"""The thesis of the project as one estimate: is a judge's trust in its own wrong answers a
familiarity effect that external alternatives break?

Two questions, both on the judge's *own wrong* answers (``self_authored & ~correct``), comparing
the mode that shows external alternatives (``alternatives``) with the mode that shows the same
number of the model's own samples (``own_samples``) -- so "a list was shown" is held fixed and
only "where the list came from" changes:

1. does P(Yes) on them drop (paired within candidate, item-clustered interval and test)?
2. does the link from the judge's within-item log-likelihood to its confidence weaken for them
   (the ``z_loglik x mode x self_authored`` term of a fractional logit on wrong answers)?

With the list design's cell (``list_has_correct``: the list holds a correct answer, drawn
independently of the judged answer's correctness; ARCHITECTURE.md, "Matched lists") the P(Yes)
comparison is split into the four cells (outside vs own list, with and without a correct answer
listed) and their interaction: does an outside correct answer lower confidence in an own wrong
answer more than an own correct sample does?
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm

from ._bootstrap import (
    DEFAULT_CONFIDENCE,
    DEFAULT_N_BOOT,
    DEFAULT_N_PERM,
    bool_array,
    ClusterBootstrap,
    check_columns,
)
from ._comparison import sign_flip_test
from ._regression import cr2_contrasts, design_frame, within_item_exog

__all__ = ["ThesisResult", "thesis_effect"]

EXTERNAL = "alternatives"
OWN = "own_samples"
_COLUMNS = ["judge", "estimand", "estimate", "ci_low", "ci_high", "p_value", "n", "n_items", "method",
            "own_list_loglik", "outside_list_loglik"]
CELLS = (("no_correct", False), ("with_correct", True))
_SLOPE_TERMS = ["z_loglik", "z_loglik_between", "log_n_tokens", "self_authored", "external",
                "external:self_authored", "z_loglik:self_authored", "z_loglik:external",
                "z_loglik:external:self_authored"]


@dataclass(frozen=True, eq=False)
class ThesisResult:
    """The thesis estimate (see :func:`thesis_effect`).

    Attributes
    ----------
    table : DataFrame
        One row per judge x estimand: ``judge, estimand, estimate, ci_low, ci_high, p_value, n,
        n_items, method, own_list_loglik, outside_list_loglik``. Estimands: ``p_yes_shift`` (mean
        paired P(Yes) difference external minus own samples on own wrong answers),
        ``slope_change_own_wrong`` (change of the within-item likelihood slope, logit per SD, on
        own wrong answers), ``slope_change_vs_other`` (the three-way term: that change minus the
        change on other sources' wrong answers); with a list-design column (``list_has_correct``,
        else ``gold_shown``) also the cells, on own wrong answers judged in both modes:
        ``p_yes_own_list_<cell>`` and ``p_yes_outside_list_<cell>`` (mean P(Yes)),
        ``p_yes_shift_<cell>`` (mean paired difference outside minus own) for ``<cell>`` =
        ``no_correct`` / ``with_correct``, and ``p_yes_shift_interaction`` (``with_correct``
        minus ``no_correct`` shift: negative when an outside correct answer lowers confidence in
        an own wrong answer more than an own correct answer does). ``own_list_loglik`` /
        ``outside_list_loglik``: mean log-likelihood under the judge of the listed answers of
        those rows (the plausibility the lists were matched on; NaN where not recorded).
        With the list-design column also the within-item likelihood slope on own wrong answers
        (logit per SD) per cell: ``slope_own_list_<cell>``, ``slope_outside_list_<cell>``, their
        difference ``slope_change_<cell>`` and ``slope_change_interaction`` (``with_correct``
        minus ``no_correct`` change).
    sentences : tuple of str
        The result in words, with its direction, one per judge.
    notes : tuple of str
        Rows dropped (ungraded, gold shown, unequal list length) and fitting problems.
    """

    table: pd.DataFrame
    sentences: tuple[str, ...]
    notes: tuple[str, ...]

    def estimate(self, estimand: str, judge: str | None = None) -> float:
        """One estimate of :attr:`table`.

        Parameters
        ----------
        estimand : str
            ``p_yes_shift``, ``slope_change_own_wrong`` or ``slope_change_vs_other``.
        judge : str, optional
            The judge (needed when the table holds several).

        Returns
        -------
        float

        Raises
        ------
        KeyError
            Not exactly one row for the estimand and judge.
        """
        t = self.table[self.table["estimand"] == estimand]
        if judge is not None:
            t = t[t["judge"] == judge]
        if len(t) != 1:
            raise KeyError(f"{len(t)} rows for estimand {estimand!r}, judge {judge!r}")
        return float(t["estimate"].iloc[0])


def _filter(df: pd.DataFrame, exclude_gold_shown: bool, notes: list[str]) -> pd.DataFrame:
    data = df[df["mode"].isin([EXTERNAL, OWN])]
    ungraded = int(data["correct"].isna().sum())
    if ungraded:
        notes.append(f"left out {ungraded} ungraded rows (correct is missing)")
    data = data[data["correct"].notna() & data["p_yes"].notna()]
    if "gold_shown" in data.columns and exclude_gold_shown:
        shown = data["gold_shown"].fillna(False).astype(bool).to_numpy()
        notes.append(f"dropped {int(shown.sum())} of {len(data)} judgments whose shown list contained a "
                     "correct answer (gold_shown)")
        data = data[~shown]
    elif "gold_shown" not in data.columns:
        notes.append("no gold_shown column: judgments whose list contained a correct answer are included")
    return data


def _paired_shift(data: pd.DataFrame, n_boot, n_perm, seed, confidence, notes) -> dict:
    key = ["item_id", "candidate_id"]
    own_wrong = data[bool_array(data["self_authored"]) & ~bool_array(data["correct"])]
    cols = [*key, "p_yes", *(["list_length"] if "list_length" in data.columns else [])]
    ext = own_wrong[own_wrong["mode"] == EXTERNAL][cols].drop_duplicates(subset=key)
    own = own_wrong[own_wrong["mode"] == OWN][cols].drop_duplicates(subset=key)
    m = ext.merge(own, on=key, suffixes=("_ext", "_own"))
    if "list_length" in data.columns:
        same = (m["list_length_ext"] == m["list_length_own"]).to_numpy()
        if (~same).any():
            notes.append(f"dropped {int((~same).sum())} own wrong answers whose two lists differ in length")
        m = m[same]
    d = (m["p_yes_ext"] - m["p_yes_own"]).to_numpy(float)
    items = m["item_id"].to_numpy(dtype=object)
    out = {"estimand": "p_yes_shift", "n": int(d.size), "n_items": int(pd.unique(items).size),
           "method": "paired mean, item bootstrap, item sign-flip test"}
    if d.size == 0:
        return {**out, "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan}
    boot = ClusterBootstrap(items, n_boot=n_boot, seed=seed, confidence=confidence)
    lo, hi = boot.ci_ratio(d, np.ones_like(d))
    codes = pd.factorize(items, sort=True)[0]
    _, p = sign_flip_test(codes, d, n_perm, seed) if n_perm > 0 else (np.nan, np.nan)
    return {**out, "estimate": float(d.mean()), "ci_low": lo, "ci_high": hi, "p_value": p}


def _design_column(data: pd.DataFrame) -> str | None:
    for col in ("list_has_correct", "gold_shown"):
        if col in data.columns:
            return col
    return None


def _blank(estimand: str, method: str) -> dict:
    return {"estimand": estimand, "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan,
            "n": 0, "n_items": 0, "method": method}


def _cells(data: pd.DataFrame, confidence: float, notes: list[str]) -> list[dict]:
    """The four cells and the interaction on own wrong answers judged in both list modes."""
    col = _design_column(data)
    if col is None:
        notes.append("no list_has_correct or gold_shown column: the four cells are not estimated")
        return []
    key = ["item_id", "candidate_id"]
    own_wrong = data[bool_array(data["self_authored"]) & ~bool_array(data["correct"])]
    keep = [*key, "p_yes", col, *[c for c in ("list_length", "list_mean_loglik") if c in data.columns]]
    ext = own_wrong[own_wrong["mode"] == EXTERNAL][keep].drop_duplicates(subset=key)
    own = own_wrong[own_wrong["mode"] == OWN][keep].drop_duplicates(subset=key)
    m = ext.merge(own, on=key, suffixes=("_ext", "_own"))
    same = (m[f"{col}_ext"].fillna(False).astype(bool) == m[f"{col}_own"].fillna(False).astype(bool)).to_numpy()
    if "list_length" in data.columns:
        same = same & (m["list_length_ext"] == m["list_length_own"]).to_numpy()
    if (~same).any():
        notes.append(f"cells: dropped {int((~same).sum())} own wrong answers whose two lists differ in length "
                     f"or in {col}")
    m = m[same].reset_index(drop=True)
    h = m[f"{col}_ext"].fillna(False).astype(bool).to_numpy()
    d = (m["p_yes_ext"] - m["p_yes_own"]).to_numpy(float)
    items = m["item_id"].to_numpy(dtype=object)
    ll = {side: (m[f"list_mean_loglik_{side}"].to_numpy(float) if "list_mean_loglik_ext" in m.columns
                 else np.full(len(m), np.nan)) for side in ("own", "ext")}
    rows = []
    for name, flag in CELLS:
        sel = h == flag
        n, n_items = int(sel.sum()), int(pd.unique(items[sel]).size)
        plaus = {"own_list_loglik": _nanmean(ll["own"][sel]), "outside_list_loglik": _nanmean(ll["ext"][sel])}
        for estimand, values in ((f"p_yes_own_list_{name}", m["p_yes_own"].to_numpy(float)),
                                 (f"p_yes_outside_list_{name}", m["p_yes_ext"].to_numpy(float)),
                                 (f"p_yes_shift_{name}", d)):
            rows.append({"estimand": estimand, **_clustered_mean(values[sel], items[sel], confidence),
                         "n": n, "n_items": n_items, **plaus})
    rows.append(_interaction(d, h, items, confidence, notes))
    return rows + _slope_cells(data, m[key], col, confidence, notes)


def _clustered_mean(values: np.ndarray, items: np.ndarray, confidence: float) -> dict:
    """Mean with an item-clustered (sandwich) t interval and test of 0 on G - 1 df: OLS on a constant."""
    method = "cell mean, item-clustered (t, G-1 df)"
    groups = pd.factorize(items)[0]
    if values.size == 0:
        return {"estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "method": method}
    if values.size < 2 or groups.max() < 1 or np.ptp(values) == 0:
        return {"estimate": float(values.mean()), "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan,
                "method": method}
    fit = sm.OLS(values, np.ones((values.size, 1))).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    lo, hi = np.asarray(fit.conf_int(alpha=1 - confidence))[0]
    return {"estimate": float(values.mean()), "ci_low": float(lo), "ci_high": float(hi),
            "p_value": float(np.asarray(fit.pvalues)[0]), "method": method}


def _nanmean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else np.nan


def _interaction(d: np.ndarray, h: np.ndarray, items: np.ndarray, confidence: float, notes: list[str]) -> dict:
    """``with_correct`` minus ``no_correct`` mean paired shift: the coefficient of the cell in an OLS
    of the paired difference on it, with item-clustered (sandwich) errors and t on G - 1 df."""
    method = "difference of cell shifts: OLS on the cell, item-clustered (t, G-1 df)"
    groups = pd.factorize(items)[0]
    out = {**_blank("p_yes_shift_interaction", method), "n": int(d.size), "n_items": int(pd.unique(items).size),
           "own_list_loglik": np.nan, "outside_list_loglik": np.nan}
    if d.size < 3 or h.all() or not h.any() or groups.max() < 1:
        notes.append("interaction not estimated: own wrong answers in only one cell, or too few")
        return out
    exog = np.column_stack([np.ones(d.size), h.astype(float)])
    fit = sm.OLS(d, exog).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    lo, hi = np.asarray(fit.conf_int(alpha=1 - confidence))[1]
    return {**out, "estimate": float(fit.params[1]), "ci_low": float(lo), "ci_high": float(hi),
            "p_value": float(fit.pvalues[1])}


_SLOPE_METHOD = ("fractional logit on wrong answers with the item means of every within-varying term, "
                 "item-clustered CR2 (t, Bell-McCaffrey df)")
_CELL_SLOPE_METHOD = ("fractional logit on own wrong answers with the item means of every within-varying term, "
                      "item-clustered CR2 (t, Bell-McCaffrey df)")
# the item-level controls taken from the whole frame: the item's mean likelihood and length over all
# of its candidates (the item effects of real runs follow these, not the means over the rows fitted)
_ITEM_CONTROLS = ["z_loglik_between", "log_n_tokens_between"]
_CELL_TERMS = ["z_loglik", "external", "listed", "z_loglik:external", "z_loglik:listed", "external:listed",
               "z_loglik:external:listed", "log_n_tokens"]
#: the within-item likelihood slope on own wrong answers per cell (list author x correct answer listed),
#: as sums of the coefficients of _CELL_TERMS
CELL_SLOPES = {
    "slope_own_list_no_correct": ("z_loglik",),
    "slope_own_list_with_correct": ("z_loglik", "z_loglik:listed"),
    "slope_outside_list_no_correct": ("z_loglik", "z_loglik:external"),
    "slope_outside_list_with_correct": ("z_loglik", "z_loglik:listed", "z_loglik:external",
                                        "z_loglik:external:listed"),
    "slope_change_no_correct": ("z_loglik:external",),
    "slope_change_with_correct": ("z_loglik:external", "z_loglik:external:listed"),
    "slope_change_interaction": ("z_loglik:external:listed",),
}


def _fit_contrasts(rows: pd.DataFrame, terms: list[str], contrasts: dict[str, tuple[str, ...]],
                   confidence: float, method: str) -> list[dict]:
    """A fractional logit (Papke & Wooldridge 1996) of P(Yes) on ``terms``, the item-level
    controls and the item means over ``rows`` of every within-varying term (Mundlak 1978 /
    Papke & Wooldridge 2008's correlated random effects), and the sums of coefficients named by
    ``contrasts`` with CR2 item-clustered errors (Bell & McCaffrey 2002) on the IRLS-weighted fit
    and t intervals with each sum's Bell-McCaffrey df.  Raises ValueError when not identified."""
    items = rows["item_id"].to_numpy()
    groups = pd.factorize(items)[0]
    controls = [c for c in _ITEM_CONTROLS if c in rows.columns and rows[c].nunique() > 1]
    exog = within_item_exog(rows, terms, items, controls)
    x, y = exog.to_numpy(float), rows["p_yes"].to_numpy(float)
    if len(rows) <= x.shape[1] or groups.max() < 1 or np.linalg.matrix_rank(x) < x.shape[1]:
        raise ValueError("too few rows or items, or a term does not vary")
    # every contrast's terms must vary within items, else the slope is not identified from them
    for names in contrasts.values():
        for t in names:
            v = exog[t].to_numpy(float)
            if np.allclose(v, (np.bincount(groups, v) / np.bincount(groups))[groups]):
                raise ValueError(f"{t} does not vary within items")
    params, mu = _fractional_logit(x, y)
    w = np.clip(mu * (1 - mu), 1e-12, None)
    cols = list(exog.columns)
    lmat = np.zeros((len(cols), len(contrasts)))
    for j, names in enumerate(contrasts.values()):
        for t in names:
            lmat[cols.index(t), j] = 1.0
    table = cr2_contrasts(params, np.sqrt(w)[:, None] * x, (y - mu) / np.sqrt(w), groups, lmat,
                          confidence)
    n, n_items = int(len(rows)), int(groups.max() + 1)
    return [{"estimand": e, "estimate": float(r.estimate), "ci_low": float(r.ci_low), "ci_high": float(r.ci_high),
             "p_value": float(r.p_value), "n": n, "n_items": n_items, "method": method}
            for e, r in zip(contrasts, table.itertuples())]


def _fractional_logit(x: np.ndarray, y: np.ndarray, tol: float = 1e-10, max_iter: int = 100
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients and fitted means of the Bernoulli quasi-likelihood (logit link) for y in [0, 1]
    by iteratively reweighted least squares: statsmodels' ``GLM(y, x, Binomial()).fit()`` without
    its per-model set-up cost (tests/stats/test_thesis_within.py compares the two)."""
    beta = np.zeros(x.shape[1])
    eta = np.full(y.size, np.log((y.mean() + 0.5 / y.size) / (1 - y.mean() + 0.5 / y.size)))
    dev_old = np.inf
    for _ in range(max_iter):
        mu = 1 / (1 + np.exp(-eta))
        w = np.clip(mu * (1 - mu), 1e-12, None)
        z = eta + (y - mu) / w
        sw = np.sqrt(w)
        beta = np.linalg.lstsq(sw[:, None] * x, sw * z, rcond=None)[0]
        eta = x @ beta
        mu = 1 / (1 + np.exp(-eta))
        with np.errstate(divide="ignore", invalid="ignore"):
            dev = -2 * float(np.sum(y * np.log(np.clip(mu, 1e-300, None)) + (1 - y) * np.log(np.clip(1 - mu, 1e-300, None))))
        if abs(dev - dev_old) <= tol * (abs(dev) + 0.1):
            break
        dev_old = dev
    return beta, 1 / (1 + np.exp(-eta))


def _slope_change(data: pd.DataFrame, confidence: float, notes: list[str]) -> list[dict]:
    estimands = {"slope_change_own_wrong": ("z_loglik:external", "z_loglik:external:self_authored"),
                 "slope_change_vs_other": ("z_loglik:external:self_authored",)}
    blank = [_blank(e, _SLOPE_METHOD) for e in estimands]
    try:
        design, dropped = design_frame(data)
    except ValueError as exc:
        notes.append(f"slope change not estimated: {exc}")
        return blank
    notes.extend(dropped)
    design["external"] = (design["mode"] == EXTERNAL).astype(float)
    wrong = design[design["correct"] == 0].reset_index(drop=True)
    try:
        return _fit_contrasts(wrong, _SLOPE_TERMS, estimands, confidence, _SLOPE_METHOD)
    except ValueError as exc:
        notes.append("slope change not estimated: too few wrong answers, or self-authorship, mode or "
                     f"within-item likelihood does not vary among them ({exc})")
        return blank


def _slope_cells(data: pd.DataFrame, keys: pd.DataFrame, col: str, confidence: float,
                 notes: list[str]) -> list[dict]:
    """The within-item likelihood slope on own wrong answers per cell (:data:`CELL_SLOPES`), on
    the candidates ``keys`` (item_id, candidate_id) that ``_cells`` pairs."""
    blank = [{**_blank(e, _CELL_SLOPE_METHOD), "own_list_loglik": np.nan, "outside_list_loglik": np.nan}
             for e in CELL_SLOPES]
    try:
        design, _ = design_frame(data, keep=(col, "candidate_id"))
    except ValueError as exc:
        notes.append(f"cell slopes not estimated: {exc}")
        return blank
    design["external"] = (design["mode"] == EXTERNAL).astype(float)
    design["listed"] = design[col].fillna(False).astype(bool).astype(float)
    chosen = pd.MultiIndex.from_frame(keys[["item_id", "candidate_id"]].astype(str))
    at = pd.MultiIndex.from_arrays([design["item_id"].astype(str), design["candidate_id"].astype(str)])
    rows = design[at.isin(chosen) & (design["correct"] == 0) & (design["self_authored"] == 1)]
    try:
        out = _fit_contrasts(rows.reset_index(drop=True), _CELL_TERMS, CELL_SLOPES, confidence, _CELL_SLOPE_METHOD)
    except ValueError as exc:
        notes.append("cell slopes not estimated: they need items with two or more own wrong answers of "
                     f"different likelihood, in both cells ({exc})")
        return blank
    return [{**r, "own_list_loglik": np.nan, "outside_list_loglik": np.nan} for r in out]


def _direction(est: float, lo: float, hi: float, down: str, up: str, unit: str = "") -> tuple[str, str]:
    """(verb, amount) in words: which way the estimate points, and by how much with its interval."""
    if not np.isfinite(est):
        return "does not measurably change", "(could not be estimated)"
    verb = down if est < 0 else up
    amount = f"by {abs(est):.3f}{unit} (estimate {est:+.3f} [{lo:+.3f}, {hi:+.3f}])"
    if np.isfinite(lo) and np.isfinite(hi) and lo <= 0 <= hi:
        amount += ", an interval that includes 0: no clear change"
    return verb, amount


def _sentence(judge: str, shift: dict, slope: dict, level: str) -> str:
    verb, amount = _direction(shift["estimate"], shift["ci_low"], shift["ci_high"], "lowers", "raises")
    s = (f"Judge {judge}: showing external alternatives instead of its own samples (same list length) "
         f"{verb} P(Yes) on its own wrong answers {amount} (n={shift['n']} in {shift['n_items']} items)")
    verb, amount = _direction(slope["estimate"], slope["ci_low"], slope["ci_high"], "weakens", "strengthens",
                              " logit per SD")
    s += (f"; it {verb} the within-item likelihood -> confidence link on them {amount} "
          f"(n={slope['n']} wrong answers)")
    return s + f" ({level} item-clustered intervals)."


def _cell_sentence(cells: list[dict]) -> str:
    by = {r["estimand"]: r for r in cells}
    inter = by.get("p_yes_shift_interaction")
    if inter is None or not np.isfinite(inter["estimate"]):
        return ""
    parts = []
    for name, words in (("no_correct", "without"), ("with_correct", "with")):
        r = by[f"p_yes_shift_{name}"]
        if np.isfinite(r["estimate"]):
            parts.append(f"{words} a correct answer listed the shift is {r['estimate']:+.3f} "
                         f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] (n={r['n']})")
    verb, amount = _direction(inter["estimate"], inter["ci_low"], inter["ci_high"], "more", "less")
    out = (" By cell: " + "; ".join(parts) + f"; a correct answer in the outside list lowers P(Yes) on own "
           f"wrong answers {verb} than one in the own list, {amount} (interaction).")
    slopes = []
    for name, words in (("no_correct", "without"), ("with_correct", "with")):
        r = by.get(f"slope_change_{name}")
        if r is not None and np.isfinite(r["estimate"]):
            slopes.append(f"{words} a correct answer listed {r['estimate']:+.3f} "
                          f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]")
    if slopes:
        out += (" The within-item likelihood slope on own wrong answers changes, outside minus own list, "
                + "; ".join(slopes) + " logit per SD.")
    return out


def thesis_effect(
    frame: pd.DataFrame,
    *,
    exclude_gold_shown: bool = True,
    n_boot: int = DEFAULT_N_BOOT,
    n_perm: int = DEFAULT_N_PERM,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> ThesisResult:
    """Do external alternatives, versus the model's own samples, break a judge's trust in its own
    wrong answers?

    On the judge's own wrong answers (``self_authored & ~correct``), ``alternatives`` (answers
    from other sources shown beside the candidate) against ``own_samples`` (the model's own
    samples, Kadavath et al. 2022's setting; same list length):

    * ``p_yes_shift``: mean paired difference of P(Yes), the same candidate judged in both modes;
      item-bootstrap interval and item sign-flip test (the candidates of an item move together);
    * ``slope_change_own_wrong``: on wrong answers, a fractional logit (Papke & Wooldridge 1996)
      of P(Yes) on the within-item log-likelihood ``z_loglik``, ``log_n_tokens``,
      self-authorship, ``external`` (mode is ``alternatives``) and their interactions; the
      estimand is ``z_loglik:external + z_loglik:external:self_authored``, how much the
      likelihood slope on *own* wrong answers changes when the list is external (negative: the
      familiarity link weakens); ``slope_change_vs_other`` is the three-way term alone (that
      change beyond the change on other sources' wrong answers).  Every slope is within-item
      for every covariate: the item means, over the rows fitted, of every term that varies
      within items are in the model (Mundlak 1978; Papke & Wooldridge 2008's correlated random
      effects; :func:`selfbias.stats._regression.within_item_exog`), beside the item's mean
      likelihood and length over all its candidates -- entered whole, a length term carries the
      item effect into the slope (issue 27).  Errors: item-clustered CR2 sandwich on the
      IRLS-weighted fit (Bell & McCaffrey 2002), t with each estimand's Bell-McCaffrey df; the
      statsmodels cluster errors (CR1, t with G - 1 df) rejected 6.5% at 5% with 30 items.
    * the within-item likelihood slope on own wrong answers per cell (with the list-design
      column): the same fractional logit on own wrong answers judged in both list modes, on
      ``z_loglik x external x listed`` (``listed``: a correct answer in the list) and
      ``log_n_tokens`` with the item means of every within-varying term, giving
      ``slope_own_list_<cell>``, ``slope_outside_list_<cell>``, ``slope_change_<cell>``
      (outside minus own) and ``slope_change_interaction``.  It needs items with two or more
      own wrong answers of different likelihood.  Measured on an independent generator with
      answer length driving likelihood, an item effect tied to mean length and item x mode
      shifts (tests/stats/REFERENCE_VALUES.md, 400 runs each): coverage and size in the table
      there.

    * the four cells (with a ``list_has_correct`` column, else ``gold_shown``): on own wrong
      answers judged in both list modes with the same cell, mean P(Yes) after the own and after
      the outside list and their paired difference, separately without (``no_correct``) and
      with (``with_correct``) a correct answer in the list (item-clustered sandwich t
      intervals and tests on G - 1 df: under the null with item-shared shifts the 95% intervals
      of the two shifts and the interaction covered 94%, 96% and 95% in 400 simulations, where
      an item percentile bootstrap covered 92%), and ``p_yes_shift_interaction``, the
      with-correct shift minus the no-correct shift (OLS of the paired difference on the cell with item-clustered
      sandwich errors, t on G - 1 df); next to each, the mean log-likelihood under the judge of
      the own and outside lists (``own_list_loglik``, ``outside_list_loglik``). The cells read
      every graded judgment whatever ``exclude_gold_shown`` says (the cell is the design's
      factor).

    The thesis predicts the shifts and slope changes negative, and the interaction negative.
    Data handling: rows whose ``correct`` is missing
    (ungraded) are left out and counted; with a ``gold_shown`` column (the shown list contained
    a correct answer) those judgments are dropped by default (``exclude_gold_shown``), since a
    visible correct answer is a different treatment; with a ``list_length`` column, pairs whose
    two lists differ in length are dropped. Each drop is counted in ``notes``.

    Parameters
    ----------
    frame : DataFrame
        The analysis frame with modes ``alternatives`` and ``own_samples``.
    exclude_gold_shown : bool
        Drop judgments whose shown list contained a correct answer (needs ``gold_shown``).
    n_boot, n_perm, seed, confidence
        Bootstrap resamples, sign-flip permutations, seed and interval level.

    Returns
    -------
    ThesisResult
        ``table`` (one row per judge x estimand), ``sentences`` (in words, with direction) and
        ``notes``.
    """
    check_columns(frame, ["item_id", "candidate_id", "judge", "mode", "p_yes", "correct", "self_authored",
                     "sum_logprob", "mean_logprob", "n_tokens"], "thesis_effect")
    modes = set(frame["mode"].astype(str))
    if not {EXTERNAL, OWN} <= modes:
        raise ValueError(f"thesis_effect needs modes {EXTERNAL!r} and {OWN!r}; the frame has {sorted(modes)}")
    notes: list[str] = []
    data = _filter(frame, exclude_gold_shown, notes)
    # the cells read every graded judgment, a correct answer listed or not (the design's factor)
    unfiltered = _filter(frame, False, [])
    rows, sentences = [], []
    level = f"{confidence:.0%}"
    for judge in sorted(pd.unique(data["judge"].astype(str))):
        g = data[data["judge"].astype(str) == judge]
        judge_notes: list[str] = []
        shift = _paired_shift(g, n_boot, n_perm, seed, confidence, judge_notes)
        slopes = _slope_change(g, confidence, judge_notes)
        whole = unfiltered[unfiltered["judge"].astype(str) == judge]
        cells = _cells(whole, confidence, judge_notes)
        notes.extend(f"{judge}: {n}" for n in judge_notes)
        for r in (shift, *slopes, *cells):
            rows.append({"judge": judge, **r})
        sentence = _sentence(judge, shift, slopes[0], level)
        sentences.append(sentence + _cell_sentence(cells))
    return ThesisResult(pd.DataFrame(rows, columns=_COLUMNS), tuple(sentences), tuple(notes))
