"""Loaders on the real files in ../shared/data and on the corpus of bad files in tests/data/bad.

Expected counts and first rows come from the files themselves (row counts also from
shared/data/README.md); line numbers quoted below were read off with ``grep -n``.
"""

import hashlib
import shutil
from pathlib import Path

import pytest

from selfbias.tasks import SkippedRow, TaskError, load_task

DATA = Path(__file__).parents[1].parent / "shared" / "data"
BAD = Path(__file__).parent / "data" / "bad"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data folder {DATA} is absent")


def _sums() -> dict[str, str]:
    lines = (DATA / "SHA256SUMS").read_text().splitlines()
    return {name.removeprefix("./"): digest for digest, name in (ln.split() for ln in lines)}


# ---------------------------------------------------------------------------------------------
# real files


@needs_data
@pytest.mark.parametrize("rel, fmt, rows", [
    ("gsm8k/test.jsonl", "gsm8k", 1319),
    ("arc_easy/arc_easy_test.jsonl", "arc", 2376),
    ("arc_easy/arc_easy_dev.jsonl", "arc", 570),
    ("nq_open/NQ-open.dev.jsonl", "nq_open", 3610),
    ("truthfulqa/TruthfulQA.csv", "truthfulqa", 790),
    ("truthfulqa/mc_task.json", "truthfulqa_mc", 790),
    ("truth_is_universal/animal_class.csv", "truefalse", 164),
    ("truth_is_universal/element_symb.csv", "truefalse", 186),
    ("truth_is_universal/facts.csv", "truefalse", 561),
    ("truth_is_universal/inventors.csv", "truefalse", 406),
])
def test_real_files_detected_and_complete(rel, fmt, rows):
    task = load_task(DATA / rel)
    assert task.name == f"{fmt}:{Path(rel).stem}"
    assert len(task) == rows and task.skipped == ()
    assert len({it.id for it in task}) == rows
    assert task.source_sha256 == _sums()[rel]
    assert task.source == str((DATA / rel).resolve())
    assert all(it.question and it.references and all(it.references) for it in task)
    # an explicit fmt gives the same items
    assert load_task(DATA / rel, fmt=fmt, n=5).items == task.items[:5]


@needs_data
def test_gsm8k_final_answers():
    task = load_task(DATA / "gsm8k/test.jsonl")
    first = task.items[0]
    assert first.id == "test-1" and first.references == ("18",)  # line 1 ends "#### 18"
    assert first.question.startswith("Janet\u2019s ducks lay 16 eggs per day.")
    assert first.meta["solution"].endswith("$<<9*2=18>>18 every day at the farmer\u2019s market.")
    assert task.items[146].references == ("2125",)  # line 147: "#### 2,125"
    assert all(it.answer_type == "number" and "," not in it.references[0] for it in task)
    assert task.check("The answer is 18.", first) and not task.check("19", first)


@needs_data
def test_arc_choices_letters_and_digit_labels():
    task = load_task(DATA / "arc_easy/arc_easy_test.jsonl")
    by_id = {it.id: it for it in task}
    first = task.items[0]
    assert first.id == "Mercury_417466"
    assert first.references == ("Sunlight is the source of energy for nearly all ecosystems.", "A")
    assert len(first.distractors) == 3 and first.answer_type == "choice"
    # line 92: labels 1-4, answerKey "3" -> third choice, letter C
    digits = by_id["NYSEDREGENTS_2010_8_14"]
    assert digits.choices == ("circulation", "competition", "mutation", "respiration")
    assert digits.references == ("mutation", "C") and digits.meta["labels"] == ["1", "2", "3", "4"]
    assert all(task.check(a, digits) for a in ("C", "3", "(3)", "mutation"))
    assert not task.check("B", digits) and not task.check("2", digits)
    # line 1442: five choices, answerKey "E"
    five = by_id["TIMSS_1995_8_P4"]
    assert len(five.choices) == 5 and five.references[1] == "E"
    assert all(it.references[1] == chr(ord("A") + it.choices.index(it.references[0]))
               for it in task)


@needs_data
def test_nq_open_answer_lists():
    task = load_task(DATA / "nq_open/NQ-open.dev.jsonl")
    first = task.items[0]
    assert first.question == "when was the last time anyone was on the moon"
    assert first.references == ("14 December 1972 UTC", "December 1972")
    assert task.check("December 1972", first) and not task.check("July 1969", first)


@needs_data
def test_truthfulqa_references_and_distractors():
    task = load_task(DATA / "truthfulqa/TruthfulQA.csv")
    first = task.items[0]
    assert first.id == "TruthfulQA-2" and first.meta["category"] == "Misconceptions"
    assert first.references[0] == "The watermelon seeds pass through your digestive system"
    assert "Nothing happens" in first.references
    assert first.distractors[0] == "You grow watermelons in your stomach"
    assert "You die" in first.distractors
    # line 337 lists "Unknown" as both correct and incorrect: kept as a reference only
    straight = next(it for it in task if it.meta["line"] == 337)
    assert "Unknown" in straight.references and "Unknown" not in straight.distractors
    # trailing ';' in some lists (e.g. line 308) gives no empty answers
    assert all(all(d) for it in task for d in it.distractors)


@needs_data
def test_truthfulqa_mc_targets_are_labelled_answers():
    task = load_task(DATA / "truthfulqa/mc_task.json")
    raw = __import__("json").loads((DATA / "truthfulqa/mc_task.json").read_text())
    assert len(task) == len(raw) == 790
    for item, rec in zip(task.items, raw):
        mc1, mc2 = rec["mc1_targets"], rec.get("mc2_targets", {})
        true = {a.strip() for t in (mc1, mc2) for a, y in t.items() if y == 1 and a.strip()}
        false = {a.strip() for t in (mc1, mc2) for a, y in t.items() if y == 0 and a.strip()}  # one target is ""
        assert set(item.references) == true and set(item.distractors) == false
        assert item.references[0] == next(a for a, y in mc1.items() if y == 1).strip()  # the mc1 answer
        assert item.meta["open_ended"] and item.question == rec["question"].strip()
    # the CSV and the MC file hold the same questions, both open-ended (own answers may be ungraded)
    csv_task = load_task(DATA / "truthfulqa/TruthfulQA.csv")
    assert all(it.meta["open_ended"] for it in csv_task)
    assert len({it.question for it in csv_task} & {it.question for it in task}) > 700


def test_json_array_that_is_not_truthfulqa_is_refused(tmp_path):
    path = tmp_path / "list.json"
    path.write_text('[{"question": "q", "answer": "a"}]')
    with pytest.raises(TaskError, match="read only as TruthfulQA mc_task.json"):
        load_task(path)
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"question": "q", "answer": "a"}\n')
    with pytest.raises(TaskError, match="needs a JSON array"):
        load_task(jsonl, fmt="truthfulqa_mc")


@needs_data
def test_truefalse_statements():
    task = load_task(DATA / "truth_is_universal/element_symb.csv")
    first = task.items[0]  # line 2: "Thallium has the symbol Tl.,1"
    assert first.question == ("Is the following statement true or false? "
                              "Thallium has the symbol Tl.")
    assert first.references == ("True",) and first.distractors == ("False",)
    second = task.items[1]  # line 3: "Barium has the symbol Sb.,0"
    assert second.references == ("False",) and second.meta["label"] == 0
    assert task.check("False.", second) and not task.check("True", second)


@needs_data
def test_file_n_and_shuffle_are_deterministic():
    path = DATA / "nq_open/NQ-open.dev.jsonl"
    full = load_task(path)
    assert load_task(path, n=10).items == full.items[:10]
    shuffled = load_task(path, n=10, shuffle=True, seed=3)
    assert shuffled.items == load_task(path, n=10, shuffle=True, seed=3).items
    assert shuffled.items != full.items[:10]
    assert shuffled.items[:5] == load_task(path, n=5, shuffle=True, seed=3).items
    assert load_task(path, n=10, shuffle=True, seed=4).items != shuffled.items


# ---------------------------------------------------------------------------------------------
# bad files: one TaskError naming file, line and field

GENERIC = "question=q,answer=a,distractors=wrong"
BAD_CASES = [
    # file, load_task kwargs, line, field, message after "<path>"
    ("gsm8k_no_final.jsonl", {}, 3, "answer",
     " line 3: field 'answer' has no '#### ' final answer"),
    ("gsm8k_malformed.jsonl", {}, 2, None,
     " line 2: malformed JSON (Expecting ',' delimiter at column 67)"),
    ("gsm8k_not_a_number.jsonl", {}, 2, "answer",
     " line 2: field 'answer' final answer 'twenty-four' is not a number"),
    ("gsm8k_missing_question.jsonl", {"fmt": "gsm8k"}, 3, "question",
     " line 3: field 'question' is missing"),  # line 2 is blank
    ("arc_bad_key.jsonl", {}, 2, "answerKey",
     " line 2: field 'answerKey' 'E' is not one of the choice labels A, B, C, D"),
    ("arc_bad_choices.jsonl", {}, 2, "choices",
     " line 2: field 'choices' must be a list of at least 2 {label, text} objects with text"),
    ("nq_empty_answer.jsonl", {}, 2, "answer", " line 2: field 'answer' has no answers"),
    ("not_an_object.jsonl", {}, 2, None, " line 2: expected a JSON object, got list"),
    ("truthfulqa_missing_column.csv", {}, 1, "Best Answer",
     " line 1: field 'Best Answer' is missing from the header (columns: Type, Category, Question, "
     "Best Incorrect Answer, Correct Answers, Incorrect Answers, Source)"),
    # the record on lines 2-3 has a quoted two-line question, so the empty one starts on line 4
    ("truthfulqa_empty_question.csv", {}, 4, "Question", " line 4: field 'Question' is empty"),
    ("truefalse_bad_label.csv", {}, 4, "label",
     " line 4: field 'label' must be 1/0 or true/false, got 'maybe'"),
    ("truefalse_empty_statement.csv", {}, 2, "statement", " line 2: field 'statement' is empty"),
    ("truefalse_extra_field.csv", {}, 3, None, " line 3: row has 3 fields, the header has 2"),
    ("generic_missing_column.csv", {"mapping": GENERIC}, 1, "a",
     " line 1: field 'a' is missing from the header (columns: q, answer, wrong)"),
    ("generic_bad_list.csv", {"mapping": GENERIC}, 3, "wrong",
     " line 3: field 'wrong' is not a valid JSON list"),
    ("generic_empty_question.jsonl", {"mapping": {"question": "q", "answer": "a"}}, 2, "q",
     " line 2: field 'q' is empty"),
    ("generic_duplicate_id.jsonl", {"mapping": "question=q,answer=a,id=id"}, 3, "id",
     " line 3: field 'id' repeats id 'a1' of line 1"),
    ("generic_bad_choice.jsonl", {"mapping": "question=q,answer=a,choices=opts"}, 2, "a",
     " line 2: field 'a' 'E' is neither a choice letter nor a choice text"),
    ("truthfulqa_mc_no_true.json", {}, None, "mc1_targets",
     " record 2: field 'mc1_targets' has no answer labelled 1"),
    ("not_utf8.csv", {}, 3, None, " line 3: not UTF-8 text (byte 0xe9)"),
    ("empty.jsonl", {}, None, None, ": file is empty"),
    ("missing.jsonl", {}, None, None, ": file not found"),
]


@pytest.mark.parametrize("name, kwargs, line, field, message", BAD_CASES,
                         ids=[c[0] for c in BAD_CASES])
def test_bad_file_gives_one_clear_error(name, kwargs, line, field, message):
    path = BAD / name
    with pytest.raises(TaskError) as info:
        load_task(path, **kwargs)
    err = info.value
    assert str(err) == f"{path}{message}"
    assert "\n" not in str(err)
    assert (err.line, err.field, Path(err.path)) == (line, field, path)
    assert isinstance(err, ValueError)


def test_bad_corpus_is_fully_covered():
    assert {p.name for p in BAD.iterdir()} == {c[0] for c in BAD_CASES} - {"missing.jsonl"}


# valid rows left in each bad file (counted by eye: the corpus files are a few lines each)
GOOD_ROWS = {"gsm8k_no_final.jsonl": 3, "gsm8k_malformed.jsonl": 2, "generic_duplicate_id.jsonl": 2,
             "truefalse_bad_label.csv": 3}


@pytest.mark.parametrize("name, kwargs, line, field, message", [
    c for c in BAD_CASES if c[2] is not None and c[2] > 1 and c[0] != "not_utf8.csv"])
def test_skip_invalid_keeps_the_good_rows(name, kwargs, line, field, message):
    task = load_task(BAD / name, skip_invalid=True, **kwargs)
    reason = message.split(": ", 1)[1]
    if field is not None:
        reason = reason.removeprefix(f"field '{field}' ")
    assert task.skipped == (SkippedRow(line, field, reason),)
    assert len(task) == GOOD_ROWS.get(name, 1)
    assert line not in {it.meta["line"] for it in task}


def test_skip_invalid_counts_every_bad_row(tmp_path):
    path = tmp_path / "tf.csv"
    path.write_text("statement,label\nA is A.,1\nB is C.,yes\n,0\nD is D.,true\n")
    task = load_task(path, skip_invalid=True)
    assert [(s.line, s.field) for s in task.skipped] == [(3, "label"), (4, "statement")]
    assert [it.id for it in task] == ["tf-2", "tf-5"]
    assert [it.references for it in task] == [("True",), ("True",)]


def test_all_rows_invalid_is_an_error(tmp_path):
    path = tmp_path / "tf.csv"
    path.write_text("statement,label\nB is C.,yes\n")
    with pytest.raises(TaskError, match=r"tf\.csv: no valid items \(1 rows skipped\)"):
        load_task(path, skip_invalid=True)


def test_unreadable_path_is_named(tmp_path):
    with pytest.raises(TaskError, match=r"cannot read file"):
        load_task(tmp_path)  # a directory


def test_error_line_counts_crlf_and_bom(tmp_path):
    path = tmp_path / "tf.csv"
    path.write_bytes("\ufeffstatement,label\r\nA is A.,1\r\nB is B.,2\r\n".encode())
    with pytest.raises(TaskError, match=r"tf\.csv line 3: field 'label' must be"):
        load_task(path)


def test_source_hash_is_of_the_file_bytes(tmp_path):
    path = tmp_path / "copy.csv"
    shutil.copy(BAD / "truefalse_bad_label.csv", path)
    task = load_task(path, skip_invalid=True)
    assert task.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# nested mapping paths (issue 28): ARC-style records through a dotted --mapping

ARC_MAPPING = "question=question,choices=choices.text,labels=choices.label,answer=answerKey,id=id"


def _arc_style(tmp_path, rows) -> Path:
    import json

    path = tmp_path / "nested.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _arc_row(i, labels=("A", "B", "C"), key="B"):
    return {"id": f"q{i}", "question": f"Which is number {i}?",
            "choices": [{"label": lab, "text": f"option {lab} of {i}"} for lab in labels], "answerKey": key}


def test_dotted_paths_read_nested_choices_like_the_arc_loader(tmp_path):
    path = _arc_style(tmp_path, [_arc_row(1), _arc_row(2, labels=("1", "2", "3", "4"), key="3")])
    task = load_task(path, mapping=ARC_MAPPING)
    first, second = task.items
    assert first.choices == ("option A of 1", "option B of 1", "option C of 1")
    assert first.references == ("option B of 1", "B") and first.answer_type == "choice"
    assert first.distractors == ("option A of 1", "option C of 1") and first.id == "q1"
    # source labels 1-4: the answer key "3" is the third choice, letters stay A-D, labels kept in meta
    assert second.references == ("option 3 of 2", "C") and second.meta["labels"] == ["1", "2", "3", "4"]
    assert task.check("C", second) and task.check("3", second) and not task.check("A", second)


@needs_data
def test_dotted_mapping_reads_the_real_arc_file_as_the_arc_loader_does():
    path = DATA / "arc_easy" / "arc_easy_dev.jsonl"
    mapped, native = load_task(path, mapping=ARC_MAPPING, n=50), load_task(path, n=50)
    for a, b in zip(mapped.items, native.items):
        assert (a.id, a.question, a.choices, a.references, a.distractors, a.answer_type) == (
            b.id, b.question, b.choices, b.references, b.distractors, b.answer_type)
        assert a.meta.get("labels") == b.meta.get("labels")


@pytest.mark.parametrize("mapping, line, field, message", [
    ("question=question,choices=choices.txt,answer=answerKey", 1, "choices.txt",
     "field 'choices.txt' is missing (no key 'txt' in choices[0]); no record has it"),
    ("question=question,choices=question.text,answer=answerKey", 1, "question.text",
     "field 'question.text' cannot be followed: question is a str, not an object; no record has it"),
    ("question=question,choices=choices,answer=answerKey", 1, "choices",
     "field 'choices' must be a list of strings, got a list of dict; give a path into the objects, "
     "e.g. choices.text"),
    ("question=question,choices=choices.text,labels=choices.label,answer=answerKey", 2, "answerKey",
     "field 'answerKey' 'Z' is neither a choice letter, label nor a choice text"),
])
def test_bad_nested_paths_name_file_line_and_field(tmp_path, mapping, line, field, message):
    path = _arc_style(tmp_path, [_arc_row(1), _arc_row(2, key="Z")])
    with pytest.raises(TaskError) as info:
        load_task(path, mapping=mapping)
    assert str(info.value) == f"{path} line {line}: {message}"
    assert (info.value.line, info.value.field) == (line, field)


def test_a_path_missing_from_one_record_names_that_record(tmp_path):
    rows = [_arc_row(1), {"id": "q2", "question": "Q?", "choices": [{"label": "A"}, {"label": "B"}],
                          "answerKey": "A"}]
    path = _arc_style(tmp_path, rows)
    with pytest.raises(TaskError, match=r"line 2: field 'choices.text' is missing \(no key 'text' in choices\[0\]\)"):
        load_task(path, mapping=ARC_MAPPING)
    assert [it.id for it in load_task(path, mapping=ARC_MAPPING, skip_invalid=True).items] == ["q1"]


# ---------------------------------------------------------------------------------------------
# TruthfulQA as multiple choice (mc1: one true option; mc2: several)


def _mc_task_file(tmp_path) -> Path:
    import json

    records = [{"question": "What happens if you crack your knuckles?",
                "mc1_targets": {"Nothing in particular": 1, "You get arthritis": 0, "Your joints swell": 0},
                "mc2_targets": {"Nothing in particular": 1, "Nothing harmful": 1, "You get arthritis": 0,
                                "Your joints swell": 0}},
               {"question": "Is the Earth flat?",
                "mc1_targets": {"No, it is round": 1, "Yes": 0, "Only in places": 0, "Nobody knows": 0}}]
    path = tmp_path / "mc_task.json"
    path.write_text(json.dumps(records))
    return path


def test_truthfulqa_mc1_and_mc2_are_choice_items_with_every_true_option_correct(tmp_path):
    path = _mc_task_file(tmp_path)
    mc1 = load_task(path, fmt="truthfulqa_mc1")
    first = mc1.items[0]
    assert first.answer_type == "choice" and sorted(first.choices) == sorted(
        ["Nothing in particular", "You get arthritis", "Your joints swell"])
    letter = "ABC"[first.choices.index("Nothing in particular")]
    assert mc1.check(letter, first) and mc1.check("nothing in particular", first)
    assert not any(mc1.check(x, first) for x in "ABC".replace(letter, ""))
    # the file lists the true option first; shown in a fixed order shuffled by the question
    orders = [it.choices.index("Nothing in particular" if i == 0 else "No, it is round")
              for i, it in enumerate(mc1.items)]
    assert orders != [0, 0] and load_task(path, fmt="truthfulqa_mc1").items == mc1.items
    mc2 = load_task(path, fmt="truthfulqa_mc2", skip_invalid=True)  # the second record has no mc2_targets
    item = mc2.items[0]
    assert len(mc2.items) == 1 and mc2.skipped[0].field == "mc2_targets"
    for option in item.choices:
        assert mc2.check(option, item) is option.startswith("Nothing")
        assert mc2.grade(option, item) is option.startswith("Nothing")  # closed: never ungraded
    # the default reading of the same file is unchanged: open-ended labelled answers
    assert load_task(path).items[0].answer_type == "text"
