"""Shared machinery of the judge-level statistics: column checks, grouping by judge, the
item-clustered bootstrap and Holm's adjustment.

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
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as _st

__all__ = ["DEFAULT_CONFIDENCE", "DEFAULT_N_BOOT", "DEFAULT_N_PERM", "holm"]

#: Default number of bootstrap resamples.
DEFAULT_N_BOOT = 2000
#: Default number of permutations of the paired permutation tests.
DEFAULT_N_PERM = 2000
#: Default two-sided confidence level of every interval.
DEFAULT_CONFIDENCE = 0.95
#: Resamples evaluated at once by the vectorised bootstrap statistics (bounds memory).
BOOT_BATCH = 250
#: A bootstrap interval needs at least this share of resamples on which the statistic is defined.
MIN_DEFINED_SHARE = 0.5

ESTIMATE_COLUMNS = ["estimate", "ci_low", "ci_high", "n", "n_items"]

# --------------------------------------------------------------------------------------------
# shared helpers (used by the other stats modules too)
# --------------------------------------------------------------------------------------------


def check_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; got {list(df.columns)}")


def bool_array(values: pd.Series | np.ndarray) -> np.ndarray:
    """Booleans from a column that may hold bool, 0/1, or pandas nullable booleans."""
    s = pd.Series(values)
    if s.isna().any():
        raise ValueError("boolean column contains missing values")
    return s.astype(bool).to_numpy()


def keys_with_judge(df: pd.DataFrame, by: Sequence[str], judge_col: str = "judge") -> list[str]:
    """Grouping keys: ``by`` with the judge column in front (judges are never pooled)."""
    keys = [b for b in by]
    if judge_col in df.columns and judge_col not in keys:
        keys = [judge_col, *keys]
    return keys


def iter_groups(df: pd.DataFrame, keys: Sequence[str]) -> Iterator[tuple[dict, pd.DataFrame]]:
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
    """Holm-adjusted p-values (Holm 1979), as ``statsmodels.stats.multitest.multipletests(
    method="holm")`` gives them (tests/stats/test_metrics.py checks the two agree).

    Sorted ascending, the i-th smallest of m p-values becomes ``max_{j <= i} min(1, (m - j + 1)
    p_(j))``.  Computed here rather than by statsmodels, whose Holm runs ``gc.collect()`` on every
    call (about 1 s in a large process: most of the time of a regression fit in a simulation loop).
    NaN p-values are passed through and do not count towards the family size.

    Parameters
    ----------
    pvalues : array-like of float
        p-values; NaN entries are passed through and not counted.

    Returns
    -------
    ndarray
        Holm-adjusted p-values, NaN where the input is NaN.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q = p[ok]
        order = np.argsort(q, kind="stable")
        m = q.size
        adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * q[order]))
        result = np.empty(m)
        result[order] = adjusted
        out[ok] = result
    return out


class ClusterBootstrap:
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
                batch=BOOT_BATCH if vectorized else None,
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
            if d.size >= MIN_DEFINED_SHARE * dist.shape[1] and d.size > 0:
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

    def ci_rows_clustered(self, stat: Callable[[np.ndarray, np.ndarray], float | np.ndarray], k: int = 1):
        """Like :meth:`ci_rows`, but the statistic also gets each drawn row's *resample* cluster
        id (a cluster drawn twice counts as two clusters, as the bootstrap means it to)."""

        def statistic(idx):
            idx = np.asarray(idx, dtype=np.int64)
            clusters = np.repeat(np.arange(idx.size), self._counts[idx])
            with np.errstate(all="ignore"):
                out = np.asarray(stat(self._rows(idx), clusters), dtype=float)
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



def ratio_of_sums(num: np.ndarray, den: np.ndarray) -> float:
    d = float(np.sum(den))
    return float(np.sum(num)) / d if d > 0 else np.nan


def drop_missing(df: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    """Rows with every column in ``cols`` present."""
    return df.dropna(subset=list(cols))


def _n_ungraded(df: pd.DataFrame) -> int:
    """Rows whose ``correct`` is missing (pandas NA: "ungraded"); every statistic leaves them out
    rather than counting them as wrong."""
    return int(df["correct"].isna().sum()) if "correct" in df.columns else 0


@dataclass(frozen=True, eq=False)
class _Group:
    """One group of :func:`per_group`: its key, rows, item ids and a bootstrap over its items."""

    key: dict
    frame: pd.DataFrame
    items: np.ndarray
    boot: ClusterBootstrap

    @property
    def n(self) -> int:
        return int(len(self.frame))

    @property
    def n_items(self) -> int:
        return int(pd.unique(self.items).size)

    def labels(self, column: str = "correct") -> np.ndarray:
        return bool_array(self.frame[column])


def per_group(
    df: pd.DataFrame,
    *,
    what: str,
    needed: Sequence[str],
    by: Sequence[str],
    n_boot: int,
    seed: int,
    confidence: float,
    judge_first: bool = False,
    item_col: str = "item_id",
) -> tuple[list[str], list[_Group]]:
    """The loop every judge-level statistic shares: require -> clean -> group -> cluster bootstrap.

    Checks that ``item_id``, ``needed`` and ``by`` are columns (one-line error naming ``what``),
    drops rows missing any of ``needed`` (so an NA ``correct`` -- ungraded -- is left out, never
    read as wrong), groups by ``by`` (with the judge in front when ``judge_first``) and gives each
    group an item-clustered bootstrap. Returns ``(grouping keys, groups)`` in sorted key order.
    """
    check_columns(df, [item_col, *needed, *by], what)
    data = drop_missing(df, needed)
    keys = keys_with_judge(data, by) if judge_first else list(by)
    groups = []
    for key, g in iter_groups(data, keys):
        items = g[item_col].to_numpy(dtype=object)
        boot = ClusterBootstrap(items, n_boot=n_boot, seed=seed, confidence=confidence)
        groups.append(_Group(key, g, items, boot))
    return keys, groups
