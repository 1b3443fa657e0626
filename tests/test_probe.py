"""The probe pipeline end to end on the real bundled models, resume after kill -9, candidates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from selfbias.probe import build_candidates, probe, probe_summary, sample_agreement
from selfbias.runs import RunError, load_run
from selfbias.tasks import Item, Task, arithmetic_task

SMALL = dict(n=5, samples=2, max_new_tokens=10, judge_modes=())


@pytest.fixture(scope="module")
def small_run(smollm2, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "small"
    return probe("smollm2-135m", "arithmetic", out=out, loaded={"smollm2-135m": smollm2}, progress=False, **SMALL)


def test_tables_are_complete_and_consistent(small_run):
    items, gens, cands, scores = small_run.items, small_run.generations, small_run.candidates, small_run.scores
    assert len(items) == 5
    assert len(gens) == 5 * (1 + 2)
    assert set(gens["kind"]) == {"greedy", "sample"}
    # every candidate is scored once by the one model; ranks are 1..k within an item
    assert len(scores) == len(cands)
    assert set(scores["candidate_id"]) == set(cands["candidate_id"])
    for _, g in scores.groupby("item_id"):
        assert g["rank"].min() == 1
        assert g.loc[g["sum_logprob"].idxmax(), "rank"] == 1
    # sums and means agree with the per-token arrays
    for row in scores.itertuples():
        assert row.sum_logprob == pytest.approx(sum(row.logprobs))
        assert row.n_tokens == len(row.tokens) == len(row.token_ids)
    # a reference candidate per item, marked correct; sources and authors aligned
    for _, g in cands.groupby("item_id"):
        refs = g[[("reference" in s) for s in g["sources"]]]
        assert len(refs) == 1 and refs["correct"].all()
    assert all(len(s) == len(a) for s, a in zip(cands["sources"], cands["authors"]))
    assert small_run.manifest["request"]["settings"]["samples"] == 2
    assert "versions" in small_run.manifest


def test_scores_match_the_scorer_called_directly(small_run, smollm2):
    from selfbias.prompts import CHAT_TEMPLATE, render
    from selfbias.scoring import score

    item = small_run.items.iloc[0]
    cands = small_run.candidates[small_run.candidates["item_id"] == item["item_id"]]
    direct = score(smollm2, render(CHAT_TEMPLATE, smollm2, item["question"]), [" " + t for t in cands["text"]])
    stored = small_run.scores.set_index("candidate_id").loc[cands["candidate_id"]]
    assert [s.sum_logprob for s in direct] == pytest.approx(stored["sum_logprob"].tolist(), abs=1e-4)


def test_generation_logprobs_are_kept_and_match_scores(small_run, smollm2):
    from selfbias.scoring import _ids, score_token_ids

    gen = small_run.generations.iloc[0]
    assert len(gen["logprobs"]) == len(gen["token_ids"]) > 0
    from selfbias.prompts import CHAT_TEMPLATE, render

    question = small_run.items.set_index("item_id").loc[gen["item_id"], "question"]
    context = _ids(smollm2, render(CHAT_TEMPLATE, smollm2, question))
    rescored = score_token_ids(smollm2, [(context, [gen["token_ids"]])])[0][0]
    assert list(rescored.logprobs) == pytest.approx(gen["logprobs"], abs=1e-4)


def test_summary_and_agreement(small_run):
    summary = probe_summary(small_run)
    assert summary.loc[0, "items"] == 5
    greedy = small_run.generations.query("kind == 'greedy'")
    assert summary.loc[0, "accuracy"] == pytest.approx(greedy["correct"].mean())
    assert small_run.agreement["agreement"].between(0, 1).all()


def test_same_request_resumes_and_other_request_refuses(small_run, smollm2):
    again = probe("smollm2-135m", "arithmetic", out=small_run.path, loaded={"smollm2-135m": smollm2},
                  progress=False, **SMALL)
    pd.testing.assert_frame_equal(again.scores, small_run.scores)
    with pytest.raises(RunError, match="samples"):
        probe("smollm2-135m", "arithmetic", out=small_run.path, loaded={"smollm2-135m": smollm2},
              progress=False, **{**SMALL, "samples": 3})


def test_two_models_answer_and_score_everything(smollm2, gemma, tmp_path):
    run = probe(["smollm2-135m", "gemma3-270m"], "capitals", n=3, samples=1, max_new_tokens=8, judge_modes=(),
                out=tmp_path / "two", loaded={"smollm2-135m": smollm2, "gemma3-270m": gemma}, progress=False)
    assert set(run.generations["model"]) == {"smollm2-135m", "gemma3-270m"}
    # every model scores every candidate
    assert len(run.scores) == 2 * len(run.candidates)
    assert set(run.scores["scorer"]) == {"smollm2-135m", "gemma3-270m"}
    authors = {a for row in run.candidates["authors"] for a in row}
    assert {"smollm2-135m", "gemma3-270m", "dataset"} <= authors
    assert {m["name"] for m in run.manifest["request"]["models"]} == {"smollm2-135m", "gemma3-270m"}


CLI = [sys.executable, "-m", "selfbias.cli", "probe", "--n", "10", "--samples", "1", "--max-new-tokens", "8",
       "--judge-modes", "none"]


def _env():
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def test_cli_kill_and_resume_gives_identical_tables(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(CLI + ["--out", str(whole)], check=True, env=_env(), capture_output=True)
    proc = subprocess.Popen(CLI + ["--out", str(killed)], env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    chunk = killed / "chunks" / "generations"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if chunk.exists() and any(chunk.rglob("*.parquet")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "scores.parquet").exists()
    result = subprocess.run(CLI + ["--out", str(killed)], env=_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "probe summary" in result.stdout and str(killed) in result.stdout.replace("\n", "")
    a, b = load_run(whole), load_run(killed)
    for table in ("items", "generations", "candidates", "scores", "agreement"):
        pd.testing.assert_frame_equal(a.table(table), b.table(table), obj=table)


def test_cli_reports_bad_input_in_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "What is 1+1?", "answer": ["2"]}\n{"question": "", "answer": ["3"]}\n')
    result = subprocess.run([*CLI[:4], "--task", str(bad), "--out", str(tmp_path / "r")], env=_env(),
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "bad.jsonl" in result.stdout and "line 2" in result.stdout and "question" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


# ------------------------------------------------------------------------- candidates (no model)


def _item(**kw):
    return Item(**{"id": "q1", "question": "What is 2 + 2?", "references": ("4",), "answer_type": "number", **kw})


def _gens(rows):
    return pd.DataFrame(rows, columns=["item_id", "model", "kind", "sample_index", "answer", "correct"])


def test_build_candidates_merges_duplicates_and_keeps_all_sources():
    task = Task("t", (_item(distractors=("5", "22")),))
    gens = _gens([
        ("q1", "A", "greedy", 0, "5", False), ("q1", "A", "sample", 0, "4", True), ("q1", "A", "sample", 1, "5", False),
        ("q1", "B", "greedy", 0, "4", True), ("q1", "B", "sample", 0, "", False),
    ])
    cands = build_candidates(task, gens, ["A", "B"], n_distractors=2, n_perturbations=2)
    by_text = cands.set_index("text")
    # 5 is A's greedy and sampled answer, a distractor and a perturbation (4 + 1) of the reference
    assert list(by_text.loc["5", "sources"]) == ["own_greedy", "own_sample", "distractor", "perturbation"]
    assert list(by_text.loc["5", "authors"]) == ["A", "A", "dataset", "perturbation"]
    assert list(by_text.loc["4", "sources"]) == ["own_sample", "own_greedy", "reference"]
    assert by_text.loc["4", "source"] == "own_greedy" and bool(by_text.loc["4", "correct"])
    assert not by_text.loc["5", "correct"]
    assert "" not in by_text.index  # an empty extracted answer is not a candidate
    # perturbations of the reference 4 are 5 and 3 (the first two): 3 is new
    assert list(by_text.loc["3", "sources"]) == ["perturbation"]
    assert cands["text"].is_unique
    assert cands["candidate_id"].tolist() == [f"q1#{k}" for k in range(len(cands))]


def test_sample_agreement_counts_equal_answers_by_value():
    task = Task("t", (_item(),))
    gens = _gens([("q1", "A", "greedy", 0, "4", True), ("q1", "A", "sample", 0, "4.0", True),
                  ("q1", "A", "sample", 1, "5", False), ("q1", "A", "sample", 2, "4", True),
                  ("q1", "A", "sample", 3, "four", False)])
    row = sample_agreement(task, gens).iloc[0]
    assert row["n_samples"] == 4
    assert row["agreement"] == pytest.approx(3 / 4)  # "4.0", "4" and "four" all equal 4 by value; "5" does not
    assert row["greedy_correct"]


def test_arithmetic_default_run_dir_is_deterministic():
    from selfbias.probe import default_run_dir

    assert default_run_dir(["smollm2-135m"], "arithmetic", 30, 0) == default_run_dir(["smollm2-135m"], "arithmetic", 30, 0)
    assert arithmetic_task("mixed", n=3, seed=0).items == arithmetic_task("mixed", n=3, seed=0).items
