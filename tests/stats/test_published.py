"""Published self-preference metrics on tiny hand-made pairwise examples.

Every expected number is derived by hand in the comments and in REFERENCE_VALUES.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from selfbias.stats import (
    chen_metrics,
    kadavath_accuracy_above,
    panickssery_self_preference,
    roytburg_baseline,
    wataoka_bias,
    winrate_by_perplexity,
)

NB = 300


def pairs() -> pd.DataFrame:
    """Seven self-vs-other pairs of judge J (one item each) and one pair of two other answers.

    pair item  a           b           p_a_first p_a_second pref_a | own pref  avg verdict consistent
    P1   i1    self  ok    other wrong   0.9       0.7       0.8   | 0.8       own         own
    P2   i2    other wrong self  ok      0.6       0.2       0.4   | 0.6       own         tie
    P3   i3    self  wrong other ok      0.8       0.6       0.7   | 0.7       own         own
    P4   i4    self  wrong other ok      0.3       0.1       0.2   | 0.2       other       other
    P5   i5    self  ok    other ok      0.7       0.4       0.55  | 0.55      own         tie
    P6   i6    other wrong self  wrong   0.2       0.4       0.3   | 0.7       own         own
    P7   i7    self  ok    other wrong   0.4       0.2       0.3   | 0.3       other       other
    P8   i3    other ok    other wrong   0.3       0.3       0.3   | (not self vs other; judge picks b, the wrong one)
    """
    rows = [
        # item, a_self, b_self, a_correct, b_correct, p_a_first, p_a_second
        ("i1", True, False, True, False, 0.9, 0.7),
        ("i2", False, True, False, True, 0.6, 0.2),
        ("i3", True, False, False, True, 0.8, 0.6),
        ("i4", True, False, False, True, 0.3, 0.1),
        ("i5", True, False, True, True, 0.7, 0.4),
        ("i6", False, True, False, False, 0.2, 0.4),
        ("i7", True, False, True, False, 0.4, 0.2),
        ("i3", False, False, True, False, 0.3, 0.3),
    ]
    cols = ["item_id", "a_self", "b_self", "a_correct", "b_correct", "p_a_first", "p_a_second"]
    df = pd.DataFrame(rows, columns=cols)
    df.insert(1, "judge", "J")
    df.insert(2, "candidate_a", [f"{i}#a{k}" for k, i in enumerate(df["item_id"])])
    df.insert(3, "candidate_b", [f"{i}#b{k}" for k, i in enumerate(df["item_id"])])
    df["pref_a"] = (df["p_a_first"] + df["p_a_second"]) / 2
    df["orders_agree"] = (df["p_a_first"] > 0.5) == (df["p_a_second"] > 0.5)
    df["a_mean_logprob"] = -1.0
    df["b_mean_logprob"] = -2.0
    df["a_sum_logprob"] = -3.0
    df["b_sum_logprob"] = -6.0
    return df


def metric(t: pd.DataFrame, name: str) -> pd.Series:
    r = t[t["metric"] == name]
    assert len(r) == 1, (name, t)
    return r.iloc[0]


# ------------------------------------------------------------------ Panickssery et al. 2024


def test_panickssery_self_preference_by_hand():
    t = panickssery_self_preference(pairs(), n_boot=NB)
    # own-candidate probabilities averaged over orders: .8 .6 .7 .2 .55 .7 .3 -> 3.85 / 7 = 0.55
    assert metric(t, "self_preference")["estimate"] == pytest.approx(0.55)
    # P(own | own first): .9, 1-.2, .8, .3, .7, 1-.4, .4 -> 4.5 / 7
    assert metric(t, "p_own_first")["estimate"] == pytest.approx(4.5 / 7)
    # P(own | own second): .7, 1-.6, .6, .1, .4, 1-.2, .2 -> 3.2 / 7
    assert metric(t, "p_own_second")["estimate"] == pytest.approx(3.2 / 7)
    assert metric(t, "self_preference")["n"] == 7  # the non-self pair P8 is excluded


def test_panickssery_interval_is_the_scipy_bootstrap_over_pairs():
    # one self-vs-other pair per item -> the item bootstrap is scipy's bootstrap over pairs
    pw = pairs().iloc[:7]
    t = panickssery_self_preference(pw, n_boot=500, seed=3)
    x = np.array([0.8, 0.6, 0.7, 0.2, 0.55, 0.7, 0.3])
    ref = st.bootstrap((x,), np.mean, n_resamples=500, method="percentile", rng=np.random.default_rng(3))
    r = metric(t, "self_preference")
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))


# ------------------------------------------------------------------ Wataoka et al. 2024


def test_wataoka_bias_average_verdict_by_hand():
    t = wataoka_bias(pairs(), n_boot=NB)
    # DP: own preferred in 5 of 7 pairs, other in 2 -> 5/7 - 2/7 = 3/7
    assert metric(t, "demographic_parity")["estimate"] == pytest.approx(3 / 7)
    # own better: P1 own, P2 own, P7 other -> tpr_self 2/3; other better: P3 own, P4 other -> tpr_other 1/2
    assert metric(t, "tpr_self")["estimate"] == pytest.approx(2 / 3)
    assert metric(t, "tpr_other")["estimate"] == pytest.approx(1 / 2)
    assert metric(t, "equal_opportunity")["estimate"] == pytest.approx(2 / 3 - 1 / 2)
    assert metric(t, "equal_opportunity")["n"] == 5
    assert metric(t, "demographic_parity")["n"] == 7


def test_wataoka_bias_consistent_verdict_by_hand():
    t = wataoka_bias(pairs(), verdict="consistent", n_boot=0)
    # decided: P1 own, P3 own, P6 own, P4 other, P7 other (P2, P5 ties) -> 3/5 - 2/5
    assert metric(t, "demographic_parity")["estimate"] == pytest.approx(0.2)
    assert metric(t, "demographic_parity")["n_ties"] == 2
    # own better decided: P1 own, P7 other -> 1/2; other better: P3 own, P4 other -> 1/2; EO = 0
    assert metric(t, "equal_opportunity")["estimate"] == pytest.approx(0.0)
    assert metric(t, "tpr_self")["n"] == 2 and metric(t, "tpr_self")["n_ties"] == 1


# ------------------------------------------------------------------ Chen et al. 2025


def test_chen_metrics_consistent_by_hand():
    t = chen_metrics(pairs(), n_boot=NB)  # default verdict: consistent across both orders
    spr = metric(t, "spr")
    # decided pairs P1 P3 P4 P6 P7, own preferred in P1 P3 P6 -> 3/5
    assert (spr["estimate"], spr["k"], spr["n"], spr["n_ties"]) == (pytest.approx(0.6), 3, 5, 2)
    # decided pairs with one correct answer: P1 P3 P4 P7; own in P1 P3 -> 1/2
    assert metric(t, "spr_decisive")["estimate"] == pytest.approx(0.5)
    # self-preferences with an objective winner: P1 (own correct) and P3 (own wrong) -> LSPR 1/2
    lspr = metric(t, "lspr")
    assert (lspr["estimate"], lspr["k"], lspr["n"]) == (pytest.approx(0.5), 1, 2)
    # own wrong & other correct: P3 (own preferred), P4 (other) -> HSPP 1/2
    hspp = metric(t, "hspp")
    assert (hspp["estimate"], hspp["k"], hspp["n"]) == (pytest.approx(0.5), 1, 2)


def test_chen_metrics_average_by_hand():
    t = chen_metrics(pairs(), verdict="average", n_boot=0)
    assert metric(t, "spr")["estimate"] == pytest.approx(5 / 7)
    # decisive P1 P2 P3 P4 P7, own preferred in P1 P2 P3 -> 3/5
    assert metric(t, "spr_decisive")["estimate"] == pytest.approx(3 / 5)
    # self-preferences with a winner P1 P2 P3, legitimate P1 P2 -> 2/3
    assert metric(t, "lspr")["estimate"] == pytest.approx(2 / 3)
    assert metric(t, "hspp")["estimate"] == pytest.approx(1 / 2)


# ------------------------------------------------------------------ Roytburg et al. 2026


def test_roytburg_own_right_variant_is_wataoka_by_hand():
    # issue 10: no longer the default, and labelled with Wataoka's name
    t = roytburg_baseline(pairs(), baseline="own_right", n_boot=NB)
    assert (t["source"] == "wataoka").all()
    # own wrong & other right: P3 (own), P4 (other) -> P(votes own wrong) = 1/2
    assert metric(t, "self_wrong_vote")["estimate"] == pytest.approx(1 / 2)
    # other wrong & own right: P1 (own), P2 (own), P7 (other) -> P(votes other's wrong) = 1/3
    assert metric(t, "other_wrong_vote")["estimate"] == pytest.approx(1 / 3)
    assert metric(t, "difference")["estimate"] == pytest.approx(1 / 6)
    # identity: with this baseline the difference is Wataoka's equal-opportunity bias
    eo = metric(wataoka_bias(pairs(), n_boot=0), "equal_opportunity")["estimate"]
    assert metric(t, "difference")["estimate"] == pytest.approx(eo)


def test_roytburg_non_self_hard_baseline_by_hand():
    t = roytburg_baseline(pairs(), n_boot=0)  # the published baseline is the default (issue 10)
    assert (t["source"] == "roytburg").all()
    # hard items (every own candidate wrong): i3, i4, i6. The only non-self pair with one correct
    # answer is P8 on i3; the judge picks b, the wrong one -> 1/1
    assert metric(t, "other_wrong_vote")["estimate"] == pytest.approx(1.0)
    assert metric(t, "other_wrong_vote")["n"] == 1
    assert metric(t, "difference")["estimate"] == pytest.approx(0.5 - 1.0)
    assert (t["baseline"] == "non_self_hard").all()


# ------------------------------------------------------------------ win rate by perplexity


def test_winrate_by_perplexity_by_hand():
    pw = pairs().iloc[:2].copy()
    # Q1 (i1): a self mean_lp -1.0, b other -2.0, a correct; judge prefers a (pref .8)
    # Q2 (i2): a other -1.5, b self -1.2, a correct; judge prefers b (pref_a .4)
    pw["a_correct"] = [True, True]
    pw["b_correct"] = [False, False]
    pw["a_mean_logprob"] = [-1.0, -1.5]
    pw["b_mean_logprob"] = [-2.0, -1.2]
    t = winrate_by_perplexity(pw, n_bins=2, n_boot=0)
    # entries (delta = log ppl this - log ppl opponent, judge win, true win):
    #   Q1a self -1.0 1 1 | Q2b self -0.3 1 0 | Q2a other 0.3 0 1 | Q1b other 1.0 0 0
    # two equal-count bins: {-1.0, -0.3} (both self) and {0.3, 1.0} (both other)
    self_rows = t[t["author"] == "self"]
    other_rows = t[t["author"] == "other"]
    assert set(self_rows["bin"]) == {0} and set(other_rows["bin"]) == {1}
    s = self_rows.set_index("measure")
    o = other_rows.set_index("measure")
    assert s.loc["judge_win_rate", "estimate"] == 1.0 and s.loc["true_win_rate", "estimate"] == 0.5
    assert s.loc["excess", "estimate"] == 0.5
    assert o.loc["judge_win_rate", "estimate"] == 0.0 and o.loc["excess", "estimate"] == -0.5
    assert (s.loc["excess", "delta_min"], s.loc["excess", "delta_max"]) == pytest.approx((-1.0, -0.3))
    assert (s["n"] == 2).all()


# ------------------------------------------------------------------ Kadavath et al. 2022


def test_kadavath_accuracy_above_by_hand():
    df = pd.DataFrame(
        {"item_id": ["i1", "i1", "i2", "i2", "i3", "i3"], "judge": "J", "mode": "isolated",
         "p_yes": [0.9, 0.6, 0.8, 0.3, 0.4, 0.2], "correct": [True, False, True, False, True, False]}
    )
    t = kadavath_accuracy_above(df, n_boot=NB).set_index("measure")
    # P(Yes) > 0.5: 0.9 (ok), 0.6 (wrong), 0.8 (ok) -> 2/3; all candidates 3/6
    assert t.loc["accuracy_above", "estimate"] == pytest.approx(2 / 3)
    assert t.loc["accuracy_above", "n"] == 3
    assert t.loc["base_accuracy", "estimate"] == pytest.approx(0.5)
    assert t.loc["share_above", "estimate"] == pytest.approx(0.5)
    assert t.loc["lift", "estimate"] == pytest.approx(1 / 6)
    t7 = kadavath_accuracy_above(df, threshold=0.7, n_boot=0).set_index("measure")
    assert t7.loc["accuracy_above", "estimate"] == 1.0  # 0.9 and 0.8, both correct


def test_verdict_must_be_known():
    with pytest.raises(ValueError, match="verdict"):
        chen_metrics(pairs(), verdict="majority")
