"""Statistics over the tidy tables of a run (see ARCHITECTURE.md, "The analysis frame").

Every function takes DataFrames and returns a tidy DataFrame (estimates with ``estimate, ci_low,
ci_high, n``) or a documented frozen dataclass. Intervals are item-clustered bootstraps unless a
docstring says otherwise; every function is seeded (``seed=0``).

* judge quality: :func:`judge_health`, :func:`pairwise_health`, :func:`discrimination`,
  :func:`likelihood_discrimination`, :func:`agreement_discrimination`,
  :func:`prediction_rejection_ratio`, :func:`calibration` (with a debiased squared calibration
  error), :func:`reliability_table`;
* self-trust: :func:`misplaced_confidence`, :func:`comparison_effect` (item-aware tests, any
  contrast, by source), :func:`likelihood_regression` and :func:`mixed_effects_regression`
  (within-item likelihood slope, between-item part beside it), :func:`mediation`;
* the thesis in one estimate: :func:`thesis_effect` -> :class:`ThesisResult`; the balance of
  the list design (list features by the judged answer's correctness): :func:`list_balance`;
* published metrics: :func:`wataoka_bias`, :func:`winrate_by_perplexity`, :func:`chen_metrics`,
  :func:`panickssery_self_preference`, :func:`roytburg_baseline`, :func:`kadavath_accuracy_above`;
* everything at once: :func:`summarize` -> :class:`Summary` (:func:`compact_table` for terminals);

Modules by concept (private): ``_bootstrap`` (column checks, per-group loop, item bootstrap, Holm),
``_discrimination``, ``_calibration``, ``_comparison``, ``_metrics`` (misplaced confidence; the
old import path of the others), ``_health``, ``_published``, ``_regression``, ``_thesis``,
``_balance``, ``_summary``.
* synthetic runs with planted effects: :mod:`selfbias.stats.simulate`.
"""

from . import simulate
from ._discrimination import prediction_rejection_ratio
from ._health import (
    CHANCE_AUROC,
    GOOD_AUROC,
    MAX_POSITION_BIAS,
    MIN_AUROC,
    MIN_LOGIT_SD,
    MIN_ORDERS_AGREE,
    MIN_P_YES_SD,
    MIN_WITHIN_ITEM_SHARE,
    MIN_YES_NO_MASS,
    judge_health,
    pairwise_health,
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
from ._regression import RegressionResult
from ._figure_data import (
    PerJudgeRegression,
    binned_clustered_means,
    clustered_mean,
    equal_count_bins,
    pairwise_verdict_health,
    per_judge_regression,
    require_columns,
)
from ._summary import HEALTH_COLUMN, MIN_N_PUBLISHED, Summary, compact_table, summarize
from ._thesis import ThesisResult, thesis_effect
from ._balance import BALANCE_FEATURES, list_balance

__all__ = [
    "BALANCE_FEATURES",
    "CHANCE_AUROC",
    "GOOD_AUROC",
    "HEALTH_COLUMN",
    "MAX_POSITION_BIAS",
    "MIN_LOGIT_SD",
    "MIN_ORDERS_AGREE",
    "COMPARISON_MEASURES",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_N_BOOT",
    "DEFAULT_N_PERM",
    "MIN_AUROC",
    "MIN_N_PUBLISHED",
    "MIN_P_YES_SD",
    "MIN_WITHIN_ITEM_SHARE",
    "MIN_YES_NO_MASS",
    "PerJudgeRegression",
    "RegressionResult",
    "Summary",
    "ThesisResult",
    "agreement_discrimination",
    "binned_clustered_means",
    "calibration",
    "chen_metrics",
    "clustered_mean",
    "compact_table",
    "comparison_effect",
    "discrimination",
    "equal_count_bins",
    "holm",
    "judge_health",
    "pairwise_health",
    "kadavath_accuracy_above",
    "likelihood_discrimination",
    "likelihood_regression",
    "list_balance",
    "mediation",
    "misplaced_confidence",
    "mixed_effects_regression",
    "pairwise_verdict_health",
    "panickssery_self_preference",
    "per_judge_regression",
    "prediction_rejection_ratio",
    "reliability_table",
    "require_columns",
    "roytburg_baseline",
    "simulate",
    "summarize",
    "thesis_effect",
    "wataoka_bias",
    "winrate_by_perplexity",
]
