"""The list design of the judge's list modes (issue 23): pure rules of selfbias._list_design, the judge's
rows and manifest on a tiny random model, and stats.list_balance against statsmodels."""

from __future__ import annotations

import importlib
import math
import random
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from selfbias._list_design import (Entry, draw_cell, example_list, is_non_answer, match_pair, match_plausibility,
                                   plan_item)
from selfbias.stats import list_balance

J = importlib.import_module("selfbias.judge")


def _entries(prefix: str, n: int, correct: bool | None = False, rng: random.Random | None = None) -> list[Entry]:
    rng = rng or random.Random(0)
    return [Entry(f"{prefix}{i}", f"{prefix} answer {i}", correct, prefix, -rng.uniform(1, 12)) for i in range(n)]


# ------------------------------------------------------------------------------------ pure rules


def test_cells_are_drawn_from_ids_and_seed_at_the_stated_rate():
    draws = [draw_cell(0, f"i{i}", f"i{i}#{c}", 0.5, 3) for i in range(400) for c in range(5)]
    share = np.mean([h for h, _ in draws])
    assert abs(share - 0.5) < 3 * math.sqrt(0.25 / len(draws))  # binomial: 3 SE
    positions = np.bincount([p for h, p in draws if h], minlength=3)
    assert positions.min() > 0.28 * positions.sum()  # uniform over 3 slots (expected 1/3 each)
    assert all(p == -1 for h, p in draws if not h)
    assert draw_cell(0, "a", "a#1", 0.5, 3) == draw_cell(0, "a", "a#1", 0.5, 3)
    assert {draw_cell(0, "a", f"a#{c}", 1.0, 3)[0] for c in range(20)} == {True}
    assert {draw_cell(0, "a", f"a#{c}", 0.0, 3)[0] for c in range(20)} == {False}


def test_few_shot_example_lists_follow_the_design():
    """Examples' lists: the correct answer at the design's rate (2000 keys: within 3 binomial SE of 1/2),
    at a uniform slot, one length whatever the cell, the other slots wrong answers, seeded by key."""
    wrong = ["w1", "w2", "w3", "w4"]
    lists = [example_list("R", wrong, f"item{i}", 3, 0.5) for i in range(2000)]
    assert {len(x) for x in lists} == {3}
    has = [x for x in lists if "R" in x]
    assert abs(len(has) / len(lists) - 0.5) < 3 * math.sqrt(0.25 / len(lists))
    slots = np.bincount([x.index("R") for x in has], minlength=3)
    assert slots.min() > 0.28 * slots.sum()
    assert all(set(x) - {"R"} <= set(wrong) and len(set(x)) == 3 for x in lists)
    assert example_list("R", wrong, "a", 3, 0.5) == example_list("R", wrong, "a", 3, 0.5)
    assert {len(example_list("R", wrong[:2], f"k{i}", 3, 0.5)) for i in range(50)} == {2}  # short pools: min(k, pool)
    assert all("R" in example_list("R", wrong, f"k{i}", 3, 1.0) for i in range(20))
    assert not any("R" in example_list("R", wrong, f"k{i}", 3, 0.0) for i in range(20))


def test_plausibility_matching_is_the_best_subset_by_brute_force():
    rng = random.Random(3)
    pool = _entries("p", 8, rng=rng)
    for target in (-3.0, -6.5, -11.0):
        chosen = match_plausibility(pool, 3, target)
        best = min(abs(sum(e.loglik for e in s) / 3 - target) for s in combinations(pool, 3))
        assert abs(sum(e.loglik for e in chosen) / 3 - target) == pytest.approx(best)
    own = _entries("o", 5, rng=rng)
    a, b = match_pair(own, pool, 3)
    gap = abs(np.mean([e.loglik for e in a]) - np.mean([e.loglik for e in b]))
    brute = min(abs(np.mean([e.loglik for e in x]) - np.mean([e.loglik for e in y]))
                for x in combinations(own, 3) for y in combinations(pool, 3))
    assert gap == pytest.approx(brute)
    # without scores: the first m in the given (seeded) order
    bare = [Entry(e.id, e.text, False, "p") for e in pool]
    assert match_plausibility(bare, 2, -5.0) == bare[:2]


def _plan(judged: list[str], own_correct=True, n_own=5, n_out=6, k=3, seed=0):
    rng = random.Random(1)
    own = _entries("own", n_own, rng=rng)
    out = _entries("out", n_out, rng=rng)
    gold = Entry("gold", "the gold", True, "reference", -2.0)
    return plan_item("it", judged, own_wrong=own, own_correct=gold if own_correct else None,
                     outside_wrong=out, outside_correct=gold, k=k, p_correct=0.5, seed=seed)


def test_every_list_has_k_answers_and_never_a_wrong_judged_answer():
    judged = ["gold"] + [f"own{i}" for i in range(5)] + [f"out{i}" for i in range(6)]
    plan = _plan(judged)
    assert not plan.skipped
    for cid, cell in plan.lists.items():
        for shown in (cell.own, cell.outside):
            assert len(shown) == 3
            ids = [e.id for e in shown]
            assert cid not in ids or cid == "gold"
            assert ("gold" in ids) == cell.has_correct
            if cell.has_correct:
                assert ids.index("gold") == cell.position
        assert all(e.source == "own" or e.id == "gold" for e in cell.own)
        assert all(e.source == "out" or e.id == "gold" for e in cell.outside)


def test_skips_are_by_item_and_by_unfillable_cell():
    judged = ["gold", "own0", "out0"]
    assert _plan(judged, n_own=3).skipped  # 3 own wrong answers: one goes for each candidate, 2 < k
    assert _plan(judged, n_out=3).skipped
    assert not _plan(judged, n_own=4, n_out=4).skipped
    plan = _plan([f"x{i}" for i in range(40)], own_correct=False)  # no own correct answer
    unfilled = [cid for cid, cell in plan.lists.items() if cell is None]
    drawn = [cid for cid in plan.lists if draw_cell(0, "it", cid, 0.5, 3)[0]]
    assert unfilled == drawn and 0 < len(unfilled) < 40


@pytest.mark.parametrize("text", ["", "  ", "not provided", "Not provided.", "N/A", "none", "Unknown", "I don't know",
                                  "I do not know the answer", "I'm sorry, I cannot help with that", "Answer:",
                                  "Panama City<start_of_image>Question: What is", "<|im_end|>", "Lima</s>"])
def test_non_answers_are_recognised(text):
    assert is_non_answer(text)


@pytest.mark.parametrize("text", ["Moldavia", "205", "100,000,000", "Na", "No", "Yes", "None of the above", "Nowhere",
                                  "unknown city", "Dar es Salaam", "TUN", "A/B", "3 < 4"])
def test_real_answers_are_not_non_answers(text):
    assert not is_non_answer(text)


def test_non_answers_never_enter_the_pools_and_are_counted():
    rng = random.Random(1)
    own = _entries("own", 5, rng=rng)
    junk = [Entry("junk1", "not provided", False, "own", -1.0), Entry("junk2", "", False, "own", -1.5),
            Entry("junk3", "I don't know", False, "out", -1.2)]
    out = _entries("out", 6, rng=rng)
    gold = Entry("gold", "the gold", True, "reference", -2.0)
    judged = ["gold", "own0", "junk1"]
    plan = plan_item("it", judged, own_wrong=[*own, *junk[:2]], own_correct=gold, outside_wrong=[*out, junk[2]],
                     outside_correct=gold, k=3, p_correct=0.5, seed=0)
    assert sorted(plan.non_answers) == ["junk1", "junk2", "junk3"] and not plan.skipped
    assert set(plan.lists) == set(judged)  # a non-answer is still judged, it is only never listed
    shown = {e.id for cell in plan.lists.values() if cell for e in (*cell.own, *cell.outside)}
    assert not shown & {"junk1", "junk2", "junk3"}
    # the pools are counted without them: 3 real own wrong answers (+ 2 non-answers) cannot fill k = 3
    thin = plan_item("it", judged, own_wrong=[*own[:3], *junk[:2]], own_correct=gold, outside_wrong=out,
                     outside_correct=gold, k=3, p_correct=0.5, seed=0)
    assert thin.skipped and len(thin.non_answers) == 2


def test_lists_do_not_depend_on_the_judged_answers_correctness(tmp_path):
    """The same run with every correctness label flipped for the judged candidates' identity: the cells
    of a candidate (has_correct, position) are the same, and the pools keep their sizes."""
    from tests.test_judge import make_run

    items = [("w-0", "What is 20 + 5?", "25", ["21", "22", "23", "24", "26", "27"], "30",
              ["30", "31", "32", "33", "25", "35"])]
    run = make_run(tmp_path / "a", items=items)
    data = J._RunData.from_tables(run.items, run.candidates, run.generations, "t")
    rule = J.ListRule(3, 1, J.DEFAULT_ALT_SOURCES)
    plan = rule.plan(data, "smollm2-135m", "w-0", 0)
    assert not plan.skipped
    correct = {c.candidate_id: c.correct for c in data.candidates["w-0"]}
    for cid, cell in plan.lists.items():
        assert cell is not None  # the judge has an own correct answer (25): every cell can be filled
        assert (cell.has_correct, cell.position) == draw_cell(0, "w-0", cid, 0.5, 3)
        assert len(cell.own) == len(cell.outside) == 3
        if not correct[cid]:
            assert cid not in [e.id for e in cell.own + cell.outside]
        assert [e.correct for e in cell.own].count(True) == [e.correct for e in cell.outside].count(True) \
            == int(cell.has_correct)


# ------------------------------------------------------------------------------------ judge rows


def test_judge_records_the_design_in_rows_frame_and_manifest(tiny, tmp_path):
    from tests.test_judge import SMOL, make_run

    items = [("w-0", "What is 20 + 5?", "25", ["21", "22", "23", "24", "26", "27"], "30",
              ["30", "31", "32", "33", "25", "35"]),
             ("w-1", "What is 2 + 2?", "4", ["5", "6"], "3", ["3"])]  # too few answers: skipped
    run = make_run(tmp_path / "run", items=items)
    out = J.judge(run, modes=("own_samples", "alternatives"), models={SMOL: tiny}, progress=False)
    t = out.judgments
    assert set(t.item_id) == {"w-0"} and (t.list_length == 3).all()
    assert out.manifest["judge"]["skipped_items"][SMOL] == ["w-1"]
    design = out.manifest["judge"]["list_designs"][SMOL]
    assert design["design"] == "cells" and design["list_lengths"] == {"3": len(t) // 2}
    assert design["items_skipped"] == 1 and design["p_correct"] == 0.5
    stage = out.manifest["judge"]["stages"][f"{SMOL}=alternatives"]
    assert stage["lists"]["design"] == "cells" and "has_correct" in stage["rules"]["lists"]
    assert (t.gold_shown == t.list_has_correct).all()
    assert (t.correct_position >= 0).eq(t.list_has_correct).all()
    # the two modes: the same cell and length per candidate, different authors
    wide = t.pivot(index="candidate_id", columns="mode", values="list_has_correct")
    assert (wide["own_samples"] == wide["alternatives"]).all()
    for row in t.itertuples():
        allowed = {"own_sample"} if row.mode == "own_samples" else {"perturbation", "reference"}
        assert set(row.shown_sources) <= allowed
    frame = out.analysis_frame()
    for col in ("list_has_correct", "correct_position", "list_mean_loglik"):
        assert col in frame.columns
    assert frame.list_mean_loglik.isna().all()  # no scores table in this run: no plausibility
    # the earlier rule is still reachable, and recorded as before
    pooled = J.judge(run, modes=("alternatives",), judges=["other"], list_design="pooled", k=2,
                     models={"other": tiny}, progress=False)
    stage = pooled.manifest["judge"]["stages"]["other=alternatives"]
    assert stage["lists"] == {"k": 2, "min_k": 1, "sources": list(J.DEFAULT_ALT_SOURCES)}
    with pytest.raises(ValueError, match="list_design: unknown design 'x'"):
        J.judge(run, modes=("alternatives",), list_design="x", models={SMOL: tiny}, progress=False)
    from typer.testing import CliRunner

    from selfbias.cli import app

    manifest = (run.path / "manifest.json").read_bytes()
    bad = CliRunner().invoke(app, ["judge", str(run.path), "--list-design", "x"])
    assert bad.exit_code == 2 and "error: list_design: unknown design 'x'" in bad.output, bad.output
    bad = CliRunner().invoke(app, ["judge", str(run.path), "--p-correct", "1.5"])
    assert bad.exit_code == 2 and "p_correct must be a number in [0, 1]" in bad.output, bad.output
    assert (run.path / "manifest.json").read_bytes() == manifest  # refused input changes nothing
    with pytest.raises(ValueError, match=r"p_correct must be a number in \[0, 1\]"):
        J.judge(run, modes=("alternatives",), p_correct=2, models={SMOL: tiny}, progress=False)


def test_frame_fills_the_design_columns_of_older_chunks():
    """A judgments table whose older chunks lack the design's columns (read back missing): the frame
    takes gold_shown, -1 and NaN there and keeps the recorded values elsewhere."""
    from selfbias.frames import make_analysis_frame

    cands = pd.DataFrame({"item_id": ["q", "q"], "candidate_id": ["q#0", "q#1"], "correct": [True, False],
                          "source": ["reference", "perturbation"], "authors": [["dataset"], ["perturbation"]],
                          "sources": [["reference"], ["perturbation"]]})
    j = pd.DataFrame({"item_id": ["q", "q"], "candidate_id": ["q#1", "q#1"], "judge": ["m", "m"],
                      "mode": ["alternatives", "alternatives"], "p_yes": [0.2, 0.3], "yes_no_mass": [0.9, 0.9],
                      "alternatives": [["q#0"], ["q#0"]], "gold_shown": [True, True], "list_length": [1, 1],
                      "list_has_correct": [None, True], "correct_position": [np.nan, 0.0],
                      "list_mean_loglik": [np.nan, -3.5]})
    f = make_analysis_frame(j, cands, pd.DataFrame())
    assert f.list_has_correct.tolist() == [True, True] and f.correct_position.tolist() == [-1, 0]
    assert f.correct_position.dtype == np.int64 and np.isnan(f.list_mean_loglik.iloc[0])
    assert f.list_mean_loglik.iloc[1] == -3.5


# ------------------------------------------------------------------------------------ balance table


def _balance_frame(shift: float, n_items: int = 60, seed: int = 0) -> pd.DataFrame:
    """Synthetic list rows: 5 candidates per item, one correct; the correct one's list plausibility is
    moved by ``shift``; item effects on every feature, as a real run has."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_items):
        item_level = rng.normal(-6, 2)
        for c in range(5):
            has = bool(rng.random() < 0.5)
            for mode in ("own_samples", "alternatives"):
                rows.append({"item_id": f"i{i}", "candidate_id": f"i{i}#{c}", "judge": "j", "mode": mode,
                             "correct": c == 0, "list_length": 3, "list_has_correct": has,
                             "correct_position": int(rng.integers(3)) if has else -1,
                             "list_mean_loglik": item_level + rng.normal() + shift * (c == 0)})
    return pd.DataFrame(rows)


def test_list_balance_matches_statsmodels_and_finds_a_planted_imbalance():
    frame = _balance_frame(shift=1.5)
    table = list_balance(frame).set_index(["mode", "feature"])
    assert set(table.index.get_level_values("feature")) == {"list_length", "list_has_correct",
                                                            "correct_position", "list_mean_loglik"}
    row = table.loc[("alternatives", "list_mean_loglik")]
    assert row["p_value"] < 1e-3 and row["ci_low"] < 1.5 < row["ci_high"]
    assert table.loc[("alternatives", "list_length"), "p_value"] == 1.0
    # reference: the same regression written as a formula with item dummies
    d = frame[frame["mode"] == "alternatives"].assign(y=lambda x: x["list_mean_loglik"],
                                                      x=lambda x: x["correct"].astype(float))
    fit = smf.ols("y ~ x + C(item_id)", d).fit(cov_type="cluster", cov_kwds={"groups": pd.factorize(d["item_id"])[0]},
                                                 use_t=True)
    assert row["difference"] == pytest.approx(fit.params["x"], rel=1e-9)
    # the clustered SEs differ only by the small-sample factor sqrt((N - 1) / (N - K)): the dummy
    # regression counts its K item dummies, the demeaned one does not (fixed effects nested in the
    # clusters are not counted; Cameron & Miller 2015, section III.B)
    se = (row["ci_high"] - row["ci_low"]) / 2
    ref = (fit.conf_int().loc["x", 1] - fit.conf_int().loc["x", 0]) / 2
    n, k = len(d), len(fit.params)
    assert se * math.sqrt((n - 1) / (n - k)) == pytest.approx(ref, rel=1e-9)
    pooled = list_balance(frame, within_item=False).set_index(["mode", "feature"])
    d2 = d.assign(x=d["x"])
    fit2 = smf.ols("y ~ x", d2).fit(cov_type="cluster", cov_kwds={"groups": pd.factorize(d2["item_id"])[0]}, use_t=True)
    assert pooled.loc[("alternatives", "list_mean_loglik"), "difference"] == pytest.approx(fit2.params["x"])
    assert pooled.loc[("alternatives", "list_mean_loglik"), "p_value"] == pytest.approx(fit2.pvalues["x"])


def test_list_balance_rejects_at_its_level_under_balance():
    # 200 balanced frames: each test rejects at about 5% (binomial SE 1.5%)
    rejections = []
    for s in range(200):
        t = list_balance(_balance_frame(shift=0.0, n_items=40, seed=100 + s))
        rejections.append(t.loc[t.feature == "list_mean_loglik", "p_value"].to_numpy() < 0.05)
    rate = float(np.mean(rejections))
    assert 0.02 <= rate <= 0.10, rate


def test_list_balance_needs_list_rows():
    with pytest.raises(ValueError, match="needs graded rows of mode own_samples or alternatives"):
        list_balance(pd.DataFrame({"judge": ["j"], "mode": ["isolated"], "item_id": ["i"], "correct": [True]}))


# ------------------------------------------------------------------------------------ real runs (SmolLM2)


@pytest.fixture(scope="module", params=["arithmetic", "capitals"])
def real_design(request, smollm2, tmp_path_factory):
    """SmolLM2 probes 10 items (8 samples: the design needs 4 distinct wrong answers of its own per
    item) and judges them in both list modes with the default design."""
    import torch

    from selfbias.probe import probe

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the 2 shared CPU cores: one thread is faster than two fighting
    try:
        run = probe("smollm2-135m", request.param, n=10, samples=8, max_new_tokens=10,
                    judge_modes=("own_samples", "alternatives"), out=tmp_path_factory.mktemp("design") / "run",
                    loaded={"smollm2-135m": smollm2}, progress=False)
    finally:
        torch.set_num_threads(threads)
    return request.param, run


def test_real_runs_have_k3_matched_lists_and_pass_the_balance_test(real_design):
    from selfbias.stats import holm

    task, run = real_design
    judge_name = "smollm2-135m"
    design = run.manifest["judge"]["list_designs"][judge_name]
    lists = run.judgments[run.judgments["mode"].isin(["own_samples", "alternatives"])]
    # k >= 3 in the default design: every list has 3 answers, and half or more of the items are kept
    assert design["design"] == "cells" and design["list_lengths"] == {"3": len(lists) // 2}, design
    assert (lists.list_length == 3).all() and lists.item_id.nunique() >= 5, design
    assert 0 < lists.list_has_correct.mean() < 1
    # own and outside lists matched: the same candidates, cell and position, from different authors
    wide = lists.pivot(index="candidate_id", columns="mode", values="correct_position")
    assert wide.notna().all().all() and (wide["own_samples"] == wide["alternatives"]).all()
    # plausibility: the matched lists are closer in mean log-likelihood than unmatched lists would be
    data = J._RunData.from_tables(run.items, run.candidates, run.generations, "t", run.scores)
    bare = J._RunData(data.item_ids, data.questions, data.candidates, data.samples, {})
    rule = J.ListRule(3, 1, J.DEFAULT_ALT_SOURCES)

    def gaps(source):
        out = []
        for iid in data.item_ids:
            plan = rule.plan(source, judge_name, iid, 0)
            for cell in plan.lists.values():
                if cell is not None:
                    own = np.mean([data.loglik[(judge_name, iid, e.id)] for e in cell.own])
                    ext = np.mean([data.loglik[(judge_name, iid, e.id)] for e in cell.outside])
                    out.append(abs(own - ext))
        return np.array(out)

    matched, unmatched = gaps(data), gaps(bare)
    assert matched.mean() == pytest.approx(design["loglik_own_minus_outside"]["mean_abs"])
    assert matched.mean() < unmatched.mean(), (matched.mean(), unmatched.mean())
    # the balance table: no list feature depends on the judged answer's correctness (Holm over the table)
    table = list_balance(run.analysis_frame())
    tested = table[table["p_value"].notna()]
    print(f"\n{task}: {design}\n{table.drop(columns=['method']).round(3).to_string()}")
    assert len(tested) >= 6
    assert (holm(tested["p_value"].to_numpy()) > 0.05).all(), tested
