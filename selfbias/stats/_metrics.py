"""Judge-level statistics over the analysis frame: misplaced confidence, discrimination,
calibration and the comparison effect.

Every public function takes the tidy analysis frame of ``Run.analysis_frame()`` (one row per judged
candidate x judge x mode: ``item_id, candidate_id, judge, mode, p_yes, yes_no_mass, correct, source,
self_authored, sum_logprob, mean_logprob, n_tokens``) and returns a tidy DataFrame whose estimates
carry ``estimate, ci_low, ci_high, n`` (``n``: rows the estimate is computed from; ``n_items``:
distinct items among them).

Confidence intervals are percentile intervals of an *item-clustered* bootstrap: the items of a
group are resampled with replacement and every candidate of a drawn item comes along, because the
candidates of one item share a question and are judged by the same model, so they are not
independent. The resampling runs through :func:`scipy.stats.bootstrap` applied to the item
indices. A resample on which a statistic is undefined (for example an AUROC without any correct
candidate) is left out of the percentiles; when fewer than half of the resamples are defined the
interval is NaN.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pandas as pd
from scipy import stats as _st
from sklearn.metrics import brier_score_loss, roc_auc_score
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

__all__ = [
    "COMPARISON_MEASURES",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_N_BOOT",
    "DEFAULT_N_PERM",
    "agreement_discrimination",
    "calibration",
    "comparison_effect",
    "discrimination",
    "holm",
    "likelihood_discrimination",
    "misplaced_confidence",
    "reliability_table",
]

#: Default number of bootstrap resamples.
DEFAULT_N_BOOT = 2000
#: Default number of permutations of the paired permutation tests.
DEFAULT_N_PERM = 2000
#: Default two-sided confidence level of every interval.
DEFAULT_CONFIDENCE = 0.95
#: Resamples evaluated at once by the vectorised bootstrap statistics (bounds memory).
_BATCH = 250
#: A bootstrap interval needs at least this share of resamples on which the statistic is defined.
_MIN_DEFINED_SHARE = 0.5

_EST = ["estimate", "ci_low", "ci_high", "n", "n_items"]


# --------------------------------------------------------------------------------------------
# shared helpers (used by the other stats modules too)
# --------------------------------------------------------------------------------------------


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; got {list(df.columns)}")


def _bool_array(values: pd.Series | np.ndarray) -> np.ndarray:
    """Booleans from a column that may hold bool, 0/1, or pandas nullable booleans."""
    s = pd.Series(values)
    if s.isna().any():
        raise ValueError("boolean column contains missing values")
    return s.astype(bool).to_numpy()


def _keys_with_judge(df: pd.DataFrame, by: Sequence[str], judge_col: str = "judge") -> list[str]:
    """Grouping keys: ``by`` with the judge column in front (judges are never pooled)."""
    keys = [b for b in by]
    if judge_col in df.columns and judge_col not in keys:
        keys = [judge_col, *keys]
    return keys


def _groups(df: pd.DataFrame, keys: Sequence[str]) -> Iterator[tuple[dict, pd.DataFrame]]:
    """Iterate ``(key dict, group)`` in sorted key order; one group when ``keys`` is empty."""
    keys = list(keys)
    if not keys:
        yield {}, df
        return
    for values, g in df.groupby(keys, sort=True, dropna=False):
        if not isinstance(values, tuple):
            values = (values,)
        yield dict(zip(keys, values)), g


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values (``statsmodels.stats.multitest.multipletests(method="holm")``).

    NaN p-values are passed through and do not count towards the family size.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.sum() == 1:  # a family of one test: nothing to adjust (spares statsmodels' gc.collect())
        out[ok] = p[ok]
    elif ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


class _ClusterBootstrap:
    """Percentile bootstrap over clusters (items), run by :func:`scipy.stats.bootstrap`.

    The data handed to scipy are the cluster indices ``0..C-1``; a resample of them is turned
    either into row *weights* (how often each row was drawn; for vectorised statistics) or into the
    list of drawn rows (for statistics that need the rows themselves).
    """

    def __init__(
        self,
        clusters: Sequence | np.ndarray | pd.Series,
        *,
        n_boot: int = DEFAULT_N_BOOT,
        seed: int = 0,
        confidence: float = DEFAULT_CONFIDENCE,
    ) -> None:
        codes, uniques = pd.factorize(np.asarray(clusters, dtype=object), sort=True)
        if (codes < 0).any():
            raise ValueError("cluster (item_id) column contains missing values")
        self.codes = codes
        self.n_clusters = len(uniques)
        self.n_boot = int(n_boot)
        self.seed = int(seed)
        self.confidence = float(confidence)
        order = np.argsort(codes, kind="stable")
        counts = np.bincount(codes, minlength=self.n_clusters)
        self._order = order
        self._counts = counts
        self._starts = np.cumsum(counts) - counts

    @property
    def enabled(self) -> bool:
        return self.n_boot > 0 and self.n_clusters >= 2

    # -- resample -> rows / weights ---------------------------------------------------------
    def _weights(self, idx: np.ndarray) -> np.ndarray:
        idx = np.atleast_2d(np.asarray(idx, dtype=np.int64))
        b, c = idx.shape[0], self.n_clusters
        flat = (np.arange(b)[:, None] * c + idx).ravel()
        m = np.bincount(flat, minlength=b * c).reshape(b, c).astype(float)
        return m[:, self.codes]

    def _rows(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        lens = self._counts[idx]
        total = int(lens.sum())
        within = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
        return self._order[np.repeat(self._starts[idx], lens) + within]

    # -- intervals ----------------------------------------------------------------------------
    def _interval(self, statistic: Callable, vectorized: bool, k: int) -> tuple[np.ndarray, np.ndarray]:
        nan = np.full(k, np.nan)
        if not self.enabled:
            return nan, nan.copy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = _st.bootstrap(
                (np.arange(self.n_clusters),),
                statistic,
                n_resamples=self.n_boot,
                vectorized=vectorized,
                batch=_BATCH if vectorized else None,
                method="percentile",
                confidence_level=self.confidence,
                rng=np.random.default_rng(self.seed),
            )
        lo = np.atleast_1d(np.asarray(res.confidence_interval.low, dtype=float)).copy()
        hi = np.atleast_1d(np.asarray(res.confidence_interval.high, dtype=float)).copy()
        dist = np.asarray(res.bootstrap_distribution, dtype=float).reshape(k, -1)
        alpha = (1.0 - self.confidence) / 2.0
        for j in range(k):
            if np.isfinite(lo[j]) and np.isfinite(hi[j]):
                continue
            d = dist[j][np.isfinite(dist[j])]
            if d.size >= _MIN_DEFINED_SHARE * dist.shape[1] and d.size > 0:
                lo[j], hi[j] = np.quantile(d, [alpha, 1.0 - alpha])
            else:
                lo[j], hi[j] = np.nan, np.nan
        return lo, hi

    def ci_weighted(self, stat_w: Callable[[np.ndarray], np.ndarray], k: int = 1):
        """CI of a statistic of row weights ``W`` (shape ``(B, n_rows)``) returning ``(B,)`` or ``(B, k)``."""

        def statistic(idx, axis=-1):
            one = np.ndim(idx) == 1
            with np.errstate(all="ignore"):
                out = np.asarray(stat_w(self._weights(idx)), dtype=float)
            out = out.reshape(out.shape[0], k).T  # (k, B)
            if one:
                out = out[:, 0]
            return out[0] if k == 1 else out

        lo, hi = self._interval(statistic, True, k)
        return (lo[0], hi[0]) if k == 1 else (lo, hi)

    def ci_rows(self, stat_rows: Callable[[np.ndarray], float | np.ndarray], k: int = 1):
        """CI of a statistic computed on the drawn rows (row indices, duplicates kept)."""

        def statistic(idx):
            with np.errstate(all="ignore"):
                out = np.asarray(stat_rows(self._rows(idx)), dtype=float)
            return out if k > 1 else float(out)

        lo, hi = self._interval(statistic, False, k)
        return (lo[0], hi[0]) if k == 1 else (lo, hi)

    def ci_ratio(self, num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
        """CI of ``sum(num) / sum(den)`` (a mean when ``den`` is an indicator)."""
        num = np.asarray(num, float)
        den = np.asarray(den, float)
        return self.ci_weighted(lambda w: (w @ num) / (w @ den))

    def ci_ratio_diff(self, num1, den1, num2, den2) -> tuple[float, float]:
        """CI of ``sum(num1)/sum(den1) - sum(num2)/sum(den2)`` on the same resampled items."""
        n1, d1, n2, d2 = (np.asarray(a, float) for a in (num1, den1, num2, den2))
        return self.ci_weighted(lambda w: (w @ n1) / (w @ d1) - (w @ n2) / (w @ d2))


def _ratio(num: np.ndarray, den: np.ndarray) -> float:
    d = float(np.sum(den))
    return float(np.sum(num)) / d if d > 0 else np.nan


def _weighted_auc(scores: np.ndarray, labels: np.ndarray, w: np.ndarray) -> np.ndarray:
    """AUROC of ``scores`` for ``labels`` under row weights ``w`` (shape ``(B, n)``), vectorised.

    Equal to ``sklearn.metrics.roc_auc_score(labels, scores, sample_weight=w[b])`` for every ``b``
    (the Mann-Whitney form: pairs ranked correctly count 1, ties 1/2); integer weights are the
    bootstrap multiplicities, so this is the AUROC of each resample. NaN where a class is absent.
    Used only inside the bootstrap, where calling scikit-learn 2000 times per group is too slow;
    the tests check it against scikit-learn.
    """
    scores = np.asarray(scores, float)
    labels = np.asarray(labels, bool)
    w = np.atleast_2d(np.asarray(w, float))
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    y = labels[order]
    wo = w[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    pos = np.add.reduceat(wo * y, starts, axis=1)
    neg = np.add.reduceat(wo * ~y, starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    num = (pos * (below + 0.5 * neg)).sum(axis=1)
    den = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(all="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """``roc_auc_score`` that returns NaN instead of raising when only one class is present."""
    labels = np.asarray(labels, bool)
    if labels.all() or not labels.any():
        return np.nan
    return float(roc_auc_score(labels, np.asarray(scores, float)))


def _equal_count_bins(p: np.ndarray, n_bins: int) -> list[np.ndarray]:
    """Row indices of ``n_bins`` equal-count bins of ``p`` (ascending).

    Rows are sorted by ``p`` (ties kept in input order) and split into ``min(n_bins, len(p))``
    consecutive chunks whose sizes differ by at most one (the first chunks take the extra rows,
    as :func:`numpy.array_split`).
    """
    p = np.asarray(p, float)
    if p.size == 0:
        return []
    order = np.argsort(p, kind="stable")
    return [b for b in np.array_split(order, min(int(n_bins), p.size)) if b.size]


def _ece_rms(p: np.ndarray, y: np.ndarray, n_bins: int) -> tuple[float, float]:
    """ECE and RMS calibration error with equal-count bins (Kadavath et al. 2022).

    ``ECE = sum_b (n_b / N) |acc_b - conf_b|``, ``RMS = sqrt(sum_b (n_b / N) (acc_b - conf_b)^2)``.
    """
    p = np.asarray(p, float)
    y = np.asarray(y, float)
    n = p.size
    if n == 0:
        return np.nan, np.nan
    ece = 0.0
    ms = 0.0
    for b in _equal_count_bins(p, n_bins):
        gap = y[b].mean() - p[b].mean()
        ece += b.size / n * abs(gap)
        ms += b.size / n * gap * gap
    return float(ece), float(np.sqrt(ms))


def _clean(df: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    """Rows with every column in ``cols`` present."""
    return df.dropna(subset=list(cols))


# --------------------------------------------------------------------------------------------
# misplaced confidence
# --------------------------------------------------------------------------------------------


def misplaced_confidence(
    df: pd.DataFrame,
    by: Sequence[str] = ("source", "mode"),
    threshold: float = 0.5,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Misplaced confidence: how much the judge believes wrong answers, next to correct ones.

    For every group (the judge, then ``by``: by default candidate ``source`` -- own greedy, own
    sample, other model, distractor, perturbation, reference -- and judge ``mode``) it reports two
    measures,

    * ``mean_p_yes``: mean P(Yes), and
    * ``share_above_threshold``: share of candidates with P(Yes) > ``threshold`` (on wrong answers
      this is the false-acceptance rate),

    each on wrong answers (``correctness="wrong"``), on correct answers (``"correct"``) and as the
    gap ``correct - wrong`` (``"correct_minus_wrong"``; near 0 means the judge gives wrong answers
    the same confidence as correct ones, i.e. its confidence is misplaced). Cells without rows
    (e.g. correct distractors) are omitted.

    This follows the P(True) self-evaluation of Kadavath et al. 2022 ("Language Models (Mostly)
    Know What They Know"), read on the answers a judge gets wrong.

    Returns one row per group x measure x correctness with columns ``judge, *by, correctness,
    measure, threshold, estimate, ci_low, ci_high, n, n_items``; intervals come from an
    item-clustered bootstrap (the gap is bootstrapped jointly). Rows with missing ``p_yes`` are
    dropped.
    """
    _require(df, ["item_id", "p_yes", "correct", *by], "misplaced_confidence")
    data = _clean(df, ["p_yes", "correct"])
    keys = _keys_with_judge(data, by)
    rows = []
    for key, g in _groups(data, keys):
        p = g["p_yes"].to_numpy(float)
        y = _bool_array(g["correct"])
        items = g["item_id"].to_numpy(dtype=object)
        boot = _ClusterBootstrap(items, n_boot=n_boot, seed=seed, confidence=confidence)
        for measure, v in (("mean_p_yes", p), ("share_above_threshold", (p > threshold).astype(float))):
            cells = {"wrong": ~y, "correct": y}
            for label, mask in cells.items():
                if not mask.any():
                    continue
                m = mask.astype(float)
                lo, hi = boot.ci_ratio(v * m, m)
                rows.append(
                    {**key, "correctness": label, "measure": measure, "threshold": threshold,
                     "estimate": float(v[mask].mean()), "ci_low": lo, "ci_high": hi,
                     "n": int(mask.sum()), "n_items": int(pd.unique(items[mask]).size)}
                )
            if y.any() and (~y).any():
                mc, mw = y.astype(float), (~y).astype(float)
                lo, hi = boot.ci_ratio_diff(v * mc, mc, v * mw, mw)
                rows.append(
                    {**key, "correctness": "correct_minus_wrong", "measure": measure,
                     "threshold": threshold,
                     "estimate": float(v[y].mean() - v[~y].mean()), "ci_low": lo, "ci_high": hi,
                     "n": int(len(g)), "n_items": int(pd.unique(items).size)}
                )
    cols = [*keys, "correctness", "measure", "threshold", *_EST]
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------------------------
# discrimination
# --------------------------------------------------------------------------------------------


def _auroc_table(
    data: pd.DataFrame,
    keys: Sequence[str],
    score: str,
    label: str,
    *,
    n_boot: int,
    seed: int,
    confidence: float,
) -> list[dict]:
    rows = []
    for key, g in _groups(data, keys):
        s = g[score].to_numpy(float)
        y = _bool_array(g[label])
        items = g["item_id"].to_numpy(dtype=object)
        est = _auc(y, s)
        lo = hi = np.nan
        if np.isfinite(est):
            boot = _ClusterBootstrap(items, n_boot=n_boot, seed=seed, confidence=confidence)
            lo, hi = boot.ci_weighted(lambda w: _weighted_auc(s, y, w))
        rows.append(
            {**key, "score": score, "estimate": est, "ci_low": lo, "ci_high": hi, "n": int(len(g)),
             "n_items": int(pd.unique(items).size), "n_correct": int(y.sum()),
             "n_wrong": int((~y).sum())}
        )
    return rows


def discrimination(
    df: pd.DataFrame,
    score: str = "p_yes",
    by: Sequence[str] = ("judge", "mode"),
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Discrimination: AUROC of ``score`` (default P(Yes)) for correct vs wrong candidates.

    AUROC is the probability that a random correct candidate gets a higher score than a random
    wrong one (ties count 1/2); 0.5 is chance. Computed with
    :func:`sklearn.metrics.roc_auc_score`; the interval is an item-clustered bootstrap (the
    candidates of an item are correlated). Kadavath et al. 2022 report the same AUROC for P(True).

    Columns: ``*by, score, estimate, ci_low, ci_high, n, n_items, n_correct, n_wrong``. The
    estimate is NaN when a group has only correct or only wrong candidates. Rows with a missing
    score are dropped.
    """
    _require(df, ["item_id", "correct", score, *by], "discrimination")
    data = _clean(df, [score, "correct"])
    keys = list(by)
    rows = _auroc_table(data, keys, score, "correct", n_boot=n_boot, seed=seed, confidence=confidence)
    cols = [*keys, "score", *_EST, "n_correct", "n_wrong"]
    return pd.DataFrame(rows, columns=cols)


def likelihood_discrimination(
    df: pd.DataFrame,
    scores: Sequence[str] = ("sum_logprob", "mean_logprob"),
    by: Sequence[str] = ("judge",),
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """AUROC of the answer's own log-likelihood under the judge, for correct vs wrong candidates.

    The baseline a judge has to beat: does P(Yes) separate correct from wrong answers better than
    how likely the judge model finds the answer text? The log-likelihood does not depend on the
    judge mode, so each candidate x judge is counted once (duplicates over modes are dropped).
    Same columns and interval as :func:`discrimination`, one row per ``by`` group x score.
    """
    _require(df, ["item_id", "candidate_id", "correct", *scores, *by], "likelihood_discrimination")
    dedup = [c for c in ("item_id", "candidate_id", *by) if c in df.columns]
    data = df.drop_duplicates(subset=list(dict.fromkeys(dedup)))
    out = [
        discrimination(data, score=s, by=by, n_boot=n_boot, seed=seed, confidence=confidence)
        for s in scores
    ]
    return pd.concat(out, ignore_index=True)


def agreement_discrimination(
    agreement_df: pd.DataFrame,
    by: Sequence[str] = ("model",),
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """AUROC of sample agreement for whether the model's greedy answer is correct.

    Takes the ``agreement`` table (one row per model x item: ``item_id, model, agreement,
    greedy_correct``): agreement is the share of sampled answers equal to the greedy one, the
    self-consistency signal of Wang et al. 2023 used as a confidence score. Columns: ``*by, score
    ("agreement"), estimate, ci_low, ci_high, n, n_items, n_correct, n_wrong``; interval by item
    bootstrap.
    """
    _require(agreement_df, ["item_id", "agreement", "greedy_correct", *by], "agreement_discrimination")
    data = _clean(agreement_df, ["agreement", "greedy_correct"])
    keys = list(by)
    rows = _auroc_table(
        data, keys, "agreement", "greedy_correct", n_boot=n_boot, seed=seed, confidence=confidence
    )
    return pd.DataFrame(rows, columns=[*keys, "score", *_EST, "n_correct", "n_wrong"])


# --------------------------------------------------------------------------------------------
# calibration
# --------------------------------------------------------------------------------------------


def calibration(
    df: pd.DataFrame,
    n_bins: int = 10,
    by: Sequence[str] = ("judge", "mode"),
    *,
    score: str = "p_yes",
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Calibration of P(Yes) as a probability that the candidate is correct.

    Three measures (Kadavath et al. 2022, "Language Models (Mostly) Know What They Know"):

    * ``brier``: mean squared error ``mean((p - y)^2)``
      (:func:`sklearn.metrics.brier_score_loss`);
    * ``ece``: expected calibration error with ``n_bins`` *equal-count* bins,
      ``sum_b (n_b/N) |acc_b - conf_b|``;
    * ``rms_ce``: RMS calibration error, ``sqrt(sum_b (n_b/N) (acc_b - conf_b)^2)``.

    Equal-count bins: candidates sorted by P(Yes) (ties in input order) and split into
    ``min(n_bins, N)`` consecutive chunks whose sizes differ by at most one (first chunks larger).
    Returns one row per group x measure: ``*by, measure, n_bins, estimate, ci_low, ci_high, n,
    n_items``; intervals by item-clustered bootstrap (bins are recomputed on each resample).
    """
    _require(df, ["item_id", "correct", score, *by], "calibration")
    data = _clean(df, [score, "correct"])
    keys = list(by)
    rows = []
    for key, g in _groups(data, keys):
        p = g[score].to_numpy(float)
        y = _bool_array(g["correct"]).astype(float)
        items = g["item_id"].to_numpy(dtype=object)
        boot = _ClusterBootstrap(items, n_boot=n_boot, seed=seed, confidence=confidence)
        sq = (p - y) ** 2
        brier = float(brier_score_loss(y.astype(int), p, pos_label=1)) if p.size else np.nan
        b_lo, b_hi = boot.ci_ratio(sq, np.ones_like(sq))
        ece, rms = _ece_rms(p, y, n_bins)
        (e_lo, r_lo), (e_hi, r_hi) = boot.ci_rows(
            lambda r: np.array(_ece_rms(p[r], y[r], n_bins)), k=2
        )
        common = {"n_bins": int(n_bins), "n": int(p.size), "n_items": int(pd.unique(items).size)}
        for measure, est, lo, hi in (
            ("brier", brier, b_lo, b_hi),
            ("ece", ece, e_lo, e_hi),
            ("rms_ce", rms, r_lo, r_hi),
        ):
            rows.append({**key, "measure": measure, "estimate": est, "ci_low": lo, "ci_high": hi, **common})
    cols = [*keys, "measure", "n_bins", *_EST]
    return pd.DataFrame(rows, columns=cols)


def reliability_table(
    df: pd.DataFrame,
    n_bins: int = 10,
    by: Sequence[str] = ("judge", "mode"),
    *,
    score: str = "p_yes",
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Reliability diagram data: accuracy against mean P(Yes) in equal-count bins.

    Bins as in :func:`calibration`. One row per group x bin with ``bin`` (0 = lowest P(Yes)),
    ``conf_min, conf_max, mean_confidence, accuracy, count`` and a Wilson interval for the
    accuracy (:func:`statsmodels.stats.proportion.proportion_confint`, ``method="wilson"``; it
    treats the candidates of a bin as independent). ``estimate`` repeats ``accuracy`` and ``n``
    repeats ``count`` to follow the package-wide column convention. The reliability diagram of
    Kadavath et al. 2022 (and Guo et al. 2017, "On Calibration of Modern Neural Networks").
    """
    _require(df, ["item_id", "correct", score, *by], "reliability_table")
    data = _clean(df, [score, "correct"])
    keys = list(by)
    rows = []
    alpha = 1.0 - confidence
    for key, g in _groups(data, keys):
        p = g[score].to_numpy(float)
        y = _bool_array(g["correct"])
        items = g["item_id"].to_numpy(dtype=object)
        for i, b in enumerate(_equal_count_bins(p, n_bins)):
            k, n = int(y[b].sum()), int(b.size)
            lo, hi = proportion_confint(k, n, alpha=alpha, method="wilson")
            acc = k / n
            rows.append(
                {**key, "bin": i, "conf_min": float(p[b].min()), "conf_max": float(p[b].max()),
                 "mean_confidence": float(p[b].mean()), "accuracy": acc, "count": n,
                 "estimate": acc, "ci_low": float(lo), "ci_high": float(hi), "n": n,
                 "n_items": int(pd.unique(items[b]).size)}
            )
    cols = [*keys, "bin", "conf_min", "conf_max", "mean_confidence", "accuracy", "count", *_EST]
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------------------------
# comparison effect
# --------------------------------------------------------------------------------------------

#: Measures of :func:`comparison_effect`, in output order.
COMPARISON_MEASURES = ("mean_p_yes_wrong", "false_acceptance", "verdict_accuracy", "brier", "auroc")


def _sign_flip_test(item_codes: np.ndarray, d: np.ndarray, n_perm: int, seed: int) -> tuple[float, float]:
    """Paired permutation test of ``mean(d) = 0`` flipping the sign of whole items.

    The differences of one item flip together (the candidates of an item are correlated), which
    is :func:`scipy.stats.permutation_test` with ``permutation_type="samples"`` on the per-item
    sums of the two conditions. Returns ``(observed mean, two-sided p)``.
    """
    n_rows = d.size
    if n_rows == 0:
        return np.nan, np.nan
    sums = np.bincount(item_codes, weights=d)
    if np.allclose(sums, 0.0) or sums.size < 2:
        # no difference, or a single item: its two sign flips give |T| both times -> p = 1
        return float(d.mean()), 1.0
    x = np.where(sums > 0, sums, 0.0)
    y = np.where(sums > 0, 0.0, -sums)

    def statistic(a, b, axis=-1):
        return (np.sum(a, axis=axis) - np.sum(b, axis=axis)) / n_rows

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = _st.permutation_test(
            (x, y), statistic, permutation_type="samples", vectorized=True,
            n_resamples=n_perm, alternative="two-sided", rng=np.random.default_rng(seed),
        )
    return float(res.statistic), float(res.pvalue)


def _swap_auc_test(
    item_codes: np.ndarray, y: np.ndarray, p_against: np.ndarray, p_base: np.ndarray,
    n_perm: int, seed: int,
) -> float:
    """Paired permutation test of AUROC(against) = AUROC(baseline): swap the two conditions of
    whole items (scipy ``permutation_test``, ``permutation_type="samples"`` on item labels);
    AUROC of each permutation through Mann-Whitney ranks (:func:`scipy.stats.rankdata`)."""
    n_items = int(item_codes.max()) + 1 if item_codes.size else 0
    if n_items == 0 or y.all() or not y.any():
        return np.nan
    if n_items == 1:  # swapping the only item just flips the sign of the difference
        return 1.0
    n_pos, n_neg = int(y.sum()), int((~y).sum())

    def auc_rows(scores):  # scores (B, n)
        r = _st.rankdata(scores, axis=-1)
        return (r[..., y].sum(axis=-1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)

    def statistic(a, b, axis=-1):
        a2 = np.atleast_2d(a)
        swapped = (a2 >= n_items)[:, item_codes]
        sa = np.where(swapped, p_base, p_against)
        sb = np.where(swapped, p_against, p_base)
        out = auc_rows(sa) - auc_rows(sb)
        return out if np.ndim(a) > 1 else out[0]

    codes = np.arange(n_items)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = _st.permutation_test(
            (codes, codes + n_items), statistic, permutation_type="samples", vectorized=True,
            n_resamples=n_perm, alternative="two-sided", rng=np.random.default_rng(seed),
        )
    return float(res.pvalue)


def _mcnemar_p(x_against: np.ndarray, x_base: np.ndarray) -> tuple[float, float]:
    """Exact McNemar test (statsmodels) of paired binary outcomes; returns ``(statistic, p)``."""
    a, b = np.asarray(x_base, bool), np.asarray(x_against, bool)
    table = [[int((a & b).sum()), int((a & ~b).sum())], [int((~a & b).sum()), int((~a & ~b).sum())]]
    if table[0][1] + table[1][0] == 0:
        return 0.0, 1.0
    res = mcnemar(table, exact=True)
    return float(res.statistic), float(res.pvalue)


def comparison_effect(
    df: pd.DataFrame,
    baseline: str = "isolated",
    against: Sequence[str] | str = ("own_samples", "alternatives"),
    *,
    threshold: float = 0.5,
    measures: Sequence[str] | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    n_perm: int = DEFAULT_N_PERM,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Comparison effect: does showing other answers change how the judge rates the same candidate?

    For each judge and each mode in ``against``, candidates judged both in ``baseline`` and in
    that mode are matched on ``(item_id, candidate_id, judge)`` and paired differences
    ``against - baseline`` are reported for

    * ``mean_p_yes_wrong``: mean P(Yes) on wrong candidates (misplaced confidence);
      test: paired sign-flip permutation test, whole items flipped (``permutation``);
    * ``false_acceptance``: share of wrong candidates with P(Yes) > ``threshold``;
      test: exact McNemar on the thresholded verdicts (``mcnemar``);
    * ``verdict_accuracy``: share of all candidates whose thresholded verdict matches
      correctness; test: exact McNemar (``mcnemar``);
    * ``brier``: Brier score on all candidates; test: sign-flip permutation of the per-candidate
      squared-error differences (``permutation``);
    * ``auroc``: AUROC of P(Yes) for correct vs wrong; test: permutation swapping the two
      conditions of whole items (``permutation``).

    The ``own_samples`` mode is the setting of Kadavath et al. 2022 ("Language Models (Mostly)
    Know What They Know"), who show the model several of its own samples before asking P(True);
    ``alternatives`` shows answers from other sources. The measures are those of
    :func:`misplaced_confidence`, :func:`calibration` and :func:`discrimination`, paired.

    Intervals: item-clustered bootstrap of the paired difference. McNemar treats candidates as
    independent; the permutation tests respect items (exact when 2^items <= ``n_perm``, else
    ``n_perm`` random sign flips, p = 2 x (hits + 1) / (n_perm + 1) at least, so keep ``n_perm``
    large enough for the Holm step). ``p_holm`` is the Holm adjustment over every test in the
    returned table (all judges, modes and measures).

    Columns: ``judge, baseline, against, measure, baseline_value, against_value, estimate
    (against - baseline), ci_low, ci_high, n (matched candidates used), n_items, test, statistic,
    p_value, p_holm``. ``statistic`` is the McNemar statistic (the smaller discordant count) or the
    observed difference for permutation tests. ``n_boot=0`` skips the intervals, ``n_perm=0`` the
    permutation tests.
    """
    _require(df, ["item_id", "candidate_id", "judge", "mode", "p_yes", "correct"], "comparison_effect")
    if isinstance(against, str):
        against = (against,)
    measures = tuple(COMPARISON_MEASURES if measures is None else measures)
    unknown = set(measures) - set(COMPARISON_MEASURES)
    if unknown:
        raise ValueError(f"unknown measures {sorted(unknown)}; choose from {COMPARISON_MEASURES}")
    key = ["item_id", "candidate_id", "judge"]
    data = _clean(df, ["p_yes", "correct"])
    base = data[data["mode"] == baseline][[*key, "p_yes", "correct"]].drop_duplicates(subset=key)
    rows = []
    for mode in against:
        other = data[data["mode"] == mode][[*key, "p_yes"]].drop_duplicates(subset=key)
        m = base.merge(other, on=key, suffixes=("_base", "_against"), how="inner")
        for (judge,), g in m.groupby(["judge"], sort=True):
            pb = g["p_yes_base"].to_numpy(float)
            pa = g["p_yes_against"].to_numpy(float)
            y = _bool_array(g["correct"])
            items = g["item_id"].to_numpy(dtype=object)
            codes, _ = pd.factorize(items, sort=True)
            boot = _ClusterBootstrap(items, n_boot=n_boot, seed=seed, confidence=confidence)
            wrong = ~y
            common = {"judge": judge, "baseline": baseline, "against": mode}
            for measure in measures:
                rec = dict(common, measure=measure)
                if measure in ("mean_p_yes_wrong", "false_acceptance"):
                    if measure == "mean_p_yes_wrong":
                        xb, xa = pb, pa
                    else:
                        xb, xa = (pb > threshold).astype(float), (pa > threshold).astype(float)
                    mask = wrong
                    mw = mask.astype(float)
                    bv, av = _ratio(xb * mw, mw), _ratio(xa * mw, mw)
                    lo, hi = boot.ci_ratio((xa - xb) * mw, mw)
                    if measure == "mean_p_yes_wrong":
                        stat, p = (
                            _sign_flip_test(codes[mask], (xa - xb)[mask], n_perm, seed)
                            if n_perm > 0 else (np.nan, np.nan)
                        )
                        test = "permutation"
                    else:
                        stat, p = _mcnemar_p(xa[mask] > 0.5, xb[mask] > 0.5) if mask.any() else (np.nan, np.nan)
                        test = "mcnemar"
                    n_used = int(mask.sum())
                    n_it = int(pd.unique(items[mask]).size)
                elif measure == "verdict_accuracy":
                    cb = ((pb > threshold) == y).astype(float)
                    ca = ((pa > threshold) == y).astype(float)
                    one = np.ones_like(cb)
                    bv, av = float(cb.mean()), float(ca.mean())
                    lo, hi = boot.ci_ratio(ca - cb, one)
                    stat, p = _mcnemar_p(ca > 0.5, cb > 0.5)
                    test = "mcnemar"
                    n_used, n_it = int(y.size), int(pd.unique(items).size)
                elif measure == "brier":
                    sb, sa = (pb - y) ** 2, (pa - y) ** 2
                    one = np.ones_like(sb)
                    bv = float(brier_score_loss(y.astype(int), pb, pos_label=1))
                    av = float(brier_score_loss(y.astype(int), pa, pos_label=1))
                    lo, hi = boot.ci_ratio(sa - sb, one)
                    stat, p = _sign_flip_test(codes, sa - sb, n_perm, seed) if n_perm > 0 else (np.nan, np.nan)
                    test = "permutation"
                    n_used, n_it = int(y.size), int(pd.unique(items).size)
                else:  # auroc
                    bv, av = _auc(y, pb), _auc(y, pa)
                    lo = hi = np.nan
                    if np.isfinite(bv) and np.isfinite(av):
                        lo, hi = boot.ci_weighted(lambda w: _weighted_auc(pa, y, w) - _weighted_auc(pb, y, w))
                    p = _swap_auc_test(codes, y, pa, pb, n_perm, seed) if n_perm > 0 else np.nan
                    stat = av - bv
                    test = "permutation"
                    n_used, n_it = int(y.size), int(pd.unique(items).size)
                est = av - bv if np.isfinite(av) and np.isfinite(bv) else np.nan
                rec.update(
                    baseline_value=bv, against_value=av, estimate=est, ci_low=lo, ci_high=hi,
                    n=n_used, n_items=n_it, test=test, statistic=stat, p_value=p,
                )
                rows.append(rec)
    cols = ["judge", "baseline", "against", "measure", "baseline_value", "against_value", *_EST,
            "test", "statistic", "p_value", "p_holm"]
    out = pd.DataFrame(rows, columns=[c for c in cols if c != "p_holm"])
    out["p_holm"] = holm(out["p_value"].to_numpy(float)) if len(out) else pd.Series(dtype=float)
    return out[cols]
