"""Evaluation logs of other frameworks as a task and graded answers.

Two formats, read without their libraries (the files are plain JSON):

* lm-evaluation-harness samples logs (``--log_samples``: ``samples_<task>_<time>.jsonl``, one
  record a line, optionally gzipped): ``doc_id``, ``doc``, ``target``, ``arguments``, ``resps``,
  ``filtered_resps``, ``filter``, ``metrics`` and each metric's value. Generation tasks give the
  filtered response as the model's answer; log-likelihood (multiple-choice) tasks give the choice
  with the highest log-likelihood, the continuations being the choices.
* inspect_ai logs (``.eval``: a zip of ``header.json`` and ``samples/<id>_epoch_<n>.json``; or
  ``.json``: one object with ``eval`` and ``samples``): ``input``, ``target``, ``choices``,
  ``output.completion`` and ``scores`` (``C``/``I``/``P``/``N``, numbers or booleans).

:func:`read_eval_log` returns an :class:`EvalLog`: the questions as a :class:`selfbias.tasks.Task`
(so ``selfbias probe --task log:PATH`` runs them) and the logged answers with their grades, as
the run's ``candidates`` table shapes them (:meth:`EvalLog.candidates`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ._loaders import TaskError
from .tasks import Item, Task

__all__ = ["EvalLog", "read_eval_log", "read_lm_eval_samples", "read_inspect_log"]

#: lm-eval metrics that grade one answer 1 (right) or 0 (wrong), in the order looked for.
LM_EVAL_METRICS = ("exact_match", "acc", "em", "acc_norm", "pass@1", "correct")
#: inspect_ai's score letters (inspect_ai.scorer: CORRECT, INCORRECT, PARTIAL, NOANSWER).
INSPECT_VALUES = {"C": True, "I": False, "P": None, "N": False}


@dataclass(frozen=True)
class EvalLog:
    """A framework's evaluation log as a task and the graded answers in it.

    Attributes
    ----------
    task : Task
        One item per logged question (references from the log's targets).
    answers : pandas.DataFrame
        One row per logged answer: ``item_id``, ``model`` (the evaluated model, where the log
        names it), ``answer``, ``grade`` (the log's value, as text), ``correct`` (nullable
        boolean: NA for partial credit or an unreadable grade), ``scorer`` (the metric or scorer
        that graded it), ``variant`` (lm-eval's filter, inspect's epoch).
    framework : str
        ``lm-eval`` or ``inspect_ai``.
    model : str or None
        The evaluated model as the log names it.
    source : str
        The log file.
    """

    task: Task
    answers: pd.DataFrame
    framework: str
    model: str | None
    source: str

    def candidates(self) -> pd.DataFrame:
        """The logged answers in the shape of a run's ``candidates`` table (``source`` "logged",
        ``authors`` the evaluated model, ``correct`` the log's grade), one row per distinct answer
        text of an item (the first grade seen is kept; empty answers are left out).

        Returns
        -------
        pandas.DataFrame
            ``item_id, candidate_id, text, source, sources, authors, correct, spellings``.
        """
        rows, seen = [], set()
        author = self.model or self.framework
        for row in self.answers.itertuples():
            text = " ".join(str(row.answer).split())
            if not text or (row.item_id, text) in seen:
                continue
            seen.add((row.item_id, text))
            k = sum(1 for r in rows if r["item_id"] == row.item_id)
            rows.append({"item_id": row.item_id, "candidate_id": f"{row.item_id}#logged{k}", "text": text,
                         "source": "logged", "sources": ["logged"], "authors": [author],
                         "correct": row.correct, "spellings": [text]})
        frame = pd.DataFrame(rows, columns=["item_id", "candidate_id", "text", "source", "sources", "authors",
                                            "correct", "spellings"])
        frame["correct"] = frame["correct"].astype("boolean")
        return frame


def _grade(value: Any) -> bool | None:
    """A logged grade as True/False, or None for partial credit and values that say neither."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return None
        return True if value == 1 else False if value == 0 else None
    if isinstance(value, str):
        letter = value.strip().upper()
        if letter in INSPECT_VALUES:
            return INSPECT_VALUES[letter]
        try:
            return _grade(float(letter))
        except ValueError:
            return None
    return None


def _text(value: Any) -> str:
    """Message content as text: a string, or inspect/OpenAI content parts [{type: text, text}]."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(_text(v.get("text", "") if isinstance(v, dict) else v) for v in value)
    if isinstance(value, dict):
        return _text(value.get("content", value.get("text", "")))
    return "" if value is None else str(value)


def _final(target: str) -> str:
    """GSM8K-style targets hold the worked answer: the part after the last '#### '."""
    return target.rpartition("#### ")[2].strip().replace(",", "") if "#### " in target else target.strip()


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["item_id", "model", "answer", "grade", "correct", "scorer", "variant"])
    frame["correct"] = frame["correct"].astype("boolean")
    return frame


def _answer_type(references: list[str], choices: list[str]) -> str:
    if choices:
        return "choice"
    number = re.compile(r"-?\d+(?:\.\d+)?")
    return "number" if references and all(number.fullmatch(r) for r in references) else "text"


# ---------------------------------------------------------------------------------------------- lm-eval


def _lm_eval_records(path: Path) -> list[tuple[int, dict]]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            lines = fh.read().split("\n")
    except OSError as e:
        raise TaskError(f"cannot read ({e.strerror or e})", path=path) from None
    out = []
    for line, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError as e:
            raise TaskError(f"malformed JSON ({e.msg} at column {e.colno})", path=path, line=line) from None
        if not isinstance(rec, dict) or "doc_id" not in rec:
            raise TaskError("not an lm-eval samples record (no doc_id)", path=path, line=line)
        out.append((line, rec))
    if not out:
        raise TaskError("has no samples", path=path)
    return out


def _arguments(rec: dict) -> list[list]:
    """``arguments`` as a list of argument lists: lm-eval writes ``[[ctx, cont], ...]`` (older) or
    ``{"gen_args_0": {"arg_0": ctx, "arg_1": cont}, ...}`` (0.4.3 and later)."""
    args = rec.get("arguments") or []
    if isinstance(args, dict):
        return [[v for _, v in sorted(a.items())] if isinstance(a, dict) else [a]
                for _, a in sorted(args.items(), key=lambda kv: int(re.sub(r"\D", "", kv[0]) or 0))]
    return [a if isinstance(a, list) else [a] for a in args]


def _question(doc: Any, prompt: str) -> str:
    if isinstance(doc, dict):
        for key in ("question", "problem", "query", "input", "prompt", "text"):
            if isinstance(doc.get(key), str) and doc[key].strip():
                return doc[key].strip()
    return prompt.strip()


def _metric(rec: dict) -> tuple[str | None, Any]:
    names = [m for m in rec.get("metrics") or [] if m in rec] or [m for m in LM_EVAL_METRICS if m in rec]
    return (names[0], rec[names[0]]) if names else (None, None)


def read_lm_eval_samples(path: str | Path, *, model: str | None = None) -> EvalLog:
    """Read an lm-evaluation-harness samples log (``samples_<task>_<time>.jsonl[.gz]``).

    Parameters
    ----------
    path : str or Path
        The samples file.
    model : str or None
        The evaluated model's name (the samples file does not hold it; the results file beside it
        does): default the ``model_name`` or ``pretrained=`` of a ``results_*.json`` in the same
        folder, else None.

    Returns
    -------
    EvalLog
        Items ``<task>-<doc_id>``: the doc's question (else the prompt), the target as reference
        (a GSM8K worked target: its final answer), the choices of log-likelihood tasks; answers:
        the filtered response (generation) or the likeliest choice (log-likelihood), graded by the
        record's first metric (``exact_match``, ``acc``, ...).

    Raises
    ------
    TaskError
        Not a samples log, or a record without a target.
    """
    path = Path(path)
    records = _lm_eval_records(path)
    stem = re.sub(r"^samples_", "", path.name.split(".jsonl")[0])
    stem = re.sub(r"_\d{4}-\d{2}-\d{2}T[\d\-:.]+$", "", stem)
    model = model or _lm_eval_model(path.parent)
    items: dict[str, Item] = {}
    rows = []
    for line, rec in records:
        item_id = f"{stem}-{rec['doc_id']}"
        if "target" not in rec:
            raise TaskError("has no target", path=path, line=line, field="target")
        args = _arguments(rec)
        responses = rec.get("filtered_resps", rec.get("resps"))
        loglikelihood = bool(args) and all(len(a) >= 2 and isinstance(a[1], str) for a in args) and \
            isinstance(responses, list) and all(isinstance(r, (list, float, int)) and not isinstance(r, bool)
                                                for r in responses) and len(responses) == len(args) > 1
        prompt = _text(args[0][0]) if args and args[0] else ""
        target = rec["target"]
        if loglikelihood:
            choices = [str(a[1]).strip() for a in args]
            lls = [float(r[0] if isinstance(r, list) else r) for r in responses]
            answer = choices[max(range(len(lls)), key=lls.__getitem__)]
            if isinstance(target, int) or (isinstance(target, str) and target.strip().isdigit()):
                k = int(target)
            elif str(target).strip() in choices:
                k = choices.index(str(target).strip())
            else:
                raise TaskError(f"target {target!r} is neither a choice index nor a choice", path=path, line=line,
                                field="target")
            references = [choices[k], chr(ord("A") + k)]
        else:
            choices = []
            texts = target if isinstance(target, list) else [target]
            references = [_final(str(t)) for t in texts if str(t).strip()]
            first = responses[0] if isinstance(responses, list) and responses else responses
            while isinstance(first, list):  # resps nest one list per request
                first = first[0] if first else ""
            answer = _text(first).strip()
        if not references:
            raise TaskError("has an empty target", path=path, line=line, field="target")
        if item_id not in items:
            items[item_id] = Item(id=item_id, question=_question(rec.get("doc"), prompt), references=references,
                                  distractors=[c for c in choices if c != references[0]], choices=choices,
                                  answer_type=_answer_type(references, choices),
                                  meta={"doc_id": rec["doc_id"], "line": line})
        scorer, value = _metric(rec)
        rows.append({"item_id": item_id, "model": model, "answer": answer, "grade": None if value is None else str(value),
                     "correct": _grade(value), "scorer": scorer, "variant": rec.get("filter")})
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    task = Task(name=f"lm-eval:{stem}", items=tuple(items.values()), source=str(path.resolve()), source_sha256=sha)
    return EvalLog(task=task, answers=_frame(rows), framework="lm-eval", model=model, source=str(path))


def _lm_eval_model(folder: Path) -> str | None:
    for results in sorted(folder.glob("results_*.json")):
        try:
            data = json.loads(results.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if data.get("model_name"):
            return str(data["model_name"])
        args = str((data.get("config") or {}).get("model_args") or "")
        found = re.search(r"pretrained=([^,]+)", args)
        if found:
            return found.group(1)
    return None


# ------------------------------------------------------------------------------------------- inspect_ai


def _inspect_parts(path: Path) -> tuple[dict, list[dict]]:
    """(eval header, samples) of a .eval zip or a .json log."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
                header = json.loads(z.read("header.json")) if "header.json" in names else \
                    json.loads(z.read("_journal/start.json")) if "_journal/start.json" in names else {}
                samples = [json.loads(z.read(n)) for n in sorted(names)
                           if n.startswith("samples/") and n.endswith(".json")]
            return header.get("eval", header), samples
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise TaskError(f"not a readable inspect_ai log ({type(e).__name__}: {e})", path=path) from None
    if not isinstance(data, dict) or "samples" not in data:
        raise TaskError("not an inspect_ai log (no samples; a log written with --no-log-samples holds none)",
                        path=path)
    return data.get("eval") or {}, list(data.get("samples") or [])


def read_inspect_log(path: str | Path) -> EvalLog:
    """Read an inspect_ai log (``.eval`` zip or ``.json``).

    Parameters
    ----------
    path : str or Path
        The log file.

    Returns
    -------
    EvalLog
        Items ``<task>-<sample id>``: the input (its last user message when it is a conversation),
        the target(s) as references, the sample's choices; answers: each scorer's extracted
        ``answer`` (else the output's completion) graded by the scorer's value (``C`` right, ``I``
        and ``N`` wrong, ``P`` and other values ungraded), one row per scorer and epoch.

    Raises
    ------
    TaskError
        Not an inspect_ai log, or a log without samples.
    """
    path = Path(path)
    header, samples = _inspect_parts(path)
    if not samples:
        raise TaskError("holds no samples (logged with --no-log-samples?)", path=path)
    task_name = str(header.get("task") or path.stem).split("/")[-1]
    model = header.get("model")
    items: dict[str, Item] = {}
    rows = []
    for number, sample in enumerate(samples, start=1):
        item_id = f"{task_name}-{sample.get('id', number)}"
        raw = sample.get("input")
        if isinstance(raw, list):
            users = [m for m in raw if isinstance(m, dict) and m.get("role") == "user"]
            question = _text((users or raw)[-1]).strip()
        else:
            question = _text(raw).strip()
        target = sample.get("target")
        references = [str(t).strip() for t in (target if isinstance(target, list) else [target]) if str(t or "").strip()]
        choices = [str(c).strip() for c in sample.get("choices") or []]
        if choices and references and len(references[0]) == 1 and references[0].isalpha():
            k = ord(references[0].upper()) - ord("A")
            if 0 <= k < len(choices):
                references = [choices[k], references[0].upper()]
        if not question or not references:
            raise TaskError("has no input or no target", path=path, record=number)
        if item_id not in items:
            items[item_id] = Item(id=item_id, question=question, references=references,
                                  distractors=[c for c in choices if c != references[0]], choices=choices,
                                  answer_type=_answer_type(references, choices),
                                  meta={"sample_id": str(sample.get("id", number))})
        output = sample.get("output") or {}
        completion = output.get("completion") or _text(((output.get("choices") or [{}])[0].get("message") or {}))
        for scorer, score in (sample.get("scores") or {}).items():
            score = score if isinstance(score, dict) else {"value": score}
            value = score.get("value")
            answer = score.get("answer")
            rows.append({"item_id": item_id, "model": model,
                         "answer": (_text(answer) if answer is not None else completion).strip(),
                         "grade": None if value is None else json.dumps(value) if not isinstance(value, str) else value,
                         "correct": _grade(value), "scorer": scorer, "variant": f"epoch {sample.get('epoch', 1)}"})
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    task = Task(name=f"inspect:{task_name}", items=tuple(items.values()), source=str(path.resolve()), source_sha256=sha)
    return EvalLog(task=task, answers=_frame(rows), framework="inspect_ai", model=model, source=str(path))


def read_eval_log(path: str | Path) -> EvalLog:
    """Read an lm-eval samples log or an inspect_ai log, told apart by their content.

    Parameters
    ----------
    path : str or Path
        ``samples_*.jsonl[.gz]`` (lm-eval), ``*.eval`` or ``*.json`` (inspect_ai).

    Returns
    -------
    EvalLog

    Raises
    ------
    TaskError
        No such file, or neither format.
    """
    path = Path(path)
    if not path.is_file():
        raise TaskError("no such log file", path=path)
    if zipfile.is_zipfile(path) or path.suffix == ".eval":
        return read_inspect_log(path)
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        return read_lm_eval_samples(path)
    if path.suffix == ".json":
        return read_inspect_log(path)
    raise TaskError("is neither an lm-eval samples log (samples_*.jsonl) nor an inspect_ai log (.eval, .json)",
                    path=path)
