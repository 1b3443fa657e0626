"""Judge health: degenerate judges are flagged, informative ones are not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from statsmodels.stats.anova import anova_lm

from selfbias.stats import (
    MAX_POSITION_BIAS,
    MIN_LOGIT_SD,
    MIN_ORDERS_AGREE,
    MIN_YES_NO_MASS,
    judge_health,
    pairwise_health,
)
from selfbias.stats._health import _top1, _within_share
from selfbias.stats.simulate import simulate_run


def frame(p, correct, n_per_item, mass=0.95, judge="J", mode="isolated"):
    n = len(p)
    return pd.DataFrame(
        {"item_id": [f"q{i // n_per_item:03d}" for i in range(n)], "candidate_id": [f"c{i}" for i in range(n)],
         "judge": judge, "mode": mode, "p_yes": p, "correct": correct, "yes_no_mass": mass}
    )


def test_constant_judge_is_degenerate_with_reasons():
    # like the bundled zero-shot judges: 670 candidates, P(Yes) ~ 0.62 with sd ~0.01, unrelated to
    # correctness, and under half the next-token mass on yes/no
    rng = np.random.default_rng(0)
    n = 670
    correct = rng.random(n) < 0.4
    p = 0.62 + rng.normal(0, 0.01, n)
    h = judge_health(frame(p, correct, 5, mass=0.48), n_boot=300)
    row = h.iloc[0]
    assert bool(row["degenerate"]) is True
    # issue 10: the spread is judged on the logit scale (0.01 / (0.62 * 0.38) = 0.04 < 0.1)
    assert "P(Yes) nearly constant: sd 0.01 (0.041 on the logit scale) across 670 candidates" in row["reasons"]
    assert row["logit_sd"] == pytest.approx(0.01 / (0.62 * 0.38), rel=0.05)
    assert "only 48% of next-token mass on yes/no" in row["reasons"]
    assert "AUROC CI includes 0.5" in row["reasons"]
    assert row["logit_sd"] < MIN_LOGIT_SD and row["yes_no_mass"] < MIN_YES_NO_MASS


def test_exactly_constant_judge():
    h = judge_health(frame(np.full(40, 0.7), np.arange(40) % 2 == 0, 4), n_boot=100).iloc[0]
    assert h["degenerate"] and h["auroc"] == 0.5 and h["p_yes_sd"] == 0.0
    assert (h["auroc_ci_low"], h["auroc_ci_high"]) == (0.5, 0.5)
    # every candidate ties for the top: top-1 equals chance exactly
    assert h["top1_rate"] == pytest.approx(h["chance_rate"])
    # the within-item ranking is all ties: exactly chance (issue 27 replaced the top-1 flag)
    assert h["within_auroc"] == 0.5 and "does not rank the candidates" in h["reasons"]


def test_good_judge_is_healthy():
    rng = np.random.default_rng(1)
    n = 400
    correct = np.tile([True, False, False, True], n // 4)
    p = 1 / (1 + np.exp(-(2.5 * (correct - 0.5) * 2 + rng.normal(0, 1, n))))
    h = judge_health(frame(p, correct, 4), n_boot=300).iloc[0]
    assert bool(h["degenerate"]) is False and h["reasons"] == ""
    assert h["auroc_ci_low"] > 0.8
    assert h["top1_minus_chance"] > 0.3 and h["top1_ci_low"] > 0


def test_question_driven_judge_is_flagged():
    # P(Yes) set by the item only: big spread, but nothing between the candidates of an item
    rng = np.random.default_rng(2)
    n_items, k = 100, 4
    correct = rng.random(n_items * k) < 0.5
    p = np.repeat(rng.uniform(0.1, 0.9, n_items), k) + rng.normal(0, 0.01, n_items * k)
    h = judge_health(frame(p, correct, k), n_boot=300).iloc[0]
    assert h["degenerate"]
    assert h["within_item_share"] < 0.05
    assert "does not rank the candidates of the same item" in h["reasons"]
    assert h["within_auroc_ci_low"] <= 0.5 <= h["within_auroc_ci_high"]


def test_within_item_auroc_by_hand_and_by_sklearn():
    # item A: correct 0.9, wrong 0.5, 0.95 -> pairs (0.9 > 0.5) yes, (0.9 > 0.95) no: 1 of 2
    # item B: correct 0.3, 0.3; wrong 0.3 -> two ties: 1/2 + 1/2 = 1 of 2
    # item C: all correct, not ranked.  Within-item AUROC = (1 + 1) / 4 = 0.5
    from selfbias.stats._health import _within_pairs

    p = np.array([0.9, 0.5, 0.95, 0.3, 0.3, 0.3, 0.8])
    y = np.array([1, 0, 0, 1, 1, 0, 1], bool)
    codes = np.array([0, 0, 0, 1, 1, 1, 2])
    conc, pairs = _within_pairs(p, y, codes)
    assert list(conc) == [1.0, 1.0] and list(pairs) == [2.0, 2.0]
    # per item it is sklearn's AUROC of the item's candidates
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(7)
    codes = np.repeat(np.arange(30), 5)
    y = rng.random(150) < 0.5
    p = rng.random(150)
    conc, pairs = _within_pairs(p, y, codes)
    ranked = [i for i in range(30) if 0 < y[codes == i].sum() < 5]
    np.testing.assert_allclose(conc / pairs, [roc_auc_score(y[codes == i], p[codes == i]) for i in ranked])


def test_a_perfect_ranking_in_a_narrow_band_is_healthy():
    # issue 27: P(Yes) 0.60-0.64, every correct answer above every wrong one, was flagged
    # "nearly constant" in 100% of runs
    rng = np.random.default_rng(8)
    correct = rng.random(200) < 0.4
    p = 0.60 + 0.02 * correct + rng.uniform(0, 0.0199, 200)
    h = judge_health(frame(p, correct, 4), n_boot=200).iloc[0]
    assert h["logit_sd"] < MIN_LOGIT_SD  # the band is narrow on every scale ...
    assert h["auroc"] == 1.0 and h["within_auroc"] == 1.0
    assert not h["degenerate"], h["reasons"]  # ... and the judge is fine


def test_below_chance_judge_is_flagged():
    rng = np.random.default_rng(3)
    n = 400
    correct = rng.random(n) < 0.5
    p = np.clip(0.5 - 0.3 * (correct - 0.5) + rng.normal(0, 0.1, n), 0, 1)
    h = judge_health(frame(p, correct, 4), n_boot=300).iloc[0]
    assert h["degenerate"] and h["auroc_ci_high"] < 0.5
    assert "below chance" in h["reasons"]


def test_within_item_share_by_hand_and_by_anova():
    # items A: 0.2, 0.4; B: 0.6, 0.8. Grand mean 0.5, SS_total = .09+.01+.01+.09 = 0.2;
    # SS_within = 4 * 0.01 = 0.04 -> share 0.2
    p = np.array([0.2, 0.4, 0.6, 0.8])
    codes = np.array([0, 0, 1, 1])
    assert _within_share(p, codes) == pytest.approx(0.2)
    # the same from a one-way ANOVA (statsmodels): residual SS / total SS
    rng = np.random.default_rng(4)
    d = pd.DataFrame({"item": np.repeat(np.arange(12), 5), "p": rng.random(60)})
    a = anova_lm(smf.ols("p ~ C(item)", data=d).fit())
    want = a.loc["Residual", "sum_sq"] / a["sum_sq"].sum()
    assert _within_share(d["p"].to_numpy(), d["item"].to_numpy()) == pytest.approx(want)


def test_top1_by_hand():
    # item A: 0.9 correct, 0.5 wrong -> top correct (1), chance 1/2
    # item B: 0.7 wrong, 0.7 correct, 0.1 wrong -> tie at the top, half correct (1/2), chance 1/3
    # item C: a single candidate -> not ranked
    p = np.array([0.9, 0.5, 0.7, 0.7, 0.1, 0.3])
    y = np.array([1, 0, 0, 1, 0, 1], float)
    codes = np.array([0, 0, 1, 1, 1, 2])
    top, chance = _top1(p, y, codes)
    assert top == pytest.approx([1.0, 0.5]) and chance == pytest.approx([0.5, 1 / 3])


def test_health_by_judge_and_mode_and_missing_mass_column():
    rng = np.random.default_rng(5)
    n = 200
    correct = rng.random(n) < 0.5
    good = frame(np.clip(0.3 + 0.4 * correct + rng.normal(0, 0.1, n), 0, 1), correct, 4, judge="good")
    flat = frame(np.full(n, 0.5) + rng.normal(0, 0.005, n), correct, 4, judge="flat")
    df = pd.concat([good, flat], ignore_index=True).drop(columns="yes_no_mass")
    h = judge_health(df, n_boot=200).set_index("judge")
    assert list(h.index) == ["flat", "good"]
    assert h.loc["flat", "degenerate"] and not h.loc["good", "degenerate"]
    assert np.isnan(h.loc["good", "yes_no_mass"])
    assert h["degenerate"].dtype == bool


# ------------------------------------------------------------------ thresholds (issue 10)
# These simulations set MIN_LOGIT_SD, MIN_WITHIN_ITEM_SHARE, MIN_ORDERS_AGREE and
# MAX_POSITION_BIAS (see their comments in selfbias/stats/_health.py).


def _logit_judge(rng, correct, n_per_item, shift, scale=1.0, noise=0.7, item_sd=0.0):
    n = correct.size
    item = rng.normal(0, item_sd, n // n_per_item + 1)[np.arange(n) // n_per_item]
    eta = shift + scale * (2 * correct - 1) + item + rng.normal(0, noise, n)
    return 1 / (1 + np.exp(-eta))


def _good_judges(seed):
    """Informative judges of several shapes, each with AUROC >= 0.9."""
    rng = np.random.default_rng(seed)
    n_items, k = 80, 4
    mixed = rng.random(n_items * k) < 0.5
    # correctness mostly item-level: 90% of items all right or all wrong
    item_level = np.repeat(rng.random(n_items) < 0.5, k)
    flip = np.repeat(rng.random(n_items) < 0.1, k) & (np.arange(n_items * k) % k == 0)
    item_level = item_level ^ flip
    yield "mixed", frame(_logit_judge(rng, mixed, k, 0.0, 2.0), mixed, k)
    yield "item-level correctness", frame(_logit_judge(rng, item_level, k, 0.0, 2.0, 0.3), item_level, k)
    yield "with item effects", frame(_logit_judge(rng, mixed, k, 0.0, 3.0, 0.5, item_sd=1.0), mixed, k)
    # P(Yes) between 0.9 and 0.99, nearly perfect ranking (issue 10: sd 0.021 was flagged)
    p_high = np.clip(0.93 + 0.05 * mixed + rng.normal(0, 0.008, mixed.size), 0.9, 0.99)
    yield "P(Yes) in 0.9-0.99", frame(p_high, mixed, k)
    run = simulate_run(n_items=n_items, correct_effect=4.0, seed=seed)
    yield "simulate_run", run.analysis


@pytest.mark.parametrize("seed", range(3))
def test_thresholds_good_judges_are_never_flagged(seed):
    for name, df in _good_judges(seed):
        for _, h in judge_health(df, n_boot=200, seed=seed).iterrows():
            assert h["auroc"] >= 0.9, (name, h["auroc"])
            assert not h["degenerate"], (name, h["reasons"])
            assert h["logit_sd"] > 3 * MIN_LOGIT_SD, name


@pytest.mark.parametrize("level", [0.05, 0.3, 0.5, 0.8, 0.95])
def test_thresholds_constant_judges_are_always_flagged(level):
    rng = np.random.default_rng(int(level * 100))
    correct = rng.random(400) < 0.5
    # constant up to small noise on the logit scale (0.04: the bundled judges' 0.62 +- 0.01)
    logit = np.log(level / (1 - level)) + rng.normal(0, 0.04, 400)
    h = judge_health(frame(1 / (1 + np.exp(-logit)), correct, 4), n_boot=200).iloc[0]
    assert h["degenerate"] and "nearly constant" in h["reasons"]
    assert h["logit_sd"] < MIN_LOGIT_SD / 2


def _pairs(p_first, p_second, n_items=40, per_item=6):
    n = n_items * per_item
    return pd.DataFrame({"item_id": [f"q{i // per_item:03d}" for i in range(n)], "judge": "J",
                         "p_a_first": p_first, "p_a_second": p_second})


def test_position_locked_pairwise_judge_is_always_flagged():
    rng = np.random.default_rng(0)
    for side in ("first", "second"):
        f = np.clip(rng.uniform(0.85, 1.0, 240), 0, 1)
        p_first, p_second = (f, 1 - f) if side == "first" else (1 - f, f)
        h = pairwise_health(_pairs(p_first, p_second), n_boot=200).iloc[0]
        assert h["degenerate"] and "position-locked" in h["reasons"] and "agree in only 0%" in h["reasons"]
        assert abs(h["p_first"] - 0.5) > MAX_POSITION_BIAS and h["orders_agree"] < MIN_ORDERS_AGREE


@pytest.mark.parametrize("position_bias", [0.0, 0.5, 1.0])
def test_informative_pairwise_judges_pass(position_bias):
    for seed in range(3):
        pw = simulate_run(n_items=60, position_bias=position_bias, seed=seed).pairwise
        h = pairwise_health(pw, n_boot=200).iloc[0]
        assert not h["degenerate"], h["reasons"]
        # the definitions by hand
        assert h["p_first"] == pytest.approx(((pw["p_a_first"] + 1 - pw["p_a_second"]) / 2).mean())
        assert h["orders_agree"] == pytest.approx(pw["orders_agree"].mean())


def test_constant_half_pairwise_judge_fails_without_a_verdict_column():
    # issue 27: p_a_first = p_a_second = 0.5 counted as "both orders agree" and passed
    for extra in ({}, {"orders_agree": True}):
        h = pairwise_health(_pairs(np.full(240, 0.5), np.full(240, 0.5)).assign(**extra), n_boot=100).iloc[0]
        assert h["degenerate"] and h["orders_agree"] == 0.0
        assert "agree in only 0%" in h["reasons"]


def test_pairwise_verdict_column_is_used_when_present():
    pw = _pairs(np.full(240, 0.9), np.full(240, 0.8))
    pw["verdict"] = np.where(np.arange(240) % 4 == 0, "inconsistent", "a")
    h = pairwise_health(pw, n_boot=0).iloc[0]
    assert h["orders_agree"] == pytest.approx(0.75)
