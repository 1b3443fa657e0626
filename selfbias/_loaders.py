# Over 600 lines: every question file format (TruthfulQA, GSM8K, ARC, NQ-open, statements, JSONL/CSV, hf datasets) shares row validation.
"""File loaders for the public question formats (TruthfulQA, GSM8K, ARC, NQ-open, true/false
statements) and a generic JSONL/CSV loader with a column mapping.

Loaders return plain dicts of ``Item`` fields; ``selfbias.tasks`` builds the items. Every problem
with a file is one ``TaskError`` naming the file, the 1-based line (the CSV header is line 1; a
quoted multi-line CSV record counts from its first line) and the field.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from selfbias._checkers import normalize_text
from selfbias.errors import TaskError  # TaskError re-exported (defined in errors)


@dataclass(frozen=True)
class SkippedRow:
    """A row left out under ``skip_invalid=True``: its line, the field at fault (None for the
    whole row, e.g. malformed JSON) and the reason."""

    line: int
    field: str | None
    reason: str


class _RowError(Exception):
    def __init__(self, field: str | None, reason: str):
        super().__init__(reason)
        self.field, self.reason = field, reason


@dataclass
class Loaded:
    fmt: str
    rows: list[dict]  # keyword arguments of Item
    skipped: list[SkippedRow]
    sha256: str


FORMATS = {
    "truthfulqa": "TruthfulQA CSV (Type,Category,Question,Best Answer,...; lists '; '-separated); "
                  "correct/incorrect answers become labelled candidates",
    "truthfulqa_mc": "TruthfulQA mc_task.json [{question, mc1_targets, mc2_targets}]: targets "
                     "(answer -> 1/0) become labelled candidates",
    "truthfulqa_mc1": "TruthfulQA mc_task.json as multiple choice: mc1_targets' options (one true), shown "
                      "lettered in a fixed shuffled order (the file lists the true one first)",
    "truthfulqa_mc2": "TruthfulQA mc_task.json as multiple choice: mc2_targets' options (several true), "
                      "shown lettered in a fixed shuffled order; any true option is correct",
    "gsm8k": "GSM8K JSONL {question, answer}; the final answer follows '#### '",
    "arc": "ARC JSONL {id, question, choices: [{label, text}], answerKey}",
    "nq_open": "NQ-open JSONL {question, answer: [...]}",
    "truefalse": "true/false statements CSV 'statement,label' (label 1/0 or true/false)",
    "jsonl": "generic JSONL with a column mapping (default question=question,answer=answer)",
    "csv": "generic CSV with a column mapping (default question=question,answer=answer)",
}
MAPPING_KEYS = ("question", "answer", "distractors", "choices", "labels", "id")


def parse_mapping(text: str) -> dict[str, str]:
    """``"question=q,answer=a,distractors=wrong"`` -> ``{"question": "q", ...}`` (command lines).

    Parameters
    ----------
    text : str
        Comma-separated ``key=column`` pairs. Keys are the Item fields ``question``, ``answer``,
        ``distractors``, ``choices``, ``id``, and ``labels`` (the source's own choice labels, e.g.
        "1", "2", "3"); values are column names (which therefore cannot contain ',' or '=') or, in
        JSONL, dotted paths into nested records: ``choices=choices.text,labels=choices.label``
        (a step through a list of objects takes that key of every object; a key that itself holds
        a dot is taken whole first).

    Returns
    -------
    dict of str to str

    Raises
    ------
    TaskError
        A part that is not ``key=column``, or an unknown key.
    """
    mapping: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        key, eq, column = (s.strip() for s in part.partition("="))
        if not eq or not key or not column:
            raise TaskError(f"mapping {text!r}: expected key=column pairs, got {part!r}")
        mapping[key] = column
    return _check_mapping(mapping, text)


def _check_mapping(mapping: dict, shown: Any) -> dict[str, str]:
    unknown = sorted(set(mapping) - set(MAPPING_KEYS))
    if unknown:
        raise TaskError(f"mapping {shown!r}: unknown key(s) {', '.join(unknown)}; "
                        f"use {', '.join(MAPPING_KEYS)}")
    if "question" not in mapping or "answer" not in mapping:
        raise TaskError(f"mapping {shown!r}: needs both 'question' and 'answer'")
    return {str(k): str(v) for k, v in mapping.items()}


# ---------------------------------------------------------------------------------------------
# reading records


def _read_text(path: Path) -> tuple[str, str]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TaskError("file not found", path=path) from None
    except OSError as e:
        raise TaskError(f"cannot read file ({e.strerror or e})", path=path) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise TaskError(f"not UTF-8 text (byte 0x{data[e.start]:02x})", path=path,
                        line=line) from None
    if not text.strip():
        raise TaskError("file is empty", path=path)
    return text, hashlib.sha256(data).hexdigest()


def _jsonl_records(text: str) -> Iterator[tuple[int, dict | _RowError]]:
    for line, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            yield line, _RowError(None, f"malformed JSON ({e.msg} at column {e.colno})")
            continue
        except (ValueError, RecursionError) as e:  # a number of thousands of digits, nesting thousands deep
            yield line, _RowError(None, _unreadable_json(e))
            continue
        yield line, obj if isinstance(obj, dict) else _RowError(
            None, f"expected a JSON object, got {type(obj).__name__}")


def _unreadable_json(exc: BaseException) -> str:
    """Why valid-looking JSON could not be read: Python's limits on integer digits and on nesting."""
    from ._inputs import json_problem

    return json_problem(exc)


def _lone_surrogate(obj, key: str | None = None) -> tuple[str | None, str] | None:
    """(field, character) of the first lone UTF-16 surrogate in a parsed JSON value, else None."""
    if isinstance(obj, str):
        for ch in obj:
            if "\ud800" <= ch <= "\udfff":
                return key, ch
        return None
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        found = _lone_surrogate(v, k if isinstance(obj, dict) and key is None else key)
        if found is not None:
            return found
    return None


def _csv_records(text: str, path: Path) -> tuple[list[str], Iterator[tuple[int, dict | _RowError]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    previous = 0
    try:
        for row in reader:
            start, previous = previous + 1, reader.line_num
            if any(cell.strip() for cell in row):
                rows.append((start, row))
    except csv.Error as e:
        raise TaskError(f"malformed CSV ({e})", path=path, line=reader.line_num) from None
    if not rows:
        raise TaskError("has no header row", path=path)
    header = [h.strip() for h in rows[0][1]]

    def records():
        for line, row in rows[1:]:
            if len(row) != len(header):
                reason = f"row has {len(row)} fields, the header has {len(header)}"
                yield line, _RowError(None, reason)
            else:
                yield line, dict(zip(header, row))

    return header, records()


def _json_array_records(text: str) -> Iterator[tuple[int, dict | _RowError]] | None:
    """The records of a JSON array file with their 1-based record numbers (errors name the
    record, not the line: mc_task.json is one line); None if the file is not an array."""
    stripped = text.lstrip()
    if not stripped.startswith("["):
        return None
    decoder = json.JSONDecoder()
    pos = len(text) - len(stripped) + 1
    out: list[tuple[int, dict | _RowError]] = []
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return iter(out)
        line = len(out) + 1  # record number: the file is often one line
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            out.append((line, _RowError(None, f"malformed JSON ({e.msg} at line {e.lineno} column {e.colno})")))
            return iter(out)
        except (ValueError, RecursionError) as e:
            out.append((line, _RowError(None, _unreadable_json(e))))
            return iter(out)
        out.append((line, obj if isinstance(obj, dict) else _RowError(
            None, f"expected a JSON object, got {type(obj).__name__}")))


def _is_jsonl(path: Path, text: str) -> bool:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return True
    if suffix == ".csv":
        return False
    return text.lstrip().startswith("{")


def _detect_jsonl(records: list[tuple[int, dict | _RowError]]) -> str:
    objs = [r for _, r in records[:20] if isinstance(r, dict)]
    if any("choices" in o and "answerKey" in o for o in objs):
        return "arc"
    if any(isinstance(o.get("answer"), str) and "#### " in o["answer"] for o in objs):
        return "gsm8k"
    if any(isinstance(o.get("answer"), list) for o in objs):
        return "nq_open"
    return "jsonl"


def _detect_csv(header: list[str]) -> str:
    if header[:3] == ["Type", "Category", "Question"] or {"Question", "Best Answer"} <= set(header):
        return "truthfulqa"
    if {"statement", "label"} <= set(header):
        return "truefalse"
    return "csv"


# ---------------------------------------------------------------------------------------------
# field helpers


def _get(rec: dict, key: str) -> Any:
    if key in rec:
        return rec[key]
    if "." not in key:
        raise _RowError(key, "is missing")
    return _follow(rec, key)


def _follow(rec: dict, path: str) -> Any:
    """The value at a dotted path (``choices.text``): each step takes a key of an object, or that
    key of every object of a list (ARC's ``choices: [{label, text}, ...]`` -> the list of texts)."""
    value: Any = rec
    done: list[str] = []
    for step in path.split("."):
        where = ".".join(done) or "the record"
        if isinstance(value, dict):
            if step not in value:
                raise _RowError(path, f"is missing (no key {step!r} in {where})")
            value = value[step]
        elif isinstance(value, list):
            if not all(isinstance(v, dict) for v in value):
                raise _RowError(path, f"cannot be followed: {where} is a list of "
                                      f"{_kinds_of(value)}, not of objects")
            lacking = [i for i, v in enumerate(value) if step not in v]
            if lacking:
                raise _RowError(path, f"is missing (no key {step!r} in {where}[{lacking[0]}])")
            value = [v[step] for v in value]
        else:
            raise _RowError(path, f"cannot be followed: {where} is a {type(value).__name__}, not an object")
        done.append(step)
    return value


def _has_path(rec: dict, path: str) -> bool:
    try:
        _get(rec, path)
    except _RowError:
        return False
    return True


def _kinds_of(values: list) -> str:
    return "/".join(sorted({type(v).__name__ for v in values})) or "nothing"


def _finite(key: str, value: Any) -> Any:
    """A number from the file is finite (NaN or 1e999 is no answer: it would be stored as "nan"/"inf")."""
    if isinstance(value, float) and not math.isfinite(value):
        raise _RowError(key, f"is {value!r}, not a finite number or a string")
    return value


def _text(rec: dict, key: str) -> str:
    value = _finite(key, _get(rec, key))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _RowError(key, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise _RowError(key, "is empty")
    return value.strip()


def _dedupe(values) -> list[str]:
    seen, out = set(), []
    for v in values:
        v = str(v).strip()
        if v and v not in seen:
            seen.add(v)
            out.append(v)
    return out


def _split(value: str) -> list[str]:
    return _dedupe(value.split(";"))


def _as_list(rec: dict, key: str) -> list[str]:
    """A list-valued field: a JSON list, a JSON-list string, or a ';'-separated string."""
    value = _get(rec, key)
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise _RowError(key, "is not a valid JSON list") from None
    if isinstance(value, str):
        return _split(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [str(_finite(key, value))]
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return _dedupe(_finite(key, v) for v in value)
    if isinstance(value, list):
        hint = (f"; give a path into the objects, e.g. {key}.{'text' if 'text' in value[0] else next(iter(value[0]), 'text')}"
                if value and isinstance(value[0], dict) else "")
        raise _RowError(key, f"must be a list of strings, got a list of {_kinds_of(value)}{hint}")
    raise _RowError(key, f"must be a list of strings, got {type(value).__name__}")


def _without(distractors: list[str], references: list[str]) -> list[str]:
    """Distractors minus any that equal a reference after normalisation (TruthfulQA lists
    'Unknown' on both sides of a few questions)."""
    refs = {normalize_text(r) for r in references}
    return [d for d in distractors if normalize_text(d) not in refs]


def _letters(n: int) -> list[str]:
    return [chr(ord("A") + i) for i in range(n)]


_NUMERIC = re.compile(r"[-\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")


# ---------------------------------------------------------------------------------------------
# row parsers: (record, line, ctx) -> Item kwargs


@dataclass
class _Ctx:
    stem: str
    mapping: dict[str, str] = field(default_factory=dict)

    def auto_id(self, line: int) -> str:
        return f"{self.stem}-{line}"


def _truthfulqa(rec: dict, line: int, ctx: _Ctx) -> dict:
    references = _dedupe([_text(rec, "Best Answer"), *_split(_get(rec, "Correct Answers"))])
    distractors = _dedupe([rec.get("Best Incorrect Answer", ""),
                           *_split(_get(rec, "Incorrect Answers"))])
    meta = {k.lower(): rec[k] for k in ("Type", "Category", "Source") if k in rec}
    # open-ended: the references are different true answers, and a free-form answer that matches
    # neither list cannot be graded by text (selfbias._checkers.grade)
    return dict(id=ctx.auto_id(line), question=_text(rec, "Question"),
                references=references, distractors=_without(distractors, references),
                answer_type="text", meta={**meta, "line": line, "open_ended": True})


def _targets(rec: dict, key: str) -> dict[str, int]:
    value = _get(rec, key)
    if not isinstance(value, dict) or not value:
        raise _RowError(key, "must be a non-empty object {answer: 0 or 1}")
    out = {}
    for answer, label in value.items():
        if label not in (0, 1) or isinstance(label, float) and label != int(label):
            raise _RowError(key, f"label of {answer!r} must be 0 or 1, got {label!r}")
        if str(answer).strip():
            out[str(answer).strip()] = int(label)
    if 1 not in out.values():
        raise _RowError(key, "has no answer labelled 1")
    return out


def _truthfulqa_mc(rec: dict, line: int, ctx: _Ctx) -> dict:
    """TruthfulQA's multiple-choice targets as labelled answers: the mc1 target labelled 1 (the
    best answer) first, then mc2's other true answers; false answers mc1's first, then mc2's."""
    question = _text(rec, "question")
    mc1 = _targets(rec, "mc1_targets")
    mc2 = _targets(rec, "mc2_targets") if "mc2_targets" in rec else {}
    true = _dedupe([a for a, y in mc1.items() if y] + [a for a, y in mc2.items() if y])
    false = _dedupe([a for a, y in mc1.items() if not y] + [a for a, y in mc2.items() if not y])
    both = sorted(set(true) & set(false))
    if both:
        raise _RowError("mc2_targets", f"labels {both[0]!r} both 1 and 0")
    return dict(id=ctx.auto_id(line), question=question, references=true, distractors=false,
                answer_type="text",
                meta={"record": line, "open_ended": True, "mc1_best": [a for a, y in mc1.items() if y][0]})


def _truthfulqa_choices(rec: dict, line: int, ctx: _Ctx, key: str) -> dict:
    """One target set of TruthfulQA as a multiple-choice item (lm-evaluation-harness's mc1 / mc2
    options). The file lists true options first, so the options are shown in an order shuffled by
    the question's own text (fixed: the same file gives the same items); references are every true
    option and its letter."""
    import random

    question = _text(rec, "question")
    targets = _targets(rec, key)
    options = list(targets)
    random.Random(f"truthfulqa:{key}:{question}").shuffle(options)
    letters = _letters(len(options))
    true = [i for i, o in enumerate(options) if targets[o]]
    return dict(id=ctx.auto_id(line), question=question,
                references=[options[i] for i in true] + [letters[i] for i in true],
                distractors=[o for o in options if not targets[o]], choices=options, answer_type="choice",
                meta={"record": line, "targets": key, "order": "shuffled:truthfulqa:<targets>:<question>"})


def _gsm8k(rec: dict, line: int, ctx: _Ctx) -> dict:
    question, answer = _text(rec, "question"), _text(rec, "answer")
    if "#### " not in answer:
        raise _RowError("answer", "has no '#### ' final answer")
    solution, _, final = answer.rpartition("#### ")
    final = final.strip().replace(",", "")
    if not _NUMERIC.fullmatch(final):
        raise _RowError("answer", f"final answer {final!r} is not a number")
    return dict(id=ctx.auto_id(line), question=question, references=[final],
                answer_type="number", meta={"solution": solution.strip(), "line": line})


def _arc(rec: dict, line: int, ctx: _Ctx) -> dict:
    question = _text(rec, "question")
    choices = _get(rec, "choices")
    if not isinstance(choices, list) or len(choices) < 2 or not all(
            isinstance(c, dict) and isinstance(c.get("label"), str)
            and isinstance(c.get("text"), str) and c["text"].strip() for c in choices):
        raise _RowError("choices", "must be a list of at least 2 {label, text} objects with text")
    labels = [c["label"].strip() for c in choices]
    texts = [c["text"].strip() for c in choices]
    key = str(_get(rec, "answerKey")).strip()
    if key not in labels:
        raise _RowError("answerKey", f"{key!r} is not one of the choice labels {', '.join(labels)}")
    k = labels.index(key)
    letters = _letters(len(texts))
    meta: dict[str, Any] = {"answer_key": key, "line": line}
    if labels != letters:
        meta["labels"] = labels
    item_id = str(rec["id"]).strip() if str(rec.get("id") or "").strip() else ctx.auto_id(line)
    return dict(id=item_id, question=question, references=[texts[k], letters[k]],
                distractors=_dedupe(t for i, t in enumerate(texts) if i != k), choices=texts,
                answer_type="choice", meta=meta)


def _nq_open(rec: dict, line: int, ctx: _Ctx) -> dict:
    question, answers = _text(rec, "question"), _as_list(rec, "answer")
    if not answers:
        raise _RowError("answer", "has no answers")
    return dict(id=ctx.auto_id(line), question=question, references=answers,
                answer_type="text", meta={"line": line})


_LABELS = {"1": True, "true": True, "0": False, "false": False}


def _truefalse(rec: dict, line: int, ctx: _Ctx) -> dict:
    statement = _text(rec, "statement")
    label = _LABELS.get(str(_get(rec, "label")).strip().lower())
    if label is None:
        raise _RowError("label", f"must be 1/0 or true/false, got {rec['label']!r}")
    return dict(id=ctx.auto_id(line),
                question=f"Is the following statement true or false? {statement}",
                references=[str(label)], distractors=[str(not label)], answer_type="boolean",
                meta={"statement": statement, "label": int(label), "line": line})


def _optional(rec: dict, path: str) -> Any:
    """An optional column's value: None when absent or null (a dotted path must still lead somewhere
    once its first key is there)."""
    if path in rec:
        return rec[path]
    if "." in path and path.split(".", 1)[0] in rec and rec[path.split(".", 1)[0]] is not None:
        return _follow(rec, path)
    return None


def _generic(rec: dict, line: int, ctx: _Ctx) -> dict:
    m = ctx.mapping
    question = _text(rec, m["question"])
    answers = _as_list(rec, m["answer"])
    if not answers:
        raise _RowError(m["answer"], "is empty")
    # optional list columns may be absent or null in a JSONL record
    distractors, choices, labels = ([] if m.get(key) is None or _optional(rec, m[key]) is None
                                    else _as_list(rec, m[key]) for key in ("distractors", "choices", "labels"))
    item_id = ctx.auto_id(line)
    if "id" in m:
        item_id = _text(rec, m["id"])
    used = set(m.values()) | {v.split(".", 1)[0] for v in m.values()}
    extra = {k: v for k, v in rec.items() if k not in used}
    row = dict(id=item_id, question=question, references=answers, distractors=distractors,
               answer_type="text", meta={"line": line, **({"fields": extra} if extra else {})})
    if labels and not choices:
        raise _RowError(m["labels"], "gives choice labels, but the mapping has no choices")
    if labels and len(labels) != len(choices):
        raise _RowError(m["labels"], f"has {len(labels)} labels for {len(choices)} choices")
    if choices:
        letters, norm = _letters(len(choices)), [normalize_text(c) for c in choices]
        first = answers[0]
        if first in letters:
            k = letters.index(first)
        elif first in labels:
            k = labels.index(first)
        elif normalize_text(first) in norm:
            k = norm.index(normalize_text(first))
        else:
            named = "a choice letter, label" if labels else "a choice letter"
            raise _RowError(m["answer"], f"{first!r} is neither {named} nor a choice text")
        others = [c for i, c in enumerate(choices) if i != k]
        row.update(references=[choices[k], letters[k]], choices=choices, answer_type="choice",
                   distractors=_dedupe(others + distractors))
        if labels and labels != letters:
            row["meta"]["labels"] = labels
    else:
        row["distractors"] = _without(distractors, answers)
    return row


_PARSERS: dict[str, Callable[[dict, int, _Ctx], dict]] = {
    "truthfulqa": _truthfulqa, "truthfulqa_mc": _truthfulqa_mc,
    "truthfulqa_mc1": lambda rec, line, ctx: _truthfulqa_choices(rec, line, ctx, "mc1_targets"),
    "truthfulqa_mc2": lambda rec, line, ctx: _truthfulqa_choices(rec, line, ctx, "mc2_targets"),
    "gsm8k": _gsm8k, "arc": _arc, "nq_open": _nq_open,
    "truefalse": _truefalse, "jsonl": _generic, "csv": _generic,
}
_MC_JSON = ("truthfulqa_mc", "truthfulqa_mc1", "truthfulqa_mc2")
_CSV_COLUMNS = {"truthfulqa": ["Question", "Best Answer", "Correct Answers", "Incorrect Answers"],
                "truefalse": ["statement", "label"]}


def read_file(path: str | Path, *, fmt: str | None = None, mapping: dict | str | None = None,
              skip_invalid: bool = False, answer_type: str | None = None) -> Loaded:
    """Parse a question file into Item kwargs.

    Format: ``fmt`` if given; a ``mapping`` forces the generic loader; otherwise detected from the
    CSV header or the first JSONL records. Generic items without choices are typed
    ``answer_type`` if given, else ``number`` when every reference in the file is a plain number,
    else ``text``.
    """
    path = Path(path)
    if fmt is not None and fmt not in FORMATS:
        raise TaskError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}", path=path)
    if mapping is not None and fmt not in (None, "jsonl", "csv"):
        raise TaskError(f"a mapping needs the generic loader (fmt 'jsonl' or 'csv'), not {fmt!r}",
                        path=path)
    if isinstance(mapping, str):
        mapping = parse_mapping(mapping)
    elif mapping is not None:
        mapping = _check_mapping(dict(mapping), mapping)
    text, sha = _read_text(path)
    array = _json_array_records(text) if fmt in (None, *_MC_JSON) else None
    if fmt in _MC_JSON and array is None:
        raise TaskError(f"format {fmt} needs a JSON array of question objects", path=path, line=1)
    jsonl = fmt in ("gsm8k", "arc", "nq_open", "jsonl") if fmt else _is_jsonl(path, text)
    if fmt and array is None and not jsonl and _is_jsonl(path, text):
        raise TaskError(f"format {fmt!r} reads CSV, but this file holds JSON lines; use a JSONL format "
                        "(gsm8k, arc, nq_open, jsonl) or leave the format out to detect it", path=path)
    if array is not None:
        records = list(array)
        header = None
        if not any(isinstance(r, dict) and "mc1_targets" in r for _, r in records[:20]) and fmt is None:
            raise TaskError("a JSON array file is read only as TruthfulQA mc_task.json "
                            "(objects with mc1_targets); use JSONL for other data", path=path, line=1)
        detected = "truthfulqa_mc"
    elif jsonl:
        records = list(_jsonl_records(text))
        header = None
        detected = "jsonl" if mapping else _detect_jsonl(records)
    else:
        header, records_iter = _csv_records(text, path)
        records = list(records_iter)
        detected = "csv" if mapping else _detect_csv(header)
    fmt = fmt or detected
    if fmt in ("jsonl", "csv"):
        seen = set(header) if header is not None else {
            k for _, r in records if isinstance(r, dict) for k in r}
        mapping = mapping or {"question": "question", "answer": "answer",
                              **{k: k for k in ("distractors", "choices", "id") if k in seen}}
        objs = [r for _, r in records if isinstance(r, dict)]
        for column in mapping.values():
            if column not in seen and header is None and records and not objs:  # no record could be read: say why
                line, error = records[0]
                raise TaskError(error.reason, path=path, line=line)
            if column not in seen and (header is not None or "." not in column
                                       or not any(_has_path(r, column) for r in objs)):
                if header is not None and "." in column:
                    raise TaskError(f"is missing from the header (columns: {', '.join(header)}); dotted "
                                    "paths reach into nested JSON records, not CSV columns",
                                    path=path, line=1, field=column)
                where = (f"the header (columns: {', '.join(header)})" if header is not None
                         else f"every record (keys: {', '.join(sorted(seen))})")
                if header is None and "." in column and objs:  # say where the path stops, in the first record
                    first = next(line for line, r in records if isinstance(r, dict))
                    try:
                        _follow(objs[0], column)
                    except _RowError as e:
                        raise TaskError(f"{e.reason}; no record has it", path=path, line=first,
                                        field=column) from None
                raise TaskError(f"is missing from {where}",
                                path=path, line=1 if header is not None else None, field=column)
    for column in _CSV_COLUMNS.get(fmt, []) if header is not None else []:
        if column not in header:
            raise TaskError(f"is missing from the header (columns: {', '.join(header)})",
                            path=path, line=1, field=column)

    ctx, parse = _Ctx(stem=path.stem, mapping=mapping or {}), _PARSERS[fmt]
    rows, skipped, first_line = [], [], {}
    for line, rec in records:
        try:
            if isinstance(rec, _RowError):
                raise rec
            bad = _lone_surrogate(rec)
            if bad is not None:  # valid JSON, but not Unicode text: it would fail much later, far from here
                raise _RowError(bad[0], f"holds a lone surrogate escape (\\u{ord(bad[1]):04x}), which is not text")
            row = parse(rec, line, ctx)
            if row["id"] in first_line:
                raise _RowError(mapping.get("id") if mapping else "id",
                                f"repeats id {row['id']!r} of line {first_line[row['id']]}")
        except _RowError as e:
            if not skip_invalid:
                if array is not None:
                    raise TaskError(e.reason, path=path, record=line, field=e.field) from None
                raise TaskError(e.reason, path=path, line=line, field=e.field) from None
            skipped.append(SkippedRow(line, e.field, e.reason))
            continue
        first_line[row["id"]] = line
        rows.append(row)
    if not rows:
        raise TaskError(f"no valid items ({len(skipped)} rows skipped)", path=path)
    if fmt in ("jsonl", "csv"):
        plain = [r for r in rows if r["answer_type"] == "text"]
        numeric = all(_NUMERIC.fullmatch(ref) for r in plain for ref in r["references"])
        for r in plain:
            r["answer_type"] = answer_type or ("number" if numeric else "text")
    return Loaded(fmt=fmt, rows=rows, skipped=skipped, sha256=sha)


# ---------------------------------------------------------------------------------------------
# Hugging Face `datasets` data on disk: `hf:PATH[:split]`

HF_DATA_FILES = {".parquet": "parquet", ".arrow": "arrow", ".jsonl": "json", ".json": "json", ".csv": "csv"}
_HF_RECORD_FORMATS = ("gsm8k", "arc", "nq_open", "jsonl")  # the formats that read records (not CSV text)


def split_hf_spec(spec: str) -> tuple[Path, str | None]:
    """``"hf:PATH[:split]"`` -> (PATH, split or None); PATH must exist on disk.

    Parameters
    ----------
    spec : str
        A task spec starting with ``hf:``. A PATH that itself ends in ``:name`` and exists wins over
        reading ``name`` as the split.

    Returns
    -------
    (Path, str or None)

    Raises
    ------
    TaskError
        No such folder or file (the hub is never asked: a dataset is read from disk only).
    """
    body = str(spec)[3:]
    if not body:
        raise TaskError("hf: needs a path: hf:PATH or hf:PATH:SPLIT")
    if Path(body).exists():
        return Path(body), None
    head, sep, split = body.rpartition(":")
    if sep and head and split and Path(head).exists():
        return Path(head), split
    raise TaskError(f"{spec}: no such dataset folder or data file; selfbias reads Hugging Face datasets from "
                    "disk only (a folder written by Dataset.save_to_disk / DatasetDict.save_to_disk, or local "
                    "Parquet, Arrow, JSON(L) or CSV files); where the hub is reachable, "
                    "datasets.load_dataset(NAME).save_to_disk(PATH) first")


def _hf_splits(path: Path, cache_dir: str):
    """The splits of a dataset on disk as {split: datasets.Dataset}."""
    import datasets

    was_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # its per-split bars would interleave with selfbias's own lines
    try:
        return _hf_read(datasets, path, cache_dir)
    finally:
        if was_on:
            datasets.enable_progress_bars()


def _hf_read(datasets, path: Path, cache_dir: str):
    if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists()):
        loaded = datasets.load_from_disk(str(path))
        return dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in HF_DATA_FILES and p.is_file())
        if not files:
            raise TaskError(f"holds no saved dataset (dataset_dict.json or state.json) and no data files "
                            f"({', '.join(HF_DATA_FILES)})", path=path)
        # datasets' own rules name the splits of a folder of data files (train-*.parquet, data/test.jsonl, ...)
        return dict(datasets.load_dataset(str(path), cache_dir=cache_dir))
    builder = HF_DATA_FILES.get(path.suffix.lower())
    if builder is None:
        raise TaskError(f"is not a data file datasets reads ({', '.join(HF_DATA_FILES)}) nor a dataset folder",
                        path=path)
    return dict(datasets.load_dataset(builder, data_files={"train": [str(path)]}, cache_dir=cache_dir))


def read_hf(spec: str, *, fmt: str | None = None, mapping: dict | str | None = None,
            skip_invalid: bool = False, answer_type: str | None = None) -> tuple[Loaded, str, str]:
    """Read ``hf:PATH[:split]`` (a dataset saved with ``save_to_disk``, or local data files) through
    the ``datasets`` library into Item kwargs, as :func:`read_file` reads a JSONL file.

    The split's records go through the same format detection (GSM8K, ARC, NQ-open) and column
    ``mapping`` as a JSONL file. Errors name ``hf:PATH:split`` and the 1-based record. The hub is never
    asked; the loader's cache is a temporary folder, removed after reading.

    Parameters
    ----------
    spec : str
        ``hf:PATH`` or ``hf:PATH:SPLIT``. Without a split, a dataset with one split is read whole;
        one with several must name one.
    fmt, mapping, skip_invalid, answer_type
        As for :func:`read_file` (``fmt``: one of the record formats gsm8k, arc, nq_open, jsonl).

    Returns
    -------
    (Loaded, str, str)
        The rows (``sha256``: of the records as read, one JSON line each), the id stem
        (``<folder or file stem>-<split>``) and the resolved source ``hf:<absolute path>:<split>``.

    Raises
    ------
    TaskError
        No such path, no `datasets` library, an unknown or unnamed split, or a bad record.
    """
    import tempfile

    path, split = split_hf_spec(spec)
    if fmt is not None and fmt not in _HF_RECORD_FORMATS:
        raise TaskError(f"{spec}: format {fmt!r} reads CSV text; a dataset's records read as one of "
                        f"{', '.join(_HF_RECORD_FORMATS)} (or give a --mapping)")
    try:
        import datasets  # noqa: F401
    except ImportError:
        raise TaskError(f"{spec}: hf: tasks need the datasets library: pip install 'selfbias[hf]'") from None
    with tempfile.TemporaryDirectory(prefix="selfbias-hf-") as tmp:
        try:
            splits = _hf_splits(path, cache_dir=tmp)
        except TaskError:
            raise
        except Exception as e:  # noqa: BLE001 - datasets' errors vary by version: one line naming the path
            raise TaskError(f"datasets cannot read it ({type(e).__name__}: {' '.join(str(e).split())[:300]})",
                            path=path) from None
        if split is None:
            if len(splits) != 1:
                raise TaskError(f"{spec}: has splits {', '.join(splits)}; name one, e.g. hf:{path}:{next(iter(splits))}")
            split = next(iter(splits))
        if split not in splits:
            raise TaskError(f"{spec}: no split {split!r}; the dataset has {', '.join(splits)}")
        records = splits[split].to_list()
        if not records:
            raise TaskError(f"{spec}: split {split!r} has no records")
        text = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records)
        stem = f"{path.stem if path.is_file() else path.name}-{split}"
        source = f"hf:{path.resolve()}:{split}"
        jsonl = Path(tmp) / f"{stem}.jsonl"
        jsonl.write_text(text, encoding="utf-8")
        try:
            loaded = read_file(jsonl, fmt=fmt, mapping=mapping, skip_invalid=skip_invalid, answer_type=answer_type)
        except TaskError as e:  # the temporary file's line n is the split's record n
            raise TaskError(e.reason, path=f"hf:{path}:{split}", record=e.line, field=e.field) from None
    loaded.sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return loaded, stem, source
