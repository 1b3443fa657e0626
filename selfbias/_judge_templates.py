"""Judge prompt templates (data), their checks, rendering, few-shot examples and option spellings.

Private helpers of :mod:`selfbias.judge`; pure Python (no torch), so importing them is cheap.

A template has two texts:

* ``prefix``: the request. In chat format it is the user message; in plain format the body.
* ``suffix``: the answer lead written after it. In chat format it opens the assistant's turn
  (after ``apply_chat_template(..., add_generation_prompt=True)``); in plain format it follows the
  body. The next token after ``prefix + suffix`` is the verdict.

Fields (``str.format`` style; ``{{`` and ``}}`` are literal braces): ``{question}``, ``{answer}``,
``{samples}``, ``{alternatives}``, ``{answer_1}``, ``{answer_2}``, ``{critique}``. Lists (samples,
alternatives) are written one per line as ``- text`` (``(none)`` when empty).

The proposed answer comes after the question (and after the listed samples / alternatives), so all
the judgments of one item share the prompt up to the answer and that part runs once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import string
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

MODES = ("isolated", "own_samples", "alternatives", "pairwise", "critique")
FORMATS = ("chat", "plain")
FIELDS = ("question", "answer", "samples", "alternatives", "answer_1", "answer_2", "critique")

# The fields each mode needs (all must appear in prefix or suffix).
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "isolated": ("question", "answer"),
    "own_samples": ("question", "answer", "samples"),
    "alternatives": ("question", "answer", "alternatives"),
    "pairwise": ("question", "answer_1", "answer_2"),
    "critique": ("question", "answer", "critique"),
}
# The fields each mode may use: today exactly those it needs (kept apart so a mode can gain optional fields).
ALLOWED_FIELDS: dict[str, tuple[str, ...]] = dict(REQUIRED_FIELDS)
DEFAULT_OPTIONS = {"pairwise": ("1", "2")}  # every other mode: ("Yes", "No")


def _mode_spec(mode: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, str]]:
    """(required fields, allowed fields, default options) of a built-in mode, or of a registered one
    (:mod:`selfbias.judge_modes`)."""
    if mode in MODES:
        return REQUIRED_FIELDS[mode], ALLOWED_FIELDS[mode], DEFAULT_OPTIONS.get(mode, ("Yes", "No"))
    from .judge_modes import judge_mode, judge_mode_names

    if not isinstance(mode, str) or mode not in judge_mode_names():
        raise ValueError(f"judge template: unknown mode {mode!r}; use one of {', '.join(judge_mode_names())}")
    spec = judge_mode(mode)
    return spec.fields, spec.allowed_fields, spec.options


def mode_templates(mode) -> dict[str, "JudgeTemplate"]:
    """The default templates ``{"chat": ..., "plain": ...}`` of a registered (not built-in) judge mode,
    checked against its fields; a dict entry gets ``mode`` and ``format`` from the mode and the key."""
    if not mode.templates:
        raise ValueError(f"judge mode {mode.name!r} has no default templates; give them (templates=...)")
    out = {}
    for fmt, t in mode.templates.items():
        if fmt not in FORMATS:
            raise ValueError(f"judge mode {mode.name!r}: templates has unknown format {fmt!r}; use chat or plain")
        out[fmt] = t if isinstance(t, JudgeTemplate) else JudgeTemplate.from_dict(t, mode=mode.name, format=fmt)
        if out[fmt].mode != mode.name or out[fmt].format != fmt:
            raise ValueError(f"judge mode {mode.name!r}: templates['{fmt}'] is a template of {out[fmt].name}")
    return out


def _fields_of(text: str, where: str) -> list[str]:
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as e:
        raise ValueError(f"{where}: not a valid format string ({e}); write literal braces as {{{{ and }}}}") from None
    names = []
    for _literal, name, spec, conv in parsed:
        if name is None:
            continue
        if name == "" or not name.isidentifier():
            raise ValueError(f"{where}: field {{{name}}} must be a name, e.g. {{question}}")
        if spec or conv:
            raise ValueError(f"{where}: field {{{name}}} takes no format spec or conversion")
        names.append(name)
    return names


@dataclass(frozen=True)
class JudgeTemplate:
    """One judge prompt: mode, format, optional system message, prefix (request), suffix (answer lead), options.

    ``options``: the two verdict words; P(first) is read from the next token, normalised over every
    single-token spelling of both. Defaults: ``("1", "2")`` for ``pairwise``, else ``("Yes", "No")``.
    ``system`` is used in chat format (SmolLM2's chat template inserts its own system prompt when
    none is given); in plain format it is written first, followed by a blank line.
    Construction checks the fields: a template missing a field its mode needs raises one-line
    ValueError naming the template and the field.
    """

    mode: str
    format: str
    system: str | None = None
    prefix: str = ""
    suffix: str = ""
    options: tuple[str, str] | None = None

    def __post_init__(self):
        required, allowed, default_options = _mode_spec(self.mode)
        if self.format not in FORMATS:
            raise ValueError(f"judge template '{self.mode}': unknown format {self.format!r}; use 'chat' or 'plain'")
        name = self.name
        for attr in ("prefix", "suffix"):
            if not isinstance(getattr(self, attr), str):
                raise ValueError(f"judge template '{name}': {attr} must be a string")
        if self.system is not None and not isinstance(self.system, str):
            raise ValueError(f"judge template '{name}': system must be a string or None")
        if not self.prefix.strip():
            raise ValueError(f"judge template '{name}': prefix (the request) is empty")
        options = self.options if self.options is not None else default_options
        if isinstance(options, str) or len(tuple(options)) != 2:
            raise ValueError(f"judge template '{name}': options must be two words, got {options!r}")
        options = tuple(str(o) for o in options)
        if not all(o.strip() for o in options) or options[0].strip().lower() == options[1].strip().lower():
            raise ValueError(f"judge template '{name}': options must be two different non-empty words, got {options!r}")
        object.__setattr__(self, "options", options)
        used = _fields_of(self.prefix, f"judge template '{name}' prefix") + _fields_of(
            self.suffix, f"judge template '{name}' suffix")
        for f in used:
            if f not in allowed:
                raise ValueError(
                    f"judge template '{name}': field {{{f}}} is not used by mode '{self.mode}' "
                    f"(its fields: {', '.join('{' + a + '}' for a in allowed)})"
                )
        for f in required:
            if f not in used:
                raise ValueError(f"judge template '{name}': missing field {{{f}}} required by mode '{self.mode}'")
        if self.mode == "critique" and "critique" not in _fields_of(self.suffix, name):
            raise ValueError(
                f"judge template '{name}': {{critique}} must be in the suffix (the critique is the judge's "
                "own text, written after the answer lead)"
            )

    @property
    def name(self) -> str:
        return f"{self.mode}/{self.format}"

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "format": self.format, "system": self.system, "prefix": self.prefix,
                "suffix": self.suffix, "options": list(self.options)}

    @property
    def digest(self) -> str:
        """sha256 (first 16 hex) of the template's fields as canonical JSON."""
        text = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, mode: str | None = None, format: str | None = None) -> "JudgeTemplate":
        known = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(set(d) - known)
        where = f"judge template '{d.get('mode', mode)}/{d.get('format', format)}'"
        if extra:
            raise ValueError(f"{where}: unknown key(s) {', '.join(extra)}; keys are {', '.join(sorted(known))}")
        args = dict(d)
        args.setdefault("mode", mode)
        args.setdefault("format", format)
        if args["mode"] is None or args["format"] is None:
            raise ValueError(f"{where}: needs 'mode' and 'format'")
        if "options" in args and args["options"] is not None and not isinstance(args["options"], str):
            args["options"] = tuple(args["options"])
        return cls(**args)


# ------------------------------------------------------------------------------------ defaults

SYSTEM = "You are a careful grader. You check whether answers to questions are correct."
_ASK = "Is the following proposed answer correct? Answer Yes or No."


def _pair(mode: str, prefix: str, chat_suffix: str, plain_suffix: str) -> dict[str, JudgeTemplate]:
    return {
        "chat": JudgeTemplate(mode, "chat", SYSTEM, prefix, chat_suffix),
        "plain": JudgeTemplate(mode, "plain", None, prefix, plain_suffix),
    }


# The proposed answer comes last in the request: the prompts of one item then share everything
# before it, which runs once (see selfbias.scoring.next_token_logprobs).
DEFAULT_TEMPLATES: dict[str, dict[str, JudgeTemplate]] = {
    "isolated": _pair(
        "isolated",
        "Question: {question}\n" + _ASK + "\nProposed answer: {answer}",
        "", "\nAnswer:",
    ),
    # own_samples and alternatives use the same words: only what is listed differs.
    "own_samples": _pair(
        "own_samples",
        "Question: {question}\nPossible answers:\n{samples}\n" + _ASK + "\nProposed answer: {answer}",
        "", "\nAnswer:",
    ),
    "alternatives": _pair(
        "alternatives",
        "Question: {question}\nPossible answers:\n{alternatives}\n" + _ASK + "\nProposed answer: {answer}",
        "", "\nAnswer:",
    ),
    # Both bundled tokenizers split digits from a leading space (" 1" = " " + "1"), so the plain lead
    # ends with the space and the next token is the digit itself.
    "pairwise": _pair(
        "pairwise",
        "Question: {question}\nWhich of these two answers is correct, 1 or 2? Reply with 1 or 2.\n"
        "Answer 1: {answer_1}\nAnswer 2: {answer_2}",
        "", "\nCorrect answer: ",
    ),
    "critique": _pair(
        "critique",
        "Question: {question}\nWrite a one-sentence critique of the following proposed answer, then say "
        "whether it is correct (Yes or No).\nProposed answer: {answer}",
        "Critique: {critique}\nVerdict (Yes or No):", "\nCritique: {critique}\nVerdict (Yes or No):",
    ),
}


# P(True) in the format of Kadavath et al. 2022 ("Language Models (Mostly) Know What They Know",
# sec. 3): the proposed answer followed by "Is the proposed answer: (A) True (B) False" and the lead
# "The proposed answer is:"; P(True) is read from the next token, normalised over True/False.
# Pairwise has no True/False form: the set keeps the default pairwise template.
_PTRUE_ASK = "Is the proposed answer:\n (A) True\n (B) False"
_PTRUE_SYSTEM = "You are a careful grader. You check whether proposed answers to questions are true."
_TF = ("True", "False")


def _ptrue(mode: str, prefix: str, lead: str) -> dict[str, JudgeTemplate]:
    return {
        "chat": JudgeTemplate(mode, "chat", _PTRUE_SYSTEM, prefix, lead, _TF),
        "plain": JudgeTemplate(mode, "plain", None, prefix, "\n" + lead, _TF),
    }


PTRUE_TEMPLATES: dict[str, dict[str, JudgeTemplate]] = {
    "isolated": _ptrue("isolated", "Question: {question}\nProposed Answer: {answer}\n" + _PTRUE_ASK,
                       "The proposed answer is:"),
    # Kadavath's "brainstormed" variant: the listed answers come before the proposed one (both list modes
    # use the same words, so only who wrote the list differs).
    "own_samples": _ptrue("own_samples", "Question: {question}\nHere are some brainstormed ideas:\n{samples}\n"
                          "Proposed Answer: {answer}\n" + _PTRUE_ASK, "The proposed answer is:"),
    "alternatives": _ptrue("alternatives", "Question: {question}\nHere are some brainstormed ideas:\n{alternatives}\n"
                           "Proposed Answer: {answer}\n" + _PTRUE_ASK, "The proposed answer is:"),
    "pairwise": DEFAULT_TEMPLATES["pairwise"],
    "critique": _ptrue("critique", "Question: {question}\nProposed Answer: {answer}\nWrite a one-sentence critique "
                       "of the proposed answer, then say whether it is true.",
                       "Critique: {critique}\n" + _PTRUE_ASK + "\nThe proposed answer is:"),
}
# The plain critique lead starts on a new line like the others.
PTRUE_TEMPLATES["critique"]["plain"] = JudgeTemplate(
    "critique", "plain", None, PTRUE_TEMPLATES["critique"]["chat"].prefix,
    "\nCritique: {critique}\n" + _PTRUE_ASK + "\nThe proposed answer is:", _TF)

TEMPLATE_SETS: dict[str, dict[str, dict[str, JudgeTemplate]]] = {"default": DEFAULT_TEMPLATES, "ptrue": PTRUE_TEMPLATES}


def resolve_templates(templates: Mapping[str, Any] | None, modes: Sequence[str],
                      template_set: str = "default") -> dict[str, dict[str, JudgeTemplate]]:
    """The templates of ``modes``: the named set (``default``: Yes/No; ``ptrue``: Kadavath's True/False),
    overridden per mode (and format) by ``templates``.

    ``templates[mode]`` may be a JudgeTemplate (replaces that format's default), a dict of
    JudgeTemplate fields (the same, ``mode`` taken from the key), or a dict ``{"chat": ..., "plain": ...}``
    of either.
    """
    if template_set not in TEMPLATE_SETS:
        raise ValueError(f"template_set: unknown set {template_set!r}; use one of {', '.join(TEMPLATE_SETS)}")
    from .judge_modes import judge_mode, judge_mode_names

    out = {m: dict(TEMPLATE_SETS[template_set][m]) if m in MODES else mode_templates(judge_mode(m)) for m in modes}
    for key, value in (templates or {}).items():
        if key not in judge_mode_names():
            raise ValueError(f"templates: unknown mode {key!r}; use one of {', '.join(judge_mode_names())}")
        if isinstance(value, Mapping) and set(value) <= set(FORMATS) and value:
            entries = [(fmt, v) for fmt, v in value.items()]
        else:
            entries = [(None, value)]
        for fmt, v in entries:
            if isinstance(v, Mapping):
                v = JudgeTemplate.from_dict(v, mode=key, format=fmt)
            if not isinstance(v, JudgeTemplate):
                raise ValueError(f"templates['{key}']: expected a JudgeTemplate or a dict, got {type(v).__name__}")
            if v.mode != key:
                raise ValueError(f"templates['{key}']: the template's mode is {v.mode!r}")
            if fmt is not None and v.format != fmt:
                raise ValueError(f"templates['{key}']['{fmt}']: the template's format is {v.format!r}")
            if key in out:
                out[key][v.format] = v
    return out


# ------------------------------------------------------------------------------------ few-shot

# (question, right answer, three wrong answers). Example i shows the right answer when its position is
# even, else the first wrong one. The list modes always list the second and third wrong answers: the
# list is the same whether the shown answer is right or wrong, so it carries no hint of the verdict
# (a list holding the right answer only when the shown one is wrong would teach "gold listed => No").
FEW_SHOT_POOL: tuple[tuple[str, str, tuple[str, str, str]], ...] = (
    ("What is the capital of Australia?", "Canberra", ("Sydney", "Melbourne", "Perth")),
    ("What is 7 + 5?", "12", ("13", "11", "14")),
    ("Who wrote Romeo and Juliet?", "William Shakespeare", ("Charles Dickens", "Christopher Marlowe", "Jane Austen")),
    ("What is 9 * 4?", "36", ("32", "45", "27")),
    ("What is the chemical symbol for gold?", "Au", ("Ag", "Go", "Gd")),
    ("How many days are in a leap year?", "366", ("365", "364", "360")),
    ("What is the largest planet in the Solar System?", "Jupiter", ("Saturn", "Earth", "Neptune")),
    ("What is 15 + 27?", "42", ("32", "43", "41")),
    ("What is the capital of Canada?", "Ottawa", ("Toronto", "Montreal", "Vancouver")),
    ("What is 8 * 7?", "56", ("54", "48", "64")),
)


@dataclass(frozen=True)
class FewShotExample:
    """One grading demonstration: the question, the shown answer and whether it is correct.

    ``alternatives``: what the list modes list (the same for a right or a wrong shown answer, by the
    caller's choice); ``critique``: the critique mode's demonstrated critique; ``other``: the rival
    answer in pairwise mode (the correct one of the pair is ``answer`` if ``correct`` else ``other``;
    it is shown first in even positions, second in odd ones).
    """

    question: str
    answer: str
    correct: bool
    alternatives: tuple[str, ...] = ()
    critique: str | None = None
    other: str | None = None
    where: str = "built-in"


EXAMPLE_K = 3  # the list length of the judged lists (judge's k); the built-in examples have 2 wrong answers to list
EXAMPLE_P_CORRECT = 0.5  # the judged lists' DEFAULT_P_CORRECT


def builtin_examples(indices: Sequence[int]) -> list[FewShotExample]:
    from ._list_design import example_list

    out = []
    for pos, i in enumerate(indices):
        question, right, wrong = FEW_SHOT_POOL[i]
        good = pos % 2 == 0
        shown = right if good else wrong[0]
        critique = (f"{shown} is the right answer to this question." if good
                    else f"{shown} is wrong; the answer is {right}.")
        # the list follows the judged lists' design (a correct answer with probability 1/2, seeded by
        # question, not by position or verdict); wrong[0] is kept aside as the shown wrong answer / rival
        alternatives = example_list(right, wrong[1:], question, EXAMPLE_K, EXAMPLE_P_CORRECT)
        out.append(FewShotExample(question, shown, good, alternatives, critique,
                                  wrong[0] if good else right, f"built-in example {i}"))
    return out


_FILE_FIELDS = {"question": str, "answer": str, "correct": bool, "alternatives": list, "critique": str, "other": str}


def read_few_shot_file(path) -> list[FewShotExample]:
    """Few-shot examples from a JSONL file, one object a line: ``question``, ``answer`` (str),
    ``correct`` (true/false) required; ``alternatives`` (list of str), ``critique``, ``other`` (str)
    optional. Errors are one line naming the file, the line and the field."""
    from pathlib import Path

    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read the few-shot file ({e})") from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise ValueError(f"{where}: not valid JSON ({e})") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        extra = sorted(set(obj) - set(_FILE_FIELDS))
        if extra:
            raise ValueError(f"{where}: unknown field '{extra[0]}'; fields are {', '.join(_FILE_FIELDS)}")
        for name in ("question", "answer", "correct"):
            if name not in obj:
                raise ValueError(f"{where}: missing field '{name}'")
        for name, kind in _FILE_FIELDS.items():
            if name in obj and not isinstance(obj[name], kind):
                raise ValueError(f"{where}: field '{name}' must be {'true or false' if kind is bool else kind.__name__}, "
                                 f"got {json.dumps(obj[name])[:40]}")
        for name in ("question", "answer"):
            if not obj[name].strip():
                raise ValueError(f"{where}: field '{name}' is empty")
        alts = obj.get("alternatives", [])
        if not all(isinstance(a, str) and a.strip() for a in alts):
            raise ValueError(f"{where}: field 'alternatives' must be a list of non-empty strings")
        out.append(FewShotExample(obj["question"], obj["answer"], obj["correct"], tuple(alts),
                                  obj.get("critique"), obj.get("other"), where))
    if not out:
        raise ValueError(f"{path}: the few-shot file has no examples")
    return out


def select_examples(n: int | None, examples: Sequence[FewShotExample], item_questions: Sequence[str],
                    normalize) -> tuple[list[FewShotExample], list[str]]:
    """The first ``n`` (None: all) examples whose normalised question is no item's; the dropped questions."""
    taken = {normalize(q) for q in item_questions}
    keep, dropped = [], []
    for ex in examples:
        if n is not None and len(keep) >= n:
            break
        if normalize(ex.question) in taken:
            dropped.append(ex.question)
        else:
            keep.append(ex)
    if n is not None and len(keep) < n:
        raise ValueError(
            f"few_shot={n}: only {len(keep)} examples are disjoint from the run's items "
            f"(of {len(examples)}); use fewer"
        )
    return keep, dropped


def example_fields(ex: FewShotExample, position: int, mode: str, k: int) -> tuple[dict[str, str], int]:
    """Fields of a few-shot example shown as the ``position``-th one, and its verdict (0 = first option)."""
    if mode not in MODES:  # a registered mode: its own rule, else question and answer
        from .judge_modes import judge_mode

        spec = judge_mode(mode)
        if spec.example_fields is not None:
            return spec.example_fields(ex, position, k)
        return {"question": ex.question, "answer": ex.answer}, 0 if ex.correct else 1
    fields = {"question": ex.question, "answer": ex.answer}
    if mode in ("own_samples", "alternatives"):
        fields["samples" if mode == "own_samples" else "alternatives"] = format_list(list(ex.alternatives)[:k])
    elif mode == "critique":
        if ex.critique is None:
            raise ValueError(f"{ex.where}: missing field 'critique' (needed by mode 'critique')")
        fields["critique"] = ex.critique
    elif mode == "pairwise":
        if ex.other is None:
            raise ValueError(f"{ex.where}: missing field 'other' (needed by mode 'pairwise')")
        right, wrong = (ex.answer, ex.other) if ex.correct else (ex.other, ex.answer)
        # the right answer alternates between the two positions, so the examples teach no position
        first, second, verdict = (right, wrong, 0) if position % 2 == 0 else (wrong, right, 1)
        return {"question": ex.question, "answer_1": first, "answer_2": second}, verdict
    return fields, 0 if ex.correct else 1


def format_list(texts: Sequence[str]) -> str:
    return "\n".join(f"- {t}" for t in texts) if len(texts) else "(none)"


# ------------------------------------------------------------------------------------ rendering


def _fill(text: str, fields: Mapping[str, str]) -> str:
    return text.format_map(fields) if text else ""


def _verdict_join(lead: str) -> str:
    return "" if (not lead or lead[-1].isspace()) else " "


def render(template: JudgeTemplate, fields: Mapping[str, str], tokenizer=None,
           examples: Sequence[tuple[Mapping[str, str], int]] = (), suffix: str | None = None) -> str:
    """The full prompt text. ``examples``: (fields, verdict index) few-shot demonstrations.

    ``suffix`` replaces the template's suffix (the critique generation prompt uses the part of the
    suffix before ``{critique}``). Chat format needs the tokenizer.
    """
    lead_t = template.suffix if suffix is None else suffix
    if template.format == "plain":
        parts = [template.system + "\n\n"] if template.system else []
        for ex, verdict in examples:
            lead = _fill(template.suffix, ex)
            parts.append(_fill(template.prefix, ex) + lead + _verdict_join(lead) + template.options[verdict] + "\n\n")
        parts.append(_fill(template.prefix, fields) + _fill(lead_t, fields))
        return "".join(parts)
    messages: list[dict[str, str]] = []
    for ex, verdict in examples:
        lead = _fill(template.suffix, ex)
        messages.append({"role": "user", "content": _fill(template.prefix, ex)})
        messages.append({"role": "assistant", "content": lead + _verdict_join(lead) + template.options[verdict]})
    messages.append({"role": "user", "content": _fill(template.prefix, fields)})
    return chat_text(tokenizer, template.system, messages) + _fill(lead_t, fields)


def chat_text(tokenizer, system: str | None, messages: list[dict[str, str]]) -> str:
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ValueError("chat-format judge template needs a tokenizer with a chat template")
    msgs = ([{"role": "system", "content": system}] if system else []) + messages
    try:
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    except Exception:
        if not system:
            raise
        # A template without a system role: put the system text at the start of the first user turn.
        first = dict(messages[0], content=system + "\n\n" + messages[0]["content"])
        return tokenizer.apply_chat_template([first, *messages[1:]], tokenize=False, add_generation_prompt=True)


# ------------------------------------------------------------------------------------ options


_SPACE_MARKS = ("Ġ", "▁")  # byte-level BPE, sentencepiece


def _spellings(word: str) -> list[str]:
    cases = [word.lower(), word[:1].upper() + word[1:].lower(), word.upper(), word]
    out: list[str] = []
    for c in cases:
        for s in (c, " " + c):
            if s not in out:
                out.append(s)
    return out


def find_option_tokens(tokenizer, word: str) -> list[int]:
    """Ids of every single-token spelling of ``word``: lower, Title and UPPER case, with and without a
    leading space (``Ġ`` in byte-level BPE, ``▁`` in sentencepiece vocabularies). Empty if none."""
    word = str(word).strip()
    if not word:
        raise ValueError("option word is empty")
    wanted = _spellings(word)
    vocab = tokenizer.get_vocab()
    found: list[int] = []
    for s in wanted:
        candidates = []
        if s.startswith(" "):
            candidates += [vocab.get(m + s[1:]) for m in _SPACE_MARKS]
        candidates.append(vocab.get(s))
        ids = tokenizer(s, add_special_tokens=False)["input_ids"]
        if len(ids) == 1:
            candidates.append(ids[0])
        for tid in candidates:
            if tid is None or tid in found:
                continue
            text = tokenizer.convert_ids_to_tokens(int(tid))
            for m in _SPACE_MARKS:
                text = text.replace(m, " ")
            if text == s:
                found.append(int(tid))
    return found
