"""What every figure module of :mod:`selfbias.plots` shares: input rows, degenerate-judge look-up,
labels, error bars. Names are public inside this private module so that the figure modules
import no private name."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .. import stats as _stats
from . import _style

DEFAULT_N_BOOT = _stats.DEFAULT_N_BOOT


class NoData(ValueError):
    """The tables hold nothing this figure can show (draw_all: 'skipped' with this reason)."""


def analysis_rows(df: pd.DataFrame, what: str, extra: Sequence[str] = ()) -> pd.DataFrame:
    """The usable rows of an analysis frame: P(Yes) judgments with correctness (and ``extra``)."""
    _stats.require_columns(df, ["item_id", "judge", "mode", "p_yes", "correct", *extra], what)
    data = df[df["mode"].astype(str) != "pairwise"].dropna(subset=["p_yes", "correct", *extra]).copy()
    if data.empty:
        need = ", ".join(["P(Yes)", "correctness", *extra])
        raise NoData(f"{what}: no judged candidates with {need}")
    data["correct"] = data["correct"].astype(bool)
    data["judge"] = data["judge"].astype(str)
    data["mode"] = data["mode"].astype(str)
    data["p_yes"] = data["p_yes"].astype(float)
    return data.reset_index(drop=True)


def attach(fig: Figure, data: pd.DataFrame) -> Figure:
    """``fig`` with the numbers it shows as ``fig.selfbias_data`` (draw_all writes them as CSV).

    Where the rows say which judge failed its health checks (``degenerate_reason``), they also
    get ``judge_passes_health`` (False for those rows), the column every table of estimates of
    :func:`selfbias.stats.summarize` carries, so an interval or p-value read from any CSV is
    marked the same way.  (The judge-health table itself is marked by its ``degenerate`` column,
    as in ``summarize``'s ``health`` table.)"""
    data = data.reset_index(drop=True)
    if "degenerate_reason" in data.columns and _stats.HEALTH_COLUMN not in data.columns:
        data[_stats.HEALTH_COLUMN] = data["degenerate_reason"].isna().to_numpy()
    fig.selfbias_data = data
    return fig


def health_of(df: pd.DataFrame, health: pd.DataFrame | None, n_boot: int, seed: int) -> pd.DataFrame:
    """judge_health of the analysis frame unless given."""
    if health is not None:
        return health
    return _stats.judge_health(df, n_boot=n_boot, seed=seed)


def ordered_modes(values) -> list[str]:
    return _style.ordered(values, _style.MODE_ORDER)


class Degenerate:
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
        return ordered_modes(m for (j, m) in self.reasons if j == judge and m is not None)

    def note(self, judge: str, mode: str | None = None, *, name_judge: bool = False) -> str | None:
        """``degenerate judge (<judge>; <modes>): <all reasons>``, in full (None for a healthy judge).

        With ``mode`` None the reasons of every mode the judge is degenerate in are given, each
        after its mode's name when the modes differ in reasons."""
        if self.reason(judge, mode) is None:
            return None
        where = [short(judge)] if name_judge else []
        if mode is not None:
            where.append(_style.mode_label(mode))
            body = self.reason(judge, mode)
        else:
            modes = self.modes(judge)
            by_mode = {m: self.reasons[(judge, m)] for m in modes}
            if modes and len(set(by_mode.values())) == 1:
                where.append(", ".join(_style.mode_label(m) for m in modes))
                body = next(iter(by_mode.values()))
            else:  # one line per mode, in display order
                body = "\n".join(f"{_style.mode_label(m)}: {by_mode[m]}" for m in modes) if modes \
                    else self.reason(judge)
                if modes:
                    body = "\n" + body
        label = "degenerate judge" + (f" ({'; '.join(where)})" if where else "")
        return f"{label}:{body}" if body.startswith("\n") else f"{label}: {body}"


def short(name: str, limit: int = 28) -> str:
    """A model name for a label: without an ``org/`` prefix or local folder, at most ``limit`` chars
    (the data keep full names)."""
    text = str(name).rstrip("/")
    return _style.renderable(_style.shorten(text.rsplit("/", 1)[-1] or text, limit))


def panel_title(judge: str, mode: str, n_judges: int) -> str:
    return f"{short(judge)} · {_style.mode_label(mode)}" if n_judges > 1 else _style.mode_label(mode)


def errorbar(ax, x, y, lo, hi, **kw):
    """Vertical error bars from interval ends (a missing end draws no bar on that side)."""
    y = np.asarray(y, float)
    lo = np.asarray(lo, float)
    hi = np.asarray(hi, float)
    err = np.vstack([np.where(np.isfinite(lo), y - lo, 0.0), np.where(np.isfinite(hi), hi - y, 0.0)])
    err = np.clip(err, 0.0, None)
    return ax.errorbar(x, y, yerr=err, **kw)


def errorbar_h(ax, x, y, lo, hi, *, color, filled):
    """One horizontal estimate with its interval; an open marker when not ``filled``."""
    xerr = None
    if np.isfinite(lo) and np.isfinite(hi):
        xerr = [[max(x - lo, 0.0)], [max(hi - x, 0.0)]]
    ax.errorbar([x], [y], xerr=xerr, color=color, marker="o", markersize=3.8, linestyle="none",
                markerfacecolor=color if filled else "white", markeredgecolor=color, markeredgewidth=0.9,
                elinewidth=0.9, capsize=1.5, zorder=3)


def fmt_ci(est, lo, hi, digits: int = 2) -> str:
    if not np.isfinite(est):
        return "n/a"
    s = f"{est:.{digits}f}"
    if np.isfinite(lo) and np.isfinite(hi):
        s += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return s


def flag_degenerate(ax, notes: _style.Footnotes, text: str | None) -> None:
    """Mark a panel of a degenerate judge (``text``: its :meth:`Degenerate.note`, None for a
    healthy one) with ``degenerate judge¹``; the full text becomes the figure's footnote."""
    if text:
        _style.note_degenerate(ax, "degenerate judge" + notes.mark(text))
