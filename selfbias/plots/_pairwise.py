"""Pairwise verdicts: win rate against the perplexity difference."""

from __future__ import annotations

import math

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .. import stats as _stats
from . import _style
from ._common import DEFAULT_N_BOOT, Degenerate, NoData, attach, errorbar, flag_degenerate, short


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

    Parameters
    ----------
    pairwise_df : pandas.DataFrame
        A pairwise frame (``Run.pairwise_frame()``): ``item_id, judge, pref_a, p_a_first,
        p_a_second, a_correct, b_correct, a_self, b_self, a_mean_logprob, b_mean_logprob``.
    n_bins : int
        Equal-count bins of the log-perplexity difference.
    verdict : str
        How a pair's two orders make a verdict (see :func:`selfbias.stats.winrate_by_perplexity`).
    health : pandas.DataFrame, optional
        A judge_health table (rows of mode ``pairwise`` are used when present); computed from
        the pairs when None.
    n_boot : int
        Bootstrap resamples of the intervals.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    matplotlib.figure.Figure
        The figure, with the numbers it shows as ``fig.selfbias_data`` (the win-rate table).

    Raises
    ------
    ValueError
        Missing columns or bad options; no usable rows (e.g. no pair with log-likelihoods).
    """
    _stats.require_columns(pairwise_df, ["item_id", "judge", "pref_a", "a_correct", "b_correct", "a_self", "b_self",
                           "a_mean_logprob", "b_mean_logprob", "p_a_first", "p_a_second"], "winrate_by_perplexity")
    pw = pairwise_df.dropna(subset=["a_mean_logprob", "b_mean_logprob", "a_correct", "b_correct"])
    if pw.empty:
        raise NoData("winrate_by_perplexity: no judged pairs with log-likelihoods under the judge")
    pw = pw.assign(judge=pw["judge"].astype(str))
    if health is None:
        health = _stats.pairwise_verdict_health(pw, n_boot=n_boot, seed=seed)
    elif "mode" in health.columns and (health["mode"].astype(str) == "pairwise").any():
        health = health[health["mode"].astype(str) == "pairwise"]
    deg = Degenerate(health)
    table = _stats.winrate_by_perplexity(pw, n_bins=n_bins, verdict=verdict, n_boot=n_boot, seed=seed)
    judges = sorted(pw["judge"].unique())
    n_cols = min(len(judges), 3)
    n_rows = math.ceil(len(judges) / n_cols)
    notes = _style.Footnotes()
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
                    errorbar(ax, jw["delta_mean"], jw["estimate"], jw["ci_low"], jw["ci_high"], color=color,
                              marker=marker, markersize=3.5, linestyle="-", linewidth=1.0, elinewidth=0.7,
                              capsize=1.5, zorder=3)
                if len(tw):
                    ax.plot(tw["delta_mean"], tw["estimate"], color=color, marker=marker, markersize=3.2,
                            markerfacecolor="white", linestyle="--", linewidth=0.9, zorder=2)
            ax.set_ylim(-0.03, 1.03)
            ax.set_title(short(judge) if len(judges) > 1 else f"judge: {short(judge)}")
            if k % n_cols == 0:
                ax.set_ylabel("win rate")
            ax.set_xlabel("Δ log-perplexity, this − opponent\n(nats/token)")
            flag_degenerate(ax, notes, deg.note(judge, name_judge=len(judges) > 1))
        handles = [
            Line2D([], [], color=_style.SELF_COLOR, marker="o", linestyle="-", label="own answers: judge"),
            Line2D([], [], color=_style.SELF_COLOR, marker="o", markerfacecolor="white", linestyle="--",
                   label="own answers: truth"),
            Line2D([], [], color=_style.OTHER_COLOR, marker="s", linestyle="-", label="other answers: judge"),
            Line2D([], [], color=_style.OTHER_COLOR, marker="s", markerfacecolor="white", linestyle="--",
                   label="other answers: truth"),
        ]
        _style.fit_labels(fig)
        _style.legend_and_notes(fig, handles, notes, ncols=2 if n_cols == 1 else 4)
    table = table.copy()
    table["degenerate_reason"] = [deg.reason(j) for j in table["judge"]]
    return attach(fig, table)


