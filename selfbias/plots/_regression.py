"""Forest plot of the likelihood regression's coefficients."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .. import stats as _stats
from ..stats import RegressionResult
from . import _style
from ._common import Degenerate, NoData, attach, errorbar_h, short

_TERM_LABELS = {
    "Intercept": "intercept",
    "z_loglik": "log-likelihood (per SD)",
    "log_n_tokens": "log length (tokens)",
    "correct": "correct",
    "self_authored": "self-authored",
}


def _term_label(term: str) -> str:
    parts = []
    for p in str(term).split(":"):
        if p in _TERM_LABELS:
            parts.append(_TERM_LABELS[p] if ":" not in term else _TERM_LABELS[p].replace(" (per SD)", ""))
        elif p.startswith("mode_"):
            parts.append("mode: " + _style.mode_label(p[5:]))
        elif p.startswith("judge_"):
            parts.append("judge: " + p[6:])
        else:
            parts.append(p.replace("_", " "))
    return " × ".join(parts)


def regression_forest(
    result: RegressionResult | pd.DataFrame,
    *,
    health: pd.DataFrame | None = None,
    include_intercept: bool = False,
    terms: Sequence[str] | None = None,
    title: str | None = None,
    alpha: float = 0.05,
) -> Figure:
    """Forest plot of the likelihood regression's coefficients.

    ``result`` is a :class:`selfbias.stats.RegressionResult` (from
    :func:`selfbias.stats.likelihood_regression` or ``mixed_effects_regression``) or its
    ``coefficients`` DataFrame (``term, estimate, ci_low, ci_high`` and optionally ``p_holm`` /
    ``p_value``); a ``judge`` column (as in ``Summary.likelihood``) draws one series per judge.
    Points are estimates on the logit scale of P(Yes) with 95% intervals; filled when the
    Holm-adjusted p-value (else the raw one) is below ``alpha``. ``terms`` picks and orders terms;
    the intercept is left out unless ``include_intercept``. A ``health`` table labels degenerate
    judges. Data: the coefficient rows drawn.

    Parameters
    ----------
    result : selfbias.stats.RegressionResult or pandas.DataFrame
        A fitted regression, or coefficient rows (``term, estimate, ci_low, ci_high``, optional
        ``p_holm`` / ``p_value`` and ``judge``).
    health : pandas.DataFrame, optional
        A judge_health table, to label degenerate judges.
    include_intercept : bool
        Draw the intercept too.
    terms : sequence of str, optional
        The terms to draw, in this order.
    title : str, optional
        The panel title (default: "likelihood regression" and the fit's size).
    alpha : float
        Significance level of the filled markers.

    Returns
    -------
    matplotlib.figure.Figure
        The figure, with the numbers it shows as ``fig.selfbias_data`` (the coefficient rows drawn).

    Raises
    ------
    TypeError
        ``result`` is neither a RegressionResult nor a DataFrame.
    ValueError
        Missing columns; no coefficients left to draw.
    """
    if isinstance(result, RegressionResult):
        coefs = result.coefficients.copy()
        info = f"{result.method}, n = {result.n_obs}, {result.n_clusters} items"
    elif isinstance(result, pd.DataFrame):
        coefs = result.copy()
        info = None
    else:
        raise TypeError(f"regression_forest: expected a RegressionResult or DataFrame, got {type(result).__name__}")
    _stats.require_columns(coefs, ["term", "estimate", "ci_low", "ci_high"], "regression_forest")
    if terms is None:
        order = list(dict.fromkeys(coefs["term"].astype(str)))
        if not include_intercept:
            order = [t for t in order if t != "Intercept"]
    else:
        order = [str(t) for t in terms]
    coefs = coefs[coefs["term"].astype(str).isin(order)]
    if coefs.empty:
        raise NoData("regression_forest: no coefficients to draw")
    series_col = "judge" if "judge" in coefs.columns else None
    series = sorted(coefs[series_col].astype(str).unique()) if series_col else [""]
    colors = _style.series_colors(series) if len(series) > 1 else {"": "black", series[0]: "black"}
    deg = Degenerate(health)
    pcol = "p_holm" if "p_holm" in coefs.columns else ("p_value" if "p_value" in coefs.columns else None)
    offsets = dict(zip(series, np.linspace(-0.22, 0.22, len(series)) if len(series) > 1 else [0.0]))
    with _style.context():
        fig, axes = _style.new_figure(_style.COLUMN_WIDTH,
                                      0.85 + 0.2 * len(order) + 0.12 * (len(series) > 1) * len(series), 1, 1)
        ax = axes[0, 0]
        _style.finish(ax, grid="x")
        ax.axvline(0.0, color=_style.NEUTRAL_COLOR, linewidth=0.8, zorder=1)
        ypos = {t: len(order) - 1 - i for i, t in enumerate(order)}
        for s in series:
            sub = coefs if not series_col else coefs[coefs[series_col].astype(str) == s]
            for row in sub.to_dict("records"):
                y = ypos[str(row["term"])] + offsets[s]
                p = row.get(pcol) if pcol else np.nan
                if pcol and not (p is not None and np.isfinite(p)) and "p_value" in row:
                    p = row["p_value"]
                sig = p is not None and np.isfinite(p) and p < alpha
                errorbar_h(ax, row["estimate"], y, row["ci_low"], row["ci_high"], color=colors[s],
                            filled=bool(sig))
        ax.set_yticks([ypos[t] for t in order])
        ax.set_yticklabels([_term_label(t) for t in order])
        ax.set_ylim(-0.7, len(order) - 0.3)
        ax.set_xlabel("coefficient (Δ logit P(Yes))")
        ax.set_title(title or ("likelihood regression" + (f"\n({info})" if info else "")))
        _style.fit_labels(fig)
        judges_shown = series if series_col else sorted({j for j, _ in deg.reasons})
        notes = _style.Footnotes()
        marks = {j: notes.mark(deg.note(j, name_judge=True)) for j in judges_shown if deg.reason(j)}
        handles = []
        if len(series) > 1:
            handles += [Line2D([], [], color=colors[s], marker="o", linestyle="-",
                               label=f"{short(s)} (degenerate{marks[s]})" if s in marks else short(s))
                        for s in series]
        handles += [
            Line2D([], [], color="black", marker="o", linestyle="none",
                   label=f"p{'_Holm' if pcol == 'p_holm' else ''} < {alpha:g}"),
            Line2D([], [], color="black", marker="o", markerfacecolor="white", linestyle="none",
                   label="not significant"),
        ] if pcol else []
        _style.legend_and_notes(fig, handles, notes, ncols=2)
        if notes and (not series_col or len(series) == 1):
            for spine in ax.spines.values():
                spine.set_edgecolor(_style.ALERT_COLOR)
    data = coefs.copy()
    data["label"] = [_term_label(t) for t in data["term"]]
    if series_col:
        data["degenerate_reason"] = [deg.reason(str(j)) for j in data[series_col]]
    return attach(fig, data)



