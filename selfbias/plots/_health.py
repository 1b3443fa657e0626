"""Judge health: is each judge x mode's P(Yes) a usable signal at all?"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .. import stats as _stats
from . import _style
from ._common import DEFAULT_N_BOOT, NoData, analysis_rows, attach, errorbar_h, health_of, ordered_modes, short


def judge_health(
    analysis_df: pd.DataFrame,
    *,
    health: pd.DataFrame | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
) -> Figure:
    """Judge-health panel: is each judge x mode's P(Yes) a usable signal?

    Four panels, one row per judge x mode, from :func:`selfbias.stats.judge_health`: mean
    next-token mass on yes/no spellings, P(Yes) standard deviation across candidates, the share of
    P(Yes) variance within items (between candidates of the same question), and AUROC (correct vs
    wrong) with its item-bootstrap interval against chance (0.5). Dotted lines are the thresholds
    of the checks; bars that fail a check are vermillion. Degenerate judge x modes get a red label
    and their reasons under the panels. Data: the judge_health table.

    Parameters
    ----------
    analysis_df : pandas.DataFrame
        An analysis frame (``Run.analysis_frame()``): ``item_id, judge, mode, p_yes, correct``
        and the columns named below; pairwise rows and rows without P(Yes) or correctness are
        left out.
    health : pandas.DataFrame, optional
        A :func:`selfbias.stats.judge_health` table; computed from ``analysis_df`` when None.
    n_boot : int
        Bootstrap resamples of the intervals.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    matplotlib.figure.Figure
        The figure, with the numbers it shows as ``fig.selfbias_data`` (the judge_health table).

    Raises
    ------
    ValueError
        Missing columns or bad options; no usable rows (e.g. no judged candidates).
    """
    data = analysis_rows(analysis_df, "judge_health")
    h = health_of(data, health, n_boot, seed).copy()
    if h.empty:
        raise NoData("judge_health: empty judge-health table")
    if "mode" not in h.columns:
        h["mode"] = ""
    h["judge"] = h["judge"].astype(str)
    h["mode"] = h["mode"].astype(str)
    mode_rank = {m: i for i, m in enumerate(ordered_modes(h["mode"].unique()))}
    h = h.sort_values(
        ["judge", "mode"], key=lambda col: col.map(mode_rank) if col.name == "mode" else col
    ).reset_index(drop=True)
    n_judges = h["judge"].nunique()
    labels = [f"{short(j)} · {_style.mode_label(m)}" if n_judges > 1 else _style.mode_label(m)
              for j, m in zip(h["judge"], h["mode"])]
    y = np.arange(len(h))[::-1]
    panels = [
        ("yes_no_mass", "yes/no mass\n(share of next-token prob.)", _stats.MIN_YES_NO_MASS, (0, 1), "above"),
        ("p_yes_sd", "P(Yes) spread\n(SD across candidates)", _stats.MIN_P_YES_SD, None, "above"),
        ("within_item_share", "within-item share\nof P(Yes) variance", _stats.MIN_WITHIN_ITEM_SHARE, (0, 1), "above"),
        ("auroc", "AUROC, correct vs wrong\n(95% CI; 0.5 = chance)", _stats.MIN_AUROC, (0, 1), "auroc"),
    ]
    bad_rows = [i for i in range(len(h)) if bool(h.loc[i, "degenerate"])]
    with _style.context():
        fig, axes = _style.new_figure(_style.PAGE_WIDTH, 0.95 + 0.26 * len(h) + 0.3 * len(bad_rows), 1, 4, sharey=True)
        for k, (col, xlabel, threshold, xlim, kind) in enumerate(panels):
            ax = axes[0, k]
            _style.finish(ax, grid="x")
            values = h[col].astype(float).to_numpy() if col in h.columns else np.full(len(h), np.nan)
            if kind == "auroc":
                ax.axvline(0.5, color=_style.NEUTRAL_COLOR, linewidth=1.0, zorder=1)
                ax.axvline(threshold, color="black", linewidth=0.8, linestyle=":", zorder=1)
                for i, v in enumerate(values):
                    if not np.isfinite(v):
                        ax.text(0.5, y[i], "n/a", ha="center", va="center", fontsize=_style.SMALL_FONT_SIZE,
                                color=_style.NEUTRAL_COLOR)
                        continue
                    lo, hi = float(h.loc[i, "auroc_ci_low"]), float(h.loc[i, "auroc_ci_high"])
                    fail = (np.isfinite(lo) and lo <= 0.5) or v < threshold
                    color = _style.ALERT_COLOR if fail else "black"
                    errorbar_h(ax, v, y[i], lo, hi, color=color, filled=True)
            else:
                ax.axvline(threshold, color="black", linewidth=0.8, linestyle=":", zorder=4)
                ok = np.isfinite(values)
                colors = [_style.ALERT_COLOR if (np.isfinite(v) and v < threshold) else "#555555" for v in values]
                ax.barh(y[ok], values[ok], height=0.6, color=[c for c, o in zip(colors, ok) if o], zorder=2)
                for i in np.flatnonzero(ok & (values < threshold)):
                    ax.annotate(f"{values[i]:.2g}", (values[i], y[i]), xytext=(3, 0), textcoords="offset points",
                                ha="left", va="center", fontsize=_style.SMALL_FONT_SIZE, color=_style.ALERT_COLOR)
                top = xlim[1] if xlim else max(float(np.nanmax(values)) if ok.any() else 0.0, threshold) * 1.15 or 1.0
                for i in np.flatnonzero(~ok):
                    ax.text(0.02 * top, y[i], "n/a", ha="left", va="center", fontsize=_style.SMALL_FONT_SIZE,
                            color=_style.NEUTRAL_COLOR)
                if not xlim:
                    xlim = (0, top)
            ax.set_xlim(*xlim)
            ax.set_xlabel(xlabel)
        ax0 = axes[0, 0]
        ax0.set_yticks(y)
        ax0.set_yticklabels(labels)
        ax0.set_ylim(-0.6, len(h) - 0.4)
        for i, tick in zip(range(len(h)), ax0.get_yticklabels()):
            if bool(h.loc[i, "degenerate"]):
                tick.set_color(_style.ALERT_COLOR)
                tick.set_fontweight("bold")
        _style.fit_labels(fig)
        if bad_rows:
            _style.figure_note(fig, [f"degenerate judge: {labels[i]}: {h.loc[i, 'reasons']}" for i in bad_rows])
        fig.suptitle("judge health", x=0.01, ha="left")
    return attach(fig, h)


