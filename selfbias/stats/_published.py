# Over 600 lines: the published self-preference metrics (Kadavath, Panickssery, Wataoka, Chen, Roytburg) side by side.
"""Self-preference metrics as defined in published papers.

Pairwise metrics take ``Run.pairwise_frame()`` (one row per judged pair x judge, orders combined:
``item_id, judge, candidate_a, candidate_b, p_a_first, p_a_second, pref_a, orders_agree,
a_correct, b_correct, a_self, b_self, a_sum_logprob, b_sum_logprob, a_mean_logprob,
b_mean_logprob``). ``p_a_first`` is P(a chosen) when a is shown first, ``p_a_second`` when a is
shown second, ``pref_a`` their mean.

"Self vs other" pairs are the pairs in which exactly one candidate was authored by the judge
(``a_self != b_self``). Ground truth is correctness: in a pair with one correct and one wrong
candidate the correct one is "better"; pairs with equal correctness have no better candidate.

Verdicts (which candidate the judge prefers in a pair) come in two flavours, chosen by
``verdict``:

* ``"average"``: the order-averaged probability ``pref`` decides: > 0.5 prefers that candidate,
  < 0.5 the other, exactly 0.5 (or missing) is a tie;
* ``"consistent"``: a candidate is preferred only when it wins in *both* presentation orders
  (P > 0.5 shown first and P > 0.5 shown second); otherwise the pair is a tie.

Ties are left out of the denominators of the rate metrics; each row reports the number of pairs
used (``n``), the number of preferred events counted (``k``, rates only) and ``n_ties``.

All intervals are percentile intervals of an item-clustered bootstrap (pairs of one item are
resampled together; see :mod:`selfbias.stats._metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from ._bootstrap import (
    DEFAULT_CONFIDENCE,
    DEFAULT_N_BOOT,
    bool_array,
    drop_missing,
    ClusterBootstrap,
    per_group,
    check_columns,
)
from ._calibration import equal_count_bin_indices

__all__ = [
    "chen_metrics",
    "kadavath_accuracy_above",
    "panickssery_self_preference",
    "roytburg_baseline",
    "wataoka_bias",
    "winrate_by_perplexity",
]

Verdict = Literal["average", "consistent"]

_PAIR_COLS = ["item_id", "judge", "p_a_first", "p_a_second", "pref_a", "a_correct", "b_correct",
              "a_self", "b_self"]
_RATE_COLS = ["judge", "metric", "estimate", "ci_low", "ci_high", "n", "n_items", "k", "n_ties",
              "verdict"]


def _pref_a(pw: pd.DataFrame) -> np.ndarray:
    pref = pw["pref_a"].astype(float)
    fallback = pw[["p_a_first", "p_a_second"]].astype(float).mean(axis=1)
    return pref.fillna(fallback).to_numpy(float)


def _verdict_a(pw: pd.DataFrame, verdict: Verdict) -> np.ndarray:
    """+1 judge prefers a, 0 prefers b, NaN tie (see module docstring)."""
    if verdict == "average":
        pref = _pref_a(pw)
        out = np.where(pref > 0.5, 1.0, np.where(pref < 0.5, 0.0, np.nan))
        out[~np.isfinite(pref)] = np.nan
        return out
    if verdict == "consistent":
        f = pw["p_a_first"].to_numpy(float)
        s = pw["p_a_second"].to_numpy(float)
        with np.errstate(invalid="ignore"):
            return np.where((f > 0.5) & (s > 0.5), 1.0, np.where((f < 0.5) & (s < 0.5), 0.0, np.nan))
    raise ValueError(f"verdict must be 'average' or 'consistent', not {verdict!r}")


def _self_other(pairwise_df: pd.DataFrame, verdict: Verdict) -> pd.DataFrame:
    """Self-vs-other pairs oriented to the judge's own candidate.

    Columns: ``item_id, judge, pref_own, p_own_first, p_own_second, own_correct, other_correct,
    prefers_own`` (1 own, 0 other, NaN tie).
    """
    check_columns(pairwise_df, _PAIR_COLS, "pairwise metric")
    pw = pairwise_df
    a_self = bool_array(pw["a_self"])
    b_self = bool_array(pw["b_self"])
    pw = pw[a_self != b_self]
    own_a = bool_array(pw["a_self"])
    pref = _pref_a(pw)
    f = pw["p_a_first"].to_numpy(float)
    s = pw["p_a_second"].to_numpy(float)
    va = _verdict_a(pw, verdict)
    ac = bool_array(pw["a_correct"])
    bc = bool_array(pw["b_correct"])
    return pd.DataFrame(
        {
            "item_id": pw["item_id"].to_numpy(dtype=object),
            "judge": pw["judge"].to_numpy(dtype=object),
            "pref_own": np.where(own_a, pref, 1.0 - pref),
            # P(own chosen | own shown first) and P(own chosen | own shown second)
            "p_own_first": np.where(own_a, f, 1.0 - s),
            "p_own_second": np.where(own_a, s, 1.0 - f),
            "own_correct": np.where(own_a, ac, bc),
            "other_correct": np.where(own_a, bc, ac),
            "prefers_own": np.where(own_a, va, 1.0 - va),
        }
    )


def _rate_row(judge, metric, items, num, den, ties, boot, verdict) -> dict:
    num = np.asarray(num, float)
    den = np.asarray(den, float)
    n = int(den.sum())
    est = float(num.sum() / n) if n else np.nan
    lo, hi = boot.ci_ratio(num, den) if n else (np.nan, np.nan)
    return {"judge": judge, "metric": metric, "estimate": est, "ci_low": lo, "ci_high": hi, "n": n,
            "n_items": int(pd.unique(items[den > 0]).size), "k": int(num.sum()),
            "n_ties": int(np.asarray(ties, bool).sum()), "verdict": verdict}


def _diff_row(judge, metric, items, n1, d1, n2, d2, ties, boot, verdict) -> dict:
    n1, d1, n2, d2 = (np.asarray(a, float) for a in (n1, d1, n2, d2))
    if d1.sum() and d2.sum():
        est = float(n1.sum() / d1.sum() - n2.sum() / d2.sum())
        lo, hi = boot.ci_ratio_diff(n1, d1, n2, d2)
    else:
        est = lo = hi = np.nan
    used = (d1 > 0) | (d2 > 0)
    return {"judge": judge, "metric": metric, "estimate": est, "ci_low": lo, "ci_high": hi,
            "n": int(used.sum()), "n_items": int(pd.unique(items[used]).size), "k": pd.NA,
            "n_ties": int(np.asarray(ties, bool).sum()), "verdict": verdict}


def _frame(rows: list[dict], cols: Sequence[str]) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=list(cols))
    if "k" in out.columns:
        out["k"] = out["k"].astype("Int64")
    return out


# --------------------------------------------------------------------------------------------
# Wataoka et al. 2024
# --------------------------------------------------------------------------------------------


def wataoka_bias(
    pairwise_df: pd.DataFrame,
    verdict: Verdict = "average",
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Self-preference bias as a fairness gap (Wataoka, Takahashi & Ri 2024, arXiv 2410.21819).

    Wataoka et al. treat the judge as a classifier that labels each response of a pair as the
    better one (Y' = 1), with the sensitive attribute S = 1 when the judge wrote the response and
    S = 0 when another model did, and ground truth Y = 1 when the response really is the better
    one (human preference there; correctness here). Per judge, over self-vs-other pairs:

    * ``demographic_parity`` = P(Y'=1 | S=1) - P(Y'=1 | S=0)
      = P(judge prefers own) - P(judge prefers other), over all decided self-vs-other pairs
      (= 2 x share preferring own - 1);
    * ``equal_opportunity`` = P(Y'=1 | Y=1, S=1) - P(Y'=1 | Y=1, S=0)
      = P(prefers own | own correct, other wrong) - P(prefers other | other correct, own wrong),
      over decided pairs with exactly one correct candidate -- the paper's main metric, which
      discounts preference that the better quality of the own answer explains;
    * ``tpr_self`` and ``tpr_other``: the two terms of equal opportunity.

    Positive values mean the judge favours itself. ``verdict`` chooses how a pair is decided (the
    paper averages the two presentation orders, hence the default ``"average"``). Columns:
    ``judge, metric, estimate, ci_low, ci_high, n, n_items, k, n_ties, verdict``.

    Parameters
    ----------
    pairwise_df : DataFrame
        ``Run.pairwise_frame()``.
    verdict : {"average", "consistent"}
        How a pair's verdict is read (module docstring).
    n_boot : int
        Item-bootstrap resamples (0: no intervals).
    seed : int
        Seed of the bootstrap / permutations / simulations.
    confidence : float
        Two-sided interval level.

    Returns
    -------
    DataFrame
        One row per judge x metric (columns above).
    """
    so = _self_other(pairwise_df, verdict)
    rows = []
    for (judge,), g in so.groupby(["judge"], sort=True):
        items = g["item_id"].to_numpy(dtype=object)
        boot = ClusterBootstrap(items, n_boot=n_boot, seed=seed, confidence=confidence)
        v = g["prefers_own"].to_numpy(float)
        decided = np.isfinite(v)
        own = decided & (v == 1.0)
        oc = g["own_correct"].to_numpy(bool)
        xc = g["other_correct"].to_numpy(bool)
        own_better = decided & oc & ~xc
        other_better = decided & ~oc & xc
        other = decided & (v == 0.0)
        ties = ~decided
        d = decided.astype(float)
        # P(own) - P(other) over the same decided pairs
        rows.append(
            _diff_row(judge, "demographic_parity", items, own, d, other, d, ties, boot, verdict)
        )
        rows.append(
            _diff_row(judge, "equal_opportunity", items, own & own_better, own_better,
                      other & other_better, other_better, ties & (oc != xc), boot, verdict)
        )
        rows.append(_rate_row(judge, "tpr_self", items, own & own_better, own_better,
                              ties & oc & ~xc, boot, verdict))
        rows.append(_rate_row(judge, "tpr_other", items, other & other_better, other_better,
                              ties & ~oc & xc, boot, verdict))
    return _frame(rows, _RATE_COLS)


def winrate_by_perplexity(
    pairwise_df: pd.DataFrame,
    n_bins: int = 5,
    verdict: Verdict = "average",
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Win rates against the perplexity difference, self vs other (after Wataoka et al. 2024).

    Wataoka et al. find that judges favour text with low perplexity under the judge more than the
    ground truth warrants, whether or not they wrote it. Each pair gives two entries, one per
    candidate ("this" vs the opponent). For each entry:

    * ``delta_log_ppl`` = log ppl(this) - log ppl(opponent) = mean_logprob(opponent) -
      mean_logprob(this), with perplexity = exp(-mean_logprob) under the judge (negative: this
      text is more familiar to the judge);
    * judge win: 1 if the judge prefers this candidate, 0 if the opponent, 0.5 for a tie;
    * true win: 1 if this is correct and the opponent wrong, 0 for the reverse, 0.5 otherwise.

    Entries are put in ``n_bins`` equal-count bins of ``delta_log_ppl`` per judge (self and
    other entries share the bins) and split by ``author`` (``"self"``: the judge wrote this
    candidate, else ``"other"``). Measures: ``judge_win_rate``, ``true_win_rate`` and ``excess``
    (judge - true; positive = the judge favours these texts beyond their correctness).

    Columns: ``judge, author, bin, delta_min, delta_max, delta_mean, measure, estimate, ci_low,
    ci_high, n (entries), n_items``.

    Parameters
    ----------
    pairwise_df : DataFrame
        ``Run.pairwise_frame()``.
    n_bins : int
        Number of equal-count bins.
    verdict : {"average", "consistent"}
        How a pair's verdict is read (module docstring).
    n_boot : int
        Item-bootstrap resamples (0: no intervals).
    seed : int
        Seed of the bootstrap / permutations / simulations.
    confidence : float
        Two-sided interval level.

    Returns
    -------
    DataFrame
        One row per judge x bin (columns above).
    """
    check_columns(pairwise_df, [*_PAIR_COLS, "a_mean_logprob", "b_mean_logprob"], "winrate_by_perplexity")
    pw = drop_missing(pairwise_df, ["a_mean_logprob", "b_mean_logprob"])
    va = _verdict_a(pw, verdict)
    win_a = np.where(np.isfinite(va), va, 0.5)
    ac = bool_array(pw["a_correct"])
    bc = bool_array(pw["b_correct"])
    true_a = np.where(ac & ~bc, 1.0, np.where(~ac & bc, 0.0, 0.5))
    la = pw["a_mean_logprob"].to_numpy(float)
    lb = pw["b_mean_logprob"].to_numpy(float)
    entries = pd.DataFrame(
        {
            "item_id": np.r_[pw["item_id"].to_numpy(dtype=object), pw["item_id"].to_numpy(dtype=object)],
            "judge": np.r_[pw["judge"].to_numpy(dtype=object), pw["judge"].to_numpy(dtype=object)],
            "self": np.r_[bool_array(pw["a_self"]), bool_array(pw["b_self"])],
            "delta": np.r_[lb - la, la - lb],
            "judge_win": np.r_[win_a, 1.0 - win_a],
            "true_win": np.r_[true_a, 1.0 - true_a],
        }
    )
    rows = []
    for (judge,), g in entries.groupby(["judge"], sort=True):
        g = g.reset_index(drop=True)
        bins = np.empty(len(g), dtype=int)
        for i, b in enumerate(equal_count_bin_indices(g["delta"].to_numpy(float), n_bins)):
            bins[b] = i
        g["bin"] = bins
        for (author_self, b), h in g.groupby(["self", "bin"], sort=True):
            items = h["item_id"].to_numpy(dtype=object)
            boot = ClusterBootstrap(items, n_boot=n_boot, seed=seed, confidence=confidence)
            jw = h["judge_win"].to_numpy(float)
            tw = h["true_win"].to_numpy(float)
            one = np.ones_like(jw)
            dl = h["delta"].to_numpy(float)
            common = {"judge": judge, "author": "self" if author_self else "other", "bin": int(b),
                      "delta_min": float(dl.min()), "delta_max": float(dl.max()),
                      "delta_mean": float(dl.mean()), "n": int(len(h)),
                      "n_items": int(pd.unique(items).size)}
            for measure, x in (("judge_win_rate", jw), ("true_win_rate", tw), ("excess", jw - tw)):
                lo, hi = boot.ci_ratio(x, one)
                rows.append({**common, "measure": measure, "estimate": float(x.mean()),
                             "ci_low": lo, "ci_high": hi})
    cols = ["judge", "author", "bin", "delta_min", "delta_max", "delta_mean", "measure", "estimate",
            "ci_low", "ci_high", "n", "n_items"]
    out = pd.DataFrame(rows, columns=cols)
    if len(out):
        out["author"] = pd.Categorical(out["author"], categories=["self", "other"])
        out = out.sort_values(["judge", "author", "bin"], kind="stable").reset_index(drop=True)
        out["author"] = out["author"].astype(str)
    return out


# --------------------------------------------------------------------------------------------
# Chen et al. 2025
# --------------------------------------------------------------------------------------------


def chen_metrics(
    pairwise_df: pd.DataFrame,
    verdict: Verdict = "consistent",
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Legitimate vs harmful self-preference (Chen et al. 2025, "Do LLM Evaluators Prefer
    Themselves for a Reason?", arXiv 2504.03846).

    Over self-vs-other pairs of each judge, with ties (see ``verdict``) left out:

    * ``spr`` (self-preference ratio) = #(judge prefers own) / #(decided pairs);
    * ``spr_decisive``: the same on pairs with exactly one correct candidate (not a paper metric;
      the pairs on which the next two are defined);
    * ``lspr`` (legitimate self-preference ratio) = #(prefers own, own correct, other wrong) /
      #(prefers own, exactly one correct): of the self-preferences on pairs with an objective
      winner, the share where the own answer is the better one;
    * ``hspp`` (harmful self-preference propensity) = #(prefers own, own wrong, other correct) /
      #(own wrong, other correct): how often the judge sides with its own wrong answer against a
      correct one.

    Chen et al. judge each pair in both orders; the default ``verdict="consistent"`` counts a
    preference only when it holds in both orders. Columns: ``judge, metric, estimate, ci_low,
    ci_high, n (denominator), n_items, k (numerator), n_ties (undecided pairs in the metric's
    population), verdict``.

    Parameters
    ----------
    pairwise_df : DataFrame
        ``Run.pairwise_frame()``.
    verdict : {"average", "consistent"}
        How a pair's verdict is read (module docstring).
    n_boot : int
        Item-bootstrap resamples (0: no intervals).
    seed : int
        Seed of the bootstrap / permutations / simulations.
    confidence : float
        Two-sided interval level.

    Returns
    -------
    DataFrame
        One row per judge x metric (columns above).
    """
    so = _self_other(pairwise_df, verdict)
    rows = []
    for (judge,), g in so.groupby(["judge"], sort=True):
        items = g["item_id"].to_numpy(dtype=object)
        boot = ClusterBootstrap(items, n_boot=n_boot, seed=seed, confidence=confidence)
        v = g["prefers_own"].to_numpy(float)
        decided = np.isfinite(v)
        own = decided & (v == 1.0)
        oc = g["own_correct"].to_numpy(bool)
        xc = g["other_correct"].to_numpy(bool)
        decisive = oc != xc
        rows.append(_rate_row(judge, "spr", items, own, decided, ~decided, boot, verdict))
        rows.append(_rate_row(judge, "spr_decisive", items, own & decisive, decided & decisive,
                              ~decided & decisive, boot, verdict))
        rows.append(_rate_row(judge, "lspr", items, own & oc & ~xc, own & decisive,
                              ~decided & decisive, boot, verdict))
        rows.append(_rate_row(judge, "hspp", items, own & ~oc & xc, decided & ~oc & xc,
                              ~decided & ~oc & xc, boot, verdict))
    return _frame(rows, _RATE_COLS)


# --------------------------------------------------------------------------------------------
# Panickssery et al. 2024
# --------------------------------------------------------------------------------------------


def panickssery_self_preference(
    pairwise_df: pd.DataFrame,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Self-preference score (Panickssery, Bowman & Feng 2024, "LLM Evaluators Recognize and
    Favor Their Own Generations").

    The judge sees its own answer and another's in both orders; the score is the probability it
    gives to its own answer averaged over the two orders, averaged over self-vs-other pairs:
    ``mean((P(own | own first) + P(own | own second)) / 2)``; 0.5 is no preference. Rows per
    judge: ``self_preference`` and its two order components ``p_own_first`` and ``p_own_second``
    (their gap shows position bias). Columns: ``judge, metric, estimate, ci_low, ci_high, n,
    n_items``.

    Parameters
    ----------
    pairwise_df : DataFrame
        ``Run.pairwise_frame()``.
    n_boot : int
        Item-bootstrap resamples (0: no intervals).
    seed : int
        Seed of the bootstrap / permutations / simulations.
    confidence : float
        Two-sided interval level.

    Returns
    -------
    DataFrame
        One row per judge (columns above).
    """
    so = _self_other(pairwise_df, "average")
    rows = []
    for (judge,), g in so.groupby(["judge"], sort=True):
        for metric, col in (("self_preference", "pref_own"), ("p_own_first", "p_own_first"),
                            ("p_own_second", "p_own_second")):
            h = g[np.isfinite(g[col].to_numpy(float))]
            items = h["item_id"].to_numpy(dtype=object)
            x = h[col].to_numpy(float)
            boot = ClusterBootstrap(items, n_boot=n_boot, seed=seed, confidence=confidence)
            lo, hi = boot.ci_ratio(x, np.ones_like(x)) if x.size else (np.nan, np.nan)
            rows.append({"judge": judge, "metric": metric,
                         "estimate": float(x.mean()) if x.size else np.nan, "ci_low": lo,
                         "ci_high": hi, "n": int(x.size), "n_items": int(pd.unique(items).size)})
    return pd.DataFrame(rows, columns=["judge", "metric", "estimate", "ci_low", "ci_high", "n", "n_items"])


# --------------------------------------------------------------------------------------------
# Roytburg et al. 2026
# --------------------------------------------------------------------------------------------


def roytburg_baseline(
    pairwise_df: pd.DataFrame,
    verdict: Verdict = "average",
    baseline: Literal["non_self_hard", "own_right"] = "non_self_hard",
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Evaluator-quality baseline for self-preference (Roytburg et al. 2026, "Are LLM Evaluators
    Really Narcissists?", arXiv 2601.22548).

    Roytburg et al. compare the probability that a judge wrongly votes for itself with the
    probability that it votes for an incorrect answer from another model *on the questions the
    judge itself answers wrongly*: a judge that cannot tell right from wrong on hard items picks
    wrong answers whoever wrote them. Rows per judge:

    * ``self_wrong_vote`` = P(prefers own | own wrong, other correct);
    * ``other_wrong_vote``, the baseline. ``baseline="non_self_hard"`` (default, the baseline as
      published) = P(prefers the wrong candidate | neither candidate is the judge's, exactly one
      correct) on items where every candidate the judge authored (in this frame) is wrong.
      ``baseline="own_right"`` = P(prefers other | other wrong, own correct): with it the
      difference is algebraically Wataoka et al.'s equal-opportunity bias (same number), so its
      rows carry ``source = "wataoka"`` and are reported under Wataoka's name, not Roytburg's;
    * ``difference`` = self_wrong_vote - other_wrong_vote (> 0: self-preference beyond what
      evaluator quality explains), bootstrapped jointly.

    Parameters
    ----------
    pairwise_df : DataFrame
        ``Run.pairwise_frame()``.
    verdict : {"average", "consistent"}
        How a pair's verdict is read (module docstring).
    baseline : {"non_self_hard", "own_right"}
        The baseline vote rate (above).
    n_boot, seed, confidence
        Item-bootstrap resamples, seed and level.

    Returns
    -------
    DataFrame
        Columns as :func:`chen_metrics` plus ``baseline`` and ``source`` (``"roytburg"`` or
        ``"wataoka"``).
    """
    check_columns(pairwise_df, _PAIR_COLS, "roytburg_baseline")
    if baseline not in ("own_right", "non_self_hard"):
        raise ValueError("baseline must be 'own_right' or 'non_self_hard'")
    pw = pairwise_df.reset_index(drop=True)
    a_self = bool_array(pw["a_self"])
    b_self = bool_array(pw["b_self"])
    ac = bool_array(pw["a_correct"])
    bc = bool_array(pw["b_correct"])
    va = _verdict_a(pw, verdict)
    decided = np.isfinite(va)
    so_mask = a_self != b_self
    own_a = a_self
    prefers_own = np.where(own_a, va, 1.0 - va)
    oc = np.where(own_a, ac, bc)
    xc = np.where(own_a, bc, ac)
    # numerator / denominator indicators per pair
    self_num = so_mask & decided & (prefers_own == 1.0) & ~oc & xc
    self_den = so_mask & decided & ~oc & xc
    self_ties = so_mask & ~decided & ~oc & xc
    if baseline == "own_right":
        base_num = so_mask & decided & (prefers_own == 0.0) & oc & ~xc
        base_den = so_mask & decided & oc & ~xc
        base_ties = so_mask & ~decided & oc & ~xc
    else:
        # items where every self-authored candidate of the judge is wrong
        sides = pd.concat(
            [
                pd.DataFrame({"judge": pw["judge"], "item_id": pw["item_id"], "self": a_self, "correct": ac}),
                pd.DataFrame({"judge": pw["judge"], "item_id": pw["item_id"], "self": b_self, "correct": bc}),
            ]
        )
        own_sides = sides[sides["self"]]
        hard = own_sides.groupby(["judge", "item_id"])["correct"].agg(lambda c: not c.any())
        hard_keys = set(hard[hard].index)
        is_hard = np.array([(j, i) in hard_keys for j, i in zip(pw["judge"], pw["item_id"])], dtype=bool)
        non_self = ~a_self & ~b_self & (ac != bc) & is_hard
        prefers_wrong = np.where(ac, 1.0 - va, va)  # a correct -> wrong one is b
        base_num = non_self & decided & (prefers_wrong == 1.0)
        base_den = non_self & decided
        base_ties = non_self & ~decided
    rows = []
    judges = pw["judge"].to_numpy(dtype=object)
    items_all = pw["item_id"].to_numpy(dtype=object)
    for judge in sorted(pd.unique(judges)):
        sel = (judges == judge) & (self_den | base_den | self_ties | base_ties)
        if not sel.any():
            continue
        items = items_all[sel]
        boot = ClusterBootstrap(items, n_boot=n_boot, seed=seed, confidence=confidence)
        sn, sd, st_ = self_num[sel], self_den[sel], self_ties[sel]
        bn, bd, bt = base_num[sel], base_den[sel], base_ties[sel]
        rows.append(_rate_row(judge, "self_wrong_vote", items, sn, sd, st_, boot, verdict))
        rows.append(_rate_row(judge, "other_wrong_vote", items, bn, bd, bt, boot, verdict))
        rows.append(_diff_row(judge, "difference", items, sn, sd, bn, bd, st_ | bt, boot, verdict))
    out = _frame(rows, _RATE_COLS)
    out["baseline"] = baseline
    out["source"] = "roytburg" if baseline == "non_self_hard" else "wataoka"
    return out


# --------------------------------------------------------------------------------------------
# Kadavath et al. 2022
# --------------------------------------------------------------------------------------------


def kadavath_accuracy_above(
    df: pd.DataFrame,
    threshold: float = 0.5,
    by: Sequence[str] = ("judge", "mode"),
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Accuracy among answers the judge accepts (Kadavath et al. 2022, "Language Models (Mostly)
    Know What They Know").

    Kadavath et al. show that keeping only samples with P(True) > 0.5 raises accuracy. Rows per
    group (the judge, then ``by``), on the analysis frame:

    * ``accuracy_above`` = #(correct, P(Yes) > threshold) / #(P(Yes) > threshold);
    * ``base_accuracy`` = share correct among all candidates;
    * ``share_above`` = #(P(Yes) > threshold) / #candidates;
    * ``lift`` = accuracy_above - base_accuracy (bootstrapped jointly).

    Columns: ``*keys, measure, threshold, estimate, ci_low, ci_high, n, n_items``.

    Parameters
    ----------
    df : DataFrame
        The analysis frame (ARCHITECTURE.md); rows with a missing score or ``correct`` (ungraded) are left out.
    threshold : float
        P(Yes) above which a verdict counts as accept.
    by : sequence of str
        Grouping columns (the judge is never pooled).
    n_boot : int
        Item-bootstrap resamples (0: no intervals).
    seed : int
        Seed of the bootstrap / permutations / simulations.
    confidence : float
        Two-sided interval level.

    Returns
    -------
    DataFrame
        ``*keys, measure, threshold, estimate, ci_low, ci_high, n, n_items``.
    """
    keys, groups = per_group(df, what="kadavath_accuracy_above", needed=["p_yes", "correct"], by=by,
                              judge_first=True, n_boot=n_boot, seed=seed, confidence=confidence)
    rows = []
    for grp in groups:
        key, items, boot = grp.key, grp.items, grp.boot
        p = grp.frame["p_yes"].to_numpy(float)
        y = grp.labels().astype(float)
        above = (p > threshold).astype(float)
        one = np.ones_like(p)
        n_above = int(above.sum())
        specs = [
            ("accuracy_above", y * above, above, n_above),
            ("base_accuracy", y, one, len(p)),
            ("share_above", above, one, len(p)),
        ]
        for measure, num, den, n in specs:
            est = float(num.sum() / den.sum()) if den.sum() else np.nan
            lo, hi = boot.ci_ratio(num, den) if den.sum() else (np.nan, np.nan)
            rows.append({**key, "measure": measure, "threshold": threshold, "estimate": est,
                         "ci_low": lo, "ci_high": hi, "n": n,
                         "n_items": int(pd.unique(items[den > 0]).size)})
        if n_above:
            lo, hi = boot.ci_ratio_diff(y * above, above, y, one)
            est = float((y * above).sum() / n_above - y.mean())
        else:
            est = lo = hi = np.nan
        rows.append({**key, "measure": "lift", "threshold": threshold, "estimate": est,
                     "ci_low": lo, "ci_high": hi, "n": len(p), "n_items": int(pd.unique(items).size)})
    cols = [*keys, "measure", "threshold", "estimate", "ci_low", "ci_high", "n", "n_items"]
    return pd.DataFrame(rows, columns=cols)
