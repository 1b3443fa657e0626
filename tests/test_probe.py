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
    stored = small_run.scores.set_index("candidate_id").loc[cands["candidate_id"]]
    direct = score(smollm2, render(CHAT_TEMPLATE, smollm2, item["question"]), [" " + t for t in stored["scored_text"]])
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


@pytest.fixture(scope="module")
def spelled_run(smollm2, tmp_path_factory):
    """SmolLM2 on 8 capitals whose answers have several accepted spellings (aliases, diacritics)."""
    from selfbias.tasks import capitals_task

    wanted = ["moldova", "ukraine", "china", "iran", "mongolia", "switzerland", "yemen", "albania"]
    items = {it.id: it for it in capitals_task().items}
    task = Task("capitals", tuple(items[f"capitals-{c}"] for c in wanted), source="builtin:capitals:spelled")
    out = tmp_path_factory.mktemp("runs") / "spelled"
    return probe("smollm2-135m", task, out=out, loaded={"smollm2-135m": smollm2}, progress=False,
                 samples=2, max_new_tokens=8, judge_modes=()), task


def test_each_candidate_is_scored_in_its_likeliest_spelling(spelled_run, smollm2):
    """The stored score is the argmax over the candidate's spellings, each scored separately."""
    from selfbias.prompts import CHAT_TEMPLATE, render
    from selfbias.scoring import score

    run, task = spelled_run
    items = {it.id: it for it in task.items}
    scores = run.scores.set_index("candidate_id")
    several = 0
    for cand in run.candidates.itertuples():
        spellings = [cand.text, *[t for t in cand.spellings if t != cand.text]]
        separate = [score(smollm2, render(CHAT_TEMPLATE, smollm2, items[cand.item_id].question), [" " + t])[0].sum_logprob
                    for t in spellings]
        row = scores.loc[cand.candidate_id]
        best = max(range(len(spellings)), key=lambda i: separate[i])
        assert row["scored_text"] == spellings[best] and row["n_spellings"] == len(spellings)
        assert row["sum_logprob"] == pytest.approx(separate[best], abs=1e-4)
        several += len(spellings) > 1
        if "reference" in cand.sources:  # the reference is tried in every accepted spelling
            assert set(items[cand.item_id].references) <= set(spellings)
            assert all(task.check(t, items[cand.item_id]) for t in spellings)
            if cand.item_id == "capitals-moldova":  # "Chisinau" scores far above "Chi\u0219in\u0103u"
                assert "Chisinau" in spellings and row["scored_text"] == "Chisinau"
    assert several >= 6  # every item but two has an alias or a diacritic spelling


def test_candidates_are_one_per_equivalence_class_on_a_real_run(spelled_run):
    run, task = spelled_run
    items = {it.id: it for it in task.items}
    for item_id, g in run.candidates.groupby("item_id"):
        texts = g["text"].tolist()
        assert not any(task.equivalent(a, b, items[item_id]) for i, a in enumerate(texts) for b in texts[i + 1:])
        assert g["correct"].dtype == "boolean" and g["correct"].notna().all()  # capitals: every answer graded
    gens = run.generations
    assert gens["correct"].dtype == "boolean"


def test_truthfulqa_mc_run_has_labelled_candidates_and_ungraded_answers(smollm2, shared_data, tmp_path):
    path = shared_data / "truthfulqa" / "mc_task.json"
    run = probe("smollm2-135m", str(path), n=4, samples=2, max_new_tokens=16, judge_modes=(), out=tmp_path / "tqa",
                loaded={"smollm2-135m": smollm2}, progress=False)
    from selfbias.tasks import load_task

    task = load_task(path, n=4)
    cands = run.candidates
    for item in task.items:
        g = cands[cands["item_id"] == item.id]
        for label, texts in ((True, item.references), (False, item.distractors)):
            for text in texts:  # every labelled target is a candidate with its label
                row = g[[text in sp for sp in g["spellings"]]]
                assert len(row) == 1 and _is(row.iloc[0]["correct"], label), text
    own = cands[[any(s.startswith("own_") for s in src) for src in cands["sources"]]]
    graded = run.generations["correct"]
    assert graded.dtype == "boolean" and own["correct"].dtype == "boolean"
    # free-form answers that match no target are ungraded (NA), never counted wrong by default
    for gen in run.generations.itertuples():
        item = next(it for it in task.items if it.id == gen.item_id)
        assert (pd.isna(gen.correct) and task.grade(gen.answer, item) is None) or gen.correct == task.grade(gen.answer, item)
    summary = probe_summary(run)
    assert summary.loc[0, "items"] == 4
    assert run.agreement["greedy_correct"].dtype == "boolean"


def test_prompt_format_is_chosen_per_model_and_recorded(smollm2, gemma, tmp_path):
    assert smollm2.prompt_format == "chat" and gemma.prompt_format == "plain"  # instruct vs base
    run = probe(["smollm2-135m", "gemma3-270m"], "arithmetic", n=2, samples=1, max_new_tokens=6, judge_modes=(),
                out=tmp_path / "plain", loaded={"smollm2-135m": smollm2, "gemma3-270m": gemma}, progress=False,
                prompt_format="plain")
    loaded = run.manifest["models_loaded"]
    assert loaded["smollm2-135m"]["prompt_format"] == "plain" and loaded["gemma3-270m"]["prompt_format"] == "plain"
    assert {t["format"] for t in run.manifest["request"]["templates"].values()} == {"plain"}
    assert [m["prompt_format"] for m in run.manifest["request"]["models"]] == ["plain", "plain"]
    with pytest.raises(Exception, match="needs a chat template"):
        probe("gemma3-270m", "arithmetic", n=2, samples=1, judge_modes=(), out=tmp_path / "chat",
              loaded={"gemma3-270m": gemma}, progress=False, prompt_format="chat")


CLI = [sys.executable, "-m", "selfbias.cli", "probe", "--n", "10", "--samples", "1", "--max-new-tokens", "8",
       "--judge-modes", "none"]


def _env():
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


@pytest.mark.model  # the CLI runs the default model
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


def test_cli_reports_bad_input_in_one_line(tmp_path, tiny_folder):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "What is 1+1?", "answer": ["2"]}\n{"question": "", "answer": ["3"]}\n')
    result = subprocess.run([*CLI[:4], "-m", str(tiny_folder), "--task", str(bad), "--out", str(tmp_path / "r")], env=_env(),
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "bad.jsonl" in result.stdout and "line 2" in result.stdout and "question" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.model  # the CLI runs the default model
def test_cli_prompt_format_and_chat_template_kwargs(tmp_path):
    out = tmp_path / "plain"
    result = subprocess.run([*CLI[:4], "--n", "2", "--samples", "1", "--max-new-tokens", "6", "--judge-modes", "none",
                             "--prompt-format", "plain", "--out", str(out)], env=_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = load_run(out).manifest
    assert manifest["models_loaded"]["smollm2-135m"]["prompt_format"] == "plain"
    assert manifest["request"]["templates"]["smollm2-135m"]["format"] == "plain"
    bad = subprocess.run([*CLI[:4], "--chat-template-kwargs", "oops", "--out", str(tmp_path / "bad")], env=_env(),
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "expected key=value, got 'oops'" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr


# ------------------------------------------------------------------------- candidates (no model)


def _is(value, expected: bool) -> bool:
    """A nullable-boolean cell equals True/False (and is not NA)."""
    return not pd.isna(value) and bool(value) is expected


def _item(**kw):
    return Item(**{"id": "q1", "question": "What is 2 + 2?", "references": ("4",), "answer_type": "number", **kw})


def _gens(rows):
    return pd.DataFrame(rows, columns=["item_id", "model", "kind", "sample_index", "answer", "correct"])


def test_build_candidates_merges_duplicates_and_keeps_all_sources():
    task = Task("t", (_item(distractors=("5", "22")),))
    gens = _gens([
        ("q1", "A", "greedy", 0, "5", False), ("q1", "A", "sample", 0, "4", True), ("q1", "A", "sample", 1, "5.0", False),
        ("q1", "B", "greedy", 0, "4.0", True), ("q1", "B", "sample", 0, "", False),
    ])
    cands = build_candidates(task, gens, ["A", "B"], n_distractors=2, n_perturbations=2)
    by_text = cands.set_index("text")
    # 5 is A's greedy answer, its sample "5.0" (equal by the number checker) and a distractor
    assert list(by_text.loc["5", "sources"]) == ["own_greedy", "own_sample", "distractor"]
    assert list(by_text.loc["5", "authors"]) == ["A", "A", "dataset"]
    assert list(by_text.loc["5", "spellings"]) == ["5", "5.0"]
    # "4" (A's sample) and "4.0" (B's greedy answer) merge with the reference
    assert list(by_text.loc["4", "sources"]) == ["own_sample", "own_greedy", "reference"]
    assert list(by_text.loc["4", "authors"]) == ["A", "B", "dataset"]
    assert list(by_text.loc["4", "spellings"]) == ["4", "4.0"]
    assert by_text.loc["4", "source"] == "own_greedy" and _is(by_text.loc["4", "correct"], True)
    assert _is(by_text.loc["5", "correct"], False)
    assert "" not in by_text.index  # an empty extracted answer is not a candidate
    # two perturbations, each its own wrong candidate, none equal to the gold or to a wrong answer
    perturbed = cands[cands["source"] == "perturbation"]
    assert len(perturbed) == 2 and not perturbed["correct"].any()
    assert not {float(t) for t in perturbed["text"]} & {4.0, 5.0, 22.0}
    assert cands["correct"].dtype == "boolean"
    assert cands["candidate_id"].tolist() == [f"q1#{k}" for k in range(len(cands))]
    # one candidate per equivalence class
    texts = cands["text"].tolist()
    assert not any(task.equivalent(a, b, task.items[0]) for i, a in enumerate(texts) for b in texts[i + 1:])


def test_build_candidates_merges_spellings_and_aliases_into_the_reference():
    from selfbias.tasks import capitals_task

    items = {it.id: it for it in capitals_task().items}
    moldova, ukraine = items["capitals-moldova"], items["capitals-ukraine"]
    assert moldova.references == ("Chi\u0219in\u0103u",) and ukraine.references == ("Kyiv", "Kiev")
    task = Task("capitals", (moldova, ukraine))
    gens = _gens([("capitals-moldova", "A", "greedy", 0, "Chisinau", True),
                  ("capitals-ukraine", "A", "greedy", 0, "Kiev", True),
                  ("capitals-ukraine", "A", "sample", 0, "Moscow", False)])
    cands = build_candidates(task, gens, ["A"], n_perturbations=0)
    alone = build_candidates(Task("capitals", (moldova,)), gens.iloc[:0], ["A"], n_perturbations=0)
    assert list(alone.iloc[0]["spellings"]) == ["Chi\u0219in\u0103u", "Chisinau"]  # the diacritic-free form too
    md = cands[cands["item_id"] == "capitals-moldova"]
    assert len(md) == 1 and md.iloc[0]["text"] == "Chisinau"
    assert list(md.iloc[0]["sources"]) == ["own_greedy", "reference"]
    assert list(md.iloc[0]["spellings"]) == ["Chisinau", "Chi\u0219in\u0103u"]
    ua = cands[cands["item_id"] == "capitals-ukraine"].set_index("text")
    assert list(ua.index) == ["Kiev", "Moscow"]  # the alias answer joined the reference
    assert list(ua.loc["Kiev", "sources"]) == ["own_greedy", "reference"]
    assert set(ua.loc["Kiev", "spellings"]) == {"Kiev", "Kyiv"} and _is(ua.loc["Kiev", "correct"], True)
    assert _is(ua.loc["Moscow", "correct"], False)


def test_build_candidates_open_ended_items_are_labelled_or_ungraded():
    item = Item("t1", "What happens if you eat watermelon seeds?",
                ("Nothing happens", "The seeds pass through your digestive system"),
                distractors=("You grow watermelons in your stomach", "You die"), meta={"open_ended": True})
    other = Item("t2", "What is the capital of Mars?", ("Mars has no capital",), meta={"open_ended": True})
    task = Task("tqa", (item, other))
    gens = _gens([("t1", "A", "greedy", 0, "I have no comment", None), ("t1", "A", "sample", 0, "You die", False),
                  ("t1", "A", "sample", 1, "Nothing happens.", True)])
    cands = build_candidates(task, gens, ["A"], n_distractors=0, n_perturbations=1)
    t1 = cands[cands["item_id"] == "t1"].set_index("text")
    # every labelled answer is a candidate (n_distractors does not cut the labelled list)
    spelled = {t for row in t1["spellings"] for t in row}
    assert {*item.references, *item.distractors} <= spelled
    assert _is(t1.loc["Nothing happens.", "correct"], True)  # merged with the reference
    assert _is(t1.loc["You die", "correct"], False) and list(t1.loc["You die", "sources"]) == ["own_sample", "distractor"]
    assert pd.isna(t1.loc["I have no comment", "correct"])  # ungraded, not wrong
    assert _is(t1.loc["Mars has no capital", "correct"], False)  # a perturbation: another item's answer
    assert cands["correct"].dtype == "boolean"


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


def test_gold_position_among_an_items_numeric_candidates_is_uninformative():
    """Through build_candidates (merging included) on 900 arithmetic items with wrong own answers
    that lean below the gold: the gold's rank among the item's numeric candidates is b + P, where b
    counts the model's and the dataset's wrong answers below the gold (the model's information,
    kept) and P, the perturbations below it, is uniform on 0..k (chi-square, alpha = 0.01). The
    perturbations also sit around the wrong answers."""
    import numpy as np
    from scipy.stats import chisquare

    task = Task("a", tuple(it for level, n in (("2d+2d", 400), ("2dx1d", 400), ("3d+3d", 100))
                           for it in arithmetic_task(level, n=n, seed=7).items))
    rng = np.random.default_rng(2)
    rows = []
    for it in task.items:
        gold = int(it.references[0])
        rows += [(it.id, "A", "greedy", 0, str(gold - int(rng.integers(1, 15))), False),
                 (it.id, "A", "sample", 0, str(gold + int(rng.integers(0, 3))), None)]
    k = 2
    cands = build_candidates(task, _gens(rows), ["A"], n_perturbations=k, seed=0)
    perturbations_below, near_wrong = [], 0
    for it in task.items:
        g = cands[cands["item_id"] == it.id]
        gold = float(it.references[0])
        values = g["text"].astype(float)
        is_pert = g["sources"].map(lambda s: list(s) == ["perturbation"])
        rank = int((values < gold).sum())
        fixed_below = int(((values < gold) & ~is_pert).sum())
        perturbations_below.append(rank - fixed_below)
        assert int(is_pert.sum()) == k
        wrong = values[~is_pert & (values != gold)]
        near_wrong += sum(any(abs(v - w) <= max(3, gold / 10) for w in wrong) for v in values[is_pert])
    counts = np.bincount(perturbations_below, minlength=k + 1)
    assert chisquare(counts).pvalue > 0.01, counts
    assert near_wrong > 100  # many perturbations are neighbours of a wrong answer, not only of the gold


# ---------------------------------------------------------------------- multiple choice (no model)


def _mc_item(**kw):
    return Item(**{"id": "m1", "question": "Which is a planet?", "references": ("Mars", "C"),
                   "distractors": ("Moon", "Sun", "Comet"), "choices": ("Moon", "Sun", "Mars", "Comet"),
                   "answer_type": "choice", **kw})


def test_build_candidates_of_a_choice_item_are_its_options_in_their_own_words():
    task = Task("t", (_mc_item(),))
    gens = _gens([("m1", "A", "greedy", 0, "C", True), ("m1", "A", "sample", 0, "(b)", False),
                  ("m1", "A", "sample", 1, "I do not know", False)])
    cands = build_candidates(task, gens, ["A"], n_distractors=1, n_perturbations=2)
    by_text = cands.set_index("text")
    # every option is a candidate (n_distractors does not limit them), no perturbation is added
    assert set(by_text.index) == {"Moon", "Sun", "Mars", "Comet", "I do not know"}
    assert "perturbation" not in {s for src in cands["sources"] for s in src}
    # the letter answers joined their options; an option is scored in its words only (no letter spelling)
    assert list(by_text.loc["Mars", "sources"]) == ["own_greedy", "reference"]
    assert list(by_text.loc["Sun", "sources"]) == ["own_sample", "distractor"]
    assert all(list(sp) == [t] for t, sp in zip(cands["text"], cands["spellings"]))
    assert _is(by_text.loc["Mars", "correct"], True) and _is(by_text.loc["Sun", "correct"], False)
    assert _is(by_text.loc["I do not know", "correct"], False)  # closed item: no option picked is wrong


def test_several_true_options_are_each_a_reference():
    item = _mc_item(references=("Mars", "Venus", "C", "D"), distractors=("Moon", "Sun"),
                    choices=("Moon", "Sun", "Mars", "Venus"))
    task = Task("t", (item,))
    cands = build_candidates(task, _gens([]), ["A"])
    assert [bool(c) for c in cands["correct"]] == [False, False, True, True]
    assert task.check("D", item) and task.check("Mars", item) and not task.check("B", item)


# ---------------------------------------------------------------------- few-shot examples (no model)


def test_hold_out_examples_uses_spares_and_never_the_judged_items():
    from selfbias.probe import hold_out_examples

    task = arithmetic_task(n=14)
    judged, pool, taken = hold_out_examples(task, 10, 4)
    assert judged.items == arithmetic_task(n=10).items and taken == []  # the first n are the run's items
    assert [it.id for it in pool] == [it.id for it in task.items[10:]]
    # no spares: few_shot items held out of the task by seed, and not judged
    judged, pool, taken = hold_out_examples(arithmetic_task(n=10), 10, 4, seed=3)
    assert len(judged.items) == 6 and len(pool) == len(taken) == 4
    assert not {it.id for it in pool} & {it.id for it in judged.items}
    assert hold_out_examples(arithmetic_task(n=10), 10, 4, seed=3)[2] == taken  # seeded
    assert hold_out_examples(arithmetic_task(n=10), 10, 0)[1] == []
    from selfbias.errors import InputError

    with pytest.raises(InputError, match="too few to hold 4 out"):
        hold_out_examples(arithmetic_task(n=4), None, 4)


@pytest.mark.parametrize("task, k", [(arithmetic_task(n=16), 4), (arithmetic_task(n=16), 5),
                                     (Task("mc", tuple(_mc_item(id=f"m{i}") for i in range(6))), 4)])
def test_few_shot_examples_are_balanced_graded_and_seeded(task, k):
    from selfbias.probe import few_shot_examples

    shots = few_shot_examples(task.items, k, seed=1)
    assert len(shots) == k and sum(ex["correct"] for ex in shots) == (k + 1) // 2
    by_id = {it.id: it for it in task.items}
    for ex in shots:
        item = by_id[ex["item_id"]]
        # the label is the task's own grade of the shown answer; the rival and the list are wrong answers
        assert task.check(ex["answer"], item) is ex["correct"]
        assert task.check(ex["other"], item) is not ex["correct"]
        # the list follows the judged lists' design: at most the reference is correct, at a seeded slot
        listed_right = [a for a in ex["alternatives"] if task.check(a, item)]
        assert ex["alternatives"] and len(listed_right) <= 1
        assert ex["correct"] or ex["answer"] not in ex["alternatives"]  # a wrong shown answer is never listed
        if item.choices:
            assert ex["question"].endswith("D. Comet") and ex["answer"] in item.choices
    assert few_shot_examples(task.items, k, seed=1) == shots
    assert few_shot_examples(task.items, k, seed=2) != shots


# ------------------------------------------------------- multiple choice and few-shot on a real run


def _arc_file(tmp_path, n=4):
    """A small ARC-style nested JSONL (the ARC layout: choices as [{label, text}], answerKey)."""
    import json

    rows = [("Which of these is a planet?", ["Mars", "the Moon", "the Sun", "a comet"], "A"),
            ("Which animal can fly?", ["a dog", "a fish", "a bird", "a cow"], "C"),
            ("What do plants need to make food?", ["darkness", "sunlight", "sand", "plastic"], "B"),
            ("Which is a liquid at room temperature?", ["iron", "stone", "wood", "water"], "D"),
            ("Which is the hottest?", ["ice", "snow", "fire", "rain"], "C"),
            ("What do bees make?", ["milk", "honey", "silk", "wool"], "B")][:n]
    path = tmp_path / "arc_style.jsonl"
    path.write_text("".join(json.dumps({"id": f"arc{i}", "question": q, "answerKey": key, "choices": [
        {"label": lab, "text": t} for lab, t in zip("ABCD", texts)]}) + "\n" for i, (q, texts, key) in enumerate(rows)))
    return path


@pytest.fixture(scope="module")
def mc_run(smollm2, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mc")
    path = _arc_file(folder, n=6)
    return probe("smollm2-135m", str(path), n=4, samples=2, max_new_tokens=8, judge_modes=("isolated",),
                 few_shot=2, out=folder / "run", loaded={"smollm2-135m": smollm2}, progress=False,
                 mapping="question=question,choices=choices.text,labels=choices.label,answer=answerKey,id=id")


def test_nested_arc_style_file_runs_with_options_shown_and_every_own_answer_graded(mc_run):
    items, gens = mc_run.items, mc_run.generations
    assert list(items["item_id"]) == ["arc0", "arc1", "arc2", "arc3"]  # arc4, arc5 are few-shot spares
    assert items.loc[0, "question"] == "Which of these is a planet?\nA. Mars\nB. the Moon\nC. the Sun\nD. a comet"
    assert gens["correct"].notna().all()  # closed items: every own answer graded
    for row in gens[gens["kind"].isin(["greedy", "sample"])].itertuples():
        choices = list(items.loc[items["item_id"] == row.item_id, "choices"].iloc[0])
        assert row.answer in choices or not row.correct  # an answer naming an option is that option's text
    assert set(mc_run.manifest["own_answer_rules"]) == {"greedy", "sample", "likeliest", "likeliest_norm"}
    summary = probe_summary(mc_run)
    assert {"accuracy_likeliest", "accuracy_likeliest_norm"} <= set(summary.columns)


def test_likeliest_option_is_the_argmax_of_the_scores_table(mc_run):
    """The likeliest-option rows, scored in the generation stage, agree with the option candidates'
    scores of the scoring stage (a separate pass over the same prompt): argmax of the sum log-prob
    (lm-eval acc), and of the sum over the characters of " " + option (acc_norm)."""
    gens, cands, scores = mc_run.generations, mc_run.candidates, mc_run.scores
    table = scores.merge(cands, on=["item_id", "candidate_id"])
    for item in mc_run.items.itertuples():
        options = table[(table["item_id"] == item.item_id) & table["text"].isin(list(item.choices))]
        assert len(options) == 4
        best_sum = options.loc[options["sum_logprob"].idxmax(), "text"]
        best_norm = options.loc[(options["sum_logprob"] / (options["text"].str.len() + 1)).idxmax(), "text"]
        mine = gens[gens["item_id"] == item.item_id].set_index("kind")
        assert mine.loc["likeliest", "answer"] == best_sum
        assert mine.loc["likeliest_norm", "answer"] == best_norm
        row = options[options["text"] == best_sum].iloc[0]
        assert sum(mine.loc["likeliest", "logprobs"]) == pytest.approx(row["sum_logprob"], abs=1e-4)


def test_few_shot_examples_come_from_items_never_judged(mc_run):
    shot = mc_run.manifest["few_shot"]
    assert shot["n"] == 2 and shot["requested"] == 2 and set(shot["item_ids"]) <= {"arc4", "arc5"}
    judged = set(mc_run.judgments["item_id"])
    assert judged == {"arc0", "arc1", "arc2", "arc3"} and not judged & set(shot["item_ids"])
    stage = mc_run.manifest["judge"]["stages"]["smollm2-135m=isolated"]
    examples = stage["few_shot_examples"]
    assert len(examples) == 2 and sorted(ex["correct"] for ex in examples) == [False, True]
    questions = set(mc_run.items["question"])
    assert all(ex["question"] not in questions and "\nA. " in ex["question"] for ex in examples)
    assert stage["few_shot_source"]["file"] == "few_shot.jsonl"


def test_real_arc_file_runs_through_probe_with_a_nested_mapping(smollm2, shared_data, tmp_path):
    path = shared_data / "arc_easy" / "arc_easy_dev.jsonl"
    run = probe("smollm2-135m", str(path), n=3, samples=1, max_new_tokens=6, judge_modes=(), out=tmp_path / "arc",
                mapping="question=question,choices=choices.text,labels=choices.label,answer=answerKey,id=id",
                loaded={"smollm2-135m": smollm2}, progress=False)
    gens = run.generations
    assert len(run.items) == 3 and gens["correct"].notna().all()
    assert set(gens["kind"]) == {"greedy", "sample", "likeliest", "likeliest_norm"}


def test_truthfulqa_mc1_has_graded_own_answers(smollm2, shared_data, tmp_path):
    path = shared_data / "truthfulqa" / "mc_task.json"
    run = probe("smollm2-135m", str(path), fmt="truthfulqa_mc1", n=3, samples=2, max_new_tokens=8,
                judge_modes=(), out=tmp_path / "tqa", loaded={"smollm2-135m": smollm2}, progress=False)
    gens = run.generations
    assert gens["correct"].notna().all() and len(gens[gens["kind"] == "sample"]) == 6
    assert run.candidates["correct"].notna().all()


def test_judge_again_reuses_the_probes_examples_and_resumes(mc_run, smollm2):
    """`selfbias judge RUN` after a few-shot probe: the run's examples are reused, so nothing conflicts
    and nothing is judged again; asking for zero-shot is another setting, refused without overwrite."""
    from selfbias.judge import judge

    before = mc_run.judgments
    again = judge(mc_run.path, modes=("isolated",), models={"smollm2-135m": smollm2}, progress=False)
    pd.testing.assert_frame_equal(before, again.judgments)
    with pytest.raises(RunError, match="few_shot"):
        judge(mc_run.path, modes=("isolated",), few_shot=0, models={"smollm2-135m": smollm2}, progress=False)
