"""The figures a run can have, as one list of specs, and :func:`draw_all`, which walks it."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from .. import stats as _stats
from ._calibration import ptrue_histograms, reliability
from ._common import DEFAULT_N_BOOT, NoData
from ._health import judge_health
from ._likelihood import likelihood_vs_confidence
from ._misplaced import judge_author_heatmap, misplaced_confidence
from ._pairwise import winrate_by_perplexity
from ._regression import regression_forest
from ._style import save
from ._tokens import token_trace

#: Where each table of a run comes from (attribute or method of the run).
_SOURCES: dict[str, Callable] = {
    "analysis": lambda run: run.analysis_frame(),
    "pairwise": lambda run: run.pairwise_frame(),
    "judgments": lambda run: run.judgments,
    "scores": lambda run: run.scores,
    "candidates": lambda run: run.candidates,
    "items": lambda run: run.items,
}
_UNREADABLE = {
    "analysis": "analysis frame could not be built ({})",
    "pairwise": "pairwise frame could not be built ({})",
}
_EMPTY = {
    "pairwise": "no pairwise judgments in this run",
    "scores": "no scores in this run",
    "candidates": "no candidates in this run",
}
#: Why a figure cannot be drawn when a required column has no value (in the rows that have the
#: columns named before it).
_NO_VALUES = {
    ("analysis", "p_yes"): "no judgment has a P(Yes)",
    ("analysis", "correct"): "judged candidates have no correctness (no candidates table?)",
    ("analysis", "sum_logprob"): ("no log-likelihoods of the judged candidates under their judge "
                                  "(no scores table, or the judges did not score them)"),
    ("pairwise", "a_mean_logprob"): "judged pairs have no log-likelihoods under the judge (no scores table?)",
    ("pairwise", "b_mean_logprob"): "judged pairs have no log-likelihoods under the judge (no scores table?)",
}


class RunTables:
    """A run's tables as the figures need them, each read once; a table that cannot be read keeps
    its error (a broken table must not stop the figures that do not need it).

    ``usable`` is the analysis frame's rows with a P(Yes) and a correctness; ``health`` its
    :func:`selfbias.stats.judge_health` (given, or computed once with ``n_boot`` and ``seed``).
    With ``analysis`` (a :class:`selfbias.analysis.RunAnalysis`), its frames, health table and
    bootstrap setting are used: nothing is computed again.

    Parameters
    ----------
    run : selfbias.runs.Run
        The run (tables read from it on first use).
    health : pandas.DataFrame, optional
        The judge-health table, when already computed.
    n_boot, seed : int
        Bootstrap setting of the figures' intervals (and of ``health`` when computed here).
    analysis : selfbias.analysis.RunAnalysis, optional
        The run's analysis; overrides ``health``, ``n_boot`` and ``seed``.
    """

    def __init__(self, run, *, health: pd.DataFrame | None = None, n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
                 analysis=None):
        self.run, self.n_boot, self.seed = run, n_boot, seed
        self._tables: dict[str, tuple[pd.DataFrame | None, str | None]] = {}
        self._health = health
        self._usable: pd.DataFrame | None = None
        if analysis is not None:
            self.n_boot, self.seed = analysis.n_boot, analysis.seed
            self._tables["analysis"] = (analysis.frame, None)
            self._tables["pairwise"] = (analysis.pairwise, None)
            self._health = analysis.health

    def get(self, name: str) -> pd.DataFrame | None:
        """The table, or None when it could not be read (see :meth:`error`).

        Parameters
        ----------
        name : str
            A table name (``analysis``, ``pairwise``, ``scores``, ...).

        Returns
        -------
        pandas.DataFrame or None
        """
        return self._read(name)[0]

    def error(self, name: str) -> str | None:
        """Why table ``name`` could not be read (None when it could).

        Parameters
        ----------
        name : str
            A table name.

        Returns
        -------
        str or None
        """
        return self._read(name)[1]

    def _read(self, name: str) -> tuple[pd.DataFrame | None, str | None]:
        if name not in self._tables:
            try:
                self._tables[name] = (_SOURCES[name](self.run), None)
            except Exception as e:  # noqa: BLE001 - reported as the reason of the figures that need it
                self._tables[name] = (None, f"{type(e).__name__}: {e}")
        return self._tables[name]

    def unmet(self, table: str, columns: Sequence[str]) -> str | None:
        """Why ``table`` cannot serve a figure that needs values in ``columns`` (None: it can).

        Parameters
        ----------
        table : str
            A table name.
        columns : sequence of str
            Columns the figure needs with values.

        Returns
        -------
        str or None
        """
        df, err = self._read(table)
        if err:
            return _UNREADABLE.get(table, table + " table could not be read ({})").format(err)
        if df is None or df.empty:
            return self._empty_reason(table)
        lacking = [c for c in columns if c not in df.columns]
        if lacking:
            return f"{table} table lacks column(s) {lacking}"
        rows = df
        for col in columns:
            rows = rows.dropna(subset=[col])
            if rows.empty:
                return _NO_VALUES.get((table, col), f"no {table} row has a value in {col!r}")
        return None

    def _empty_reason(self, table: str) -> str:
        if table != "analysis":
            return _EMPTY.get(table, f"no {table} in this run")
        judgments = self.get("judgments")
        if judgments is not None and not judgments.empty and "mode" in judgments.columns:
            return "no P(Yes) judgments in this run (only pairwise)"
        return "no judgments in this run"

    @property
    def usable(self) -> pd.DataFrame:
        if self._usable is None:
            data = self.get("analysis").dropna(subset=["p_yes", "correct"]).copy()
            data["correct"] = data["correct"].astype(bool)
            self._usable = data
        return self._usable

    @property
    def health(self) -> pd.DataFrame:
        if self._health is None:
            self._health = _stats.judge_health(self.usable, n_boot=self.n_boot, seed=self.seed)
        return self._health


@dataclass(frozen=True)
class FigureSpec:
    """One figure :func:`draw_all` can draw.

    Attributes
    ----------
    name : str
        File stem and name in the report (``<name>.pdf``, ``<name>.csv``).
    description : str
        One line: what the figure shows.
    requires : tuple of (str, tuple of str)
        ``(table, columns)`` pairs: the run's tables (``analysis``, ``pairwise``, ``scores``,
        ``candidates``) and the columns that must hold values.
    draw : callable
        ``draw(tables: RunTables) -> Figure`` or ``(Figure, note)``.
    conditions : tuple of callables
        Further checks ``check(tables) -> reason or None`` run after ``requires``.
    """

    name: str
    description: str
    requires: tuple[tuple[str, tuple[str, ...]], ...]
    draw: Callable[[RunTables], Figure | tuple[Figure, str]]
    conditions: tuple[Callable[[RunTables], str | None], ...] = field(default=())

    def unmet(self, tables: RunTables) -> str | None:
        """Why the run cannot support this figure (None when it can).

        Parameters
        ----------
        tables : RunTables
            The run's tables, read once.

        Returns
        -------
        str or None
        """
        for table, columns in self.requires:
            reason = tables.unmet(table, columns)
            if reason:
                return reason
        for check in self.conditions:
            reason = check(tables)
            if reason:
                return reason
        return None


def _two_judges(t: RunTables) -> str | None:
    return "only one judge model" if t.usable["judge"].nunique() < 2 else None


def _wrong_answers(t: RunTables) -> str | None:
    return "no wrong answers among the judged candidates" if t.usable["correct"].all() else None


def _regression(t: RunTables) -> tuple[Figure, str]:
    fit = _stats.per_judge_regression(t.usable)
    failed = "; ".join(f"{judge}: {error}" for judge, error in fit.failed)
    if fit.coefficients.empty:
        raise NoData("likelihood regression could not be fitted: " + failed)
    return regression_forest(fit.coefficients, health=t.health), ("regression failed for " + failed if failed else "")


def _token_trace(t: RunTables) -> Figure:
    items = t.get("items")
    items = items if items is not None and len(items) else None
    return token_trace(t.get("scores"), t.get("candidates"), items_df=items)


def _boot(t: RunTables) -> dict:
    return {"n_boot": t.n_boot, "seed": t.seed}


_JUDGED = ("analysis", ("p_yes", "correct"))
_JUDGED_SCORED = ("analysis", ("p_yes", "correct", "sum_logprob"))

#: Every figure of a run, in drawing order.
REGISTRY: tuple[FigureSpec, ...] = (
    FigureSpec("judge_health", "is each judge x mode's P(Yes) a usable signal (mass, spread, AUROC)",
               (_JUDGED,), lambda t: judge_health(t.usable, health=t.health, **_boot(t))),
    FigureSpec("likelihood_vs_confidence", "P(Yes) against the candidate's log-likelihood under the judge",
               (_JUDGED_SCORED,), lambda t: likelihood_vs_confidence(t.usable, health=t.health, **_boot(t))),
    FigureSpec("misplaced_confidence", "acceptance of wrong answers by source and judge mode",
               (_JUDGED,), lambda t: misplaced_confidence(t.usable, health=t.health, **_boot(t)),
               (_wrong_answers,)),
    FigureSpec("reliability", "reliability diagrams of P(Yes) with ECE and Brier score",
               (_JUDGED,), lambda t: reliability(t.usable, health=t.health, **_boot(t))),
    FigureSpec("ptrue_histograms", "P(True) of correct vs wrong answers (Kadavath et al. 2022)",
               (_JUDGED,), lambda t: ptrue_histograms(t.usable, health=t.health, **_boot(t))),
    FigureSpec("judge_author_heatmap", "acceptance of wrong answers, judge x author",
               (_JUDGED,), lambda t: judge_author_heatmap(t.usable, health=t.health, **_boot(t)),
               (_two_judges, _wrong_answers)),
    FigureSpec("regression_forest", "coefficients of the likelihood regression, per judge",
               (_JUDGED_SCORED,), _regression),
    FigureSpec("winrate_by_perplexity", "pairwise win rate against perplexity difference (Wataoka et al. 2024)",
               (("pairwise", ("a_mean_logprob", "b_mean_logprob")),),
               lambda t: winrate_by_perplexity(t.get("pairwise"), **_boot(t))),
    FigureSpec("token_trace", "per-token log-probabilities of an own wrong answer vs the reference",
               (("scores", ("tokens", "logprobs", "sum_logprob")), ("candidates", ())), _token_trace),
)

#: The names of the figures :func:`draw_all` knows, in drawing order.
FIGURES: tuple[str, ...] = tuple(spec.name for spec in REGISTRY)


def draw_all(
    run,
    out_dir: str | os.PathLike,
    formats: Sequence[str] = ("pdf", "png"),
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    health: pd.DataFrame | None = None,
    analysis=None,
) -> pd.DataFrame:
    """Draw every figure of :data:`REGISTRY` the run's tables support into ``out_dir``.

    Parameters
    ----------
    run : selfbias.runs.Run
        Or anything with ``analysis_frame()``, ``pairwise_frame()``, ``scores``, ``candidates``,
        ``items`` and ``judgments``; each table is read once.
    out_dir : str or os.PathLike
        Folder of the files (created): ``<figure>.<format>`` and the numbers behind each
        figure in ``<figure>.csv``.
    formats : sequence of str
        File formats (``pdf``, ``png``, ``svg``).
    n_boot : int
        Bootstrap resamples of every interval.
    seed : int
        Seed of every bootstrap.
    health : pandas.DataFrame, optional
        The run's :func:`selfbias.stats.judge_health` table, when already computed (else it is
        computed once here, with ``n_boot`` and ``seed``).
    analysis : selfbias.analysis.RunAnalysis, optional
        The run's analysis (:meth:`selfbias.runs.Run.analysis`): its frames, judge-health table
        and bootstrap setting are used, so the figures show the numbers of ``selfbias analyze``.
        Its setting replaces the default ``n_boot`` and ``seed``; a ValueError when ``health``,
        or an ``n_boot`` / ``seed`` that differs from the analysis's, is given as well.

    Returns
    -------
    pandas.DataFrame
        One row per registered figure: ``figure``; ``status``: ``"drawn"``, ``"skipped"`` when
        the tables cannot support it or ``"failed"`` when drawing raised; ``reason``: why it was
        skipped (e.g. "no pairwise judgments in this run"), the error, or a note on a drawn
        figure (e.g. judges whose regression failed); ``files``: the written paths.
    """
    if analysis is not None and (health is not None or (n_boot, seed) not in (
            (DEFAULT_N_BOOT, 0), (analysis.n_boot, analysis.seed))):
        raise ValueError("draw_all: give either analysis= or health=/n_boot=/seed=, not both "
                         "(the analysis fixes the figures' bootstrap setting)")
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    tables = RunTables(run, health=health, n_boot=n_boot, seed=seed, analysis=analysis)
    rows = []
    for spec in REGISTRY:
        reason = spec.unmet(tables)
        if reason:
            rows.append({"figure": spec.name, "status": "skipped", "reason": reason, "files": []})
            continue
        try:
            drawn = spec.draw(tables)
        except NoData as e:
            rows.append({"figure": spec.name, "status": "skipped", "reason": str(e), "files": []})
            continue
        except Exception as e:  # noqa: BLE001 - one broken figure must not stop the others
            rows.append({"figure": spec.name, "status": "failed", "reason": f"{type(e).__name__}: {e}", "files": []})
            continue
        fig, note = drawn if isinstance(drawn, tuple) else (drawn, "")
        files = _write(fig, out / spec.name, formats)
        rows.append({"figure": spec.name, "status": "drawn", "reason": note, "files": files})
    return pd.DataFrame(rows, columns=["figure", "status", "reason", "files"])


def _write(fig: Figure, stem: Path, formats: Sequence[str]) -> list[str]:
    """Save ``fig`` in ``formats`` and its data as ``<stem>.csv``; the written paths."""
    files = [str(p) for p in save(fig, stem, formats)]
    data = getattr(fig, "selfbias_data", None)
    if isinstance(data, pd.DataFrame):
        csv = stem.with_name(stem.name + ".csv")
        data.to_csv(csv, index=False)
        files.append(str(csv))
    return files
