"""Calibration of P(Yes): reliability diagrams and P(True) histograms."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .. import stats as _stats
from . import _style
from ._common import (
    DEFAULT_N_BOOT,
    Degenerate,
    analysis_rows,
    attach,
    errorbar,
    flag_degenerate,
    fmt_ci,
    health_of,
    ordered_modes,
    panel_title,
)


def reliability(
    analysis_df: pd.DataFrame,
    *,
    n_bins: int = 10,
    health: pd.DataFrame | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
) -> Figure:
    """Reliability diagrams of P(Yes), side by side per judge mode (rows: judges).

    Points: accuracy against mean P(Yes) in ``n_bins`` equal-count bins, with Wilson intervals
    (:func:`selfbias.stats.reliability_table`); the grey bar under each point spans the bin's
    P(Yes) range; the diagonal is perfect calibration. Each panel gives ECE and Brier score with
    item-bootstrap intervals (:func:`selfbias.stats.calibration`). Data: the reliability table with
    the ECE/Brier estimates of its judge x mode.

    Parameters
    ----------
    analysis_df : pandas.DataFrame
        An analysis frame (``Run.analysis_frame()``): ``item_id, judge, mode, p_yes, correct``
        and the columns named below; pairwise rows and rows without P(Yes) or correctness are
        left out.
    n_bins : int
        Equal-count bins of P(Yes) per judge x mode.
    health : pandas.DataFrame, optional
        A :func:`selfbias.stats.judge_health` table; computed from ``analysis_df`` when None.
    n_boot : int
        Bootstrap resamples of the intervals.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    matplotlib.figure.Figure
        The figure, with the numbers it shows as ``fig.selfbias_data`` (the reliability table with ECE and Brier).

    Raises
    ------
    ValueError
        Missing columns or bad options; no usable rows (e.g. no judged candidates).
    """
    data = analysis_rows(analysis_df, "reliability")
    deg = Degenerate(health_of(data, health, n_boot, seed))
    table = _stats.reliability_table(data, n_bins=n_bins)
    cal = _stats.calibration(data, n_bins=n_bins, n_boot=n_boot, seed=seed)
    judges = sorted(data["judge"].unique())
    modes = ordered_modes(data["mode"].unique())
    n_cols = len(modes)
    panel = _style.PAGE_WIDTH / max(n_cols, 2) if n_cols > 1 else _style.COLUMN_WIDTH * 0.8
    width = _style.width_for(n_cols)
    notes = _style.Footnotes()
    with _style.context():
        fig, axes = _style.new_figure(width, 0.35 + (panel + 0.15) * len(judges), len(judges), n_cols,
                                      sharex=True, sharey=True)
        for r, judge in enumerate(judges):
            for c, mode in enumerate(modes):
                ax = axes[r, c]
                _style.finish(ax, grid="both")
                ax.set_title(panel_title(judge, mode, len(judges)))
                ax.plot([0, 1], [0, 1], color=_style.NEUTRAL_COLOR, linestyle="--", linewidth=0.8, zorder=1)
                t = table[(table["judge"] == judge) & (table["mode"] == mode)]
                if len(t):
                    ax.hlines(t["accuracy"], t["conf_min"], t["conf_max"], color="#bbbbbb", linewidth=2.0, zorder=2)
                    errorbar(
                        ax, t["mean_confidence"], t["accuracy"], t["ci_low"], t["ci_high"],
                        color=_style.CORRECT_COLOR, marker="o", markersize=3.5, linestyle="-", linewidth=0.9,
                        elinewidth=0.7, capsize=1.5, zorder=3,
                    )
                cg = cal[(cal["judge"] == judge) & (cal["mode"] == mode)].set_index("measure")
                lines = []
                for measure, name in (("ece", "ECE"), ("brier", "Brier")):
                    if measure in cg.index:
                        row = cg.loc[measure]
                        lines.append(f"{name} {fmt_ci(row['estimate'], row['ci_low'], row['ci_high'], 3)}")
                n = int(t["count"].sum()) if len(t) else 0
                lines.append(f"n = {n}")
                ax.text(0.97, 0.03, "\n".join(lines), transform=ax.transAxes, ha="right", va="bottom",
                        fontsize=_style.SMALL_FONT_SIZE, zorder=5,
                        bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})
                ax.set_xlim(0, 1)
                ax.set_ylim(0, 1)
                ax.set_aspect("equal")
                ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
                ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
                ax.set_xticklabels(["0", ".25", ".5", ".75", "1"])
                ax.set_yticklabels(["0", ".25", ".5", ".75", "1"])
                if c == 0:
                    ax.set_ylabel("accuracy (share correct)")
                if r == len(judges) - 1:
                    ax.set_xlabel("P(Yes), bin mean")
                flag_degenerate(ax, notes, deg.note(judge, mode))
        _style.fit_labels(fig)
        notes.place(fig)
    wide = cal.pivot_table(index=["judge", "mode"], columns="measure", values=["estimate", "ci_low", "ci_high"],
                           aggfunc="first")
    wide.columns = [f"{m}_{v}" if v != "estimate" else m for v, m in wide.columns]
    out = table.merge(wide.reset_index(), on=["judge", "mode"], how="left")
    out["degenerate_reason"] = [deg.reason(j, m) for j, m in zip(out["judge"], out["mode"])]
    return attach(fig, out)


def ptrue_histograms(
    analysis_df: pd.DataFrame,
    *,
    bins: int = 20,
    health: pd.DataFrame | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
) -> Figure:
    """Histograms of P(True) (= P(Yes)) for correct and wrong answers, per judge mode and judge.

    The diagnostic of Kadavath et al. 2022: a judge that knows what it knows puts correct answers
    near 1 and wrong ones near 0. Bars are shares of each class (so classes of different size
    compare); correct: filled blue, wrong: dashed orange outline. Each panel gives the AUROC
    (correct vs wrong) with its item-bootstrap interval from :func:`selfbias.stats.judge_health`.
    Data: one row per judge x mode x correctness x bin (count and share).

    Parameters
    ----------
    analysis_df : pandas.DataFrame
        An analysis frame (``Run.analysis_frame()``): ``item_id, judge, mode, p_yes, correct``
        and the columns named below; pairwise rows and rows without P(Yes) or correctness are
        left out.
    bins : int
        Equal-width bins of P(True) on [0, 1].
    health : pandas.DataFrame, optional
        A :func:`selfbias.stats.judge_health` table; computed from ``analysis_df`` when None.
    n_boot : int
        Bootstrap resamples of the intervals.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    matplotlib.figure.Figure
        The figure, with the numbers it shows as ``fig.selfbias_data`` (one row per judge x mode x correctness x bin).

    Raises
    ------
    ValueError
        Missing columns or bad options; no usable rows (e.g. no judged candidates).
    """
    data = analysis_rows(analysis_df, "ptrue_histograms")
    hl = health_of(data, health, n_boot, seed)
    deg = Degenerate(hl)
    judges = sorted(data["judge"].unique())
    modes = ordered_modes(data["mode"].unique())
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    rows = []
    notes = _style.Footnotes()
    with _style.context():
        fig, axes = _style.new_figure(
            _style.width_for(len(modes)), 0.45 + 1.75 * len(judges), len(judges), len(modes), sharex=True, sharey="row",
        )
        for r, judge in enumerate(judges):
            for c, mode in enumerate(modes):
                ax = axes[r, c]
                _style.finish(ax, grid="y")
                ax.set_title(panel_title(judge, mode, len(judges)))
                panel = data[(data["judge"] == judge) & (data["mode"] == mode)]
                for correct, color in ((True, _style.CORRECT_COLOR), (False, _style.WRONG_COLOR)):
                    p = panel.loc[panel["correct"] == correct, "p_yes"].to_numpy(float)
                    counts, _ = np.histogram(np.clip(p, 0, 1), bins=edges)
                    share = counts / max(p.size, 1)
                    for b in range(len(counts)):
                        rows.append({"judge": judge, "mode": mode, "correctness": "correct" if correct else "wrong",
                                     "bin_low": edges[b], "bin_high": edges[b + 1], "count": int(counts[b]),
                                     "share": float(share[b]), "n": int(p.size)})
                    if p.size == 0:
                        continue
                    if correct:
                        ax.stairs(share, edges, fill=True, color=color, alpha=0.45, linewidth=0)
                        ax.stairs(share, edges, color=color, linewidth=0.9)
                    else:
                        ax.stairs(share, edges, color=color, linewidth=1.3, linestyle="--")
                hrow = hl.iloc[:0]
                if "mode" in hl.columns:
                    hrow = hl[(hl["judge"].astype(str) == judge) & (hl["mode"].astype(str) == mode)]
                nc = int(panel["correct"].sum())
                nw = int((~panel["correct"]).sum())
                text = f"n = {nc} correct, {nw} wrong"
                if len(hrow) and np.isfinite(hrow["auroc"].iloc[0]):
                    h = hrow.iloc[0]
                    text = f"AUROC {fmt_ci(h['auroc'], h['auroc_ci_low'], h['auroc_ci_high'])}\n" + text
                ax.text(0.5, 0.97, text, transform=ax.transAxes, ha="center", va="top",
                        fontsize=_style.SMALL_FONT_SIZE, zorder=5,
                        bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})
                ax.set_xlim(0, 1)
                top = max([float(rw["share"]) for rw in rows if rw["judge"] == judge] or [0.0])
                ax.set_ylim(0, max(top, 0.05) * 1.45)
                if c == 0:
                    ax.set_ylabel("share of answers")
                if r == len(judges) - 1:
                    ax.set_xlabel("P(True) = P(Yes)")
                flag_degenerate(ax, notes, deg.note(judge, mode))
        handles = [
            Patch(facecolor=_style.CORRECT_COLOR, alpha=0.45, edgecolor=_style.CORRECT_COLOR, label="correct answers"),
            Line2D([], [], color=_style.WRONG_COLOR, linestyle="--", linewidth=1.3, label="wrong answers"),
        ]
        _style.fit_labels(fig)
        _style.legend_and_notes(fig, handles, notes, ncols=2)
    table = pd.DataFrame(rows)
    table["degenerate_reason"] = [deg.reason(j, m) for j, m in zip(table["judge"], table["mode"])]
    return attach(fig, table)


