"""Paper figures from a run's tables.

Every function takes DataFrames in the tidy forms of ARCHITECTURE.md (the analysis frame of
``Run.analysis_frame()``, the pairwise frame of ``Run.pairwise_frame()``, the ``scores`` and
``candidates`` tables) and returns a :class:`matplotlib.figure.Figure`; nothing reads files.
The numbers a figure shows are attached to it as ``fig.selfbias_data`` (a tidy DataFrame), which
:func:`draw_all` writes next to the figure as ``<figure>.csv``.

Figures (intervals are 95%):

* :func:`likelihood_vs_confidence` -- P(Yes) against the candidate's log-likelihood under the judge;
* :func:`misplaced_confidence` -- acceptance of wrong answers by source and judge mode;
* :func:`reliability` -- reliability diagrams with ECE and Brier score;
* :func:`ptrue_histograms` -- P(True) of correct vs wrong answers (Kadavath et al. 2022);
* :func:`token_trace` -- per-token log-probabilities of an own wrong answer vs the reference;
* :func:`judge_author_heatmap` -- acceptance of wrong answers, judge x author;
* :func:`winrate_by_perplexity` -- pairwise win rate against perplexity difference (Wataoka et al. 2024);
* :func:`regression_forest` -- coefficients of the likelihood regression;
* :func:`judge_health` -- is P(Yes) usable at all (yes/no mass, spread, within-item share, AUROC).

A judge that :func:`selfbias.stats.judge_health` flags as degenerate is labelled on every figure
that shows its verdicts (a red "degenerate judge: <reason>" note and a red panel frame): its
numbers describe noise. :func:`save` writes PDF (vector) and PNG; :func:`draw_all` draws every
figure a run supports.

Style: Okabe-Ito colours with fixed meanings (candidate source, correct/wrong, self/other),
figure widths of 3.3 in (one column) or 6.9 in (two columns), fonts of 7-8 pt.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from scipy import stats as _st

from . import _style
from . import stats as _stats
from ._style import readable_tokens, save
from .stats._regression import RegressionResult

__all__ = [
    "FIGURES",
    "draw_all",
    "judge_author_heatmap",
    "judge_health",
    "likelihood_vs_confidence",
    "misplaced_confidence",
    "ptrue_histograms",
    "readable_tokens",
    "regression_forest",
    "reliability",
    "save",
    "token_trace",
    "winrate_by_perplexity",
]

DEFAULT_N_BOOT = _stats.DEFAULT_N_BOOT
_CONFIDENCE = _stats.DEFAULT_CONFIDENCE

#: The figures :func:`draw_all` knows, in drawing order.
FIGURES = (
    "judge_health",
    "likelihood_vs_confidence",
    "misplaced_confidence",
    "reliability",
    "ptrue_histograms",
    "judge_author_heatmap",
    "regression_forest",
    "winrate_by_perplexity",
    "token_trace",
)


class _NoData(ValueError):
    """The tables hold nothing this figure can show (draw_all: 'skipped' with this reason)."""


# --------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; got {list(df.columns)}")


def _analysis(df: pd.DataFrame, what: str, extra: Sequence[str] = ()) -> pd.DataFrame:
    """The usable rows of an analysis frame: P(Yes) judgments with correctness (and ``extra``)."""
    _require(df, ["item_id", "judge", "mode", "p_yes", "correct", *extra], what)
    data = df[df["mode"].astype(str) != "pairwise"].dropna(subset=["p_yes", "correct", *extra]).copy()
    if data.empty:
        need = ", ".join(["P(Yes)", "correctness", *extra])
        raise _NoData(f"{what}: no judged candidates with {need}")
    data["correct"] = data["correct"].astype(bool)
    data["judge"] = data["judge"].astype(str)
    data["mode"] = data["mode"].astype(str)
    data["p_yes"] = data["p_yes"].astype(float)
    return data.reset_index(drop=True)


def _attach(fig: Figure, data: pd.DataFrame) -> Figure:
    fig.selfbias_data = data.reset_index(drop=True)
    return fig


def _health(df: pd.DataFrame, health: pd.DataFrame | None, n_boot: int, seed: int) -> pd.DataFrame:
    """judge_health of the analysis frame unless given."""
    if health is not None:
        return health
    return _stats.judge_health(df, n_boot=n_boot, seed=seed)


class _Degenerate:
    """Look-up of degenerate judges (x modes) from a judge_health table."""

    def __init__(self, health: pd.DataFrame | None):
        self.reasons: dict[tuple[str, str | None], str] = {}
        if health is None or len(health) == 0 or "degenerate" not in health.columns:
            return
        has_mode = "mode" in health.columns
        for row in health[health["degenerate"].astype(bool)].to_dict("records"):
            mode = str(row["mode"]) if has_mode else None
            reason = str(row.get("reasons") or "failed the judge-health checks")
            self.reasons[(str(row.get("judge", "")), mode)] = reason

    def reason(self, judge: str, mode: str | None = None) -> str | None:
        """Reasons of a judge in a mode (or, for mode None, in any mode)."""
        if (judge, mode) in self.reasons:
            return self.reasons[(judge, mode)]
        if (judge, None) in self.reasons:
            return self.reasons[(judge, None)]
        if mode is None:
            hits = [(m, r) for (j, m), r in self.reasons.items() if j == judge]
            if hits:
                return "; ".join(f"{_style.mode_label(m)}: {r}" if m else r for m, r in hits)
        return None

    def modes(self, judge: str) -> list[str]:
        return _modes(m for (j, m) in self.reasons if j == judge and m is not None)

    def note(self, judge: str, mode: str | None = None, *, name_judge: bool = False) -> str | None:
        """``degenerate judge: <first reason>`` (with the judge / modes named when asked)."""
        reason = self.reason(judge, mode)
        if reason is None:
            return None
        where = []
        if name_judge:
            where.append(_short(judge))
        if mode is None and self.modes(judge):
            where.append(", ".join(_style.mode_label(m) for m in self.modes(judge)))
        first = reason.split("; ")[0]
        if mode is None and ": " in first and self.modes(judge):
            first = first.split(": ", 1)[1]
        label = "degenerate judge" + (f" ({'; '.join(where)})" if where else "")
        return f"{label}: {first}"


def _short(name: str, limit: int = 28) -> str:
    """A model name for a label: without an ``org/`` prefix or local folder, at most ``limit`` chars
    (the data keep full names)."""
    text = str(name).rstrip("/")
    return _style.renderable(_style.shorten(text.rsplit("/", 1)[-1] or text, limit))


def _panel_title(judge: str, mode: str, n_judges: int) -> str:
    return f"{_short(judge)} · {_style.mode_label(mode)}" if n_judges > 1 else _style.mode_label(mode)


def _clustered_mean(y: np.ndarray, items: np.ndarray, confidence: float = _CONFIDENCE):
    """Mean of ``y`` with an item-clustered (sandwich) t interval: (mean, low, high, n_items).

    The variance of the ratio estimator sum(y) / n with clusters g: G / (G - 1) * sum_g
    (sum_{i in g} (y_i - mean))^2 / n^2, interval mean -/+ t_{G-1} * sd (clipped to [0, 1]).
    """
    y = np.asarray(y, float)
    codes, uniques = pd.factorize(np.asarray(items, dtype=object))
    g = len(uniques)
    m = float(y.mean()) if y.size else np.nan
    if g < 2:
        return m, np.nan, np.nan, g
    resid = np.bincount(codes, weights=y - m, minlength=g)
    var = g / (g - 1) * float(np.sum(resid**2)) / y.size**2
    half = float(_st.t.ppf(0.5 + confidence / 2, g - 1)) * math.sqrt(var)
    return m, max(0.0, m - half), min(1.0, m + half), g


def _equal_count_bins(x: np.ndarray, n_bins: int) -> list[np.ndarray]:
    order = np.argsort(np.asarray(x, float), kind="stable")
    return [b for b in np.array_split(order, max(1, min(int(n_bins), order.size))) if b.size]


def _errorbar(ax, x, y, lo, hi, **kw):
    y = np.asarray(y, float)
    lo = np.asarray(lo, float)
    hi = np.asarray(hi, float)
    err = np.vstack([np.where(np.isfinite(lo), y - lo, 0.0), np.where(np.isfinite(hi), hi - y, 0.0)])
    err = np.clip(err, 0.0, None)
    return ax.errorbar(x, y, yerr=err, **kw)


def _modes(values) -> list[str]:
    return _style.ordered(values, _style.MODE_ORDER)


def _fmt_ci(est, lo, hi, digits: int = 2) -> str:
    if not np.isfinite(est):
        return "n/a"
    s = f"{est:.{digits}f}"
    if np.isfinite(lo) and np.isfinite(hi):
        s += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return s


# --------------------------------------------------------------------------------------------
# P(Yes) against log-likelihood
# --------------------------------------------------------------------------------------------


def likelihood_vs_confidence(
    analysis_df: pd.DataFrame,
    *,
    loglik: str = "sum_logprob",
    n_bins: int = 6,
    min_per_bin: int = 8,
    health: pd.DataFrame | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
) -> Figure:
    """P(Yes) against the candidate's log-likelihood under the judge.

    One panel per judge mode (columns) and judge (rows). Faint points are the candidates; lines
    are binned means of P(Yes) (equal-count bins of the log-likelihood, at most ``n_bins`` with at
    least ``min_per_bin`` candidates each) per source group and correctness, with 95%
    item-clustered t intervals. Colour: source group (own greedy / own sample / other model /
    reference / distractor / perturbation, relative to the judge); solid line and filled marker:
    correct answers; dashed line and open marker: wrong answers. ``loglik`` is ``sum_logprob``
    (nats) or ``mean_logprob`` (nats per token). ``health`` (a judge_health table) is computed
    when not given. Data: one row per judge x mode x source x correctness x bin.
    """
    if loglik not in ("sum_logprob", "mean_logprob"):
        raise ValueError(f"loglik must be 'sum_logprob' or 'mean_logprob', not {loglik!r}")
    data = _analysis(analysis_df, "likelihood_vs_confidence", extra=[loglik])
    data["group"] = _style.source_group(data)
    deg = _Degenerate(_health(data, health, n_boot, seed))
    judges = sorted(data["judge"].unique())
    modes = _modes(data["mode"].unique())
    groups = _style.ordered(data["group"].unique(), _style.SOURCE_ORDER)
    rows = []
    with _style.context():
        fig, axes = _style.new_figure(
            _style.width_for(len(modes)), 0.4 + 2.0 * len(judges), len(judges), len(modes),
            sharey=True, sharex="row",
        )
        for r, judge in enumerate(judges):
            for c, mode in enumerate(modes):
                ax = axes[r, c]
                _style.finish(ax, grid="y")
                panel = data[(data["judge"] == judge) & (data["mode"] == mode)]
                ax.set_title(_panel_title(judge, mode, len(judges)))
                for group in groups:
                    color = _style.source_color(group)
                    for correct in (True, False):
                        sub = panel[(panel["group"] == group) & (panel["correct"] == correct)]
                        if sub.empty:
                            continue
                        x = sub[loglik].to_numpy(float)
                        y = sub["p_yes"].to_numpy(float)
                        ax.scatter(
                            x, y, s=5, marker="o", linewidths=0.5, alpha=0.25, zorder=1, rasterized=True,
                            facecolors=color if correct else "none", edgecolors=color,
                        )
                        k = max(1, min(n_bins, len(sub) // max(1, min_per_bin)))
                        items = sub["item_id"].to_numpy(dtype=object)
                        bx, by, blo, bhi = [], [], [], []
                        for b, idx in enumerate(_equal_count_bins(x, k)):
                            m, lo, hi, n_items = _clustered_mean(y[idx], items[idx])
                            bx.append(float(x[idx].mean()))
                            by.append(m)
                            blo.append(lo)
                            bhi.append(hi)
                            rows.append({
                                "judge": judge, "mode": mode, "source_group": group, "correct": correct,
                                "bin": b, "loglik": loglik, "loglik_mean": bx[-1],
                                "loglik_min": float(x[idx].min()), "loglik_max": float(x[idx].max()),
                                "p_yes_mean": m, "ci_low": lo, "ci_high": hi, "n": int(idx.size),
                                "n_items": n_items,
                            })
                        _errorbar(
                            ax, bx, by, blo, bhi, color=color, marker="o", markersize=3.5,
                            markerfacecolor=color if correct else "white", markeredgecolor=color,
                            markeredgewidth=0.8, linestyle="-" if correct else "--", linewidth=1.0,
                            elinewidth=0.7, capsize=1.5, zorder=3,
                        )
                ax.set_ylim(-0.03, 1.03)
                if c == 0:
                    ax.set_ylabel("P(Yes)")
                if r == len(judges) - 1:
                    ax.set_xlabel(
                        "log-likelihood under judge (nats)" if loglik == "sum_logprob"
                        else "mean log-likelihood under judge (nats/token)"
                    )
                note = deg.note(judge, mode)
                if note:
                    _style.note_degenerate(ax, note)
        handles = [Line2D([], [], color=_style.source_color(g), marker="o", linestyle="-", label=g) for g in groups]
        handles += [
            Line2D([], [], color="black", marker="o", linestyle="-", label="correct"),
            Line2D([], [], color="black", marker="o", markerfacecolor="white", linestyle="--", label="wrong"),
        ]
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4 if len(modes) == 1 else 8))
    table = pd.DataFrame(rows)
    table["degenerate_reason"] = [deg.reason(j, m) for j, m in zip(table["judge"], table["mode"])] if len(table) else []
    return _attach(fig, table)


# --------------------------------------------------------------------------------------------
# misplaced confidence
# --------------------------------------------------------------------------------------------

_HEATMAP_LABELS = {
    "share_above_threshold": "false acceptance\n(share of wrong answers\nwith P(Yes) > {t:g})",
    "mean_p_yes": "mean P(Yes) of\nwrong answers",
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
    """
    if isinstance(measures, str):
        measures = (measures,)
    unknown = [m for m in measures if m not in _MISPLACED_MEASURES]
    if unknown or not measures:
        raise ValueError(f"measures must be from {sorted(_MISPLACED_MEASURES)}, got {list(measures)}")
    data = _analysis(analysis_df, "misplaced_confidence")
    if data["correct"].all():
        raise _NoData("misplaced_confidence: no wrong answers among the judged candidates")
    data["source_group"] = _style.source_group(data)
    deg = _Degenerate(_health(data, health, n_boot, seed))
    table = _stats.misplaced_confidence(
        data, by=("source_group", "mode"), threshold=threshold, n_boot=n_boot, seed=seed
    )
    wrong = table[table["correctness"] == "wrong"]
    judges = sorted(data["judge"].unique())
    modes = _modes(data["mode"].unique())
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
                ax.set_title(f"{_short(judge)}: {title}" if len(judges) > 1 else title)
                ax.set_ylabel(ylabel.format(t=threshold))
                sub = jw[jw["measure"] == measure]
                for gi, group in enumerate(groups):
                    color = _style.source_color(group)
                    for mode in modes:
                        cell = sub[(sub["source_group"] == group) & (sub["mode"] == mode)]
                        if cell.empty:
                            continue
                        row = cell.iloc[0]
                        _errorbar(
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
                note = deg.note(judge)
                if note:
                    _style.note_degenerate(ax, note)
        handles = [
            Line2D([], [], color="black", marker=_style.MODE_MARKERS.get(m, "o"), linestyle="none",
                   label=_style.mode_label(m))
            for m in modes
        ]
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), title="judge mode")
    table = table.copy()
    table["degenerate_reason"] = [deg.reason(j, m) for j, m in zip(table["judge"], table["mode"])]
    return _attach(fig, table)


# --------------------------------------------------------------------------------------------
# calibration
# --------------------------------------------------------------------------------------------


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
    """
    data = _analysis(analysis_df, "reliability")
    deg = _Degenerate(_health(data, health, n_boot, seed))
    table = _stats.reliability_table(data, n_bins=n_bins)
    cal = _stats.calibration(data, n_bins=n_bins, n_boot=n_boot, seed=seed)
    judges = sorted(data["judge"].unique())
    modes = _modes(data["mode"].unique())
    n_cols = len(modes)
    panel = _style.PAGE_WIDTH / max(n_cols, 2) if n_cols > 1 else _style.COLUMN_WIDTH * 0.8
    width = _style.width_for(n_cols)
    with _style.context():
        fig, axes = _style.new_figure(width, 0.35 + (panel + 0.15) * len(judges), len(judges), n_cols,
                                      sharex=True, sharey=True)
        for r, judge in enumerate(judges):
            for c, mode in enumerate(modes):
                ax = axes[r, c]
                _style.finish(ax, grid="both")
                ax.set_title(_panel_title(judge, mode, len(judges)))
                ax.plot([0, 1], [0, 1], color=_style.NEUTRAL_COLOR, linestyle="--", linewidth=0.8, zorder=1)
                t = table[(table["judge"] == judge) & (table["mode"] == mode)]
                if len(t):
                    ax.hlines(t["accuracy"], t["conf_min"], t["conf_max"], color="#bbbbbb", linewidth=2.0, zorder=2)
                    _errorbar(
                        ax, t["mean_confidence"], t["accuracy"], t["ci_low"], t["ci_high"],
                        color=_style.CORRECT_COLOR, marker="o", markersize=3.5, linestyle="-", linewidth=0.9,
                        elinewidth=0.7, capsize=1.5, zorder=3,
                    )
                cg = cal[(cal["judge"] == judge) & (cal["mode"] == mode)].set_index("measure")
                lines = []
                for measure, name in (("ece", "ECE"), ("brier", "Brier")):
                    if measure in cg.index:
                        row = cg.loc[measure]
                        lines.append(f"{name} {_fmt_ci(row['estimate'], row['ci_low'], row['ci_high'], 3)}")
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
                note = deg.note(judge, mode)
                if note:
                    _style.note_degenerate(ax, note)
    wide = cal.pivot_table(index=["judge", "mode"], columns="measure", values=["estimate", "ci_low", "ci_high"],
                           aggfunc="first")
    wide.columns = [f"{m}_{v}" if v != "estimate" else m for v, m in wide.columns]
    out = table.merge(wide.reset_index(), on=["judge", "mode"], how="left")
    out["degenerate_reason"] = [deg.reason(j, m) for j, m in zip(out["judge"], out["mode"])]
    return _attach(fig, out)


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
    """
    data = _analysis(analysis_df, "ptrue_histograms")
    hl = _health(data, health, n_boot, seed)
    deg = _Degenerate(hl)
    judges = sorted(data["judge"].unique())
    modes = _modes(data["mode"].unique())
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    rows = []
    with _style.context():
        fig, axes = _style.new_figure(
            _style.width_for(len(modes)), 0.45 + 1.75 * len(judges), len(judges), len(modes), sharex=True, sharey="row",
        )
        for r, judge in enumerate(judges):
            for c, mode in enumerate(modes):
                ax = axes[r, c]
                _style.finish(ax, grid="y")
                ax.set_title(_panel_title(judge, mode, len(judges)))
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
                    text = f"AUROC {_fmt_ci(h['auroc'], h['auroc_ci_low'], h['auroc_ci_high'])}\n" + text
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
                note = deg.note(judge, mode)
                if note:
                    _style.note_degenerate(ax, note)
        handles = [
            Patch(facecolor=_style.CORRECT_COLOR, alpha=0.45, edgecolor=_style.CORRECT_COLOR, label="correct answers"),
            Line2D([], [], color=_style.WRONG_COLOR, linestyle="--", linewidth=1.3, label="wrong answers"),
        ]
        fig.legend(handles=handles, loc="outside lower center", ncols=2)
    table = pd.DataFrame(rows)
    table["degenerate_reason"] = [deg.reason(j, m) for j, m in zip(table["judge"], table["mode"])]
    return _attach(fig, table)


# --------------------------------------------------------------------------------------------
# judge x author
# --------------------------------------------------------------------------------------------


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
    """
    if measure not in _MISPLACED_MEASURES:
        raise ValueError(f"measure must be one of {sorted(_MISPLACED_MEASURES)}, not {measure!r}")
    data = _analysis(analysis_df, "judge_author_heatmap")
    if data["correct"].all():
        raise _NoData("judge_author_heatmap: no wrong answers among the judged candidates")
    if "author" in data.columns and data["author"].notna().all():
        data["author"] = data["author"].astype(str)
    else:
        data["author"] = _style.author_group(data)
    deg = _Degenerate(_health(data, health, n_boot, seed))
    table = _stats.misplaced_confidence(data, by=("author", "mode"), threshold=threshold, n_boot=n_boot, seed=seed)
    table = table[(table["correctness"] == "wrong") & (table["measure"] == measure)].reset_index(drop=True)
    judges = sorted(data["judge"].unique())
    authors = _style.ordered(table["author"].unique(), _style.AUTHOR_ORDER)
    modes = _modes(table["mode"].unique())
    cmap = _mpl_cmap("cividis")
    n_cols = len(modes)
    with _style.context():
        fig, axes = _style.new_figure(
            _style.width_for(n_cols), 0.9 + 0.42 * len(judges) + 0.2 * (len(deg.reasons) > 0), 1, n_cols,
            sharey=True,
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
            ax.set_yticklabels([f"{_short(j)} †" if deg.reason(j, mode) else _short(j) for j in judges])
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
        bad = [j for j in judges if any(deg.reason(j, m) for m in modes)]
        if bad:
            _style.figure_note(fig, "† " + "; ".join(deg.note(j, name_judge=True) for j in bad))
        label = _HEATMAP_LABELS[measure].format(t=threshold)
        cbar = fig.colorbar(image, ax=axes[0, :].tolist(), shrink=0.9, aspect=15, pad=0.02)
        cbar.set_label(label)
        cbar.ax.tick_params(labelsize=_style.SMALL_FONT_SIZE, width=0.6, length=2.0)
        cbar.outline.set_linewidth(0.5)
    table["degenerate_reason"] = [deg.reason(j, m) for j, m in zip(table["judge"], table["mode"])]
    return _attach(fig, table)


def _mpl_cmap(name: str):
    import matplotlib as mpl

    return mpl.colormaps[name]


# --------------------------------------------------------------------------------------------
# pairwise
# --------------------------------------------------------------------------------------------


def _pairwise_health(pairwise_df: pd.DataFrame, n_boot: int, seed: int) -> pd.DataFrame:
    """judge_health of the pairwise verdicts: each pair gives two rows (a: pref_a, b: 1 - pref_a),
    with correctness of that side, mode "pairwise"."""
    pw = pairwise_df
    pref = pw["pref_a"].astype(float)
    if {"p_a_first", "p_a_second"} <= set(pw.columns):
        pref = pref.fillna(pw[["p_a_first", "p_a_second"]].astype(float).mean(axis=1))
    long = pd.DataFrame({
        "item_id": np.r_[pw["item_id"].to_numpy(dtype=object), pw["item_id"].to_numpy(dtype=object)],
        "judge": np.r_[pw["judge"].astype(str).to_numpy(dtype=object), pw["judge"].astype(str).to_numpy(dtype=object)],
        "mode": "pairwise",
        "p_yes": np.r_[pref.to_numpy(float), 1.0 - pref.to_numpy(float)],
        "correct": np.r_[pw["a_correct"].to_numpy(dtype=object), pw["b_correct"].to_numpy(dtype=object)],
    }).dropna(subset=["p_yes", "correct"])
    if long.empty:
        return pd.DataFrame(columns=["judge", "mode", "degenerate", "reasons"])
    long["correct"] = long["correct"].astype(bool)
    health = _stats.judge_health(long, n_boot=n_boot, seed=seed)
    health["reasons"] = health["reasons"].str.replace("P(Yes)", "P(chosen)", regex=False)
    return health


def winrate_by_perplexity(
    pairwise_df: pd.DataFrame,
    *,
    n_bins: int = 5,
    verdict: str = "average",
    health: pd.DataFrame | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
) -> Figure:
    """Pairwise win rate against the perplexity difference, self vs other (Wataoka et al. 2024).

    Per judge (one panel each), from :func:`selfbias.stats.winrate_by_perplexity`: every candidate
    of a judged pair is an entry with x = log-perplexity(this) - log-perplexity(opponent) under the
    judge (nats/token; negative = more familiar to the judge), binned in ``n_bins`` equal-count
    bins. Solid lines with intervals: the judge's win rate; dashed: the true win rate
    (correctness); vermillion: the judge's own answers, blue: other answers. Self-preference shows
    as the judge's curve above the true curve, more so on the left and for its own answers.

    Degeneracy of pairwise verdicts: ``health`` when given (rows with mode "pairwise" if any, else
    any mode of the judge), otherwise :func:`selfbias.stats.judge_health` on the pairs in long form
    (each pair's two candidates with P = order-averaged preference and their correctness).
    Data: the win-rate table.
    """
    _require(pairwise_df, ["item_id", "judge", "pref_a", "a_correct", "b_correct", "a_self", "b_self",
                           "a_mean_logprob", "b_mean_logprob", "p_a_first", "p_a_second"], "winrate_by_perplexity")
    pw = pairwise_df.dropna(subset=["a_mean_logprob", "b_mean_logprob", "a_correct", "b_correct"])
    if pw.empty:
        raise _NoData("winrate_by_perplexity: no judged pairs with log-likelihoods under the judge")
    pw = pw.assign(judge=pw["judge"].astype(str))
    if health is None:
        health = _pairwise_health(pw, n_boot, seed)
    elif "mode" in health.columns and (health["mode"].astype(str) == "pairwise").any():
        health = health[health["mode"].astype(str) == "pairwise"]
    deg = _Degenerate(health)
    table = _stats.winrate_by_perplexity(pw, n_bins=n_bins, verdict=verdict, n_boot=n_boot, seed=seed)
    judges = sorted(pw["judge"].unique())
    n_cols = min(len(judges), 3)
    n_rows = math.ceil(len(judges) / n_cols)
    with _style.context():
        fig, axes = _style.new_figure(_style.width_for(n_cols), 0.6 + 2.1 * n_rows, n_rows, n_cols, sharey=True)
        flat = list(_style.iter_axes(axes))
        for k, ax in enumerate(flat):
            if k >= len(judges):
                ax.set_visible(False)
                continue
            judge = judges[k]
            _style.finish(ax, grid="y")
            ax.axhline(0.5, color=_style.NEUTRAL_COLOR, linewidth=0.7, linestyle=":", zorder=1)
            ax.axvline(0.0, color=_style.NEUTRAL_COLOR, linewidth=0.7, linestyle=":", zorder=1)
            t = table[table["judge"] == judge]
            for author, color, marker in (("self", _style.SELF_COLOR, "o"), ("other", _style.OTHER_COLOR, "s")):
                a = t[t["author"] == author]
                jw = a[a["measure"] == "judge_win_rate"].sort_values("bin")
                tw = a[a["measure"] == "true_win_rate"].sort_values("bin")
                if len(jw):
                    _errorbar(ax, jw["delta_mean"], jw["estimate"], jw["ci_low"], jw["ci_high"], color=color,
                              marker=marker, markersize=3.5, linestyle="-", linewidth=1.0, elinewidth=0.7,
                              capsize=1.5, zorder=3)
                if len(tw):
                    ax.plot(tw["delta_mean"], tw["estimate"], color=color, marker=marker, markersize=3.2,
                            markerfacecolor="white", linestyle="--", linewidth=0.9, zorder=2)
            ax.set_ylim(-0.03, 1.03)
            ax.set_title(_short(judge) if len(judges) > 1 else f"judge: {_short(judge)}")
            if k % n_cols == 0:
                ax.set_ylabel("win rate")
            ax.set_xlabel("Δ log-perplexity, this − opponent\n(nats/token)")
            note = deg.note(judge)
            if note:
                _style.note_degenerate(ax, note)
        handles = [
            Line2D([], [], color=_style.SELF_COLOR, marker="o", linestyle="-", label="own answers: judge"),
            Line2D([], [], color=_style.SELF_COLOR, marker="o", markerfacecolor="white", linestyle="--",
                   label="own answers: truth"),
            Line2D([], [], color=_style.OTHER_COLOR, marker="s", linestyle="-", label="other answers: judge"),
            Line2D([], [], color=_style.OTHER_COLOR, marker="s", markerfacecolor="white", linestyle="--",
                   label="other answers: truth"),
        ]
        fig.legend(handles=handles, loc="outside lower center", ncols=2 if n_cols == 1 else 4)
    table = table.copy()
    table["degenerate_reason"] = [deg.reason(j) for j in table["judge"]]
    return _attach(fig, table)


# --------------------------------------------------------------------------------------------
# likelihood regression
# --------------------------------------------------------------------------------------------

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
    """
    if isinstance(result, RegressionResult):
        coefs = result.coefficients.copy()
        info = f"{result.method}, n = {result.n_obs}, {result.n_clusters} items"
    elif isinstance(result, pd.DataFrame):
        coefs = result.copy()
        info = None
    else:
        raise TypeError(f"regression_forest: expected a RegressionResult or DataFrame, got {type(result).__name__}")
    _require(coefs, ["term", "estimate", "ci_low", "ci_high"], "regression_forest")
    if terms is None:
        order = list(dict.fromkeys(coefs["term"].astype(str)))
        if not include_intercept:
            order = [t for t in order if t != "Intercept"]
    else:
        order = [str(t) for t in terms]
    coefs = coefs[coefs["term"].astype(str).isin(order)]
    if coefs.empty:
        raise _NoData("regression_forest: no coefficients to draw")
    series_col = "judge" if "judge" in coefs.columns else None
    series = sorted(coefs[series_col].astype(str).unique()) if series_col else [""]
    colors = _style.series_colors(series) if len(series) > 1 else {"": "black", series[0]: "black"}
    deg = _Degenerate(health)
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
                _errorbar_h(ax, row["estimate"], y, row["ci_low"], row["ci_high"], color=colors[s],
                            filled=bool(sig))
        ax.set_yticks([ypos[t] for t in order])
        ax.set_yticklabels([_term_label(t) for t in order])
        ax.set_ylim(-0.7, len(order) - 0.3)
        ax.set_xlabel("coefficient (Δ logit P(Yes))")
        ax.set_title(title or ("likelihood regression" + (f"\n({info})" if info else "")))
        handles = []
        if len(series) > 1:
            handles += [Line2D([], [], color=colors[s], marker="o", linestyle="-",
                               label=f"{_short(s)} (degenerate)" if deg.reason(s) else _short(s)) for s in series]
        handles += [
            Line2D([], [], color="black", marker="o", linestyle="none",
                   label=f"p{'_Holm' if pcol == 'p_holm' else ''} < {alpha:g}"),
            Line2D([], [], color="black", marker="o", markerfacecolor="white", linestyle="none",
                   label="not significant"),
        ] if pcol else []
        if handles:
            fig.legend(handles=handles, loc="outside lower center", ncols=2)
        judges_shown = series if series_col else sorted({j for j, _ in deg.reasons})
        notes = [deg.note(j, name_judge=True) for j in judges_shown if deg.reason(j)]
        if notes:
            _style.figure_note(fig, notes, where="top")
            if not series_col or len(series) == 1:
                for spine in ax.spines.values():
                    spine.set_edgecolor(_style.ALERT_COLOR)
    data = coefs.copy()
    data["label"] = [_term_label(t) for t in data["term"]]
    if series_col:
        data["degenerate_reason"] = [deg.reason(str(j)) for j in data[series_col]]
    return _attach(fig, data)


def _errorbar_h(ax, x, y, lo, hi, *, color, filled):
    xerr = None
    if np.isfinite(lo) and np.isfinite(hi):
        xerr = [[max(x - lo, 0.0)], [max(hi - x, 0.0)]]
    ax.errorbar([x], [y], xerr=xerr, color=color, marker="o", markersize=3.8, linestyle="none",
                markerfacecolor=color if filled else "white", markeredgecolor=color, markeredgewidth=0.9,
                elinewidth=0.9, capsize=1.5, zorder=3)


# --------------------------------------------------------------------------------------------
# judge health
# --------------------------------------------------------------------------------------------


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
    """
    data = _analysis(analysis_df, "judge_health")
    h = _health(data, health, n_boot, seed).copy()
    if h.empty:
        raise _NoData("judge_health: empty judge-health table")
    if "mode" not in h.columns:
        h["mode"] = ""
    h["judge"] = h["judge"].astype(str)
    h["mode"] = h["mode"].astype(str)
    mode_rank = {m: i for i, m in enumerate(_modes(h["mode"].unique()))}
    h = h.sort_values(
        ["judge", "mode"], key=lambda col: col.map(mode_rank) if col.name == "mode" else col
    ).reset_index(drop=True)
    n_judges = h["judge"].nunique()
    labels = [f"{_short(j)} · {_style.mode_label(m)}" if n_judges > 1 else _style.mode_label(m)
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
                    _errorbar_h(ax, v, y[i], lo, hi, color=color, filled=True)
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
        if bad_rows:
            _style.figure_note(fig, [f"degenerate judge: {labels[i]}: {h.loc[i, 'reasons']}" for i in bad_rows])
        fig.suptitle("judge health", x=0.01, ha="left")
    return _attach(fig, h)


# --------------------------------------------------------------------------------------------
# token trace
# --------------------------------------------------------------------------------------------


def _as_list(v) -> list:
    if isinstance(v, (list, tuple, np.ndarray)):
        return list(v)
    return []


def _pick_trace(sc: pd.DataFrame, item_id, scorer, max_tokens: int):
    """(scorer, item_id, own row, reference row) for token_trace."""
    has_authors = "authors" in sc.columns
    has_sources = "sources" in sc.columns

    def own_greedy(row) -> bool:
        srcs = set(_as_list(row["sources"])) if has_sources else set()
        is_greedy = row["source"] == "own_greedy" or "own_greedy" in srcs
        return bool(is_greedy and (not has_authors or row["scorer"] in _as_list(row["authors"])))

    def reference(row) -> bool:
        srcs = set(_as_list(row["sources"])) if has_sources else set()
        return bool((row["source"] == "reference" or "reference" in srcs) and bool(row["correct"]))

    scorers = [str(scorer)] if scorer is not None else sorted(sc["scorer"].astype(str).unique())
    candidates = []
    for s in scorers:
        sub = sc[sc["scorer"].astype(str) == s]
        if item_id is not None:
            sub = sub[sub["item_id"].astype(str) == str(item_id)]
        if sub.empty:
            continue
        own_mask = np.array([own_greedy(r) for r in sub.to_dict("records")], dtype=bool)
        ref_mask = np.array([reference(r) for r in sub.to_dict("records")], dtype=bool)
        own, ref = sub[own_mask], sub[ref_mask]
        for item, o in own.groupby("item_id", sort=True):
            r = ref[ref["item_id"] == item]
            if r.empty:
                continue
            orow = o.iloc[0]
            rrow = r.sort_values("sum_logprob", ascending=False).iloc[0]
            margin = float(orow["sum_logprob"]) - float(rrow["sum_logprob"])
            wrong = not bool(orow["correct"])
            n_tok = len(_as_list(orow["logprobs"])) + len(_as_list(rrow["logprobs"]))
            candidates.append((s, item, orow, rrow, wrong, margin, n_tok))
    if not candidates:
        where = f" for item {item_id!r}" if item_id is not None else ""
        by = f" under scorer {scorer!r}" if scorer is not None else ""
        raise _NoData(f"token_trace: no item{where} with both a model's own greedy answer and a reference "
                      f"scored by that model{by}")
    if item_id is not None:
        chosen = sorted(candidates, key=lambda c: (not c[4], -c[5]))[0]
    else:
        eligible = [c for c in candidates if c[4] and c[5] > 0]
        if not eligible:
            raise _NoData("token_trace: no item where a model's own greedy answer is wrong and has a higher "
                          "log-likelihood than the reference under that model")
        chosen = sorted(eligible, key=lambda c: (c[6] > 2 * max_tokens, -c[5], str(c[0]), str(c[1])))[0]
    return chosen[:4]


def token_trace(
    scores_df: pd.DataFrame,
    candidates_df: pd.DataFrame,
    item_id: str | None = None,
    scorer: str | None = None,
    *,
    items_df: pd.DataFrame | None = None,
    max_tokens: int = 30,
) -> Figure:
    """Per-token log-probabilities of a model's own (wrong) greedy answer against the reference.

    Bars are the log-probability of each token under ``scorer`` (nats; a taller bar downwards is a
    less likely token), with the tokens written under them (``␣`` space, ``↵`` newline); titles give
    the answer text and the total log-likelihood. The own answer is the candidate with source (or
    sources) ``own_greedy`` authored by ``scorer``; the reference is the correct ``reference``
    candidate with the highest log-likelihood. With ``item_id`` None the item is picked
    automatically: the own greedy answer is wrong and outscores the reference (largest margin
    first, preferring short answers); with ``scorer`` None every scorer is considered. At most
    ``max_tokens`` tokens per answer are drawn (the sum covers all). ``items_df`` adds the
    question to the title. Data: one row per drawn token.
    """
    _require(scores_df, ["item_id", "candidate_id", "scorer", "tokens", "logprobs", "sum_logprob"], "token_trace")
    _require(candidates_df, ["item_id", "candidate_id", "text", "source", "correct"], "token_trace")
    keep = [c for c in ("item_id", "candidate_id", "text", "source", "sources", "authors", "correct")
            if c in candidates_df.columns]
    sc = scores_df.merge(candidates_df[keep], on=["item_id", "candidate_id"], how="inner")
    sc = sc.dropna(subset=["sum_logprob", "correct"])
    if sc.empty:
        raise _NoData("token_trace: no scored candidates")
    s, item, own, ref = _pick_trace(sc, item_id, scorer, max_tokens)
    own_label = "own greedy answer (" + ("correct" if bool(own["correct"]) else "wrong") + ")"
    parts = [(own_label, own, _style.SOURCE_COLORS["own greedy"]),
             ("reference", ref, _style.SOURCE_COLORS["reference"])]
    rows = []
    shown = []
    for role, row, color in parts:
        lps = [float(v) if v is not None else np.nan for v in _as_list(row["logprobs"])]
        toks = _as_list(row["tokens"])
        toks = toks + [""] * (len(lps) - len(toks))
        argmax = _as_list(row["is_argmax"]) if "is_argmax" in row.index else []
        disp = readable_tokens(toks[: len(lps)])
        n_all = len(lps)
        lps, disp = lps[:max_tokens], disp[:max_tokens]
        shown.append((role, row, color, lps, disp, n_all))
        for pos, (lp, d) in enumerate(zip(lps, disp)):
            rows.append({"scorer": s, "item_id": item, "candidate_id": row["candidate_id"], "role": role,
                         "position": pos, "token": toks[pos], "token_display": d, "logprob": lp,
                         "is_argmax": bool(argmax[pos]) if pos < len(argmax) and argmax[pos] is not None else None,
                         "sum_logprob": float(row["sum_logprob"]), "correct": bool(row["correct"]),
                         "text": row["text"]})
    widths = [max(len(x[3]), 4) for x in shown]
    total = sum(widths)
    fig_width = _style.COLUMN_WIDTH if total <= 10 else _style.PAGE_WIDTH
    long_labels = any(len(d) > 3 for x in shown for d in x[4]) or total > 16
    lowest = min([v for x in shown for v in x[3] if np.isfinite(v)] or [-1.0])
    question = None
    if items_df is not None and {"item_id", "question"} <= set(items_df.columns):
        q = items_df.loc[items_df["item_id"].astype(str) == str(item), "question"]
        question = str(q.iloc[0]) if len(q) else None
    with _style.context():
        fig, axes = _style.new_figure(fig_width, 2.5 + (0.35 if long_labels else 0) + (0.2 if question else 0),
                                      1, 2, sharey=True, gridspec_kw={"width_ratios": widths})
        for k, (role, row, color, lps, disp, n_all) in enumerate(shown):
            ax = axes[0, k]
            _style.finish(ax, grid="y")
            x = np.arange(len(lps))
            ax.bar(x, lps, width=0.75, color=color, edgecolor="none", zorder=2)
            ax.axhline(0, color="black", linewidth=0.6, zorder=3)
            ax.set_xticks(x)
            ax.set_xticklabels(disp, rotation=90 if long_labels else 0, fontsize=_style.SMALL_FONT_SIZE)
            ax.set_xlim(-0.6, max(len(lps), 2) - 0.4)
            more = f" (+{n_all - len(lps)} tokens)" if n_all > len(lps) else ""
            panel_in = (fig_width - 0.6) * widths[k] / total
            text = _style.renderable(_style.shorten(str(row["text"]), _style.chars_for(panel_in, bold=False) - 2))
            total_lp = f"{float(row['sum_logprob']):.2f}".replace("-", "−")
            ax.set_title(f"{role}\n“{text}”{more}\nΣ = {total_lp} nats",
                         color="black", fontsize=_style.SMALL_FONT_SIZE)
            if k == 0:
                ax.set_ylabel("token log-probability (nats)")
        axes[0, 0].set_ylim(min(lowest * 1.12, -0.5), 0.0)
        head = f"{_style.renderable(_style.shorten(str(item), 30))} under {_short(s)}"
        if question:
            head += ": " + _style.renderable(_style.shorten(question, 160))
        fig.suptitle(_style.wrap(head, _style.chars_for(fig_width * 0.95, bold=False), 2),
                     fontsize=_style.TITLE_FONT_SIZE)
    return _attach(fig, pd.DataFrame(rows))


# --------------------------------------------------------------------------------------------
# everything at once
# --------------------------------------------------------------------------------------------


def _frame(get: Callable[[], pd.DataFrame]) -> tuple[pd.DataFrame | None, str | None]:
    try:
        return get(), None
    except Exception as e:  # a broken table must not stop the other figures
        return None, f"{type(e).__name__}: {e}"


def _per_judge_regression(analysis: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    parts, failed = [], []
    for judge in sorted(analysis["judge"].astype(str).unique()):
        try:
            res = _stats.likelihood_regression(analysis, judge=judge)
        except (ValueError, np.linalg.LinAlgError) as e:
            failed.append(f"{judge}: {e}")
            continue
        parts.append(res.coefficients.assign(judge=judge, n_obs=res.n_obs, n_clusters=res.n_clusters,
                                             method=res.method))
    if not parts:
        raise _NoData("likelihood regression could not be fitted: " + "; ".join(failed))
    return pd.concat(parts, ignore_index=True), failed


def draw_all(
    run,
    out_dir: str | os.PathLike,
    formats: Sequence[str] = ("pdf", "png"),
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
) -> pd.DataFrame:
    """Draw every figure the run's tables support into ``out_dir``.

    ``run`` is a :class:`selfbias.runs.Run` (anything with ``analysis_frame()``,
    ``pairwise_frame()``, ``scores``, ``candidates``, ``items`` and ``judgments``). Each figure
    in :data:`FIGURES` is saved as ``<out_dir>/<figure>.<format>`` with the numbers behind it in
    ``<figure>.csv``. Returns one row per figure: ``figure``, ``status`` (``"drawn"``,
    ``"skipped"`` when the tables cannot support it -- ``reason`` says why, e.g. "no pairwise
    judgments in this run" -- or ``"failed"`` when drawing raised; ``reason`` holds the error),
    ``reason`` (also notes on drawn figures, e.g. judges whose regression failed) and ``files``
    (list of written paths).
    """
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    judgments, j_err = _frame(lambda: run.judgments)
    analysis, a_err = _frame(run.analysis_frame)
    pairwise, p_err = _frame(run.pairwise_frame)
    scores, s_err = _frame(lambda: run.scores)
    candidates, c_err = _frame(lambda: run.candidates)
    items, _ = _frame(lambda: run.items)

    no_judgments = judgments is not None and (judgments.empty or "mode" not in judgments.columns)

    def analysis_reason(extra: Sequence[str] = ()) -> str | None:
        if a_err:
            return f"analysis frame could not be built ({a_err})"
        if no_judgments or analysis is None or analysis.empty:
            if not no_judgments and judgments is not None and "mode" in judgments.columns:
                return "no P(Yes) judgments in this run (only pairwise)"
            return "no judgments in this run"
        usable = analysis.dropna(subset=["p_yes"])
        if usable.empty:
            return "no judgment has a P(Yes)"
        if usable["correct"].isna().all():
            return "judged candidates have no correctness (no candidates table?)"
        for col in extra:
            if usable.dropna(subset=["correct"])[col].isna().all():
                return ("no log-likelihoods of the judged candidates under their judge "
                        "(no scores table, or the judges did not score them)")
        return None

    def usable() -> pd.DataFrame:
        return analysis.dropna(subset=["p_yes", "correct"])

    state: dict = {}

    def health() -> pd.DataFrame:
        if "health" not in state:
            data = usable().copy()
            data["correct"] = data["correct"].astype(bool)
            state["health"] = _stats.judge_health(data, n_boot=n_boot, seed=seed)
        return state["health"]

    def need(reason: str | None) -> None:
        if reason:
            raise _NoData(reason)

    def wrong_needed() -> None:
        if usable()["correct"].astype(bool).all():
            raise _NoData("no wrong answers among the judged candidates")

    notes: dict[str, str] = {}

    def fig_health():
        need(analysis_reason())
        return judge_health(usable(), health=health(), n_boot=n_boot, seed=seed)

    def fig_likelihood():
        need(analysis_reason(["sum_logprob"]))
        return likelihood_vs_confidence(usable(), health=health(), n_boot=n_boot, seed=seed)

    def fig_misplaced():
        need(analysis_reason())
        wrong_needed()
        return misplaced_confidence(usable(), health=health(), n_boot=n_boot, seed=seed)

    def fig_reliability():
        need(analysis_reason())
        return reliability(usable(), health=health(), n_boot=n_boot, seed=seed)

    def fig_ptrue():
        need(analysis_reason())
        return ptrue_histograms(usable(), health=health(), n_boot=n_boot, seed=seed)

    def fig_heatmap():
        need(analysis_reason())
        n_judges = usable()["judge"].nunique()
        if n_judges < 2:
            raise _NoData("only one judge model")
        wrong_needed()
        return judge_author_heatmap(usable(), health=health(), n_boot=n_boot, seed=seed)

    def fig_regression():
        need(analysis_reason(["sum_logprob"]))
        coefs, failed = _per_judge_regression(usable())
        if failed:
            notes["regression_forest"] = "regression failed for " + "; ".join(failed)
        return regression_forest(coefs, health=health())

    def fig_winrate():
        if p_err:
            raise _NoData(f"pairwise frame could not be built ({p_err})")
        if pairwise is None or pairwise.empty:
            raise _NoData("no pairwise judgments in this run")
        if pairwise[["a_mean_logprob", "b_mean_logprob"]].isna().all().any():
            raise _NoData("judged pairs have no log-likelihoods under the judge (no scores table?)")
        return winrate_by_perplexity(pairwise, n_boot=n_boot, seed=seed)

    def fig_trace():
        if s_err or c_err:
            raise _NoData(f"scores or candidates could not be read ({s_err or c_err})")
        if scores is None or scores.empty:
            raise _NoData("no scores in this run")
        if candidates is None or candidates.empty:
            raise _NoData("no candidates in this run")
        lacking = [c for c in ("tokens", "logprobs", "sum_logprob") if c not in scores.columns]
        if lacking:
            raise _NoData(f"scores table lacks per-token column(s) {lacking}")
        return token_trace(scores, candidates, items_df=items if items is not None and len(items) else None)

    jobs = {
        "judge_health": fig_health,
        "likelihood_vs_confidence": fig_likelihood,
        "misplaced_confidence": fig_misplaced,
        "reliability": fig_reliability,
        "ptrue_histograms": fig_ptrue,
        "judge_author_heatmap": fig_heatmap,
        "regression_forest": fig_regression,
        "winrate_by_perplexity": fig_winrate,
        "token_trace": fig_trace,
    }
    rows = []
    for name in FIGURES:
        try:
            fig = jobs[name]()
        except _NoData as e:
            rows.append({"figure": name, "status": "skipped", "reason": str(e), "files": []})
            continue
        except Exception as e:  # noqa: BLE001 - one broken figure must not stop the others
            rows.append({"figure": name, "status": "failed", "reason": f"{type(e).__name__}: {e}", "files": []})
            continue
        files = [str(p) for p in save(fig, out / name, formats)]
        data = getattr(fig, "selfbias_data", None)
        if isinstance(data, pd.DataFrame):
            csv = out / f"{name}.csv"
            data.to_csv(csv, index=False)
            files.append(str(csv))
        rows.append({"figure": name, "status": "drawn", "reason": notes.get(name, ""), "files": files})
    return pd.DataFrame(rows, columns=["figure", "status", "reason", "files"])
