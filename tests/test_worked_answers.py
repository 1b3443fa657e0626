"""Worked-answer tasks (``--answer-marker``, GSM8K style): the final answer after the marker, the
generation budget checked against the longest reference solution, and answers cut by the budget
left ungraded and counted instead of graded as if complete."""

from __future__ import annotations

import json

import pytest

from selfbias.errors import InputError
from selfbias.probe import probe, probe_summary
from selfbias.prompts import extract_marked_answer, worked_template
from selfbias.tasks import load_task, worked_answers, worked_reference

# short worked problems (answers computed by hand)
ROWS = [
    {"question": "Ann has 2 apples and gets 3 more. How many apples does she have?",
     "answer": "2 + 3 = 5 apples.\n#### 5"},
    {"question": "A bag holds 4 balls. How many balls are in 2 bags?", "answer": "2 * 4 = 8 balls.\n#### 8"},
]


@pytest.mark.parametrize("raw,finish,expected", [
    ("2 + 3 = 5\n#### 5", "eos", ("5", False)),
    ("2 + 3 = 5\n#### 5\n\nQuestion", "stop", ("5", False)),
    ("so 1,200 in all\n#### 1,200\n", "length", ("1200", False)),  # the answer line ended before the budget
    ("2 + 3 = 5\n#### 5\n#### 5\n#### ", "length", ("5", False)),  # repeated answer lines: the first counts
    ("2 + 3 = 5\n#### 95", "length", ("", True)),  # cut on the answer's own line: may have been 950
    ("2 + 3 = 5 and then", "length", ("", True)),  # cut before any marker
    ("2 + 3 = 5, done", "eos", ("", False)),  # ended without an answer: wrong, not cut
])
def test_extract_marked_answer(raw, finish, expected):
    assert extract_marked_answer(raw, "number", "####", finish) == expected


def test_worked_answers_split_a_generic_file_as_the_gsm8k_loader_does(tmp_path):
    generic = tmp_path / "worked.jsonl"
    generic.write_text("".join(json.dumps({"q": r["question"], "a": r["answer"]}) + "\n" for r in ROWS))
    task = worked_answers(load_task(generic, mapping="question=q,answer=a"), "####")
    gsm = tmp_path / "gsm.jsonl"
    gsm.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    reference = load_task(gsm, fmt="gsm8k")
    assert [it.references for it in task.items] == [("5",), ("8",)] == [it.references for it in reference.items]
    assert [it.meta["solution"] for it in task.items] == ["2 + 3 = 5 apples.", "2 * 4 = 8 balls."]
    assert all(it.answer_type == "number" for it in task.items)
    assert worked_reference(task.items[0], "####") == ROWS[0]["answer"]
    assert worked_answers(reference, "####").items == reference.items  # split already: unchanged


def _file(tmp_path):
    path = tmp_path / "worked.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def test_budget_shorter_than_the_longest_reference_is_refused(tiny, tmp_path):
    lengths = [len(tiny.tokenizer(r["answer"], add_special_tokens=False)["input_ids"]) for r in ROWS]
    longest = max(lengths)
    with pytest.raises(InputError, match=rf"--max-new-tokens {longest - 1} .* \({longest} tokens under tiny-llama, "
                                         rf"item 'worked-{lengths.index(longest) + 1}'\).*--max-new-tokens {longest} or more"):
        probe("tiny-llama", _file(tmp_path), n=2, samples=0, max_new_tokens=longest - 1, judge_modes=(),
              answer_marker="####", out=tmp_path / "run", loaded={"tiny-llama": tiny}, progress=False)
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


def test_cut_answers_are_ungraded_and_counted(tiny, tmp_path):
    """A random model rarely writes the marker: its answers run into the budget and stay ungraded."""
    longest = max(len(tiny.tokenizer(r["answer"], add_special_tokens=False)["input_ids"]) for r in ROWS)
    run = probe("tiny-llama", _file(tmp_path), n=2, samples=2, max_new_tokens=longest, judge_modes=(),
                answer_marker="####", out=tmp_path / "run", loaded={"tiny-llama": tiny}, progress=False)
    assert run.manifest["request"]["settings"]["answer_marker"] == "####"
    assert run.manifest["request"]["templates"]["tiny-llama"]["name"] in ("plain-worked", "chat-worked")
    gens = run.generations
    # cut, computed here from the raw text: the budget ran out with no complete "#### answer" line
    cut = [f == "length" and ("####" not in raw or "\n" not in raw.partition("####")[2].lstrip())
           for raw, f in zip(gens["raw_text"], gens["finish_reason"])]
    assert any(cut)
    assert gens.loc[cut, "correct"].isna().all() and (gens.loc[cut, "answer"] == "").all()
    assert gens.loc[[not c for c in cut], "correct"].notna().all()
    summary = probe_summary(run)
    greedy_cut = sum(c for c, k in zip(cut, gens["kind"]) if k == "greedy")
    assert summary.loc[0, "truncated"] == greedy_cut and summary.loc[0, "ungraded"] >= greedy_cut
    # a cut answer is no candidate (an incomplete answer is not the model's answer)
    own = run.candidates[[("own_greedy" in s or "own_sample" in s) for s in run.candidates["sources"]]]
    assert "" not in set(own["text"])


def test_worked_template_puts_the_marker_in_the_prompt(tiny):
    template = worked_template(tiny, "####")
    if template.format == "plain":
        assert all("\n#### " in answer for _, answer in template.few_shot) and template.stop == ("\n\n",)
    else:
        assert "'#### '" in template.system


@pytest.mark.model
def test_smollm2_worked_answers_end_to_end(smollm2, tmp_path):
    """SmolLM2 on two short worked problems: every answer is graded from its first '####' line, or is
    ungraded exactly when the budget cut it."""
    run = probe("smollm2-135m", _file(tmp_path), n=2, samples=1, max_new_tokens=40, judge_modes=(),
                answer_marker="####", out=tmp_path / "run", loaded={"smollm2-135m": smollm2}, progress=False)
    task = worked_answers(load_task(_file(tmp_path)), "####")
    items = {it.id: it for it in task.items}
    for row in run.generations.itertuples():
        answer, cut = extract_marked_answer(row.raw_text, "number", "####", row.finish_reason)
        if cut:
            assert row.answer == "" and row.correct is pd_NA()
        else:
            assert row.answer == answer and bool(row.correct) == task.check(answer, items[row.item_id])
    assert "truncated" in probe_summary(run).columns


def pd_NA():
    import pandas as pd

    return pd.NA


def test_command_line_counts_the_cut_generations(tiny_folder, tmp_path):
    from transformers import AutoTokenizer
    from typer.testing import CliRunner

    from selfbias.cli import app
    from selfbias.runs import load_run

    tokenizer = AutoTokenizer.from_pretrained(tiny_folder)
    longest = max(len(tokenizer(r["answer"], add_special_tokens=False)["input_ids"]) for r in ROWS)
    result = CliRunner().invoke(app, ["probe", "-m", str(tiny_folder), "--task", str(_file(tmp_path)),
                                      "--answer-marker", "####", "--max-new-tokens", str(longest), "--samples", "1",
                                      "--judge-modes", "none", "--out", str(tmp_path / "run"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    gens = load_run(tmp_path / "run").generations
    cut = int((gens["finish_reason"].eq("length") & gens["answer"].eq("") & gens["correct"].isna()).sum())
    assert f"worked answers: {cut} of {len(gens)} generations" in " ".join(result.output.split())
