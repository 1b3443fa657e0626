"""Answer prompts and extraction of the short answer from a free-form generation."""

from __future__ import annotations

import pytest

from selfbias.prompts import CHAT_TEMPLATE, PLAIN_TEMPLATE, AnswerTemplate, extract_answer, render, same_answer


@pytest.mark.parametrize("raw,kind,expected", [
    (" 42.", "number", "42"),
    (" 2 + 3 = 5", "number", "5"),                      # the value after the last "="
    (' "17 + 25 = 32."', "number", "32"),
    (" 32. Because 17 + 15...", "number", "32"),         # first sentence only
    (" -1,234.", "number", "-1234"),
    (": 3.5 apples", "number", "3.5"),
    (" $1,000", "number", "1000"),
    (" Paris.", "text", "Paris"),
    (" is Paris. It is in France", "text", "Paris"),
    (" Washington, D.C. is the capital", "text", "Washington, D.C"),
    ("\nParis", "text", "Paris"),
    (" (B) Mars", "choice", "B"),
    (" C) the sun", "choice", "C"),
    (" True.", "boolean", "True"),
    ("", "text", ""),
])
def test_extract_answer(raw, kind, expected):
    assert extract_answer(raw, kind) == expected


def test_same_answer():
    assert same_answer("4.0", "4", "number") and not same_answer("5", "4", "number")
    assert same_answer("The Paris", "paris", "text") and not same_answer("", "", "text")


def test_chat_render_has_explicit_system_prompt_and_prefill(smollm2):
    text = render(CHAT_TEMPLATE, smollm2, "What is 2 + 2?")
    assert text.endswith("<|im_start|>assistant\nThe answer is")
    assert CHAT_TEMPLATE.system in text and "SmolLM" not in text  # no silent default system prompt


def test_plain_render_drops_a_few_shot_example_equal_to_the_question(gemma):
    text = render(PLAIN_TEMPLATE, gemma, "How many legs does a spider have?")
    assert text.count("How many legs does a spider have?") == 1
    assert text.endswith("Question: How many legs does a spider have?\nAnswer:")
    with pytest.raises(ValueError, match="needs a chat template"):
        render(CHAT_TEMPLATE, gemma, "x")


def test_template_validation():
    with pytest.raises(ValueError, match="'user' must contain"):
        AnswerTemplate(name="bad", format="plain", user="no field")
    with pytest.raises(ValueError, match="format must be"):
        AnswerTemplate(name="bad", format="html")
