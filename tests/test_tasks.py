"""Item/Task, the built-in tasks, load_task options, the generic loader and perturbations."""

import json
import re
from decimal import Decimal

import numpy as np
import pytest

from selfbias.tasks import (ARITHMETIC_LEVELS, Item, TaskError, adjacent_numbers, arithmetic_task,
                            capitals_task, list_formats, list_tasks, load_task,
                            numeric_perturbations, parse_mapping, parse_number, text_perturbations)

# ---------------------------------------------------------------------------------------------
# Item and Task


def test_item_coerces_and_validates():
    item = Item("i", "q?", ["a", "b"], distractors=["c"], meta={"k": [1, 2]})
    assert item.references == ("a", "b") and item.distractors == ("c",) and item.choices == ()
    assert Item("i", "q?", "only").references == ("only",)
    assert hash(item) == hash(Item("i", "q?", ("a", "b"), ("c",), meta={"other": 1}))
    with pytest.raises(ValueError, match="at least one reference"):
        Item("i", "q?", ())
    with pytest.raises(ValueError, match="answer_type 'date'"):
        Item("i", "q?", ("a",), answer_type="date")
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        Item("i", "q?", ("a",), meta={"x": object()})


def test_to_frame_matches_items_table():
    task = load_task("arithmetic:2dx1d", n=3)
    frame = task.to_frame()
    assert list(frame.columns) == ["item_id", "task", "question", "references", "distractors",
                                   "choices", "answer_type", "meta"]
    assert frame["item_id"].tolist() == [it.id for it in task]
    assert (frame["task"] == "arithmetic:2dx1d").all()
    row = frame.iloc[0]
    assert row["references"] == list(task.items[0].references) and row["distractors"] == []
    assert row["answer_type"] == "number"
    assert json.loads(row["meta"]) == task.items[0].meta


# ---------------------------------------------------------------------------------------------
# arithmetic


_Q = re.compile(r"What is (\d+) ([+*]) (\d+)\?")


@pytest.mark.parametrize("level", list(ARITHMETIC_LEVELS))
def test_arithmetic_levels(level):
    task = load_task(f"arithmetic:{level}", n=60, seed=1)
    op, (lo_a, hi_a), (lo_b, hi_b) = ARITHMETIC_LEVELS[level]
    assert task.source == f"builtin:arithmetic:{level}:seed=1" and task.source_sha256 is None
    assert [it.id for it in task][:2] == [f"arith-{level}-0000", f"arith-{level}-0001"]
    for it in task:
        a, sign, b = _Q.fullmatch(it.question).groups()
        a, b = int(a), int(b)
        assert sign == op and lo_a <= a <= hi_a and lo_b <= b <= hi_b
        assert it.references == (str(a + b if op == "+" else a * b),)  # recomputed here
        assert it.answer_type == "number" and task.check(f"The answer is {it.references[0]}.", it)
    assert len({it.question for it in task}) == 60


def test_arithmetic_is_seeded_and_prefix_stable():
    a = load_task("arithmetic:2d+2d", n=20, seed=7)
    assert a.items == load_task("arithmetic:2d+2d", n=20, seed=7).items
    assert a.items[:5] == load_task("arithmetic", level="2d+2d", n=5, seed=7).items
    other = load_task("arithmetic:2d+2d", n=20, seed=8)
    assert [it.question for it in a] != [it.question for it in other]
    # fixed output for seed 0 (recorded from this implementation; guards against silent drift)
    first = load_task("arithmetic:2d+2d", n=2).items
    assert [it.question for it in first] == ["What is 14 + 47?", "What is 17 + 97?"]


def test_arithmetic_mixed_cycles_levels():
    task = load_task("arithmetic", n=9)
    assert task.name == "arithmetic:mixed" and len(task) == 9
    levels = list(ARITHMETIC_LEVELS)
    assert [it.meta["level"] for it in task] == [levels[i % 4] for i in range(9)]
    assert task.items[0].id == "arith-mixed-0000"


def test_arithmetic_limits():
    assert len(arithmetic_task("1d+1d", n=81)) == 81  # 9 x 9 distinct questions
    with pytest.raises(TaskError, match="only 81 distinct questions; asked for 82"):
        arithmetic_task("1d+1d", n=82)
    with pytest.raises(TaskError, match="unknown arithmetic level '4d'"):
        load_task("arithmetic:4d")
    with pytest.raises(TaskError, match="level given twice"):
        load_task("arithmetic:2d+2d", level="3d+3d")
    assert len(load_task("arithmetic")) == 100  # default n


# ---------------------------------------------------------------------------------------------
# capitals


def test_capitals_facts_and_aliases():
    task = load_task("capitals")
    by_id = {it.id: it for it in task}
    assert len(task) >= 150 and len(by_id) == len(task)
    france = by_id["capitals-france"]
    assert france.question == "What is the capital of France?"
    assert task.check("Paris", france) and task.check("The capital is Paris.", france)
    us = by_id["capitals-united-states"]
    assert us.question == "What is the capital of the United States?"
    assert all(task.check(a, us) for a in ("Washington, D.C.", "Washington", "Washington DC"))
    bolivia = by_id["capitals-bolivia"]
    assert task.check("Sucre", bolivia) and task.check("La Paz", bolivia)
    nl = by_id["capitals-netherlands"]
    assert task.check("Amsterdam", nl) and not task.check("The Hague", nl)
    za = by_id["capitals-south-africa"]
    assert all(task.check(c, za) for c in ("Pretoria", "Cape Town", "Bloemfontein"))
    assert not task.check("Johannesburg", za)
    assert task.check("Bogota", by_id["capitals-colombia"])  # accents do not matter
    assert task.check("Kiev", by_id["capitals-ukraine"])
    assert task.check("Kyiv", by_id["capitals-ukraine"])
    assert not task.check("Sydney", by_id["capitals-australia"])


def test_capitals_seeded_shuffle():
    full = capitals_task(seed=0)
    assert load_task("capitals", n=10).items == full.items[:10]
    assert capitals_task(n=10, seed=1).items != full.items[:10]
    assert {it.id for it in capitals_task(seed=1)} == {it.id for it in full}
    assert full.source == "builtin:capitals:seed=0"


def test_list_tasks_are_loadable():
    names = [name for name, _ in list_tasks()]
    assert "capitals" in names and "arithmetic:2dx1d" in names
    for name in names:
        assert len(load_task(name, n=3)) == 3
    assert {f for f, _ in list_formats()} == {"truthfulqa", "gsm8k", "arc", "nq_open",
                                              "truefalse", "jsonl", "csv", "truthfulqa_mc",
                                              "truthfulqa_mc1", "truthfulqa_mc2"}


def test_builtin_option_errors():
    with pytest.raises(TaskError, match="capitals has no levels"):
        load_task("capitals", level="easy")
    with pytest.raises(TaskError, match="mapping, fmt and shuffle do not apply"):
        load_task("capitals", fmt="csv")
    with pytest.raises(TaskError, match="n must be a positive"):
        load_task("arithmetic", n=0)


# ---------------------------------------------------------------------------------------------
# generic loader and mappings


def test_parse_mapping():
    assert parse_mapping("question=q, answer=a,distractors=wrong,id=key") == {
        "question": "q", "answer": "a", "distractors": "wrong", "id": "key"}
    with pytest.raises(TaskError, match="expected key=column pairs"):
        parse_mapping("question=q,answer")
    with pytest.raises(TaskError, match="unknown key.*colour"):
        parse_mapping("question=q,answer=a,colour=c")
    with pytest.raises(TaskError, match="needs both 'question' and 'answer'"):
        parse_mapping("question=q")


def test_generic_csv_with_lists(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text('key,q,a,wrong\n'
                    'k1,Who wrote Hamlet?,Shakespeare; William Shakespeare,Marlowe; Bacon\n'
                    'k2,Largest ocean?,"[""Pacific"", ""Pacific Ocean""]","[""Atlantic""]"\n')
    mapping = {"question": "q", "answer": "a", "distractors": "wrong", "id": "key"}
    task = load_task(path, mapping=mapping)
    assert task.name == "csv:mine"
    assert [it.id for it in task] == ["k1", "k2"]
    assert task.items[0].references == ("Shakespeare", "William Shakespeare")
    assert task.items[0].distractors == ("Marlowe", "Bacon")
    assert task.items[1].references == ("Pacific", "Pacific Ocean")
    assert task.items[1].distractors == ("Atlantic",) and task.items[1].answer_type == "text"
    as_text = "question=q,answer=a,distractors=wrong,id=key"
    assert load_task(path, mapping=as_text).items == task.items


def test_generic_jsonl_defaults_and_number_inference(tmp_path):
    path = tmp_path / "sums.jsonl"
    path.write_text('{"question": "2+2?", "answer": 4, "note": "easy"}\n'
                    '{"question": "1000+234?", "answer": "1,234", "distractors": ["1,233"]}\n')
    task = load_task(path)
    assert task.name == "jsonl:sums" and [it.id for it in task] == ["sums-1", "sums-2"]
    assert all(it.answer_type == "number" for it in task)
    assert task.items[0].meta == {"line": 1, "fields": {"note": "easy"}}
    assert task.items[1].distractors == ("1,233",)
    assert task.check("It is 1234.", task.items[1])
    # a checker name types the items of a generic file
    assert load_task(path, checker="text").items[0].answer_type == "text"


def test_generic_multiple_choice(tmp_path):
    path = tmp_path / "mc.jsonl"
    path.write_text('{"q": "Which is a fruit?", "a": "B", "opts": ["carrot", "apple", "leek"]}\n'
                    '{"q": "Which is red?", "a": "blood", "opts": "sky; grass; blood"}\n')
    task = load_task(path, mapping="question=q,answer=a,choices=opts")
    assert task.items[0].references == ("apple", "B") and task.items[0].answer_type == "choice"
    assert task.items[0].distractors == ("carrot", "leek")
    assert task.items[1].references == ("blood", "C")
    assert task.items[1].choices == ("sky", "grass", "blood")
    assert task.check("C) blood", task.items[1]) and not task.check("A", task.items[1])


def test_mapping_forces_generic_loader(tmp_path):
    path = tmp_path / "tf.csv"
    path.write_text("statement,label\nThe sky is blue.,1\n")
    assert load_task(path).name == "truefalse:tf"
    task = load_task(path, mapping="question=statement,answer=label")
    assert task.name == "csv:tf" and task.items[0].references == ("1",)
    with pytest.raises(TaskError, match="a mapping needs the generic loader"):
        load_task(path, mapping="question=statement,answer=label", fmt="truefalse")
    with pytest.raises(TaskError, match="unknown format 'xml'"):
        load_task(path, fmt="xml")
    with pytest.raises(TaskError, match="level applies only to arithmetic"):
        load_task(path, level="2d+2d")


def test_jsonl_detected_by_content(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text('{"question": "q?", "answer": ["x", "y"]}\n')
    task = load_task(path)
    assert task.name == "nq_open:data" and task.items[0].references == ("x", "y")


# ---------------------------------------------------------------------------------------------
# perturbations


@pytest.mark.parametrize("answer, expected", [
    ("42", ["43", "41", "52", "32", "24"]),
    ("7", ["8", "6", "17", "-3"]),  # one digit: no swap
    ("100", ["101", "99", "110", "90"]),  # "010" would have a leading zero
    ("123", ["124", "122", "133", "113", "132"]),  # rightmost adjacent distinct pair
    ("1,234", ["1235", "1233", "1244", "1224", "1243"]),
    ("3.5", ["4.5", "2.5", "13.5", "-6.5"]),  # digits on both sides of "." are not adjacent
    ("3.25", ["4.25", "2.25", "13.25", "-6.75", "3.52"]),
    ("-15", ["-14", "-16", "-5", "-25", "-51"]),
    ("11", ["12", "10", "21", "1"]),  # equal digits: no swap
    ("The answer is 18.", ["19", "17", "28", "8", "81"]),
])
def test_adjacent_numbers_the_former_scheme(answer, expected):
    out = adjacent_numbers(answer)
    assert out == expected
    assert len(set(out)) == len(out)


def test_numeric_perturbations_needs_a_number():
    with pytest.raises(ValueError, match="no number"):
        numeric_perturbations("Paris")
    with pytest.raises(ValueError, match="no number"):
        adjacent_numbers("Paris")


@pytest.mark.parametrize("answer", ["42", "7", "100", "1,234", "3.5", "3.25", "-15", "2", "0.5"])
def test_numeric_perturbations_are_distinct_wrong_numbers_of_the_gold_scale(answer):
    gold = parse_number(answer)
    wrong = [str(gold + 3), str(gold * 2 + 1)]
    for key in "abcdefgh":
        out = numeric_perturbations(answer, 3, wrong=wrong, seed=1, key=key)
        values = [Decimal(x) for x in out]
        assert len(out) == 3 and len(set(values)) == 3
        assert gold not in values and not {Decimal(w) for w in wrong} & set(values)
        if gold >= 0:
            assert min(values) >= 0
        places = max(0, -gold.as_tuple().exponent)
        assert all(max(0, -v.as_tuple().exponent) == places for v in values)  # "3.5" -> one decimal
        assert out == numeric_perturbations(answer, 3, wrong=wrong, seed=1, key=key)  # seeded
    assert len({tuple(numeric_perturbations(answer, 3, seed=1, key=k)) for k in "abcdefgh"}) > 1


def test_numeric_perturbations_also_sit_around_wrong_answers():
    # a wrong answer far from the gold gets neighbours too: the gold is not the only number with some
    near = 0
    for key in range(200):
        out = [int(x) for x in numeric_perturbations("50", 4, wrong=["500"], key=str(key))]
        near += sum(abs(x - 500) <= 50 for x in out)
    assert near > 50


def _gold_ranks(perturb, golds):
    """The gold's rank (0 = smallest) among its perturbations plus itself, and the list sizes."""
    ranks, sizes = [], []
    for i, gold in enumerate(golds):
        values = [Decimal(x) for x in perturb(str(gold), i)] + [Decimal(gold)]
        ranks.append(sorted(values).index(Decimal(gold)))
        sizes.append(len(values))
    return np.array(ranks), np.array(sizes)


def test_gold_rank_among_perturbations_is_uniform_and_the_old_scheme_is_not():
    """Chi-square goodness of fit of the gold's rank to Uniform{0..k} over 1200 arithmetic golds
    (all four levels),
    alpha = 0.01 (seeded, so the verdict is fixed). The old +-1 scheme puts the gold in the middle
    of three numbers every time, so the same test rejects it."""
    from scipy.stats import chisquare

    golds = [int(it.references[0]) for level, n in (("1d+1d", 80), ("2d+2d", 500), ("2dx1d", 500), ("3d+3d", 120))
             for it in arithmetic_task(level, n=n, seed=3).items]
    alpha, k = 0.01, 2
    # wrong answers as the model makes them: near the gold, more often below (a biased model)
    rng = np.random.default_rng(0)
    wrong = {i: [str(g - int(rng.integers(1, 12))), str(g + int(rng.integers(1, 4)))] for i, g in enumerate(golds)}
    ranks, sizes = _gold_ranks(lambda g, i: numeric_perturbations(g, k, wrong=wrong[i], key=str(i)), golds)
    assert (sizes == k + 1).all()
    counts = np.bincount(ranks, minlength=k + 1)
    assert chisquare(counts).pvalue > alpha, counts
    old_ranks, old_sizes = _gold_ranks(lambda g, i: adjacent_numbers(g)[:k], golds)
    old = np.bincount(old_ranks, minlength=k + 1)
    assert (old_sizes == k + 1).all() and chisquare(old).pvalue < alpha, old
    assert old[1] == len(golds)  # always in the middle


def test_gold_rank_test_detects_a_planted_lean():
    """The uniformity test has power: perturbations that fall below the gold 60% of the time
    (a mild planted lean) are rejected at the same alpha on the same number of items."""
    from scipy.stats import chisquare

    rng = np.random.default_rng(1)
    below = rng.random((1200, 2)) < 0.6
    counts = np.bincount(below.sum(axis=1), minlength=3)  # the gold's rank = perturbations below it
    assert chisquare(counts).pvalue < 0.01


def test_text_perturbations():
    items = capitals_task().items
    i = next(k for k, it in enumerate(items) if it.id == "capitals-bolivia")
    out = text_perturbations(items, i, k=5, seed=0)
    assert len(out) == 5 and len(set(out)) == 5
    assert out == text_perturbations(items, i, k=5, seed=0)
    assert out != text_perturbations(items, i, k=5, seed=1)
    assert not {"Sucre", "La Paz"} & set(out)
    assert set(out) <= {it.references[0] for it in items}


def test_text_perturbations_skip_aliases_and_run_out():
    items = [Item("a", "q?", ("Paris",)), Item("b", "q?", ("paris",)), Item("c", "q?", ("Rome",)),
             Item("d", "q?", ("Rome",))]
    assert text_perturbations(items, 0, k=3) == ["Rome"]
    assert text_perturbations(items, 2, k=1, seed=5) == ["Paris"] or \
        text_perturbations(items, 2, k=1, seed=5) == ["paris"]
