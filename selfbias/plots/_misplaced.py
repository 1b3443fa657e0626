"""Acceptance of wrong answers: by source and judge mode, and judge x author."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .. import stats as _stats
from . import _style
from ._common import (
    DEFAULT_N_BOOT,
    Degenerate,
    NoData,
    analysis_rows,
    attach,
    errorbar,
    flag_degenerate,
    health_of,
    ordered_modes,
    short,
)

_HEATMAP_LABELS = {
    "share_above_threshold": "false acceptance (share of wrong answers with P(Yes) > {t:g})",
    "mean_p_yes": "mean P(Yes) of wrong answers",
}
_MISPLACED_MEASURES = {
    "share_above_threshold": ("false acceptance", "share of wrong answers\nwith P(Yes) > {t:g}"),
    "mean_p_yes": ("confidence in wrong answers", "mean P(Yes) of wrong answers"),
}


def misplaced_confidence(
    analysis_df: pd.DataFrame,
    *,
    measures: Sequence[str] = ("share_above_threshold", "mean_p_yes"),
    threshold: float = 0.5,
    health: pd.DataFrame | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
) -> Figure:
    """False acceptance of wrong answers by source and judge mode.

    For every source group with wrong answers (x axis; colour = source group) and judge mode
    (marker: isolated, own samples, alternatives, critique), the share of wrong answers with P(Yes)
    > ``threshold`` (false acceptance) and/or their mean P(Yes), with 95% item-clustered bootstrap
    intervals from :func:`selfbias.stats.misplaced_confidence` (grouped by source group x mode).
    One panel per measure (columns), one row per judge. Data: the full statistics table
    (wrong, correct and correct-minus-wrong rows).

    Parameters
    ----------
    analysis_df : pandas.DataFrame
        An analysis frame (``Run.analysis_frame()``): ``item_id, judge, mode, p_yes, correct``
        and the columns named below; pairwise rows and rows without P(Yes) or correctness are
        left out.
    measures : sequence of str
        ``"share_above_threshold"`` and/or ``"mean_p_yes"``, one panel column each.
    threshold : float
        P(Yes) above which a wrong answer counts as accepted.
    health : pandas.DataFrame, optional
        A :func:`selfbias.stats.judge_health` table; computed from ``analysis_df`` when None.
    n_boot : int
        Bootstrap resamples of the intervals.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    matplotlib.figure.Figure
        The figure, with the numbers it shows as ``fig.selfbias_data`` (the statistics table).

    Raises
    ------
    ValueError
        Missing columns or bad options; no usable rows (e.g. no wrong answers).
    """
    if isinstance(measures, str):
        measures = (measures,)
    unknown = [m for m in measures if m not in _MISPLACED_MEASURES]
    if unknown or not measures:
        raise ValueError(f"measures must be from {sorted(_MISPLACED_MEASURES)}, got {list(measures)}")
    data = analysis_rows(analysis_df, "misplaced_confidence")
    if data["correct"].all():
        raise NoData("misplaced_confidence: no wrong answers among the judged candidates")
    data["source_group"] = _style.source_group(data)
    deg = Degenerate(health_of(data, health, n_boot, seed))
    table = _stats.misplaced_confidence(
        data, by=("source_group", "mode"), threshold=threshold, n_boot=n_boot, seed=seed
    )
    wrong = table[table["correctness"] == "wrong"]
    judges = sorted(data["judge"].unique())
    modes = ordered_modes(data["mode"].unique())
    notes = _style.Footnotes()
    offsets = dict(zip(modes, np.linspace(-0.27, 0.27, len(modes)) if len(modes) > 1 else [0.0]))
    with _style.context():
        fig, axes = _style.new_figure(
            _style.width_for(len(measures)), 0.55 + 1.95 * len(judges), len(judges), len(measures),
            sharey=False,
        )
        for r, judge in enumerate(judges):
            jw = wrong[wrong["judge"] == judge]
            groups = _style.ordered(jw["source_group"].unique(), _style.SOURCE_ORDER)
            for c, measure in enumerate(measures):
                ax = axes[r, c]
                _style.finish(ax, grid="y")
                title, ylabel = _MISPLACED_MEASURES[measure]
                ax.set_title(f"{short(judge)}: {title}" if len(judges) > 1 else title)
                ax.set_ylabel(ylabel.format(t=threshold))
                sub = jw[jw["measure"] == measure]
                for gi, group in enumerate(groups):
                    color = _style.source_color(group)
                    for mode in modes:
                        cell = sub[(sub["source_group"] == group) & (sub["mode"] == mode)]
                        if cell.empty:
                            continue
                        row = cell.iloc[0]
                        errorbar(
                            ax, [gi + offsets[mode]], [row["estimate"]], [row["ci_low"]], [row["ci_high"]],
                            color=color, marker=_style.MODE_MARKERS.get(mode, "o"), markersize=4,
                            markeredgecolor=color, markerfacecolor=color, linestyle="none",
                            elinewidth=0.9, capsize=1.5, zorder=3,
                        )
                ax.set_xticks(range(len(groups)))
                ax.set_xticklabels(groups, rotation=25, ha="right", rotation_mode="anchor")
                for tick, group in zip(ax.get_xticklabels(), groups):
                    tick.set_color(_style.source_color(group))
                ax.set_xlim(-0.6, max(len(groups), 1) - 0.4)
                ax.set_ylim(-0.03, 1.03)
                flag_degenerate(ax, notes, deg.note(judge, name_judge=len(judges) > 1))
        handles = [
            Line2D([], [], color="black", marker=_style.MODE_MARKERS.get(m, "o"), linestyle="none",
                   label=_style.mode_label(m))
            for m in modes
        ]
        _style.fit_labels(fig)
        _style.legend_and_notes(fig, handles, notes, ncols=len(handles), title="judge mode")
    table = table.copy()
    table["degenerate_reason"] = [deg.reason(j, m) for j, m in zip(table["judge"], table["mode"])]
    return attach(fig, table)




def judge_author_heatmap(
    analysis_df: pd.DataFrame,
    *,
    measure: str = "share_above_threshold",
    threshold: float = 0.5,
    health: pd.DataFrame | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
) -> Figure:
    """Judge x author heatmap of how readily wrong answers are accepted, one panel per mode.

    Cells: share of wrong answers with P(Yes) > ``threshold`` (``measure="share_above_threshold"``)
    or their mean P(Yes) (``"mean_p_yes"``), written with the number of wrong answers; the
    intervals (item-clustered bootstrap, :func:`selfbias.stats.misplaced_confidence`) are in the
    data. Authors come from an ``author`` column when the frame has one, else relative to each
    judge: ``self`` (self_authored), ``other model`` (answers generated by another model),
    ``dataset`` (reference, distractor) and ``perturbation``. Degenerate judges get a red row label
    and a note. Data: the statistics table of wrong answers.

    Parameters
    ----------
    analysis_df : pandas.DataFrame
        An analysis frame (``Run.analysis_frame()``): ``item_id, judge, mode, p_yes, correct``
        and the columns named below; pairwise rows and rows without P(Yes) or correctness are
        left out.
    measure : {"share_above_threshold", "mean_p_yes"}
        The cell value.
    threshold : float
        P(Yes) above which a wrong answer counts as accepted.
    health : pandas.DataFrame, optional
        A :func:`selfbias.stats.judge_health` table; computed from ``analysis_df`` when None.
    n_boot : int
        Bootstrap resamples of the intervals.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    matplotlib.figure.Figure
        The figure, with the numbers it shows as ``fig.selfbias_data`` (the statistics table of wrong answers).

    Raises
    ------
    ValueError
        Missing columns or bad options; no usable rows (e.g. no wrong answers).
    """
    if measure not in _MISPLACED_MEASURES:
        raise ValueError(f"measure must be one of {sorted(_MISPLACED_MEASURES)}, not {measure!r}")
    data = analysis_rows(analysis_df, "judge_author_heatmap")
    if data["correct"].all():
        raise NoData("judge_author_heatmap: no wrong answers among the judged candidates")
    if "author" in data.columns and data["author"].notna().all():
        data["author"] = data["author"].astype(str)
    else:
        data["author"] = _style.author_group(data)
    deg = Degenerate(health_of(data, health, n_boot, seed))
    table = _stats.misplaced_confidence(data, by=("author", "mode"), threshold=threshold, n_boot=n_boot, seed=seed)
    table = table[(table["correctness"] == "wrong") & (table["measure"] == measure)].reset_index(drop=True)
    judges = sorted(data["judge"].unique())
    authors = _style.ordered(table["author"].unique(), _style.AUTHOR_ORDER)
    modes = ordered_modes(table["mode"].unique())
    cmap = mpl.colormaps["cividis"]
    n_cols = len(modes)
    notes = _style.Footnotes()
    marks = {j: notes.mark(deg.note(j, name_judge=True)) for j in judges if any(deg.reason(j, m) for m in modes)}
    with _style.context():
        # the colour bar lies under the panels (horizontal, so its label reads across the figure)
        fig, axes = _style.new_figure(
            _style.width_for(n_cols), 1.45 + 0.42 * len(judges), 1, n_cols, sharey=True,
        )
        image = None
        for c, mode in enumerate(modes):
            ax = axes[0, c]
            _style.finish(ax)
            m = np.full((len(judges), len(authors)), np.nan)
            n = np.zeros_like(m)
            t = table[table["mode"] == mode]
            for row in t.itertuples(index=False):
                i, j = judges.index(str(row.judge)), authors.index(str(row.author))
                m[i, j] = row.estimate
                n[i, j] = row.n
            image = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=0, vmax=1, aspect="auto")
            ax.set_facecolor("#eeeeee")
            for i in range(len(judges)):
                for j in range(len(authors)):
                    if np.isfinite(m[i, j]):
                        ax.text(j, i, f"{m[i, j]:.2f}\nn={int(n[i, j])}", ha="center", va="center",
                                fontsize=_style.SMALL_FONT_SIZE, color=_style.text_color_on(cmap(m[i, j])))
            ax.set_xticks(range(len(authors)))
            tilt = len(authors) > 2
            ax.set_xticklabels(authors, rotation=20 if tilt else 0, ha="right" if tilt else "center",
                               rotation_mode="anchor")
            ax.set_yticks(range(len(judges)))
            ax.set_yticklabels([f"{short(j)} {marks[j]}" if deg.reason(j, mode) else short(j) for j in judges])
            for tick, judge in zip(ax.get_yticklabels(), judges):
                if deg.reason(judge, mode):
                    tick.set_color(_style.ALERT_COLOR)
            for side in ("top", "right", "left", "bottom"):
                ax.spines[side].set_visible(False)
            ax.tick_params(length=0)
            ax.set_title(_style.mode_label(mode))
            ax.set_xlabel("author of the answer")
            if c == 0:
                ax.set_ylabel("judge")
        _style.fit_labels(fig)
        label = _HEATMAP_LABELS[measure].format(t=threshold)
        cbar = fig.colorbar(image, ax=axes[0, :].tolist(), location="bottom", shrink=0.8, aspect=30, pad=0.03)
        panels_in = sum(_style.panel_size_in(ax)[0] for ax in axes[0, :])
        cbar.set_label(_style.wrap_to(label, 0.8 * panels_in * 0.95, _style.FONT_SIZE))
        notes.place(fig)
        cbar.ax.tick_params(labelsize=_style.SMALL_FONT_SIZE, width=0.6, length=2.0)
        cbar.outline.set_linewidth(0.5)
    table["degenerate_reason"] = [deg.reason(j, m) for j, m in zip(table["judge"], table["mode"])]
    return attach(fig, table)
