"""Answer checkers: decide whether a free-form answer is correct for an item.

Every checker has the signature ``(answer: str, item) -> bool`` and reads only ``item.references``,
``item.distractors``, ``item.choices`` and ``item.meta``, so any object with those attributes works.
"""

from __future__ import annotations

import importlib
import re
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

from .errors import InputError

# ---------------------------------------------------------------------------------------------
# numbers

_SIGN = r"(?:(?<![\w.])[-\u2212])?"  # a minus counts only when it does not follow a word ("5-3")
_NUMBER = re.compile(
    _SIGN + r"\$?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?"  # 1,234,567.89 | 42 | 3.5
    r"|" + _SIGN + r"\$?\.\d+"  # .5
)
_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate(
    "twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2)}
_SCALES = {"thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_NUMBER_WORDS = set(_UNITS) | set(_TENS) | set(_SCALES) | {"hundred"}


def _words_to_number(text: str) -> Decimal | None:
    """The last run of spelled-out number words ("forty-two", "one hundred and five"), if any."""
    tokens = re.findall(r"[a-z]+", text.lower().replace("-", " "))
    runs: list[list[str]] = []
    previous_was_number = False
    for i, tok in enumerate(tokens):
        inside_run = tok == "and" and previous_was_number and i + 1 < len(tokens) \
            and tokens[i + 1] in _NUMBER_WORDS
        if tok in _NUMBER_WORDS:
            if not previous_was_number:
                negative = i > 0 and tokens[i - 1] in ("minus", "negative")
                runs.append(["-"] if negative else [])
            runs[-1].append(tok)
            previous_was_number = True
        elif not inside_run:
            previous_was_number = False
    if not runs:
        return None
    total, current, sign = 0, 0, 1
    for tok in runs[-1]:
        if tok == "-":
            sign = -1
        elif tok in _UNITS:
            current += _UNITS[tok]
        elif tok in _TENS:
            current += _TENS[tok]
        elif tok == "hundred":
            current = max(current, 1) * 100
        else:
            total += max(current, 1) * _SCALES[tok]
            current = 0
    return Decimal(sign * (total + current))


def parse_number(text: str) -> Decimal | None:
    """The final number in ``text`` as a Decimal, or None.

    Tolerates negatives ("-5", "\u22125"), thousands separators ("1,234"), decimals, a leading "$",
    surrounding words and a trailing period ("The answer is 42."). Spelled-out numbers
    ("forty-two") are used only when the text has no digits.

    Parameters
    ----------
    text : str
        Free text.

    Returns
    -------
    Decimal or None
        The number, or None when the text holds none.
    """
    matches = _NUMBER.findall(str(text))
    if not matches:
        return _words_to_number(str(text))
    raw = matches[-1].replace(",", "").replace("$", "").replace("\u2212", "-")
    try:
        return Decimal(raw)
    except InvalidOperation:  # pragma: no cover - the regex only matches valid decimals
        return None


def check_number(answer: str, item: Any) -> bool:
    """True when the final number in the answer equals a reference number (exactly, as decimals).

    Parameters
    ----------
    answer : str
        The model's (extracted) answer.
    item : Item
        The question (any object with ``references``, ``distractors``, ``choices``, ``meta``, ``answer_type``).

    Returns
    -------
    bool
    """
    value = parse_number(answer)
    if value is None:
        return False
    return any(value == ref for ref in map(parse_number, item.references) if ref is not None)


# ---------------------------------------------------------------------------------------------
# text

_ARTICLES = {"a", "an", "the"}
_NEGATIONS = {"not", "no", "never", "neither", "nor", "cannot", "isnt", "arent", "wasnt", "dont",
              "doesnt", "didnt", "cant", "wont"}
SPAN_SLACK = 8  # words an answer may have besides the reference for the span rule


def normalize_text(text: str) -> str:
    """Lower-case, strip accents, drop punctuation and the articles a/an/the, squeeze whitespace.

    Hyphens, dashes and slashes become spaces ("Port-au-Prince" = "Port au Prince"); other
    punctuation is deleted ("Washington, D.C." = "Washington DC", "N'Djamena" = "NDjamena").

    Parameters
    ----------
    text : str
        Free text.

    Returns
    -------
    str
        The normalised text (what the text checker compares).
    """
    text = unicodedata.normalize("NFKD", str(text))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"[-\u2010-\u2015/]", " ", text)
    text = "".join(c for c in text if c == " " or unicodedata.category(c)[0] not in "PS")
    return " ".join(w for w in text.split() if w not in _ARTICLES)


def _contains_span(words: list[str], span: list[str]) -> bool:
    n = len(span)
    return n > 0 and any(words[i:i + n] == span for i in range(len(words) - n + 1))


def check_text(answer: str, item: Any) -> bool:
    """Normalised exact match against any reference (aliases are references), plus a span rule.

    Span rule: a short answer (at most ``SPAN_SLACK`` words besides the reference, after
    normalisation) is also correct when a normalised reference appears in it as a whole-word span
    ("The capital is Paris."), unless it also contains a distractor span or a negation word
    (not, no, never, ...), which would make it ambiguous ("Paris or Lyon", "not Paris").

    Parameters
    ----------
    answer : str
        The model's (extracted) answer.
    item : Item
        The question (any object with ``references``, ``distractors``, ``choices``, ``meta``, ``answer_type``).

    Returns
    -------
    bool
    """
    norm = normalize_text(answer)
    refs = [normalize_text(r) for r in item.references]
    if not norm:
        return False
    if norm in refs:
        return True
    words = norm.split()
    hits = [r.split() for r in refs if _contains_span(words, r.split())]
    if not hits:
        return False
    longest = max(hits, key=len)
    if len(words) > len(longest) + SPAN_SLACK or (_NEGATIONS & set(words)) - set(longest):
        return False
    distractors = [normalize_text(d).split() for d in getattr(item, "distractors", ())]
    return not any(_contains_span(words, d) and not any(_contains_span(h, d) for h in hits)
                   for d in distractors)


# ---------------------------------------------------------------------------------------------
# multiple choice

def _labels(item: Any) -> list[str]:
    return [chr(ord("A") + i) for i in range(len(item.choices))]


def _extra_labels(item: Any) -> list[str]:
    """The source's own labels when they differ from A, B, C (ARC has some 1, 2, 3, 4)."""
    meta = getattr(item, "meta", None) or {}
    labels = [str(label) for label in meta.get("labels", [])]
    return labels if len(labels) == len(item.choices) else []


def correct_choice(item: Any) -> int | None:
    """Index of the correct choice: a reference that is a label, else a reference choice text.

    Parameters
    ----------
    item : Item
        A multiple-choice question (``choices``; labels A, B, C or the source's own in ``meta["labels"]``).

    Returns
    -------
    int or None
        The index in ``item.choices``, or None when no reference names a choice.
    """
    for labels in (_labels(item), _extra_labels(item)):
        for ref in item.references:
            if ref in labels:
                return labels.index(ref)
    texts = [normalize_text(c) for c in item.choices]
    for ref in item.references:
        if normalize_text(ref) in texts:
            return texts.index(normalize_text(ref))
    return None


def chosen_index(answer: str, item: Any) -> int | None:
    """Which choice an answer picks: "B", "(b)", "B) text", "Answer: B", or a choice's text.

    Parameters
    ----------
    answer : str
        The model's (extracted) answer.
    item : Item
        The question (any object with ``references``, ``distractors``, ``choices``, ``meta``, ``answer_type``).

    Returns
    -------
    int or None
        The index in ``item.choices``, or None when the answer picks no single choice (a choice
        contained in another matching choice does not count).
    """
    text = str(answer).strip()
    for labels in (_labels(item), _extra_labels(item)):
        if not labels:
            continue
        alt = "|".join(re.escape(label) for label in labels)
        lone = re.fullmatch(rf"\(?({alt})\)?[.):]?", text, flags=re.IGNORECASE)
        lead = re.match(rf"\(?({alt})[).:](?:\s|$)", text)
        said = re.search(rf"\b(?i:answer|option|choice)\s*(?:is|:)?\s*\(?({alt})\b", text)
        for m in (lone, lead, said):
            if m:
                return [label.upper() for label in labels].index(m.group(1).upper())
    norm = normalize_text(text)
    texts = [normalize_text(c) for c in item.choices]
    if norm in texts:
        return texts.index(norm)
    words = norm.split()
    hits = [i for i, t in enumerate(texts) if _contains_span(words, t.split())]
    # a choice contained in another matching choice ("heat" in "heat and light") does not count
    hits = [i for i in hits if not any(j != i and _contains_span(texts[j].split(), texts[i].split())
                                       for j in hits)]
    return hits[0] if len(hits) == 1 else None


def correct_choices(item: Any) -> set[int]:
    """Indices of every correct choice: each choice whose letter, source label or text is a reference.

    One index for ARC and TruthfulQA mc1; several for TruthfulQA mc2, where more than one option is true.

    Parameters
    ----------
    item : Item
        A multiple-choice question.

    Returns
    -------
    set of int
        Empty when no reference names a choice.
    """
    refs = {str(r) for r in item.references}
    norm_refs = {normalize_text(r) for r in refs}
    out = {i for labels in (_labels(item), _extra_labels(item)) for i, label in enumerate(labels) if label in refs}
    out |= {i for i, c in enumerate(item.choices) if normalize_text(c) in norm_refs}
    return out


def check_choice(answer: str, item: Any) -> bool:
    """True when the answer picks a correct choice, by letter (or source label) or by text.

    Parameters
    ----------
    answer : str
        The model's (extracted) answer.
    item : Item
        The question (any object with ``references``, ``distractors``, ``choices``, ``meta``, ``answer_type``).

    Returns
    -------
    bool
    """
    picked = chosen_index(answer, item)
    return picked is not None and picked in correct_choices(item)


# ---------------------------------------------------------------------------------------------
# boolean

# tiers: the first tier present in the answer decides ("The correct answer is false" -> False)
_BOOLEAN_TIERS = (({"true"}, {"false"}), ({"yes"}, {"no"}),
                  ({"correct", "right"}, {"incorrect", "wrong"}))


def parse_boolean(text: str) -> bool | None:
    """True/False from "True", "yes.", "The statement is false", "not true"; None if unclear.

    The first tier present decides: true/false, then yes/no, then correct/right vs incorrect/wrong;
    "not" before a word flips it; both values in one tier is unclear.

    Parameters
    ----------
    text : str
        Free text.

    Returns
    -------
    bool or None
    """
    words = re.findall(r"[a-z]+", str(text).lower())
    for true_words, false_words in _BOOLEAN_TIERS:
        found = set()
        for i, w in enumerate(words):
            if w in true_words or w in false_words:
                value = w in true_words
                found.add(not value if i > 0 and words[i - 1] == "not" else value)
        if found:
            return found.pop() if len(found) == 1 else None
    return None


def check_boolean(answer: str, item: Any) -> bool:
    """True when the answer's truth value (:func:`parse_boolean`) equals the first reference's.

    Parameters
    ----------
    answer : str
        The model's (extracted) answer.
    item : Item
        The question (any object with ``references``, ``distractors``, ``choices``, ``meta``, ``answer_type``).

    Returns
    -------
    bool
    """
    value = parse_boolean(answer)
    return value is not None and value == parse_boolean(item.references[0])


# ---------------------------------------------------------------------------------------------
# dispatch

CHECKERS: dict[str, Callable[[str, Any], bool]] = {
    "number": check_number,
    "text": check_text,
    "choice": check_choice,
    "boolean": check_boolean,
}
_ALIASES = {"numeric": "number", "exact": "text", "mc": "choice", "bool": "boolean"}


def check_answer(answer: str, item: Any) -> bool:
    """The default checker: picks the checker for ``item.answer_type`` (:data:`CHECKERS`).

    Parameters
    ----------
    answer : str
        The model's (extracted) answer.
    item : Item
        The question (any object with ``references``, ``distractors``, ``choices``, ``meta``, ``answer_type``).

    Returns
    -------
    bool
    """
    return CHECKERS[item.answer_type](answer, item)


def resolve_checker(spec: str | Callable | None) -> Callable[[str, Any], bool]:
    """A checker from a name, an import path or a callable.

    Parameters
    ----------
    spec : str or callable or None
        None or ``"auto"`` (by answer type: :func:`check_answer`), a name (number, text, choice,
        boolean, or the aliases numeric, exact, mc, bool), ``"package.module:function"``, or any
        callable ``(answer, item) -> bool``.

    Returns
    -------
    callable
        ``(answer, item) -> bool``.

    Raises
    ------
    ValueError
        An unknown name, or an import path that cannot be imported.
    """
    if spec is None or spec == "auto":
        return check_answer
    if callable(spec):
        return spec
    name = _ALIASES.get(spec, spec)
    if name in CHECKERS:
        return CHECKERS[name]
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise InputError(f"checker {spec!r} cannot be imported ({e})") from None
    raise InputError(f"unknown checker {spec!r}; use one of {', '.join(CHECKERS)}, auto, "
                     "'module:function' or a callable (answer, item) -> bool")


# ---------------------------------------------------------------------------------------------
# grading with "cannot tell", and equivalence of two answers


def open_ended(item: Any) -> bool:
    """Whether an item's references are different correct answers, not spellings of one (TruthfulQA).

    An answer to such an item that matches neither a reference nor a known wrong answer cannot be graded.

    Parameters
    ----------
    item : Item
        The question (``meta["open_ended"]`` marks it).

    Returns
    -------
    bool
    """
    return bool((getattr(item, "meta", None) or {}).get("open_ended"))


def _with_references(item: Any, references, distractors=()) -> Any:
    """``item`` with other references and distractors (an Item copy, or a plain namespace)."""
    import dataclasses
    from types import SimpleNamespace

    refs, dis = tuple(references), tuple(distractors)
    if dataclasses.is_dataclass(item):
        return dataclasses.replace(item, references=refs, distractors=dis)
    return SimpleNamespace(references=refs, distractors=dis, choices=tuple(getattr(item, "choices", ())),
                           meta=dict(getattr(item, "meta", None) or {}),
                           answer_type=getattr(item, "answer_type", "text"))


def grade(answer: str | None, item: Any, checker: Callable[[str, Any], bool] = check_answer) -> bool | None:
    """True (the checker accepts it), False, or None for "cannot tell".

    Closed items (numbers, choices, a capital): whatever the checker does not accept is wrong.
    Open-ended items (:func:`open_ended`): an answer is wrong only when the checker accepts it
    against the item's known wrong answers (its distractors); anything else is ungraded (None),
    since a free-form answer can be right in words no reference uses (TruthfulQA; Lin et al. 2022
    grade such answers with human raters or a trained judge, which this package does not have).

    Parameters
    ----------
    answer : str
        The model's (extracted) answer.
    item : Item
        The question (any object with ``references``, ``distractors``, ``choices``, ``meta``, ``answer_type``).
    checker : callable
        ``(answer, item) -> bool`` (default :func:`check_answer`).

    Returns
    -------
    bool or None
        None only for open-ended items; an empty answer is False.
    """
    if answer is None or not str(answer).strip():
        return False
    if checker(str(answer), item):
        return True
    if not open_ended(item):
        return False
    wrong = tuple(getattr(item, "distractors", ()))
    if wrong and checker(str(answer), _with_references(item, wrong, getattr(item, "references", ()))):
        return False
    return None


def equivalent(a: str, b: str, item: Any, checker: Callable[[str, Any], bool] = check_answer) -> bool:
    """Do ``a`` and ``b`` say the same thing under the task's checker?

    Mutual acceptance: each is accepted when the other is the item's only reference ("8" and
    "8.0"; "Chisinau" and "Chi\u0219in\u0103u"). Choices (default checker): the same choice picked
    ("(b)", "B" and the text of choice B). One-way acceptance is not enough: "The capital is
    Paris" is accepted against "Paris" but says more. The probe merges equivalent answers into one
    candidate.

    Parameters
    ----------
    a, b : str
        Two answers.
    item : Item
        The question they answer.
    checker : callable
        ``(answer, item) -> bool`` (default :func:`check_answer`).

    Returns
    -------
    bool
    """
    if a == b:
        return True
    if checker in (check_answer, check_choice) and getattr(item, "answer_type", None) == "choice" and item.choices:
        # a label is not a reference spelling ("(b)"); both answers pick a choice or neither does
        picked = chosen_index(a, item), chosen_index(b, item)
        if None not in picked:
            return picked[0] == picked[1]
    return bool(checker(a, _with_references(item, (b,)))) and bool(checker(b, _with_references(item, (a,))))
