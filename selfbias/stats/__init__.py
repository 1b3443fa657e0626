"""Statistics over the tidy tables of a run (see ARCHITECTURE.md, "The analysis frame").

Every function takes DataFrames and returns a tidy DataFrame (estimates with ``estimate, ci_low,
ci_high, n``) or a documented frozen dataclass. Intervals are item-clustered bootstraps unless a
docstring says otherwise; every function is seeded (``seed=0``).

* judge quality: :func:`judge_health`, :func:`discrimination`, :func:`likelihood_discrimination`,
  :func:`agreement_discrimination`, :func:`calibration`, :func:`reliability_table`;
* self-trust: :func:`misplaced_confidence`, :func:`comparison_effect`,
  :func:`likelihood_regression`, :func:`mixed_effects_regression`, :func:`mediation`;
* published metrics: :func:`wataoka_bias`, :func:`winrate_by_perplexity`, :func:`chen_metrics`,
  :func:`panickssery_self_preference`, :func:`roytburg_baseline`, :func:`kadavath_accuracy_above`;
* everything at once: :func:`summarize` -> :class:`Summary`;
* synthetic runs with planted effects: :mod:`selfbias.stats.simulate`.
"""

from . import simulate
from ._health import (
    CHANCE_AUROC,
    MIN_AUROC,
    MIN_P_YES_SD,
    MIN_WITHIN_ITEM_SHARE,
    MIN_YES_NO_MASS,
    judge_health,
)
from ._metrics import (
    COMPARISON_MEASURES,
    DEFAULT_CONFIDENCE,
    DEFAULT_N_BOOT,
    DEFAULT_N_PERM,
    agreement_discrimination,
    calibration,
    comparison_effect,
    discrimination,
    holm,
    likelihood_discrimination,
    misplaced_confidence,
    reliability_table,
)
from ._published import (
    chen_metrics,
    kadavath_accuracy_above,
    panickssery_self_preference,
    roytburg_baseline,
    wataoka_bias,
    winrate_by_perplexity,
)
from ._regression import likelihood_regression, mediation, mixed_effects_regression
from ._summary import Summary, summarize
from ._regression import RegressionResult
from ._figure_data import (
    PerJudgeRegression,
    binned_clustered_means,
    clustered_mean,
    equal_count_bins,
    pairwise_health,
    per_judge_regression,
    require_columns,
)

__all__ = [
    "CHANCE_AUROC",
    "COMPARISON_MEASURES",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_N_BOOT",
    "DEFAULT_N_PERM",
    "MIN_AUROC",
    "MIN_P_YES_SD",
    "MIN_WITHIN_ITEM_SHARE",
    "MIN_YES_NO_MASS",
    "PerJudgeRegression",
    "RegressionResult",
    "Summary",
    "agreement_discrimination",
    "binned_clustered_means",
    "calibration",
    "chen_metrics",
    "clustered_mean",
    "comparison_effect",
    "discrimination",
    "equal_count_bins",
    "holm",
    "judge_health",
    "kadavath_accuracy_above",
    "likelihood_discrimination",
    "likelihood_regression",
    "mediation",
    "misplaced_confidence",
    "mixed_effects_regression",
    "pairwise_health",
    "panickssery_self_preference",
    "per_judge_regression",
    "reliability_table",
    "require_columns",
    "roytburg_baseline",
    "simulate",
    "summarize",
    "wataoka_bias",
    "winrate_by_perplexity",
]
