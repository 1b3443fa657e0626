"""Answer prompts (templates are data) and answer extraction.

Every candidate answer of an item, the model's own and the alternatives alike, is scored in the
same form: ``render(template, model, question) + " " + answer``. For models prompted in chat
(``LoadedModel.prompt_format``: by default instruct models with a chat template) the prompt is the
chat template with an *answer prefill* opening the assistant turn ("The answer is"), because small
instruct models otherwise ramble ("To solve this..."); base models get a plain few-shot prompt
ending in "Answer:".
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from ._checkers import normalize_text, parse_number
from .errors import InputError

__all__ = [
    "AnswerTemplate", "CHAT_TEMPLATE", "PLAIN_TEMPLATE", "default_template", "extract_answer", "question_with_choices",
    "render", "same_answer", "worked_template", "extract_marked_answer",
]


@dataclass(frozen=True)
class AnswerTemplate:
    """How a question is put to a model.

    ``format`` "chat": rendered with the tokenizer's chat template, ``system`` as the system turn
    (given explicitly: SmolLM2's template otherwise inserts its own default), ``user`` as the user
    turn, then ``prefill`` opens the assistant's answer. "plain": ``few_shot`` question/answer
    pairs, then ``user`` and ``prefill`` as text. ``stop`` ends a generated answer.
    """

    name: str
    format: str
    user: str = "{question}"
    system: str | None = None
    prefill: str = "The answer is"
    few_shot: tuple[tuple[str, str], ...] = ()
    stop: tuple[str, ...] = ("\n",)

    def to_dict(self) -> dict:
        return asdict(self)

    def __post_init__(self):
        if self.format not in ("chat", "plain"):
            raise ValueError(f"template {self.name!r}: format must be 'chat' or 'plain', not {self.format!r}")
        if "{question}" not in self.user:
            raise ValueError(f"template {self.name!r}: field 'user' must contain {{question}}")


CHAT_TEMPLATE = AnswerTemplate(
    name="chat-prefill",
    format="chat",
    system="You are a helpful assistant. Answer the question directly and briefly.",
    user="{question}",
    prefill="The answer is",
    stop=("\n", ". "),  # the answer is one sentence; what follows is rambling
)

# Examples chosen to stay clear of the built-in tasks; any that equals an evaluated question is dropped.
PLAIN_TEMPLATE = AnswerTemplate(
    name="plain-few-shot",
    format="plain",
    user="Question: {question}\nAnswer:",
    prefill="",
    few_shot=(
        ("What is 10 + 10?", "20"),
        ("What is the largest planet in the Solar System?", "Jupiter"),
        ("How many legs does a spider have?", "8"),
    ),
)


def default_template(lm) -> AnswerTemplate:
    """The answer template a model gets by default.

    Parameters
    ----------
    lm : LoadedModel
        The model; its ``prompt_format`` (see :func:`selfbias.models.pick_prompt_format`) decides.

    Returns
    -------
    AnswerTemplate
        :data:`CHAT_TEMPLATE` (chat with an answer prefill) for models prompted in chat, else
        :data:`PLAIN_TEMPLATE` (plain few-shot).
    """
    return CHAT_TEMPLATE if getattr(lm, "prompt_format", "plain") == "chat" else PLAIN_TEMPLATE


def question_with_choices(item) -> str:
    """The question as shown to a model: a multiple-choice item's options follow it, lettered.

    The MMLU / lm-evaluation-harness layout (the question, then one line per option: "A. first",
    "B. second"), so a model can name an option by letter or by text (:func:`selfbias.tasks.chosen_index` reads either); items without
    choices are shown as their question alone.

    Parameters
    ----------
    item : Item
        The question (``question`` and ``choices``).

    Returns
    -------
    str
    """
    choices = tuple(getattr(item, "choices", ()) or ())
    if not choices:
        return item.question
    return "\n".join([item.question, *(f"{chr(ord('A') + i)}. {c}" for i, c in enumerate(choices))])


def render(template: AnswerTemplate, lm, question: str) -> str:
    """The prompt text after which an answer (with a leading space) is generated or scored.

    Every candidate of an item is scored after the same prompt, so their likelihoods compare.

    Parameters
    ----------
    template : AnswerTemplate
        Chat (the tokenizer's chat template, an explicit system turn, then the prefill) or plain
        (few-shot pairs, minus any equal to ``question``, then the question and prefill).
    lm : LoadedModel
        The model whose tokenizer renders a chat template (and its ``chat_template_kwargs``).
    question : str
        The item's question.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        A chat template asked of a model that has none.
    """
    if template.format == "chat":
        tokenizer = getattr(lm, "tokenizer", None)
        has_chat = getattr(lm, "has_chat_template", None)  # a backend may only have its tokenizer
        if not (has_chat if has_chat is not None else getattr(tokenizer, "chat_template", None)):
            raise InputError(f"template {template.name!r} needs a chat template, and {lm.name} has none"
                             + ("" if tokenizer is not None else " (its backend has no tokenizer)"))
        messages = ([{"role": "system", "content": template.system}] if template.system else [])
        messages.append({"role": "user", "content": template.user.format(question=question)})
        kwargs = dict(getattr(lm, "chat_template_kwargs", None) or {})  # e.g. enable_thinking=False
        text = _apply_chat_template(tokenizer, messages, lm.name, **kwargs)
        return text + template.prefill
    shots = [
        template.user.format(question=q) + " " + a
        for q, a in template.few_shot
        if normalize_text(q) != normalize_text(question)
    ]
    body = template.user.format(question=question) + (" " + template.prefill if template.prefill else "")
    return "\n\n".join([*shots, body])


def _apply_chat_template(tokenizer, messages: list[dict[str, str]], model: str, **kwargs) -> str:
    """The chat text of ``messages`` (generation prompt added); a chat template that Jinja's sandbox
    blocks or that fails on these messages is an :class:`~selfbias.errors.InputError` naming the model."""
    from jinja2.exceptions import TemplateError

    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)
    except TemplateError as e:  # SecurityError (sandbox), syntax errors, raise_exception() in the template
        reason = " ".join(str(e).split())[:160]
        raise InputError(f"model {model}: its chat template cannot be rendered ({type(e).__name__}: {reason})") from None


_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def extract_answer(raw: str, answer_type: str) -> str:
    """The short answer inside a free-form generation (the raw text is kept beside it).

    Rule: take the first line, cut at the first sentence end, drop a leading ":" / "is", strip
    quotes and trailing punctuation. Numbers: the value after the last "=" if there is one, else the
    first number (so " 2 + 3 = 5" gives "5" and " 32. Because..." gives "32"). Choices: a leading
    letter label ("B", "(B)", "B)") is kept as the letter.

    Parameters
    ----------
    raw : str
        The generated text.
    answer_type : str
        ``number``, ``text``, ``choice`` or ``boolean`` (the item's).

    Returns
    -------
    str
        The answer; empty when nothing is left.
    """
    text = raw.strip().split("\n", 1)[0].strip()
    text = re.sub(r"^(?::|[-–](?=\s)|is\b|are\b|was\b)\s*", "", text, flags=re.IGNORECASE).strip()
    match = _SENTENCE_END.search(text)
    if match:
        text = text[: match.start()]
    text = text.strip().strip("\"'“”‘’*`").strip()
    if answer_type == "number":
        tail = text.rsplit("=", 1)[-1] if "=" in text else text
        found = re.search(r"[-\u2212]?\$?\d[\d,]*(?:\.\d+)?", tail)
        if found is None:
            return text.rstrip(".,;:!? ")
        value = parse_number(found.group(0))
        return found.group(0).replace("$", "").rstrip(".,") if value is None else _plain_number(found.group(0))
    if answer_type == "choice":
        label = re.match(r"^\(?([A-Ha-h])\)?(?:[).:]|\s|$)", text)
        if label:
            return label.group(1).upper()
    return text.rstrip(".,;:!? ").strip()


def _plain_number(token: str) -> str:
    return token.replace("$", "").replace(",", "").replace("\u2212", "-").rstrip(".")


def same_answer(a: str, b: str, answer_type: str) -> bool:
    """Do two extracted answers say the same thing? (Numbers by value, text normalised.)

    Used for sample agreement (the share of samples equal to the greedy answer).

    Parameters
    ----------
    a, b : str
        Two extracted answers.
    answer_type : str
        ``number`` compares values (when both parse); anything else compares
        :func:`selfbias.tasks.normalize_text` forms (two empty answers are not the same).

    Returns
    -------
    bool
    """
    if answer_type == "number":
        x, y = parse_number(a), parse_number(b)
        if x is not None and y is not None:
            return x == y
    return normalize_text(a) == normalize_text(b) and bool(normalize_text(a))



def worked_template(lm, marker: str = "####") -> AnswerTemplate:
    """The answer template of a worked-answer task (GSM8K style: reasoning, then the final answer
    after ``marker``), in the model's prompt format.

    Chat: a system turn asking for the reasoning and a last line ``<marker> <answer>``, no prefill,
    no stop string (the answer ends at the end of the turn). Plain: two worked few-shot examples in
    that form, stopping at the blank line before a next question.

    Parameters
    ----------
    lm : LoadedModel or Backend
        The model; its ``prompt_format`` decides chat or plain.
    marker : str
        The text before the final answer (GSM8K: ``####``).

    Returns
    -------
    AnswerTemplate
    """
    if getattr(lm, "prompt_format", "plain") == "chat":
        return AnswerTemplate(
            name="chat-worked", format="chat",
            system=f"Solve the problem step by step. End with a last line '{marker} ' followed by the final "
                   "answer only.",
            user="{question}", prefill="", stop=())
    return AnswerTemplate(
        name="plain-worked", format="plain", user="Question: {question}\nAnswer:", prefill="",
        few_shot=(("What is 10 + 10?", f"10 + 10 = 20.\n{marker} 20"),
                  ("A pen costs 3 dollars. How much do 4 pens cost?", f"4 pens cost 4 * 3 = 12 dollars.\n{marker} 12")),
        stop=("\n\n",))


def extract_marked_answer(raw: str, answer_type: str, marker: str, finish_reason: str) -> tuple[str, bool]:
    """The final answer of a worked answer: what follows the first ``marker`` (as the GSM8K
    evaluations read it, Cobbe et al. 2021), and whether the generation was cut before the answer
    was complete.

    A generation that ran out of tokens (``finish_reason`` "length") is cut when it has no marker
    yet, or when the budget ended on the answer's own line (``#### 95`` may have been ``#### 950``):
    such an answer is returned empty, to be left ungraded, not graded as if complete.

    Parameters
    ----------
    raw : str
        The generated text (reasoning, then the marker and the answer).
    answer_type : str
        The item's answer type (:func:`extract_answer` reads the text after the marker).
    marker : str
        The text before the final answer.
    finish_reason : str
        Why the generation ended: "eos", "stop" or "length".

    Returns
    -------
    (str, bool)
        The answer ("" when there is none or it was cut) and whether the generation was cut.
    """
    _, found, tail = raw.partition(marker)  # the first: a model that repeats its answer line has already answered
    cut = finish_reason == "length" and (not found or "\n" not in tail.lstrip())
    if cut or not found:
        return "", cut
    return extract_answer(tail, answer_type), False
