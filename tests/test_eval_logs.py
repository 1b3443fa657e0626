"""Evaluation logs of lm-evaluation-harness (samples JSONL) and inspect_ai (.eval zip, .json) read into a
task and graded answers. The files are written here in the libraries' formats (lm-eval 0.4's
``--log_samples`` records, older and newer ``arguments`` layouts; inspect_ai's log schema version 2),
since neither library is a dependency."""

from __future__ import annotations

import gzip
import json
import zipfile

import pytest
from typer.testing import CliRunner

from selfbias.cli import app
from selfbias.eval_logs import read_eval_log, read_inspect_log, read_lm_eval_samples
from selfbias.tasks import TaskError, load_task

GSM = [  # (question, worked target, model response, filtered answer, exact_match)
    ("Tom has 3 apples and buys 4 more. How many?", "3 + 4 = 7\n#### 7", "3 + 4 = 7. The answer is 7.", "7", 1.0),
    ("A box holds 12 eggs. How many in 3 boxes?", "3 * 12 = 36\n#### 36", "12 + 3 = 15. The answer is 15.", "15", 0.0),
]


def _gsm_samples(folder, gz=False):
    """lm-eval 0.4.x generate_until records (gen_args layout), one per doc and filter."""
    records = []
    for i, (q, target, resp, filtered, em) in enumerate(GSM):
        for flt in ("strict-match", "flexible-extract"):
            records.append({
                "doc_id": i, "doc": {"question": q, "answer": target}, "target": target,
                "arguments": {"gen_args_0": {"arg_0": f"Question: {q}\nAnswer:", "arg_1": {"until": ["Question:"]}}},
                "resps": [[resp]], "filtered_resps": [filtered], "filter": flt, "metrics": ["exact_match"],
                "doc_hash": f"d{i}", "prompt_hash": f"p{i}", "target_hash": f"t{i}", "exact_match": em,
            })
    name = "samples_gsm8k_2026-12-07T21-00-00.123456.jsonl" + (".gz" if gz else "")
    text = "".join(json.dumps(r) + "\n" for r in records)
    path = folder / name
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    (folder / "results_2026-12-07T21-00-00.123456.json").write_text(json.dumps(
        {"results": {"gsm8k": {"exact_match,strict-match": 0.5}}, "model_name": "EleutherAI/pythia-160m",
         "config": {"model": "hf", "model_args": "pretrained=EleutherAI/pythia-160m"}}))
    return path


def test_lm_eval_generation_samples(tmp_path):
    log = read_eval_log(_gsm_samples(tmp_path))
    assert log.framework == "lm-eval" and log.model == "EleutherAI/pythia-160m"
    assert log.task.name == "lm-eval:gsm8k"
    assert [it.id for it in log.task.items] == ["gsm8k-0", "gsm8k-1"]
    assert [it.question for it in log.task.items] == [g[0] for g in GSM]
    assert [it.references for it in log.task.items] == [("7",), ("36",)]  # the final answers of the targets
    assert log.answers["variant"].tolist() == ["strict-match", "flexible-extract"] * 2
    assert log.answers["answer"].tolist() == ["7", "7", "15", "15"]
    assert log.answers["correct"].tolist() == [True, True, False, False]
    assert set(log.answers["scorer"]) == {"exact_match"}
    cands = log.candidates()  # one per distinct answer of an item
    assert cands[["item_id", "text", "correct"]].values.tolist() == [["gsm8k-0", "7", True], ["gsm8k-1", "15", False]]
    assert cands["authors"].tolist() == [["EleutherAI/pythia-160m"]] * 2
    # the checker agrees with the log's own grades
    assert [log.task.check(a, it) for a, it in zip(cands["text"], log.task.items)] == [True, False]
    assert read_eval_log(_gsm_samples(tmp_path / ".." / tmp_path.name, gz=True)).answers.equals(log.answers)


def test_lm_eval_loglikelihood_samples_pick_the_likeliest_choice(tmp_path):
    """An ARC-style multiple-choice task (older arguments layout: [[context, continuation], ...])."""
    choices = [" Paris", " Lyon", " Nice"]
    records = [
        {"doc_id": 0, "doc": {"question": "Capital of France?"}, "target": 0,
         "arguments": [["Question: Capital of France?\nAnswer:", c] for c in choices],
         "resps": [[[-1.0, True]], [[-3.0, False]], [[-2.5, False]]],
         "filtered_resps": [[-1.0, True], [-3.0, False], [-2.5, False]], "filter": "none",
         "metrics": ["acc", "acc_norm"], "acc": 1.0, "acc_norm": 1.0},
        {"doc_id": 1, "doc": {"question": "Largest French port city?"}, "target": 2,
         "arguments": [["Question: Largest French port city?\nAnswer:", c] for c in choices],
         "filtered_resps": [[-0.5, True], [-3.0, False], [-2.0, False]], "filter": "none",
         "metrics": ["acc"], "acc": 0.0},
    ]
    path = tmp_path / "samples_arc_easy_2026-12-07T21-00-00.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    log = read_lm_eval_samples(path, model="m")
    first, second = log.task.items
    assert first.choices == ("Paris", "Lyon", "Nice") and first.references == ("Paris", "A")
    assert second.references == ("Nice", "C") and second.answer_type == "choice"
    assert log.answers["answer"].tolist() == ["Paris", "Paris"]  # argmax of the log-likelihoods
    assert log.answers["correct"].tolist() == [True, False]
    assert [log.task.check(a, it) for a, it in zip(log.answers["answer"], log.task.items)] == [True, False]


def _inspect_samples():
    return [
        {"id": 1, "epoch": 1, "input": [{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": [{"type": "text", "text": "What is 2 + 2?"}]}],
         "target": "4", "output": {"model": "openai/gpt-4o-mini", "completion": "The answer is 4.",
                                   "choices": [{"message": {"role": "assistant", "content": "The answer is 4."}}]},
         "scores": {"model_graded_qa": {"value": "C", "answer": "The answer is 4.", "explanation": "GRADE: C"}}},
        {"id": 2, "epoch": 1, "input": "What is the capital of Peru?", "target": ["Lima"],
         "output": {"completion": "Cusco"},
         "scores": {"model_graded_qa": {"value": "I", "answer": "Cusco"}, "match": {"value": 0}}},
        {"id": 3, "epoch": 1, "input": "Name a prime above 10.", "target": "any prime above 10, e.g. 11",
         "output": {"completion": "12"}, "scores": {"model_graded_qa": {"value": "P", "answer": "12"}}},
        {"id": 4, "epoch": 1, "input": "Which is a mammal?", "target": "B", "choices": ["Shark", "Whale", "Trout"],
         "output": {"completion": "ANSWER: B"}, "scores": {"choice": {"value": "C", "answer": "B"}}},
    ]


def _inspect_header():
    return {"task": "inspect_evals/demo", "model": "openai/gpt-4o-mini", "dataset": {"name": "demo"},
            "task_id": "abc", "run_id": "xyz", "created": "2026-12-07T21:00:00+00:00"}


@pytest.mark.parametrize("kind", ["json", "eval"])
def test_inspect_logs(tmp_path, kind):
    if kind == "json":
        path = tmp_path / "2026-12-07T21-00-00_demo_abc.json"
        path.write_text(json.dumps({"version": 2, "status": "success", "eval": _inspect_header(),
                                    "plan": {}, "results": {}, "stats": {}, "samples": _inspect_samples()}))
    else:
        path = tmp_path / "2026-12-07T21-00-00_demo_abc.eval"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("_journal/start.json", json.dumps({"version": 2, "eval": _inspect_header()}))
            z.writestr("header.json", json.dumps({"version": 2, "status": "success", "eval": _inspect_header()}))
            for s in _inspect_samples():
                z.writestr(f"samples/{s['id']}_epoch_{s['epoch']}.json", json.dumps(s))
    log = read_inspect_log(path)
    assert log.framework == "inspect_ai" and log.model == "openai/gpt-4o-mini" and log.task.name == "inspect:demo"
    items = {it.id: it for it in log.task.items}
    assert items["demo-1"].question == "What is 2 + 2?"  # the last user message, its text parts joined
    assert items["demo-2"].references == ("Lima",)
    assert items["demo-4"].choices == ("Shark", "Whale", "Trout") and items["demo-4"].references == ("Whale", "B")
    a = log.answers
    assert a[["item_id", "scorer", "answer"]].values.tolist() == [
        ["demo-1", "model_graded_qa", "The answer is 4."], ["demo-2", "model_graded_qa", "Cusco"],
        ["demo-2", "match", "Cusco"], ["demo-3", "model_graded_qa", "12"], ["demo-4", "choice", "B"]]
    assert a["correct"].tolist()[:3] == [True, False, False] and a["correct"].isna().tolist()[3] and a["correct"].iloc[4]
    assert a["grade"].tolist() == ["C", "I", "0", "P", "C"]
    assert read_eval_log(path).answers.equals(a)


def test_bad_logs_are_named(tmp_path):
    with pytest.raises(TaskError, match="no such log file"):
        read_eval_log(tmp_path / "missing.jsonl")
    bad = tmp_path / "samples_x.jsonl"
    bad.write_text('{"doc_id": 0, "target": "1"}\n{"not": "a sample"}\n')
    with pytest.raises(TaskError, match=r"samples_x.jsonl line 2: not an lm-eval samples record"):
        read_eval_log(bad)
    empty = tmp_path / "log.json"
    empty.write_text(json.dumps({"version": 2, "status": "success", "eval": _inspect_header(), "samples": []}))
    with pytest.raises(TaskError, match="holds no samples"):
        read_eval_log(empty)


def test_probe_runs_the_questions_of_a_log(tmp_path, tiny_folder):
    path = _gsm_samples(tmp_path)
    task = load_task(f"log:{path}", n=1)
    assert [it.id for it in task.items] == ["gsm8k-0"] and task.source_sha256
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["probe", "-m", str(tiny_folder), "--task", f"log:{path}", "--n", "2",
                                      "--samples", "0", "--max-new-tokens", "3", "--judge-modes", "none",
                                      "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    from selfbias.runs import load_run

    assert list(load_run(out).items["item_id"]) == ["gsm8k-0", "gsm8k-1"]
