"""P(Yes) against the candidate's log-likelihood under the judge."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .. import stats as _stats
from . import _style
from ._common import (
    DEFAULT_N_BOOT,
    Degenerate,
    analysis_rows,
    attach,
    errorbar,
    flag_degenerate,
    health_of,
    ordered_modes,
    panel_title,
)


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

    Parameters
    ----------
    analysis_df : pandas.DataFrame
        An analysis frame (``Run.analysis_frame()``): ``item_id, judge, mode, p_yes, correct``
        and the columns named below; pairwise rows and rows without P(Yes) or correctness are
        left out.
    loglik : {"sum_logprob", "mean_logprob"}
        The log-likelihood on the x axis (nats, or nats per token).
    n_bins : int
        Most bins per source group x correctness.
    min_per_bin : int
        Fewest candidates per bin.
    health : pandas.DataFrame, optional
        A :func:`selfbias.stats.judge_health` table; computed from ``analysis_df`` when None.
    n_boot : int
        Bootstrap resamples of the intervals.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    matplotlib.figure.Figure
        The figure, with the numbers it shows as ``fig.selfbias_data`` (one row per judge x mode
        x source x correctness x bin).

    Raises
    ------
    ValueError
        Missing columns or bad options; no usable rows (e.g. no candidate with a log-likelihood).
    """
    if loglik not in ("sum_logprob", "mean_logprob"):
        raise ValueError(f"loglik must be 'sum_logprob' or 'mean_logprob', not {loglik!r}")
    data = analysis_rows(analysis_df, "likelihood_vs_confidence", extra=[loglik])
    data["group"] = _style.source_group(data)
    deg = Degenerate(health_of(data, health, n_boot, seed))
    judges = sorted(data["judge"].unique())
    modes = ordered_modes(data["mode"].unique())
    groups = _style.ordered(data["group"].unique(), _style.SOURCE_ORDER)
    rows = []
    notes = _style.Footnotes()
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
                ax.set_title(panel_title(judge, mode, len(judges)))
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
                        bins = _stats.binned_clustered_means(
                            x, y, sub["item_id"].to_numpy(dtype=object), n_bins=n_bins, min_per_bin=min_per_bin)
                        rows.extend(
                            {"judge": judge, "mode": mode, "source_group": group, "correct": correct,
                             "bin": b.bin, "loglik": loglik, "loglik_mean": b.x_mean, "loglik_min": b.x_min,
                             "loglik_max": b.x_max, "p_yes_mean": b.mean, "ci_low": b.ci_low, "ci_high": b.ci_high,
                             "n": b.n, "n_items": b.n_items}
                            for b in bins.itertuples(index=False)
                        )
                        bx, by, blo, bhi = bins["x_mean"], bins["mean"], bins["ci_low"], bins["ci_high"]
                        errorbar(
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
                flag_degenerate(ax, notes, deg.note(judge, mode))
        handles = [Line2D([], [], color=_style.source_color(g), marker="o", linestyle="-", label=g) for g in groups]
        handles += [
            Line2D([], [], color="black", marker="o", linestyle="-", label="correct"),
            Line2D([], [], color="black", marker="o", markerfacecolor="white", linestyle="--", label="wrong"),
        ]
        _style.fit_labels(fig)
        _style.legend_and_notes(fig, handles, notes, ncols=min(len(handles), 4 if len(modes) == 1 else 8))
    table = pd.DataFrame(rows)
    table["degenerate_reason"] = [deg.reason(j, m) for j, m in zip(table["judge"], table["mode"])] if len(table) else []
    return attach(fig, table)


