"""Checker edge cases. Expected values are the rules documented in selfbias/_checkers.py."""

from decimal import Decimal

import pytest

from selfbias.tasks import (Item, Task, TaskError, check_answer, check_boolean, check_choice,
                            check_number, check_text, chosen_index, load_task, normalize_text,
                            parse_boolean, parse_number, resolve_checker)


def number(*refs):
    return Item("n", "q?", refs, answer_type="number")


@pytest.mark.parametrize("text, value", [
    ("42", "42"), ("The answer is 42.", "42"), ("-7", "-7"), ("\u22127", "-7"),
    ("It is -7 degrees", "-7"), ("1,234", "1234"), ("$1,000", "1000"), ("1,234,567.5", "1234567.5"),
    ("3.50", "3.5"), (".5", "0.5"), ("50%", "50"), ("2 + 3 = 5", "5"), ("10-5", "5"),
    ("x = -5.", "-5"), ("forty-two", "42"), ("minus three", "-3"),
    ("one hundred and five", "105"), ("two thousand three hundred", "2300"),
    ("1,23", "23"),  # not a thousands group: the final number is 23
])
def test_parse_number(text, value):
    assert parse_number(text) == Decimal(value)


@pytest.mark.parametrize("text", ["", "no idea", "the answer is x"])
def test_parse_number_none(text):
    assert parse_number(text) is None


@pytest.mark.parametrize("answer, ok", [
    ("1234", True), ("1,234", True), ("The answer is 1,234.", True), ("$1,234", True),
    ("1234.00", True), ("-1234", False), ("12345", False), ("1,235", False), ("", False),
    ("I think it is 1,234 apples", True), ("1234 or 1235", False),
])
def test_check_number(answer, ok):
    assert check_number(answer, number("1234")) is ok


def test_check_number_negative_and_decimal_references():
    assert check_number("The answer is -5.", number("-5"))
    assert not check_number("5", number("-5"))
    assert check_number("0.50", number("0.5"))
    assert check_number("-7", number("3", "-7"))  # any reference


@pytest.mark.parametrize("text, norm", [
    ("The Hague", "hague"), ("Washington, D.C.", "washington dc"),
    ("Washington DC", "washington dc"), ("Port-au-Prince", "port au prince"),
    ("Bogot\u00e1", "bogota"), ("Chi\u0219in\u0103u", "chisinau"),
    ("  An   apple!  ", "apple"), ("St. John's", "st johns"),
])
def test_normalize_text(text, norm):
    assert normalize_text(text) == norm


US = Item("us", "What is the capital of the United States?", ("Washington, D.C.", "Washington"))
NEW_DELHI = Item("in", "q?", ("New Delhi",), distractors=("Delhi", "Mumbai"))


@pytest.mark.parametrize("item, answer, ok", [
    (US, "Washington, D.C.", True), (US, "washington dc", True), (US, "Washington", True),
    (US, "The capital is Washington, D.C.", True), (US, "It is Washington.", True),
    (US, "Seattle", False), (US, "Not Washington", False), (US, "", False),
    (US, "Washington is a state on the west coast of the country, and its capital city is "
         "Olympia, not the national capital", False),  # too long for the span rule
    (NEW_DELHI, "New Delhi", True),
    (NEW_DELHI, "The capital is New Delhi.", True),  # distractor "Delhi" lies inside the ref
    (NEW_DELHI, "Mumbai or New Delhi", False), (NEW_DELHI, "Delhi", False),
])
def test_check_text(item, answer, ok):
    assert check_text(answer, item) is ok


def test_check_text_negation_inside_reference_is_fine():
    item = Item("t", "q?", ("No, it is not",), distractors=("Yes",))
    assert check_text("No, it is not.", item)
    assert check_text("No, it is not, as far as I know", item)
    assert not check_text("Yes", item)


MC = Item("m", "Which keeps out mold spores?", ("breathing mask", "B"),
          distractors=("safety goggles", "rubber gloves", "lead apron"),
          choices=("safety goggles", "breathing mask", "rubber gloves", "lead apron"),
          answer_type="choice")


@pytest.mark.parametrize("answer, picked", [
    ("B", 1), ("(B)", 1), ("b", 1), ("B.", 1), ("B) breathing mask", 1), ("B. breathing mask", 1),
    ("The answer is B.", 1), ("Answer: (B)", 1), ("breathing mask", 1), ("A breathing mask.", 1),
    ("A", 0), ("A) safety goggles", 0), ("D", 3), ("lead apron", 3),
    ("mask", None), ("The answer is a mouse", None), ("goggles or gloves", None), ("E", None),
])
def test_chosen_index(answer, picked):
    assert chosen_index(answer, MC) == picked
    assert check_choice(answer, MC) is (picked == 1)


def test_choice_contained_in_another_choice():
    item = Item("h", "q?", ("heat and light", "B"), choices=("heat", "heat and light"),
                answer_type="choice")
    assert check_choice("It gives off heat and light.", item)
    assert not check_choice("heat", item)


def test_choice_source_labels():
    item = Item("d", "q?", ("mutation", "C"), choices=("circulation", "competition", "mutation"),
                answer_type="choice", meta={"labels": ["1", "2", "3"]})
    assert check_choice("3", item) and check_choice("(3)", item) and check_choice("C", item)
    assert not check_choice("2", item)


@pytest.mark.parametrize("text, value", [
    ("True", True), ("false.", False), ("Yes", True), ("no", False),
    ("The statement is false.", False),
    ("not true", False), ("It is not false", True), ("The correct answer is false", False),
    ("yes and no", None), ("maybe", None), ("", None),
])
def test_parse_boolean(text, value):
    assert parse_boolean(text) is value


def test_check_boolean():
    item = Item("b", "q?", ("False",), distractors=("True",), answer_type="boolean")
    assert check_boolean("False", item) and check_boolean("No.", item)
    assert not check_boolean("True", item) and not check_boolean("unsure", item)


def test_default_checker_dispatches_on_answer_type():
    assert check_answer("The answer is 1,234.", number("1234"))
    assert check_answer("(B)", MC)
    assert check_answer("Washington", US)
    assert not check_answer("12", number("1234"))


def test_resolve_checker():
    assert resolve_checker(None) is check_answer and resolve_checker("auto") is check_answer
    assert resolve_checker("numeric") is check_number and resolve_checker("mc") is check_choice
    assert resolve_checker("selfbias._checkers:check_text") is check_text
    with pytest.raises(ValueError, match="unknown checker 'fuzzy'"):
        resolve_checker("fuzzy")
    with pytest.raises(TaskError, match="checker 'no_such_module:f' cannot be imported"):
        load_task("capitals", checker="no_such_module:f")


def test_user_callable_checker_on_task():
    def starts_with_w(answer, item):
        return answer.lower().startswith(item.references[0][0].lower())

    task = load_task("capitals", checker=starts_with_w)
    us = next(it for it in task if it.id == "capitals-united-states")
    assert task.check("Wellington", us) and not task.check("Paris", us)
    assert not task.check(None, us)
    assert Task("t", (us,), checker=lambda a, i: 1).check("x", us) is True  # coerced to bool


# ---------------------------------------------------------------------------------------------
# equivalence of two answers, and grading with "cannot tell"


@pytest.mark.parametrize("a, b, answer_type, same", [
    ("8", "8.0", "number", True),
    ("8", "1,000", "number", False),
    ("1000", "1,000", "number", True),
    ("Chisinau", "Chi\u0219in\u0103u", "text", True),
    ("Port-au-Prince", "Port au Prince", "text", True),
    ("The capital is Paris", "Paris", "text", False),  # accepted one way only: says more
    ("Paris", "Lyon", "text", False),
    ("true", "True.", "boolean", True),
    ("yes", "false", "boolean", False),
])
def test_equivalent_is_mutual_acceptance(a, b, answer_type, same):
    from selfbias._checkers import equivalent

    item = Item("i", "q?", ("unrelated",), answer_type=answer_type)
    assert equivalent(a, b, item) is same
    assert equivalent(b, a, item) is same


def test_equivalent_choices_by_letter_and_text():
    from selfbias._checkers import equivalent

    item = Item("i", "q?", ("B",), choices=("red", "blue", "green"), answer_type="choice")
    assert equivalent("B", "blue", item) and equivalent("(b)", "blue", item)
    assert not equivalent("A", "blue", item)


def test_grade_closed_items_are_right_or_wrong():
    from selfbias._checkers import grade

    item = Item("i", "What is the capital of France?", ("Paris",))
    assert grade("Paris", item) is True and grade("Lyon", item) is False and grade("", item) is False


def test_grade_open_ended_items_leave_unmatched_answers_ungraded():
    from selfbias._checkers import grade

    item = Item("i", "What happens if you eat watermelon seeds?",
                ("Nothing happens", "The seeds pass through your digestive system"),
                distractors=("You grow watermelons in your stomach", "You die"),
                meta={"open_ended": True})
    assert grade("Nothing happens.", item) is True
    assert grade("You die", item) is False  # a known wrong answer
    assert grade("I have no comment", item) is None  # neither list decides
    closed = Item("c", item.question, item.references, item.distractors)
    assert grade("I have no comment", closed) is False  # the same answer on a closed item is wrong
    task = Task("t", (item,))
    assert task.grade("I have no comment", item) is None and task.check("I have no comment", item) is False
