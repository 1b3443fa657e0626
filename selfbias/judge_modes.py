"""The registry of judge modes: what each mode shows the judge, how it builds its prompts, what identifies it.

A judge mode (``isolated``, ``own_samples``, ``alternatives``, ``pairwise``, ``critique``, or one a user
registers) is one :class:`JudgeMode`: its template fields, its two verdict words, its default templates,
the function that turns a run's items into judge jobs (one prompt each), the settings that identify its
judgments in the run (compared on resume), an optional step before rendering (``critique`` writes its
critique), how a few-shot example fills its fields, and which frame its rows go to. :func:`selfbias.judge`
is orchestration over this registry: it validates modes against it, asks each mode for its jobs and
settings, renders, reads the verdicts and writes the ``judgments`` table.

Adding a mode from outside the package (as inspect_ai registers scorers)::

    from selfbias.judge import JudgeJob
    from selfbias.judge_modes import JudgeMode, register_judge_mode

    def build(ctx):
        return [JudgeJob(item_id, c.candidate_id, 0, None, [], {"question": ctx.data.questions[item_id],
                                                                  "answer": c.text}, ("answer",))
                for item_id in ctx.item_ids for c in ctx.data.candidates[item_id]]

    register_judge_mode(JudgeMode(
        "confident", fields=("question", "answer"), build_jobs=build,
        templates={"chat": {"prefix": "Question: {question}\\nAnswer: {answer}\\nIs it right? Yes or No."},
                   "plain": {"prefix": "Question: {question}\\nAnswer: {answer}\\nIs it right? Yes or No.",
                             "suffix": "\\nVerdict:"}}))

    selfbias.judge(run, modes=("confident",))

The built-in modes are registered by :mod:`selfbias.judge` (imported by the package itself, so they are
present whenever any selfbias module is); their templates are the data of :mod:`selfbias._judge_templates`.
This module imports nothing of selfbias but its errors: the validation step reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import InputError

__all__ = ["FRAMES", "JobContext", "JudgeMode", "frame_of", "judge_mode", "judge_mode_names", "register_judge_mode",
           "unregister_judge_mode"]

FRAMES = ("analysis", "pairwise")  # the frame a mode's rows feed (Run.analysis_frame / Run.pairwise_frame)


@dataclass(frozen=True)
class JobContext:
    """What a mode's job builder gets: the run's data for one judge and one chunk of items.

    Parameters
    ----------
    data : selfbias.judge.RunData
        The run as the judge reads it: ``item_ids``, ``questions`` (item -> question),
        ``candidates`` (item -> candidates with ``candidate_id``, ``text``, ``sources``, ``authors``,
        ``correct``), ``samples`` ((model, item) -> [(index, answer, correct)]), ``loglik``
        ((scorer, item, candidate) -> sum log-prob) and ``own_greedy(judge, item)``.
    judge : str
        The judge's name in the run (what decides self vs other).
    item_ids : sequence of str
        The items of this chunk, in run order.
    k : int
        The longest list / the pairs per item (the ``k`` of :func:`selfbias.judge`).
    seed : int
        The seed of list orders and draws.
    lists : selfbias.judge.ListRule
        The list settings (design, sources, ``k``, ``min_k``, ``p_correct``).
    pair_sources : tuple of str
        What the judge's own answer is paired with (pairwise mode).
    """

    data: Any
    judge: str
    item_ids: Sequence[str]
    k: int
    seed: int
    lists: Any
    pair_sources: tuple[str, ...]


@dataclass(frozen=True)
class JudgeMode:
    """One judge mode: its prompt fields, options, job builder, identifying settings and frame.

    Parameters
    ----------
    name : str
        The mode's name (``modes=`` of :func:`selfbias.judge`, ``--modes`` of the command line, the
        ``mode`` column of the judgments); a Python identifier.
    fields : tuple of str
        The template fields every template of the mode must use (``{question}``, ``{answer}``, ...).
    build_jobs : callable
        ``build_jobs(ctx: JobContext) -> list[selfbias.judge.JudgeJob]``: one job per prompt to read,
        with its fields filled and ``vary`` naming the fields that differ between the prompts sharing a
        prefix (the prefix before the first of them runs once).
    options : tuple of str
        The two verdict words; ``p_yes`` = P(first) over the spellings of both.
    allowed_fields : tuple of str or None
        Fields a template of the mode may use (None: exactly ``fields``).
    templates : mapping or None
        Default templates per prompt format: ``{"chat": t, "plain": t}`` with ``t`` a
        :class:`~selfbias.judge.JudgeTemplate` or a dict of its fields (``mode`` and ``format`` are
        taken from the key). None: the built-in template sets of :mod:`selfbias._judge_templates`.
    settings : callable or None
        ``settings(ctx: JobContext) -> dict``: what else identifies the mode's judgments in the run
        (recorded under ``manifest["judge"]["stages"]``; a change is refused on resume unless
        ``overwrite``); JSON values only. None: nothing beyond the common settings.
    prepare : callable or None
        ``prepare(backend, jobs, template, examples)`` run before the prompts are rendered (``critique``
        generates its critique here).
    example_fields : callable or None
        ``example_fields(example, position, k) -> (fields, verdict)`` of a few-shot example
        (:class:`selfbias._judge_templates.FewShotExample`); None: ``question`` and ``answer``, verdict
        0 when the example's answer is correct.
    frame : str
        ``analysis`` (one row per judged candidate: ``Run.analysis_frame()``) or ``pairwise`` (rows of
        two presentation orders: ``Run.pairwise_frame()``).
    description : str
        One line for ``--help`` and error messages.
    """

    name: str
    fields: tuple[str, ...]
    build_jobs: Callable[[JobContext], list]
    options: tuple[str, str] = ("Yes", "No")
    allowed_fields: tuple[str, ...] | None = None
    templates: Mapping[str, Any] | None = None
    settings: Callable[[JobContext], dict] | None = None
    prepare: Callable[..., None] | None = None
    example_fields: Callable[..., tuple[dict, int]] | None = None
    frame: str = "analysis"
    description: str = ""
    builtin: bool = field(default=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise InputError(f"judge mode name must be an identifier, got {self.name!r}")
        if self.frame not in FRAMES:
            raise InputError(f"judge mode {self.name!r}: frame must be one of {', '.join(FRAMES)}, got {self.frame!r}")
        if not callable(self.build_jobs):
            raise InputError(f"judge mode {self.name!r}: build_jobs must be callable")
        options = tuple(self.options)
        if len(options) != 2 or not all(isinstance(o, str) and o.strip() for o in options):
            raise InputError(f"judge mode {self.name!r}: options must be two words, got {self.options!r}")
        object.__setattr__(self, "options", options)
        object.__setattr__(self, "fields", tuple(self.fields))
        allowed = tuple(self.allowed_fields) if self.allowed_fields is not None else self.fields
        missing = [f for f in self.fields if f not in allowed]
        if missing:
            raise InputError(f"judge mode {self.name!r}: allowed_fields lacks required field(s) {', '.join(missing)}")
        object.__setattr__(self, "allowed_fields", allowed)


_REGISTRY: dict[str, JudgeMode] = {}


def register_judge_mode(mode: JudgeMode, *, replace: bool = False) -> JudgeMode:
    """Add a judge mode to the registry, so :func:`selfbias.judge`, ``judge_prompts`` and validation know it.

    Parameters
    ----------
    mode : JudgeMode
        The mode. Its default templates are checked against its fields when a judge or the
        validation step first resolves them (before any model loads).
    replace : bool
        Allow replacing a registered mode of the same name (never a built-in one).

    Returns
    -------
    JudgeMode
        ``mode``.

    Raises
    ------
    InputError
        A name already registered (without ``replace``), or a built-in name.
    """
    if not isinstance(mode, JudgeMode):
        raise InputError(f"register_judge_mode takes a JudgeMode, got {type(mode).__name__}")
    old = _REGISTRY.get(mode.name)
    if old is not None and (old.builtin or not (replace or mode.builtin)):
        raise InputError(f"judge mode {mode.name!r} is already registered"
                         + ("" if old.builtin else "; pass replace=True to replace it"))
    _REGISTRY[mode.name] = mode
    return mode


def unregister_judge_mode(name: str) -> None:
    """Remove a registered mode (not a built-in one); a name not registered is ignored.

    Parameters
    ----------
    name : str
        The mode's name.
    """
    mode = _REGISTRY.get(name)
    if mode is not None and mode.builtin:
        raise InputError(f"judge mode {name!r} is built in and cannot be removed")
    _REGISTRY.pop(name, None)


def judge_mode(name: str) -> JudgeMode:
    """The registered mode called ``name``.

    Parameters
    ----------
    name : str

    Returns
    -------
    JudgeMode

    Raises
    ------
    InputError
        No such mode (the message lists the registered ones).
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown judge mode {name!r}; use one of {', '.join(judge_mode_names())}") from None


def frame_of(name: str) -> str:
    """The frame a mode's rows feed: its registered ``frame``, ``analysis`` for a mode not registered
    in this session (a run judged with a mode registered elsewhere still reads).

    Parameters
    ----------
    name : str

    Returns
    -------
    str
        ``analysis`` or ``pairwise``.
    """
    mode = _REGISTRY.get(name)
    return mode.frame if mode is not None else "analysis"


def judge_mode_names() -> tuple[str, ...]:
    """The registered modes' names: the built-in ones first, in their order, then the others as registered.

    Returns
    -------
    tuple of str
    """
    return tuple(_REGISTRY)
