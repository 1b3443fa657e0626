"""A run's analysis, computed once: its frames, judge health and summary under one bootstrap setting.

Every consumer of a run's numbers -- ``selfbias analyze`` (the summary), ``selfbias figures``
(:func:`selfbias.plots.draw_all`), the degenerate-judge warning after ``selfbias probe`` and
``selfbias judge``, and :meth:`selfbias.runs.Run.summary` -- reads one :class:`RunAnalysis`, so the
frames are built once and the judge-health table (whose AUROC intervals are bootstrapped, and whose
``reasons`` quote them) is one result, the same in the terminal, in ``analysis/health.csv`` and
in ``figures/judge_health.csv``.

The bootstrap setting is one per analysis: ``n_boot`` resamples (default
:data:`selfbias.stats.DEFAULT_N_BOOT`, 2000), ``seed`` (default 0) and ``confidence`` (default
0.95). :meth:`selfbias.runs.Run.analysis` caches one analysis per setting on the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pandas as pd

from . import stats
from .errors import RunError

__all__ = ["RunAnalysis", "analyze_run", "DEFAULT_N_BOOT", "DEFAULT_SEED", "DEFAULT_CONFIDENCE"]

#: Bootstrap resamples of every interval of a run's analysis (the statistics' own default).
DEFAULT_N_BOOT = stats.DEFAULT_N_BOOT
#: Seed of every bootstrap and permutation of a run's analysis.
DEFAULT_SEED = 0
#: Two-sided level of every interval of a run's analysis.
DEFAULT_CONFIDENCE = stats.DEFAULT_CONFIDENCE

# Set by the analysis itself: a summary under other values would disagree with its health table.
_FIXED = ("n_boot", "seed", "confidence", "health", "pairwise_health")


@dataclass(frozen=True, eq=False)
class RunAnalysis:
    """The analysis of one run under one bootstrap setting; each part computed at most once.

    The frames are given; :attr:`health`, :attr:`pairwise_health` and :attr:`summary` are computed
    on first use and kept (a ``selfbias judge`` warning needs the health table only, not the
    whole summary). Build one with :func:`analyze_run` or :meth:`selfbias.runs.Run.analysis`.
    The DataFrames are shared by every reader: treat them as read-only.

    Parameters
    ----------
    frame : pandas.DataFrame
        The analysis frame (:func:`selfbias.frames.make_analysis_frame`).
    pairwise : pandas.DataFrame
        The pairwise frame (:func:`selfbias.frames.make_pairwise_frame`); empty without pairwise
        judgments.
    agreement : pandas.DataFrame or None
        The run's ``agreement`` table (sample agreement per model x item), None when absent.
    n_boot : int
        Item-bootstrap resamples of every interval.
    seed : int
        Seed of every bootstrap and permutation.
    confidence : float
        Two-sided interval level.
    source : str
        Where the frames come from (the run folder), for messages.

    Attributes
    ----------
    health : pandas.DataFrame
        :func:`selfbias.stats.judge_health` of ``frame``: one row per judge x mode, with
        ``degenerate`` and ``reasons``.
    pairwise_health : pandas.DataFrame or None
        :func:`selfbias.stats.pairwise_health` of ``pairwise``; None without pairwise judgments.
    summary : selfbias.stats.Summary
        :func:`selfbias.stats.summarize` with the default options, reusing the two health tables.
    """

    frame: pd.DataFrame
    pairwise: pd.DataFrame
    agreement: pd.DataFrame | None = None
    n_boot: int = DEFAULT_N_BOOT
    seed: int = DEFAULT_SEED
    confidence: float = DEFAULT_CONFIDENCE
    source: str = ""

    def _boot(self) -> dict[str, Any]:
        return {"n_boot": self.n_boot, "seed": self.seed, "confidence": self.confidence}

    # cached_property writes the instance __dict__ directly, so it works on a frozen dataclass.
    @cached_property
    def health(self) -> pd.DataFrame:
        """:func:`selfbias.stats.judge_health` of the analysis frame (one row per judge x mode)."""
        return stats.judge_health(self.frame, **self._boot())

    @cached_property
    def pairwise_health(self) -> pd.DataFrame | None:
        """:func:`selfbias.stats.pairwise_health` of the pairwise frame; None without pairs."""
        if self.pairwise is None or self.pairwise.empty:
            return None
        return stats.pairwise_health(self.pairwise, **self._boot())

    @cached_property
    def summary(self) -> stats.Summary:
        """:func:`selfbias.stats.summarize` with its default options and this analysis's health."""
        return self.summarize()

    def summarize(self, **options: Any) -> stats.Summary:
        """:func:`selfbias.stats.summarize` of this run with other options, under this analysis's
        bootstrap setting and with its health tables.

        Parameters
        ----------
        **options
            Options of :func:`selfbias.stats.summarize` other than ``n_boot``, ``seed``,
            ``confidence``, ``health`` and ``pairwise_health`` (``baseline``, ``against``,
            ``threshold``, ``n_bins``, ``n_perm``).

        Returns
        -------
        selfbias.stats.Summary
            Every table, the findings in words and the notes; with no options, equal to
            :attr:`summary`.

        Raises
        ------
        RunError
            The run has no P(Yes) judgments yet.
        TypeError
            An option that the analysis fixes (build another analysis for another setting).
        """
        fixed = sorted(set(options) & set(_FIXED))
        if fixed:
            raise TypeError(f"summarize: {', '.join(fixed)} are set by the analysis; "
                            "build another with analyze_run(run, n_boot=..., seed=..., confidence=...)")
        if self.frame.empty:
            where = f"{self.source}: " if self.source else ""
            raise RunError(f"{where}no judgments yet; run selfbias.judge(run) first")
        return stats.summarize(
            self.frame,
            self.pairwise if self.pairwise is not None and len(self.pairwise) else None,
            self.agreement if self.agreement is not None and len(self.agreement) else None,
            health=self.health, pairwise_health=self.pairwise_health, **self._boot(), **options,
        )

    def __repr__(self) -> str:
        return (f"RunAnalysis({self.source!r}, rows={len(self.frame)}, pairs={len(self.pairwise)}, "
                f"n_boot={self.n_boot}, seed={self.seed}, confidence={self.confidence})")


def analyze_run(
    run,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = DEFAULT_SEED,
    confidence: float = DEFAULT_CONFIDENCE,
) -> RunAnalysis:
    """The analysis of a run under one bootstrap setting (frames read now, statistics on first use).

    Prefer :meth:`selfbias.runs.Run.analysis`, which caches the result on the run per setting.

    Parameters
    ----------
    run : selfbias.runs.Run
        Or anything with ``analysis_frame()``, ``pairwise_frame()``, ``agreement`` and ``path``.
    n_boot : int
        Item-bootstrap resamples of every interval (0: no intervals).
    seed : int
        Seed of every bootstrap and permutation.
    confidence : float
        Two-sided interval level, in (0, 1).

    Returns
    -------
    RunAnalysis

    Raises
    ------
    ValueError
        ``n_boot`` negative or not an integer, ``seed`` not an integer, ``confidence`` outside (0, 1).
    RunError
        A table of the run cannot be read or joined.
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 0:
        raise ValueError(f"n_boot must be a non-negative integer, got {n_boot!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if not 0 < float(confidence) < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    agreement = run.agreement
    return RunAnalysis(
        frame=run.analysis_frame(), pairwise=run.pairwise_frame(),
        agreement=agreement if agreement is not None and len(agreement) else None,
        n_boot=n_boot, seed=seed, confidence=float(confidence), source=str(getattr(run, "path", "")),
    )
