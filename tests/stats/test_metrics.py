"""Misplaced confidence, discrimination, calibration and the comparison effect.

Reference values are derived by hand in the comments (and listed in REFERENCE_VALUES.md) or come
from scipy / statsmodels / scikit-learn called directly.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, roc_auc_score
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from selfbias.stats import (
    agreement_discrimination,
    calibration,
    comparison_effect,
    discrimination,
    holm,
    likelihood_discrimination,
    misplaced_confidence,
    reliability_table,
)
from selfbias.stats._metrics import ClusterBootstrap as _ClusterBootstrap, weighted_auc as _weighted_auc

NB = 300  # bootstrap resamples in tests


def six_rows(mode: str = "isolated") -> pd.DataFrame:
    """Three items, one correct and one wrong candidate each.

    item i1: c1 p=0.9 correct, c2 p=0.6 wrong
    item i2: c3 p=0.8 correct, c4 p=0.3 wrong
    item i3: c5 p=0.4 correct, c6 p=0.2 wrong
    """
    return pd.DataFrame(
        {
            "item_id": ["i1", "i1", "i2", "i2", "i3", "i3"],
            "candidate_id": ["c1", "c2", "c3", "c4", "c5", "c6"],
            "judge": "J",
            "mode": mode,
            "p_yes": [0.9, 0.6, 0.8, 0.3, 0.4, 0.2],
            "yes_no_mass": 0.9,
            "correct": [True, False, True, False, True, False],
            "source": ["reference", "distractor", "reference", "own_greedy", "own_greedy", "distractor"],
            "self_authored": [False, False, False, True, True, False],
            "sum_logprob": [-1.0, -3.0, -2.0, -1.5, -4.0, -6.0],
            "mean_logprob": [-0.5, -1.5, -1.0, -0.5, -2.0, -2.0],
            "n_tokens": [2, 2, 2, 3, 2, 3],
        }
    )


def cell(t: pd.DataFrame, **eq) -> pd.Series:
    m = np.ones(len(t), bool)
    for k, v in eq.items():
        m &= (t[k] == v).to_numpy()
    assert m.sum() == 1, (eq, t)
    return t[m].iloc[0]


# ------------------------------------------------------------------ hand-derived closed forms


def test_six_row_calibration_closed_form():
    df = six_rows()
    cal = calibration(df, n_bins=2, n_boot=NB)
    # Brier = (0.1^2 + 0.6^2 + 0.2^2 + 0.3^2 + 0.6^2 + 0.2^2) / 6 = 0.90 / 6 = 0.15
    assert cell(cal, measure="brier")["estimate"] == pytest.approx(0.15)
    # 2 equal-count bins: {0.2w, 0.3w, 0.4c} conf 0.3 acc 1/3 (gap 1/30);
    #                     {0.6w, 0.8c, 0.9c} conf 2.3/3 acc 2/3 (gap -0.1)
    # ECE = 0.5 * 1/30 + 0.5 * 0.1 = 1/15;  RMS = sqrt(0.5/900 + 0.5/100) = sqrt(1/180)
    assert cell(cal, measure="ece")["estimate"] == pytest.approx(1 / 15)
    assert cell(cal, measure="rms_ce")["estimate"] == pytest.approx(np.sqrt(1 / 180))
    assert set(cal.columns) >= {"estimate", "ci_low", "ci_high", "n", "n_items"}
    assert (cal["n"] == 6).all() and (cal["n_items"] == 3).all()


def test_calibration_against_sklearn():
    rng = np.random.default_rng(0)
    n = 400
    p = rng.random(n)
    y = rng.random(n) < p**1.5
    df = pd.DataFrame({"item_id": np.arange(n) // 4, "judge": "J", "mode": "isolated", "p_yes": p, "correct": y})
    cal = calibration(df, n_bins=10, n_boot=0)
    assert cell(cal, measure="brier")["estimate"] == pytest.approx(brier_score_loss(y, p))
    # with distinct p and N divisible by n_bins, sklearn's quantile bins are our equal-count bins
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy="quantile")
    assert cell(cal, measure="ece")["estimate"] == pytest.approx(np.mean(np.abs(prob_true - prob_pred)))
    assert cell(cal, measure="rms_ce")["estimate"] == pytest.approx(np.sqrt(np.mean((prob_true - prob_pred) ** 2)))
    assert np.isnan(cal["ci_low"]).all()  # n_boot=0 skips intervals


def test_six_row_discrimination_closed_form():
    df = six_rows()
    d = discrimination(df, n_boot=NB)
    # correct {0.9, 0.8, 0.4} vs wrong {0.6, 0.3, 0.2}: 9 pairs, 8 concordant (0.4 < 0.6) -> 8/9
    row = d.iloc[0]
    assert row["estimate"] == pytest.approx(8 / 9)
    assert row["estimate"] == pytest.approx(roc_auc_score(df["correct"], df["p_yes"]))
    assert (row["n"], row["n_items"], row["n_correct"], row["n_wrong"]) == (6, 3, 3, 3)
    assert row["ci_low"] <= row["estimate"] <= row["ci_high"] <= 1.0


def test_six_row_misplaced_confidence_closed_form():
    df = six_rows()
    m = misplaced_confidence(df, by=("mode",), n_boot=NB)
    # wrong: (0.6 + 0.3 + 0.2) / 3 = 0.3667; correct: (0.9 + 0.8 + 0.4) / 3 = 0.7; gap 1/3
    assert cell(m, measure="mean_p_yes", correctness="wrong")["estimate"] == pytest.approx(1.1 / 3)
    assert cell(m, measure="mean_p_yes", correctness="correct")["estimate"] == pytest.approx(0.7)
    assert cell(m, measure="mean_p_yes", correctness="correct_minus_wrong")["estimate"] == pytest.approx(0.7 - 1.1 / 3)
    # P(Yes) > 0.5: wrong {0.6} -> 1/3; correct {0.9, 0.8} -> 2/3
    assert cell(m, measure="share_above_threshold", correctness="wrong")["estimate"] == pytest.approx(1 / 3)
    assert cell(m, measure="share_above_threshold", correctness="correct")["estimate"] == pytest.approx(2 / 3)
    assert len(m) == 6 and (m["judge"] == "J").all()


def test_misplaced_confidence_by_source_omits_empty_cells():
    m = misplaced_confidence(six_rows(), n_boot=0)
    # distractors are all wrong: no "correct" or gap rows for them
    dis = m[m["source"] == "distractor"]
    assert set(dis["correctness"]) == {"wrong"}
    assert cell(m, source="distractor", measure="mean_p_yes", correctness="wrong")["estimate"] == pytest.approx(0.4)
    # own_greedy: c4 (0.3 wrong), c5 (0.4 correct)
    assert cell(m, source="own_greedy", measure="mean_p_yes", correctness="correct_minus_wrong")[
        "estimate"
    ] == pytest.approx(0.1)
    assert list(m.columns[:3]) == ["judge", "source", "mode"]


def test_reliability_table_two_bins():
    t = reliability_table(six_rows(), n_bins=2)
    assert list(t["bin"]) == [0, 1]
    b0, b1 = t.iloc[0], t.iloc[1]
    assert (b0["conf_min"], b0["conf_max"]) == (0.2, 0.4)
    assert b0["mean_confidence"] == pytest.approx(0.3) and b0["accuracy"] == pytest.approx(1 / 3)
    assert b1["mean_confidence"] == pytest.approx(2.3 / 3) and b1["accuracy"] == pytest.approx(2 / 3)
    lo, hi = proportion_confint(1, 3, alpha=0.05, method="wilson")
    assert (b0["ci_low"], b0["ci_high"]) == pytest.approx((lo, hi))
    assert (t["count"] == 3).all() and (t["estimate"] == t["accuracy"]).all()


def test_likelihood_discrimination_counts_each_candidate_once():
    df = pd.concat([six_rows("isolated"), six_rows("alternatives")], ignore_index=True)
    t = likelihood_discrimination(df, n_boot=0)
    assert list(t["score"]) == ["sum_logprob", "mean_logprob"]
    one = six_rows()
    for _, r in t.iterrows():
        assert r["n"] == 6
        assert r["estimate"] == pytest.approx(roc_auc_score(one["correct"], one[r["score"]]))
    # sum_logprob: correct {-1, -2, -4} vs wrong {-3, -1.5, -6}: -1 beats all three, -2 beats -3
    # and -6, -4 beats -6 -> 6 of 9 pairs
    assert t.iloc[0]["estimate"] == pytest.approx(6 / 9)


def test_agreement_discrimination_matches_sklearn():
    rng = np.random.default_rng(1)
    n = 80
    ok = rng.random(n) < 0.5
    agr = pd.DataFrame(
        {"item_id": [f"q{i}" for i in range(n)], "model": "M", "greedy_answer": "x", "n_samples": 10,
         "agreement": np.round(np.clip(0.5 + 0.3 * ok + rng.normal(0, 0.2, n), 0, 1), 1),
         "greedy_correct": ok}
    )
    t = agreement_discrimination(agr, n_boot=NB)
    assert t.iloc[0]["estimate"] == pytest.approx(roc_auc_score(ok, agr["agreement"]))
    assert t.iloc[0]["score"] == "agreement" and t.iloc[0]["model"] == "M"
    assert t.iloc[0]["ci_low"] < t.iloc[0]["estimate"] < t.iloc[0]["ci_high"]


# ------------------------------------------------------------------ bootstrap mechanics


def test_cluster_bootstrap_equals_scipy_bootstrap_with_singleton_items():
    # One candidate per item: resampling items is resampling rows, so the interval must be the
    # one scipy.stats.bootstrap gives on the raw values with the same generator.
    rng = np.random.default_rng(3)
    p = rng.random(40)
    df = pd.DataFrame({"item_id": [f"i{k:02d}" for k in range(40)], "judge": "J", "mode": "m",
                       "source": "s", "p_yes": p, "correct": False})
    m = misplaced_confidence(df, n_boot=1000, seed=7)
    r = cell(m, measure="mean_p_yes", correctness="wrong")
    ref = st.bootstrap((p,), np.mean, n_resamples=1000, method="percentile", rng=np.random.default_rng(7))
    assert (r["ci_low"], r["ci_high"]) == pytest.approx(
        (ref.confidence_interval.low, ref.confidence_interval.high)
    )


def test_cluster_bootstrap_is_wider_than_row_bootstrap_for_correlated_items():
    # 30 items x 6 candidates with identical P(Yes) within an item: the effective sample is 30
    # items, not 180 rows; a row-level bootstrap would be ~sqrt(6) = 2.4 times too narrow.
    rng = np.random.default_rng(4)
    item_p = rng.random(30)
    p = np.repeat(item_p, 6)
    df = pd.DataFrame({"item_id": np.repeat(np.arange(30), 6), "judge": "J", "mode": "m", "source": "s",
                       "p_yes": p, "correct": False})
    r = cell(misplaced_confidence(df, n_boot=1000), measure="mean_p_yes", correctness="wrong")
    naive = st.bootstrap((p,), np.mean, n_resamples=1000, method="percentile", rng=np.random.default_rng(0))
    items = st.bootstrap((item_p,), np.mean, n_resamples=1000, method="percentile", rng=np.random.default_rng(0))
    width = r["ci_high"] - r["ci_low"]
    assert width > 1.8 * (naive.confidence_interval.high - naive.confidence_interval.low)
    assert width == pytest.approx(items.confidence_interval.high - items.confidence_interval.low, rel=0.25)


def test_weighted_auc_matches_sklearn_sample_weight():
    rng = np.random.default_rng(5)
    s = np.round(rng.random(60), 1)  # many ties
    y = rng.random(60) < 0.4
    w = rng.integers(0, 4, size=(6, 60)).astype(float)
    got = _weighted_auc(s, y, w)
    want = [roc_auc_score(y, s, sample_weight=wi) for wi in w]
    assert got == pytest.approx(want)
    assert np.isnan(_weighted_auc(s, np.zeros(60, bool), w[:1]))[0]


def test_bootstrap_interval_skips_undefined_resamples():
    # 4 items, the only correct candidate in item "a": resamples without "a" have no AUROC and are
    # skipped (about (3/4)^4 = 32% of them); every defined resample has AUROC 1 -> [1, 1]
    boot = _ClusterBootstrap(["a", "b", "c", "d"], n_boot=200, seed=0)
    y = np.array([True, False, False, False])
    s = np.array([0.9, 0.1, 0.2, 0.3])
    assert boot.ci_weighted(lambda w: _weighted_auc(s, y, w)) == (1.0, 1.0)
    # never defined -> no interval
    lo, hi = boot.ci_weighted(lambda w: _weighted_auc(s, np.zeros(4, bool), w))
    assert np.isnan(lo) and np.isnan(hi)


# ------------------------------------------------------------------ comparison effect


def _paired_frame(rng, n_items, n_wrong, n_correct, shift_wrong, item_sd=0.08, noise_sd=0.05, diff_item_sd=0.0):
    """Each candidate judged in "isolated" (baseline) and "alternatives"; the alternatives P(Yes)
    of wrong candidates is shifted by ``shift_wrong``; ``diff_item_sd`` adds an item-level,
    mean-zero shift to the differences (so differences are correlated within items)."""
    k = n_wrong + n_correct
    item = np.repeat(np.arange(n_items), k)
    correct = np.tile(np.arange(k) >= n_wrong, n_items)
    m = 0.45 + rng.normal(0, item_sd, n_items)[item]
    u = rng.normal(0, diff_item_sd, n_items)[item]
    base = m + 0.2 * correct + rng.normal(0, noise_sd, item.size)
    alt = base + np.where(correct, 0.0, shift_wrong) + rng.normal(0, noise_sd, item.size) + u
    ids = np.array([f"i{i:03d}" for i in range(n_items)])[item]
    cands = np.char.add(np.char.add(ids.astype(str), "#"), np.tile(np.arange(k), n_items).astype(str))
    frames = [
        pd.DataFrame({"item_id": ids, "candidate_id": cands, "judge": "J", "mode": mode,
                      "p_yes": np.clip(p, 0.001, 0.999), "correct": correct})
        for mode, p in (("isolated", base), ("alternatives", alt))
    ]
    return pd.concat(frames, ignore_index=True)


def test_comparison_effect_recovers_planted_shift():
    rng = np.random.default_rng(11)
    df = _paired_frame(rng, n_items=80, n_wrong=2, n_correct=2, shift_wrong=0.10)
    t = comparison_effect(df, against=("alternatives",), n_boot=1000, n_perm=1999)
    r = cell(t, measure="mean_p_yes_wrong")
    assert r["estimate"] == pytest.approx(0.10, abs=0.02)
    assert r["ci_low"] < 0.10 < r["ci_high"]
    assert r["p_holm"] < 0.01 and r["test"] == "cluster_sign_flip"
    # false acceptance grows too (issue 10: item-aware test instead of McNemar)
    fa = cell(t, measure="false_acceptance")
    assert fa["estimate"] > 0 and fa["test"] == "cluster_sign_flip"
    # Holm over every test of the table
    assert t["p_holm"].to_numpy() == pytest.approx(multipletests(t["p_value"], method="holm")[1])
    assert list(t["measure"]) == ["mean_p_yes_wrong", "false_acceptance", "verdict_accuracy", "brier", "auroc"]


def test_comparison_effect_paired_differences_by_hand():
    base = six_rows("isolated")
    alt = six_rows("alternatives")
    alt["p_yes"] = [0.9, 0.7, 0.8, 0.6, 0.4, 0.1]  # wrong: 0.6->0.7, 0.3->0.6, 0.2->0.1
    df = pd.concat([base, alt, six_rows("own_samples").iloc[:2]], ignore_index=True)
    t = comparison_effect(df, against=("alternatives", "own_samples"), n_boot=200, n_perm=200)
    r = cell(t, against="alternatives", measure="mean_p_yes_wrong")
    # (0.1 + 0.3 - 0.1) / 3 = 0.1
    assert r["estimate"] == pytest.approx(0.1) and r["n"] == 3
    fa = cell(t, against="alternatives", measure="false_acceptance")
    # accepted wrong: isolated {0.6} 1/3 -> alternatives {0.7, 0.6} 2/3
    assert fa["estimate"] == pytest.approx(1 / 3)
    au = cell(t, against="alternatives", measure="auroc")
    # alternatives: correct {0.9, 0.8, 0.4} vs wrong {0.7, 0.6, 0.1}: 0.4 beats only 0.1 -> 7/9
    assert au["against_value"] == pytest.approx(7 / 9) and au["estimate"] == pytest.approx(7 / 9 - 8 / 9)
    # own_samples matched only c1 (correct) and c2 (wrong), same P(Yes): zero differences
    os_ = cell(t, against="own_samples", measure="mean_p_yes_wrong")
    assert os_["n"] == 1 and os_["estimate"] == 0.0 and os_["p_value"] == 1.0


def test_clustered_mcnemar_is_the_exact_item_sign_flip_mid_p_by_enumeration():
    # 8 items: 2^8 = 256 sign vectors <= n_perm, so scipy enumerates them all; recompute by hand.
    rng = np.random.default_rng(5)
    df = _paired_frame(rng, n_items=8, n_wrong=3, n_correct=1, shift_wrong=0.08, diff_item_sd=0.1)
    t = comparison_effect(df, against=("alternatives",), measures=("false_acceptance",), n_boot=0, n_perm=999)
    w = df[~df["correct"]].pivot(index="candidate_id", columns="mode", values="p_yes")
    d = (w["alternatives"] > 0.5).astype(float) - (w["isolated"] > 0.5).astype(float)
    sums = d.groupby(w.index.str.split("#").str[0]).sum().to_numpy()
    signs = np.array(list(itertools.product([-1, 1], repeat=sums.size)))
    flipped = np.abs(signs @ sums)
    obs = abs(sums.sum())
    # mid-p: ties count half (issue 10: the ordinary p-value is conservative for 0/1 measures)
    p_exact = np.mean(flipped > obs + 1e-9) + 0.5 * np.mean(np.abs(flipped - obs) <= 1e-9)
    assert t.iloc[0]["p_value"] == pytest.approx(p_exact)
    assert t.iloc[0]["estimate"] == pytest.approx(d.mean())


def test_contrasts_and_by_source():
    rng = np.random.default_rng(3)
    df = _paired_frame(rng, n_items=30, n_wrong=2, n_correct=2, shift_wrong=0.1)
    own = df[df["mode"] == "alternatives"].assign(mode="own_samples", p_yes=lambda d: d["p_yes"] - 0.1)
    df = pd.concat([df, own], ignore_index=True)
    df["source"] = np.where(df["candidate_id"].str.endswith(("#0", "#2")), "own_greedy", "reference")
    t = comparison_effect(df, contrasts=[("own_samples", "alternatives")], by=("source",),
                          measures=("mean_p_yes_wrong",), n_boot=200, n_perm=199)
    assert list(t.columns[:4]) == ["judge", "source", "baseline", "against"]
    assert set(t["source"]) == {"own_greedy", "reference"}
    own_rows = cell(t, source="own_greedy")
    assert own_rows["baseline"] == "own_samples" and own_rows["estimate"] == pytest.approx(0.1)


def test_permutation_test_holds_its_level_under_the_null():
    # 200 small null datasets (differences correlated within items): the item-level sign-flip
    # test must reject about 5% of them.
    rng = np.random.default_rng(2024)
    rejections = 0
    n_sim = 200
    for s in range(n_sim):
        df = _paired_frame(rng, n_items=15, n_wrong=3, n_correct=0, shift_wrong=0.0, diff_item_sd=0.05)
        t = comparison_effect(df, against=("alternatives",), measures=("mean_p_yes_wrong",),
                              n_boot=0, n_perm=199, seed=s)
        rejections += t.iloc[0]["p_value"] < 0.05
    rate = rejections / n_sim
    assert 0.01 <= rate <= 0.10, rate


def test_holm_matches_statsmodels_and_keeps_nan():
    # sorted 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> monotone 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    out = holm([0.01, np.nan, 0.04])
    assert np.isnan(out[1]) and out[[0, 2]] == pytest.approx([0.02, 0.04])
    # the closed form against statsmodels on random families, with ties and p-values near 1
    rng = np.random.default_rng(0)
    for m in (7, 40):  # two families: each statsmodels call runs gc.collect()
        p = np.round(rng.uniform(0, 1, m) ** 3, 2)
        np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1], rtol=1e-12)


def test_missing_columns_are_reported():
    with pytest.raises(ValueError, match="p_yes"):
        discrimination(six_rows().drop(columns="p_yes"))
    with pytest.raises(ValueError, match="unknown measures"):
        comparison_effect(six_rows(), measures=("nope",))
