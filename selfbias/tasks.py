# Over 600 lines: the Task API: built-in tasks, load_task's dispatch over sources, perturbations and the checkers it re-exports.
"""Question sets: ``Item``, ``Task``, the built-in tasks, file loaders and answer checkers.

``load_task(spec)`` is the entry point. ``spec`` is a built-in name or a file path:

* ``arithmetic`` / ``arithmetic:<level>``: seeded questions "What is 23 + 45?"; levels ``1d+1d``
  (1-9 + 1-9), ``2d+2d`` (10-99), ``2dx1d`` (10-99 * 2-9), ``3d+3d`` (100-999) and ``mixed``
  (the default; item i has level i mod 4 in that order). No question repeats within a task.
* ``capitals``: "What is the capital of France?" for 189 UN member states, written for this
  package (``selfbias/data/capitals.csv``); alternative accepted names are references. Left
  out: Israel (capital contested), Indonesia and Equatorial Guinea (capital moves under way),
  Nauru (no official capital).
* ``hf:PATH[:split]``: a Hugging Face ``datasets`` dataset saved with ``save_to_disk``, or local
  Parquet/Arrow/JSON(L)/CSV data files (:func:`selfbias._loaders.read_hf`; never the hub); its
  records are read as a JSONL file's (detected format or ``mapping``), ids ``<name>-<split>-<row>``.
* ``log:PATH``: the questions of an lm-evaluation-harness samples log or an inspect_ai log
  (:func:`selfbias.eval_logs.read_eval_log`, which also returns the logged answers and grades).
* a file: TruthfulQA CSV or its ``mc_task.json`` (labelled mc1/mc2 targets; both open-ended:
  free-form answers that match no labelled answer are ungraded, see ``Task.grade``), GSM8K /
  ARC / NQ-open JSONL, ``statement,label`` CSV, or any JSONL/CSV
  with a column ``mapping`` (see ``selfbias._loaders``). A built-in name wins over a file of the
  same name; write ``./capitals`` for the file.

Which items, in which order (all deterministic):

* arithmetic: ``n`` items (default 100) drawn with ``seed``; the first k items do not depend on n.
* capitals: a ``seed``-ed shuffle of all countries, then the first ``n``.
* files: file order, then the first ``n`` valid rows; with ``shuffle=True`` a ``seed``-ed
  shuffle first. The whole file is always parsed, so a bad row anywhere raises a ``TaskError``
  (or is recorded in ``task.skipped`` with ``skip_invalid=True``).

Item ids are stable: ``arith-2d+2d-0007``, ``capitals-france``, the row's own id (ARC, or a
mapped ``id`` column), else ``<file stem>-<line>``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from selfbias._checkers import (CHECKERS, SPAN_SLACK, check_answer, check_boolean, check_choice,
                                check_number, check_text, chosen_index, correct_choice, correct_choices,
                                equivalent,
                                grade, normalize_text, open_ended, parse_boolean, parse_number,
                                resolve_checker)
from selfbias._loaders import FORMATS, SkippedRow, TaskError, parse_mapping, read_file, read_hf

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Item", "Task", "TaskError", "SkippedRow", "load_task", "list_tasks", "list_formats",
    "parse_mapping", "arithmetic_task", "capitals_task", "numeric_perturbations", "adjacent_numbers",
    "text_perturbations", "check_answer", "check_number", "check_text", "check_choice",
    "check_boolean", "parse_number", "parse_boolean", "normalize_text", "chosen_index",
    "correct_choice", "correct_choices", "resolve_checker", "grade", "equivalent", "open_ended", "accepted_spellings",
    "worked_answers", "worked_reference", "ANSWER_TYPES", "ARITHMETIC_LEVELS", "FORMATS",
    "CHECKERS", "SPAN_SLACK",
]

ANSWER_TYPES = ("number", "text", "choice", "boolean")


@dataclass(frozen=True)
class Item:
    """One question. ``choices`` are labelled A, B, C... in order; ``meta`` must be
    JSON-serialisable (it is excluded from the hash; treat it as read-only)."""

    id: str
    question: str
    references: tuple[str, ...]
    distractors: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    answer_type: str = "text"
    meta: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self):
        for name in ("references", "distractors", "choices"):
            value = getattr(self, name)
            value = (value,) if isinstance(value, str) else value
            object.__setattr__(self, name, tuple(str(v) for v in value))
        object.__setattr__(self, "meta", dict(self.meta))
        if not self.references:
            raise ValueError(f"item {self.id!r}: needs at least one reference answer")
        if self.answer_type not in ANSWER_TYPES:
            raise ValueError(f"item {self.id!r}: answer_type {self.answer_type!r} is not one of "
                             f"{', '.join(ANSWER_TYPES)}")
        try:
            json.dumps(self.meta)
        except TypeError as e:
            raise ValueError(f"item {self.id!r}: meta is not JSON-serialisable ({e})") from None


@dataclass(frozen=True)
class Task:
    """A named list of items with the checker that grades free-form answers."""

    name: str
    items: tuple[Item, ...]
    checker: Callable[[str, Item], bool] = check_answer
    source: str | None = None  # file path, or e.g. "builtin:arithmetic:2d+2d:seed=0"
    source_sha256: str | None = None  # of the source file; None for built-ins
    skipped: tuple[SkippedRow, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "items", tuple(self.items))
        object.__setattr__(self, "skipped", tuple(self.skipped))

    def check(self, answer: str | None, item: Item) -> bool:
        """Whether ``answer`` is correct for ``item`` under this task's checker.

        Parameters
        ----------
        answer : str or None
            An extracted answer (None counts as wrong).
        item : Item
            The question.

        Returns
        -------
        bool
        """
        return answer is not None and bool(self.checker(str(answer), item))

    def grade(self, answer: str | None, item: Item) -> bool | None:
        """True, False, or None when the answer cannot be graded (open-ended items, see :func:`grade`).

        Parameters
        ----------
        answer : str or None
            An extracted answer (None counts as wrong).
        item : Item
            The question.

        Returns
        -------
        bool or None
        """
        return grade(answer, item, self.checker)

    def equivalent(self, a: str, b: str, item: Item) -> bool:
        """Whether two answers say the same under this task's checker (mutual acceptance, :func:`equivalent`).

        Parameters
        ----------
        a, b : str
            Two answers.
        item : Item
            The question they answer.

        Returns
        -------
        bool
        """
        return equivalent(str(a), str(b), item, self.checker)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def to_frame(self) -> "pd.DataFrame":
        """The ``items`` table of ARCHITECTURE.md (list columns as Python lists, meta as JSON)."""
        import pandas as pd

        columns = ["item_id", "task", "question", "references", "distractors", "choices",
                   "answer_type", "meta"]
        return pd.DataFrame([{
            "item_id": it.id, "task": self.name, "question": it.question,
            "references": list(it.references), "distractors": list(it.distractors),
            "choices": list(it.choices), "answer_type": it.answer_type,
            "meta": json.dumps(it.meta, sort_keys=True, ensure_ascii=False),
        } for it in self.items], columns=columns)


# ---------------------------------------------------------------------------------------------
# built-in: arithmetic

ARITHMETIC_LEVELS: dict[str, tuple[str, tuple[int, int], tuple[int, int]]] = {
    "1d+1d": ("+", (1, 9), (1, 9)),
    "2d+2d": ("+", (10, 99), (10, 99)),
    "2dx1d": ("*", (10, 99), (2, 9)),
    "3d+3d": ("+", (100, 999), (100, 999)),
}


def arithmetic_task(level: str = "mixed", n: int = 100, seed: int = 0) -> Task:
    """``n`` distinct arithmetic questions of one level (or ``mixed``), drawn with ``seed``.

    Parameters
    ----------
    level : str
        ``1d+1d``, ``2d+2d``, ``2dx1d``, ``3d+3d`` (:data:`ARITHMETIC_LEVELS`) or ``mixed`` (item i
        has level i mod 4 in that order).
    n : int
        Number of questions; the first k do not depend on ``n``.
    seed : int
        Seed of the draw (the same seed gives the same questions).

    Returns
    -------
    Task
        Items ``arith-<level>-<i>`` with one numeric reference and ``meta`` = level, operands, operator.

    Raises
    ------
    TaskError
        An unknown level, or more questions than the level has distinct ones.
    """
    if level != "mixed" and level not in ARITHMETIC_LEVELS:
        raise TaskError(f"unknown arithmetic level {level!r}; use one of "
                        f"{', '.join([*ARITHMETIC_LEVELS, 'mixed'])}")
    cycle = list(ARITHMETIC_LEVELS) if level == "mixed" else [level]
    for i, lv in enumerate(cycle):
        _, (lo_a, hi_a), (lo_b, hi_b) = ARITHMETIC_LEVELS[lv]
        wanted, capacity = len(range(i, n, len(cycle))), (hi_a - lo_a + 1) * (hi_b - lo_b + 1)
        if wanted > capacity:
            raise TaskError(f"arithmetic level {lv!r} has only {capacity} distinct questions; "
                            f"asked for {wanted}")
    rng = random.Random(f"arithmetic:{level}:{seed}")
    seen: set[tuple[str, int, int]] = set()
    items = []
    for i in range(n):
        lv = cycle[i % len(cycle)]
        op, (lo_a, hi_a), (lo_b, hi_b) = ARITHMETIC_LEVELS[lv]
        while True:
            a, b = rng.randint(lo_a, hi_a), rng.randint(lo_b, hi_b)
            if (lv, a, b) not in seen:
                seen.add((lv, a, b))
                break
        answer = a + b if op == "+" else a * b
        items.append(Item(id=f"arith-{level}-{i:04d}", question=f"What is {a} {op} {b}?",
                          references=(str(answer),), answer_type="number",
                          meta={"level": lv, "a": a, "b": b, "op": op}))
    return Task(name=f"arithmetic:{level}", items=tuple(items),
                source=f"builtin:arithmetic:{level}:seed={seed}")


# ---------------------------------------------------------------------------------------------
# built-in: capitals


def _capital_rows() -> list[dict[str, str]]:
    import csv

    text = resources.files("selfbias").joinpath("data/capitals.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def capitals_task(n: int | None = None, seed: int = 0) -> Task:
    """Capital-city questions: a ``seed``-ed shuffle of the countries, then the first ``n``.

    Parameters
    ----------
    n : int or None
        Number of questions (None: all 189 countries).
    seed : int
        Seed of the shuffle.

    Returns
    -------
    Task
        Items ``capitals-<country id>`` whose references are the capital and its accepted aliases.
    """
    items = [Item(id=f"capitals-{row['id']}",
                  question=f"What is the capital of {row['country']}?",
                  references=(row["capital"], *filter(None, row["aliases"].split(";"))),
                  answer_type="text", meta={"country": row["country"]})
             for row in _capital_rows()]
    random.Random(f"capitals:{seed}").shuffle(items)
    return Task(name="capitals", items=tuple(items[:n]), source=f"builtin:capitals:seed={seed}")


# ---------------------------------------------------------------------------------------------
# loading


def list_tasks() -> list[tuple[str, str]]:
    """Built-in task specs and what they are (for ``selfbias tasks``).

    Returns
    -------
    list of (str, str)
        (spec, description) pairs.
    """
    out = [("arithmetic", "arithmetic questions, levels cycled (= arithmetic:mixed)")]
    for name, (op, (lo_a, hi_a), (lo_b, hi_b)) in ARITHMETIC_LEVELS.items():
        out.append((f"arithmetic:{name}",
                    f"What is a {op} b? a in {lo_a}-{hi_a}, b in {lo_b}-{hi_b}"))
    countries = len(_capital_rows())
    out.append(("capitals", f"What is the capital of <country>? ({countries} countries)"))
    return out


def list_formats() -> list[tuple[str, str]]:
    """File formats ``load_task`` reads (pass one as ``fmt`` to skip detection).

    Returns
    -------
    list of (str, str)
        (format name, description) pairs.
    """
    return list(FORMATS.items())


_TYPE_OF_CHECKER = {"number": "number", "numeric": "number", "text": "text", "exact": "text",
                    "boolean": "boolean", "bool": "boolean"}


def load_task(spec: str | Path, *, n: int | None = None, seed: int = 0, level: str | None = None,
              mapping: dict | str | None = None, fmt: str | None = None,
              skip_invalid: bool = False, checker: str | Callable | None = None,
              shuffle: bool = False, name: str | None = None) -> Task:
    """A built-in task or a question file as a ``Task`` (see the module docstring).

    Parameters
    ----------
    spec : str or Path
        ``arithmetic``, ``arithmetic:<level>``, ``capitals`` or a file path (a built-in name wins over a
        file of the same name; write ``./capitals`` for the file).
    n : int or None
        Keep the first ``n`` items (arithmetic: default 100; others: all).
    seed : int
        Seed of the arithmetic draw, of the capitals shuffle, and of ``shuffle``.
    level : str or None
        Arithmetic level (also accepted as ``arithmetic:<level>``).
    mapping : dict or str or None
        For a generic JSONL/CSV file: our field -> its column (``"question=q,answer=a"``).
    fmt : str or None
        A file format of :func:`list_formats` (None: detected).
    skip_invalid : bool
        Leave bad rows out (recorded in ``task.skipped``) instead of raising.
    checker : str or callable or None
        None/"auto" grades by each item's ``answer_type``; "number", "text", "choice", "boolean"
        force one checker (and type the items of a generic file); "module:function" or a callable
        ``(answer, item) -> bool`` is used as is.
    shuffle : bool
        Shuffle a file's rows with ``seed`` before taking the first ``n``.
    name : str or None
        The task's name (default: the built-in name or ``<format>:<file stem>``).

    Returns
    -------
    Task
        The items, their checker, and the source (built-in spec, or the file's path and sha256).

    Raises
    ------
    TaskError
        Bad input: one line naming the file, line and field at fault.
    """
    if n is not None and n < 1:
        raise TaskError(f"n must be a positive number of items, got {n}")
    try:
        grade = resolve_checker(checker)
    except ValueError as e:
        raise TaskError(str(e)) from None
    base, _, spec_level = str(spec).partition(":")
    if base in ("arithmetic", "capitals"):
        if mapping is not None or fmt is not None or shuffle:
            raise TaskError(f"{base} is built in: mapping, fmt and shuffle do not apply")
        if base == "capitals":
            if spec_level or level:
                raise TaskError("capitals has no levels")
            task = capitals_task(n=n, seed=seed)
        else:
            if spec_level and level and spec_level != level:
                raise TaskError(f"level given twice: {spec!r} and level={level!r}")
            task = arithmetic_task(level=spec_level or level or "mixed",
                                   n=100 if n is None else n, seed=seed)
        return Task(name=name or task.name, items=task.items, checker=grade, source=task.source)

    if level is not None:
        raise TaskError(f"{spec}: level applies only to arithmetic")
    if str(spec).startswith("log:"):  # an lm-eval samples log or an inspect_ai log: its questions
        from .eval_logs import read_eval_log

        if mapping is not None or fmt is not None:
            raise TaskError(f"{spec}: mapping and fmt do not apply to an evaluation log")
        logged = read_eval_log(str(spec)[4:]).task
        items = list(logged.items)
        if shuffle:
            random.Random(f"file:{seed}").shuffle(items)
        return Task(name=name or logged.name, items=tuple(items[:n]), checker=grade, source=logged.source,
                    source_sha256=logged.source_sha256)
    if str(spec).startswith("hf:"):
        return _hf_task(str(spec), n=n, seed=seed, mapping=mapping, fmt=fmt, skip_invalid=skip_invalid,
                        checker=checker, grade=grade, shuffle=shuffle, name=name)
    if not Path(spec).suffix and not Path(spec).exists():  # a name, not a file: say which names exist
        raise TaskError(f"unknown task {str(spec)!r}: not a built-in task (arithmetic[:level], capitals) "
                        "nor an existing file; `selfbias tasks` lists both")
    type_hint = _TYPE_OF_CHECKER.get(checker) if isinstance(checker, str) else None
    loaded = read_file(spec, fmt=fmt, mapping=mapping, skip_invalid=skip_invalid,
                       answer_type=type_hint)
    items = [Item(**row) for row in loaded.rows]
    if shuffle:
        random.Random(f"file:{seed}").shuffle(items)
    path = Path(spec)
    return Task(name=name or f"{loaded.fmt}:{path.stem}", items=tuple(items[:n]), checker=grade,
                source=str(path.resolve()), source_sha256=loaded.sha256,
                skipped=tuple(loaded.skipped))


def _hf_task(spec: str, *, n, seed, mapping, fmt, skip_invalid, checker, grade, shuffle, name) -> Task:
    """``hf:PATH[:split]``: a Hugging Face dataset on disk, read by :func:`selfbias._loaders.read_hf`."""
    type_hint = _TYPE_OF_CHECKER.get(checker) if isinstance(checker, str) else None
    loaded, stem, source = read_hf(spec, fmt=fmt, mapping=mapping, skip_invalid=skip_invalid, answer_type=type_hint)
    items = [Item(**row) for row in loaded.rows]
    if shuffle:
        random.Random(f"file:{seed}").shuffle(items)
    return Task(name=name or f"{loaded.fmt}:{stem}", items=tuple(items[:n]), checker=grade, source=source,
                source_sha256=loaded.sha256, skipped=tuple(loaded.skipped))


# ---------------------------------------------------------------------------------------------
# worked answers (GSM8K style: reasoning, then the final answer after a marker)


def worked_answers(task: Task, marker: str) -> Task:
    """The task with every reference written as a worked answer split at its last ``marker``: the
    final answer becomes the reference and the reasoning ``meta["solution"]``.

    GSM8K files are split this way by their loader already (``"#### "``); this does the same for any
    file whose answer column holds worked answers (``--answer-marker``). An item whose final answer
    is a number is typed ``number`` (graded by value). Items without the marker are left as they are.

    Parameters
    ----------
    task : Task
        The loaded task.
    marker : str
        The text before the final answer.

    Returns
    -------
    Task

    Raises
    ------
    TaskError
        An item whose worked reference has nothing after the marker.
    """
    from dataclasses import replace

    from ._loaders import _NUMERIC

    items = []
    for item in task.items:
        first = item.references[0]
        if marker not in first or "solution" in item.meta:
            items.append(item)
            continue
        solution, _, final = first.rpartition(marker)
        final = final.strip()
        if not final:
            raise TaskError(f"item {item.id!r}: its reference has nothing after the answer marker {marker!r}")
        numeric = _NUMERIC.fullmatch(final.replace(",", "")) and item.answer_type in ("text", "number")
        items.append(replace(item, references=(final.replace(",", "") if numeric else final, *item.references[1:]),
                             answer_type="number" if numeric else item.answer_type,
                             meta={**item.meta, "solution": solution.strip()}))
    return replace(task, items=tuple(items))


def worked_reference(item: Item, marker: str) -> str:
    """The reference written as the worked answer a model is asked for: the reasoning (where the
    item has one, ``meta["solution"]``), then ``marker`` and the final answer.

    Parameters
    ----------
    item : Item
        The question.
    marker : str
        The text before the final answer.

    Returns
    -------
    str
    """
    solution = str(item.meta.get("solution") or "").strip()
    return (solution + "\n" if solution else "") + f"{marker} {item.references[0]}"


# ---------------------------------------------------------------------------------------------
# wrong answers for the probe


def accepted_spellings(item: Item) -> tuple[str, ...]:
    """The spellings of an item's reference answer, for scoring each candidate in its likeliest spelling.

    Every reference, for items whose references are aliases of one answer (capitals: "Kyiv", "Kiev";
    NQ-open answer lists; numbers); only the first for open-ended items, whose references are
    different answers (TruthfulQA). Text references are followed by their form without diacritics
    ("Chișinău" -> "Chisinau"), which the text checker accepts as the same answer.

    Parameters
    ----------
    item : Item
        The question.

    Returns
    -------
    tuple of str
        The spellings, deduplicated, in that order.
    """
    refs = item.references[:1] if open_ended(item) else item.references
    out: list[str] = []
    for ref in refs:
        plain = _without_diacritics(ref) if item.answer_type == "text" else ref
        out += [t for t in (ref, plain) if t not in out]
    return tuple(out)


def _without_diacritics(text: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFC", "".join(
        c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)))


def _plain(value: Decimal) -> str:
    return format(value, "f")


def adjacent_numbers(answer: str) -> list[str]:
    """The former perturbation scheme, kept for comparison and benchmarks.

    +1, -1, +10, -10, then the rightmost swap of two adjacent distinct digits that gives no leading
    zero ("123" -> "132"). Deduplicated, without the original value, in that order; decimals keep
    their places ("3.5" -> "4.5"), output has no thousands separators. Not used by the probe: a list
    of the reference and its +-1 neighbours has the gold in the middle, so the gold's position gives
    it away (issue 9; :func:`numeric_perturbations` replaces it).

    Parameters
    ----------
    answer : str
        Text holding a number.

    Returns
    -------
    list of str
        The neighbouring numbers.

    Raises
    ------
    ValueError
        ``answer`` has no number.
    """
    value = parse_number(answer)
    if value is None:
        raise ValueError(f"no number in {answer!r}")
    out = [_plain(value + d) for d in (Decimal(1), Decimal(-1), Decimal(10), Decimal(-10))]
    s = _plain(value)
    for i in range(len(s) - 2, -1, -1):
        a, b = s[i], s[i + 1]
        if a.isdigit() and b.isdigit() and a != b:
            swapped = s[:i] + b + a + s[i + 2:]
            integer = swapped.lstrip("-").split(".")[0]
            if not (len(integer) > 1 and integer.startswith("0")):
                out.append(swapped)
                break
    result: list[str] = []
    for text in out:
        if Decimal(text) != value and text not in result:
            result.append(text)
    return result


def numeric_perturbations(answer: str, k: int = 4, *, wrong: Sequence[str] = (), seed: int = 0,
                          key: str = "") -> list[str]:
    """``k`` wrong numbers placed so that the gold's rank among them carries no information.

    The gold's rank ``r`` among the perturbations plus the gold is drawn uniformly from 0..k (seeded
    by ``seed`` and ``key``); then ``r`` numbers below and ``k - r`` above the gold are drawn from a
    pool of random offsets around the gold *and* around each wrong answer in ``wrong``, so the gold is
    neither the centre of the list nor the only number with neighbours. Offsets are whole steps of the
    gold's last decimal place, up to ``max(3, |gold| / 10)`` steps per draw, so the numbers have the
    gold's scale. Numbers stay non-negative when the gold is (a negative count would be an obvious
    wrong answer); the only rank then excluded is one that needs more values below the gold than
    there are (gold < k steps), which the built-in tasks never have.

    Parameters
    ----------
    answer : str
        The gold answer (text holding a number).
    k : int
        Number of perturbations (0 or less: none).
    wrong : sequence of str
        Known wrong answers (the models' wrong answers, dataset distractors) that also anchor offsets.
    seed : int
        Seed of the draws.
    key : str
        Further seed material, e.g. the item id (items with the same gold get different lists).

    Returns
    -------
    list of str
        The perturbations in the order drawn (rank order would leak nothing either; the judge shuffles).

    Raises
    ------
    ValueError
        ``answer`` has no number.
    """
    value = parse_number(answer)
    if value is None:
        raise ValueError(f"no number in {answer!r}")
    if k <= 0:
        return []
    places = max(0, -value.as_tuple().exponent) if isinstance(value.as_tuple().exponent, int) else 0
    step = Decimal(1).scaleb(-places)
    spread = max(3, int(abs(value) / step / 10))  # offsets up to a tenth of the gold, at least 3 steps
    rng = random.Random(f"numeric_perturbations:{seed}:{key}:{_plain(value)}")
    anchors = [value]
    for w in wrong:
        x = parse_number(w)
        if x is not None and x != value and x not in anchors:
            anchors.append(x)
    taken = set(anchors)
    below: list[Decimal] = []
    above: list[Decimal] = []

    def offer(x: Decimal) -> None:
        if x in taken or (value >= 0 and x < 0):
            return
        taken.add(x)
        (below if x < value else above).append(x)

    # around the gold: k offsets on each side, so every rank 0..k is reachable
    for side in (-1, 1):
        room = spread * k if side > 0 or value < 0 else min(spread * k, int(value / step))
        for j in rng.sample(range(1, room + 1), min(k, room)):
            offer(value + side * j * step)
    # around each wrong answer: one offset on each side
    for w in anchors[1:]:
        for side in (-1, 1):
            offer(w + side * rng.randint(1, spread) * step)
    ranks = [r for r in range(k + 1) if r <= len(below) and k - r <= len(above)]
    r = rng.choice(ranks)
    chosen = rng.sample(below, r) + rng.sample(above, k - r)
    rng.shuffle(chosen)
    return [_plain(x) for x in chosen]


def text_perturbations(items: Sequence[Item], item_index: int, k: int = 3,
                       seed: int = 0) -> list[str]:
    """Up to ``k`` wrong answers for ``items[item_index]``: the first reference of other items.

    Drawn with ``seed``, skipping any that normalise to one of this item's references and duplicates.

    Parameters
    ----------
    items : sequence of Item
        The task's items (the pool of other answers).
    item_index : int
        Index of the item the perturbations are for.
    k : int
        Most perturbations returned (fewer when the task has fewer other answers).
    seed : int
        Seed of the draw.

    Returns
    -------
    list of str
        The wrong answers.
    """
    target = items[item_index]
    taken = {normalize_text(r) for r in target.references}
    rng = random.Random(f"text_perturbations:{seed}:{item_index}")
    tried: set[int] = {item_index}
    out: list[str] = []
    while len(out) < k and len(tried) < len(items):
        j = rng.randrange(len(items))
        if j in tried:
            continue
        tried.add(j)
        text = items[j].references[0]
        if normalize_text(text) not in taken:
            taken.add(normalize_text(text))
            out.append(text)
    return out
