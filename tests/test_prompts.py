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


# ---------------------------------------------------------------------------------------------
# chat or plain, per model


@pytest.mark.parametrize("names, has_chat, expected", [
    (("smollm2-135m", "/x/SmolLM2-135M-Instruct.Q4_1.gguf"), True, "chat"),
    (("google/gemma-2-2b-it",), True, "chat"),
    (("Qwen/Qwen1.5-0.5B-Chat",), True, "chat"),
    (("HuggingFaceTB/SmolLM2-135M",), True, "plain"),  # a base model whose tokenizer has a chat template
    (("meta-llama/Llama-3.2-1B",), True, "plain"),
    (("/models/italian-gpt",), True, "plain"),  # "it" only as a whole name part
    (("Llama-3-8B-Instruct",), False, "plain"),  # no chat template: nothing to render with
])
def test_auto_prompt_format_rule(names, has_chat, expected):
    from selfbias.models import pick_prompt_format

    assert pick_prompt_format("auto", has_chat, *names) == expected
    assert pick_prompt_format("plain", has_chat, *names) == "plain"


def test_explicit_prompt_formats_and_errors():
    from selfbias.models import ModelError, pick_prompt_format

    assert pick_prompt_format("chat", True, "HuggingFaceTB/SmolLM2-135M") == "chat"
    with pytest.raises(ModelError, match="needs a chat template"):
        pick_prompt_format("chat", False, "gemma3-270m")
    with pytest.raises(ModelError, match="unknown prompt format 'html'"):
        pick_prompt_format("html", True, "x")


def test_bundled_models_default_formats_and_default_templates(smollm2, gemma, tiny):
    from selfbias.prompts import default_template

    assert (smollm2.prompt_format, gemma.prompt_format) == ("chat", "plain")
    assert default_template(smollm2) is CHAT_TEMPLATE and default_template(gemma) is PLAIN_TEMPLATE
    # a model with SmolLM2's chat template but no instruct name is prompted plain by default
    from selfbias.models import wrap_model

    base = wrap_model(tiny.model, tiny.tokenizer, name="tiny-llama")
    assert base.has_chat_template and base.prompt_format == "plain" and default_template(base) is PLAIN_TEMPLATE
    assert tiny.prompt_format == "chat" and default_template(tiny) is CHAT_TEMPLATE  # the fixture asks for chat
    assert smollm2.to_manifest()["prompt_format"] == "chat"


def test_chat_template_kwargs_reach_the_template(smollm2):
    import copy
    import dataclasses

    tok = copy.deepcopy(smollm2.tokenizer)
    tok.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
                         "{% if enable_thinking is defined and not enable_thinking %}<think></think>"
                         "{% else %}<think>{% endif %}")
    thinking = dataclasses.replace(smollm2, tokenizer=tok)
    quiet = dataclasses.replace(smollm2, tokenizer=tok, chat_template_kwargs={"enable_thinking": False})
    assert render(CHAT_TEMPLATE, thinking, "Q?").endswith("<think>The answer is")
    assert render(CHAT_TEMPLATE, quiet, "Q?").endswith("<think></think>The answer is")


def test_cli_parses_chat_template_kwargs():
    from selfbias.cli import parse_kwargs

    assert parse_kwargs("enable_thinking=false, n=2,x=abc") == {"enable_thinking": False, "n": 2, "x": "abc"}
    assert parse_kwargs(None) == {} and parse_kwargs("") == {}
    with pytest.raises(ValueError, match="expected key=value, got 'oops'"):
        parse_kwargs("oops")


def test_judge_follows_the_model_prompt_format(tiny):
    import dataclasses

    from selfbias.judge import DEFAULT_TEMPLATES, _setup

    plain = dataclasses.replace(tiny, prompt_format="plain")
    assert _setup("t", plain, ["isolated"], DEFAULT_TEMPLATES, [], 3).format == "plain"
    assert _setup("t", tiny, ["isolated"], DEFAULT_TEMPLATES, [], 3).format == "chat"


def test_question_with_choices_letters_the_options_after_the_question():
    from selfbias.prompts import question_with_choices
    from selfbias.tasks import Item, chosen_index

    item = Item(id="q", question="Which is a planet?", references=("Mars", "B"), choices=("Moon", "Mars", "Sun"),
                answer_type="choice")
    shown = question_with_choices(item)
    assert shown == "Which is a planet?\nA. Moon\nB. Mars\nC. Sun"
    # every letter shown is one the answer reader maps back to its option
    for line in shown.splitlines()[1:]:
        letter, text = line.split(". ", 1)
        assert item.choices[chosen_index(letter, item)] == text
    plain = Item(id="p", question="What is 2 + 2?", references=("4",), answer_type="number")
    assert question_with_choices(plain) == "What is 2 + 2?"
