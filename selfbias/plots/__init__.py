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
that shows its verdicts (a red "degenerate judge¹" mark and a red panel frame, with the reasons
in full in a footnote under the figure): its numbers describe noise. :func:`save` writes PDF
(vector) and PNG; :func:`draw_all` draws every figure of :data:`REGISTRY` (a :class:`FigureSpec`
per figure: name, description, required tables and columns, draw function) that a run supports.

The statistics the figures show come from :mod:`selfbias.stats`; this package only draws.
Layout: one module per figure family (``_likelihood``, ``_misplaced``, ``_calibration``,
``_pairwise``, ``_regression``, ``_health``, ``_tokens``), shared helpers in ``_common``, the
style in ``_style`` and the registry with :func:`draw_all` in ``_registry``.

Style: Okabe-Ito colours with fixed meanings (candidate source, correct/wrong, self/other),
figure widths of 3.3 in (one column) or 6.9 in (two columns), fonts of 7-8 pt.
"""

from ._calibration import ptrue_histograms, reliability
from ._health import judge_health
from ._likelihood import likelihood_vs_confidence
from ._misplaced import judge_author_heatmap, misplaced_confidence
from ._pairwise import winrate_by_perplexity
from ._registry import FIGURES, REGISTRY, FigureSpec, RunTables, draw_all
from ._regression import regression_forest
from ._style import readable_tokens, save
from ._tokens import token_trace

__all__ = [
    "FIGURES",
    "REGISTRY",
    "FigureSpec",
    "RunTables",
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
