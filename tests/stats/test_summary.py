"""summarize(): the tables, the findings (degenerate judges first) and the renderings."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pandas as pd
import pytest

import selfbias.stats as stats
from selfbias.stats import Summary, summarize

NB = 150


def run_tables(seed: int = 0, n_items: int = 40, k: int = 4):
    """A "good" judge (P(Yes) follows correctness; showing alternatives lowers P(Yes) of wrong
    answers by 0.15) and a "flat" judge (P(Yes) ~ 0.6 whatever the answer)."""
    rng = np.random.default_rng(seed)
    item = np.repeat(np.arange(n_items), k)
    correct = rng.random(item.size) < 0.5
    self_auth = np.tile(np.arange(k) < 2, n_items)
    sum_lp = -8 + 2 * correct + 1.5 * self_auth + rng.normal(0, 1, item.size)
    frames = []
    good_base = 0.4 + 0.35 * correct + rng.normal(0, 0.06, item.size)
    for judge in ("good", "flat"):
        for mode in ("isolated", "alternatives"):
            if judge == "good":
                p = good_base
                if mode == "alternatives":
                    p = good_base - 0.15 * ~correct + rng.normal(0, 0.02, item.size)
                mass = 0.95
            else:
                p = 0.6 + rng.normal(0, 0.005, item.size)
                mass = 0.4
            frames.append(pd.DataFrame({
                "item_id": [f"q{i:03d}" for i in item],
                "candidate_id": [f"q{i:03d}#{j}" for i, j in zip(item, np.tile(np.arange(k), n_items))],
                "judge": judge, "mode": mode, "p_yes": np.clip(p, 0.001, 0.999), "yes_no_mass": mass,
                "correct": correct, "source": np.where(self_auth, "own_greedy", "other_model"),
                "self_authored": self_auth, "sum_logprob": sum_lp, "mean_logprob": sum_lp / 4, "n_tokens": 4,
            }))
    analysis = pd.concat(frames, ignore_index=True)
    # pairwise: candidate 0 (self) vs candidate 2 (other) of each item, for the good judge
    a, b = item[::k], item[::k]
    ac, bc = correct[::k], correct[2::k]
    pf = np.clip(0.5 + 0.3 * (ac.astype(float) - bc) + 0.1 + rng.normal(0, 0.1, n_items), 0.01, 0.99)
    ps = np.clip(0.5 + 0.3 * (ac.astype(float) - bc) + 0.1 + rng.normal(0, 0.1, n_items), 0.01, 0.99)
    pairwise = pd.DataFrame({
        "item_id": [f"q{i:03d}" for i in a], "judge": "good",
        "candidate_a": [f"q{i:03d}#0" for i in a], "candidate_b": [f"q{i:03d}#2" for i in b],
        "p_a_first": pf, "p_a_second": ps, "pref_a": (pf + ps) / 2, "orders_agree": (pf > 0.5) == (ps > 0.5),
        "a_correct": ac, "b_correct": bc, "a_self": True, "b_self": False,
        "a_sum_logprob": sum_lp[::k], "b_sum_logprob": sum_lp[2::k],
        "a_mean_logprob": sum_lp[::k] / 4, "b_mean_logprob": sum_lp[2::k] / 4,
    })
    agreement = pd.DataFrame({
        "item_id": [f"q{i:03d}" for i in range(n_items)], "model": "good", "greedy_answer": "x", "n_samples": 10,
        "agreement": np.clip(0.4 + 0.4 * correct[::k] + rng.normal(0, 0.15, n_items), 0, 1),
        "greedy_correct": correct[::k],
    })
    return analysis, pairwise, agreement


@pytest.fixture(scope="module")
def summary() -> Summary:
    analysis, pairwise, agreement = run_tables()
    return summarize(analysis, pairwise, agreement, n_boot=NB, n_perm=999)


def test_tables_are_present_and_tidy(summary):
    for name in ("misplaced", "comparison", "discrimination", "calibration", "health", "published"):
        t = getattr(summary, name)
        assert isinstance(t, pd.DataFrame) and len(t), name
    for t in (summary.misplaced, summary.comparison, summary.discrimination, summary.calibration, summary.published):
        assert {"estimate", "ci_low", "ci_high", "n"} <= set(t.columns)
    assert set(summary.discrimination["score"]) == {"p_yes", "sum_logprob", "mean_logprob", "agreement"}
    assert set(summary.published["source"]) == {"panickssery", "wataoka", "chen", "roytburg"}
    assert "p_holm" in summary.comparison.columns


def test_degenerate_judge_comes_first(summary):
    h = summary.health.set_index(["judge", "mode"])
    assert h.loc[("flat", "isolated"), "degenerate"] and h.loc[("flat", "alternatives"), "degenerate"]
    assert not h.loc[("good", "isolated"), "degenerate"]
    first_two = summary.findings[:2]
    assert all(f.startswith("Judge flat") and "degenerate" in f and "nearly constant" in f for f in first_two)
    assert not any("degenerate" in f for f in summary.findings[2:])


def test_findings_report_the_planted_comparison_effect(summary):
    r = summary.comparison.set_index(["judge", "against", "measure"]).loc[("good", "alternatives", "mean_p_yes_wrong")]
    assert r["ci_low"] < -0.15 < r["ci_high"] and r["p_holm"] < 0.05
    text = [f for f in summary.findings if f.startswith("Judge good: showing alternatives") and "mean P(Yes)" in f]
    assert len(text) == 1 and "significant at 5%" in text[0] and "[" in text[0]


def test_likelihood_regression_runs_or_is_noted(summary):
    assert summary.likelihood is not None
    assert set(summary.likelihood["judge"]) <= {"good", "flat"}
    assert "term" in summary.likelihood.columns


def test_regression_failure_becomes_a_note(monkeypatch):
    import selfbias.stats._regression as reg

    def boom(*args, **kwargs):
        raise ValueError("singular design")  # issue 14: only ValueError/LinAlgError become notes

    monkeypatch.setattr(reg, "likelihood_regression", boom)
    analysis, _, _ = run_tables(seed=1, n_items=12)
    s = summarize(analysis, n_boot=0, n_perm=0)
    assert s.likelihood is None and s.published is None
    assert any("singular design" in n for n in s.notes)


def test_markdown_write_html_and_rich(summary, tmp_path):
    md = summary.to_markdown()
    assert md.startswith("# selfbias summary") and "## Findings" in md
    for name in ("health", "misplaced", "comparison", "published"):
        assert f"## {name}" in md
    assert summary.findings[0] in md
    folder = summary.write(tmp_path / "out")
    assert (folder / "summary.md").read_text() == md
    back = pd.read_csv(folder / "health.csv")
    assert list(back["judge"]) == list(summary.health["judge"])
    assert back["p_yes_sd"].to_numpy() == pytest.approx(summary.health["p_yes_sd"].to_numpy())
    html = summary._repr_html_()
    assert "<table" in html and "degenerate" in html

    from rich.console import Console

    console = Console(file=io.StringIO(), record=True, width=200)
    summary.print_rich(console)
    out = console.export_text()
    assert "degenerate" in out and "health" in out


def test_summary_is_frozen(summary):
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.findings = ()


def test_public_api_exports():
    for name in ("misplaced_confidence", "discrimination", "calibration", "reliability_table",
                 "likelihood_discrimination", "agreement_discrimination", "comparison_effect", "judge_health",
                 "wataoka_bias", "winrate_by_perplexity", "chen_metrics", "panickssery_self_preference",
                 "roytburg_baseline", "kadavath_accuracy_above", "summarize", "Summary",
                 "likelihood_regression", "mixed_effects_regression", "mediation", "simulate"):
        assert name in stats.__all__ and hasattr(stats, name)


# ------------------------------------------------------------------ wording (issue 10)


def test_degenerate_judge_is_never_called_significant(summary):
    flat = [f for f in summary.findings if f.startswith("Judge flat")]
    assert flat and not any("significant at" in f for f in flat)
    assert any("no significance claimed" in f for f in flat)


def test_published_metrics_need_enough_pairs_and_a_healthy_pairwise_judge():
    analysis, pairwise, _ = run_tables(seed=2)
    few = summarize(analysis, pairwise.head(3), n_boot=0, n_perm=0)
    assert (few.published["status"].str.startswith("n too small")).all()
    assert any("n too small (n=" in f for f in few.findings)
    assert not any("[0.00, 0.00]" in f for f in few.findings)
    locked = pairwise.assign(p_a_first=0.97, p_a_second=0.03, pref_a=0.5, orders_agree=False)
    s = summarize(analysis, locked, n_boot=0, n_perm=0)
    assert bool(s.pairwise_health["degenerate"].iloc[0])
    # every published pairwise metric reads the verdicts, which the order decides here
    assert s.published["status"].str.startswith("not interpretable: position-degenerate").all()
    assert any("Panickssery" in f and "not interpretable" in f for f in s.findings)


def test_terminal_tables_fit_80_columns(summary):
    from rich.console import Console

    console = Console(file=io.StringIO(), record=True, width=80)
    summary.print_rich(console)
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    # the numbers are never folded: every interval sits on one line
    assert any(line.count("[") and line.count("]") and "," in line for line in lines)
    view = stats.compact_table(summary.likelihood)
    assert list(view.columns) == ["what", "estimate", "interval", "p", "n"]


def test_new_tables_are_in_the_summary(summary):
    assert set(summary.prr["mode"]) == {"isolated", "alternatives"}
    assert "sq_ce_debiased" in set(summary.calibration["measure"])
    assert {"z_loglik", "z_loglik_between"} <= set(summary.likelihood["term"])
    assert any("among answers to the same question" in f for f in summary.findings)


def test_every_table_marks_the_rows_of_a_judge_that_fails_health(summary, tmp_path):
    # issue 27: the findings said "no significance claimed" but the tables carried flat's Holm
    # p-values unmarked; now every table of estimates has judge_passes_health, False exactly for
    # the rows computed from the judge x mode that failed (flat fails in both modes, good passes)
    from selfbias.stats._summary import HEALTH_COLUMN

    marked = ("misplaced", "comparison", "discrimination", "calibration", "prr", "likelihood", "published")
    for name in marked:
        t = getattr(summary, name)
        if t is None:
            continue
        assert HEALTH_COLUMN in t.columns, name
        assert (t[HEALTH_COLUMN] == (t["judge"].astype(str) != "flat")).all(), name
    folder = summary.write(tmp_path / "marked")
    back = pd.read_csv(folder / "comparison.csv")
    assert not back.loc[back["judge"] == "flat", HEALTH_COLUMN].any()
    assert back.loc[back["judge"] == "good", HEALTH_COLUMN].all()
    view = stats.compact_table(summary.comparison)
    flat_rows = summary.comparison["judge"].astype(str).eq("flat").to_numpy()
    assert view.loc[flat_rows, "what"].str.endswith("[judge fails health]").all()
    assert not view.loc[~flat_rows, "what"].str.contains("fails health").any()
    assert "judge_passes_health" in summary.to_markdown()
