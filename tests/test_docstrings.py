"""The public API carries numpydoc sections: a public function (or public method of a public class) that
takes parameters documents every one of them in a ``Parameters`` section, and nothing else there.

Covered (:data:`COVERED`): ``selfbias.__all__`` where the name is defined in a covered module, and the
public names of every public module (tasks with the checkers it re-exports, prompts, train, errors,
models, scoring, runs, store, frames, analysis, backends, distributed, stats, plots), plus
``generation.generate``, ``probe.probe`` / ``probe_summary`` and ``judge.judge`` / ``judge_prompts``.
:data:`PENDING` lists modules not converted yet (none now; a new module lands in one of the two).
"""

from __future__ import annotations

import importlib
import inspect

import pytest

import selfbias

# module -> the names checked (None: every public function in its __all__)
COVERED = {
    "selfbias.tasks": None,
    "selfbias.prompts": None,
    "selfbias.train": None,
    "selfbias.errors": None,
    "selfbias.generation": ("generate",),
    "selfbias.probe": ("probe", "probe_summary"),
    "selfbias.judge": ("judge", "judge_prompts"),
    "selfbias.models": None,
    "selfbias.scoring": None,
    "selfbias.runs": None,
    "selfbias.store": None,
    "selfbias.frames": None,
    "selfbias.analysis": None,
    "selfbias.backends": None,
    "selfbias.backends.hf": None,
    "selfbias.distributed": None,
    "selfbias.stats": None,
    "selfbias.plots": None,
    "selfbias.report": None,
    "selfbias.eval_logs": None,
    "selfbias.audit": None,
    "selfbias.judge_modes": None,
    "selfbias.backends.types": None,
}
# modules that define names of selfbias.__all__ but are not converted yet
PENDING: set[str] = set()
# where tasks' re-exported checkers and loaders live (their docstrings are part of tasks' public API)
HOMES = {"selfbias.tasks": {"selfbias.tasks", "selfbias._checkers", "selfbias._loaders"}}


def _public_functions():
    """(qualified name, function) for every function the test covers, once each."""
    seen: dict[str, object] = {}
    for module_name, names in COVERED.items():
        module = importlib.import_module(module_name)
        for name in names or getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                seen.setdefault(f"{module_name}.{name}", obj)
            elif inspect.isclass(obj):  # its public methods (Task.check, ...)
                for attr, member in vars(obj).items():
                    if inspect.isfunction(member) and not attr.startswith("_"):
                        seen.setdefault(f"{module_name}.{name}.{attr}", member)
    for name in selfbias.__all__:
        obj = getattr(selfbias, name)
        if inspect.isfunction(obj) and obj.__module__ in COVERED:
            seen.setdefault(f"selfbias.{name}", obj)
    return sorted(seen.items())


def documented_parameters(doc: str) -> set[str] | None:
    """Names listed in the numpydoc ``Parameters`` section of ``doc`` (None when there is none).

    An entry is a line at the section's indentation, ``name : description`` or ``a, b : ...`` (numpydoc
    allows several names to share one entry); deeper-indented lines continue the entry.
    """
    lines = inspect.cleandoc(doc or "").splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.strip() == "Parameters" and set(lines[i + 1].strip()) == {"-"}:
            break
    else:
        return None
    names: set[str] = set()
    body = lines[i + 2:]
    for j, line in enumerate(body):
        if j + 1 < len(body) and body[j + 1].strip() and set(body[j + 1].strip()) == {"-"}:
            break  # the next section's title
        if line and not line[0].isspace():
            head = line.split(" : ", 1)[0] if " : " in line else line.strip()
            names.update(n.strip().lstrip("*") for n in head.split(",") if n.strip())
    return names


def _parameters(func) -> list[str]:
    return [p for p in inspect.signature(func).parameters if p not in ("self", "cls")]


def test_the_parser_reads_numpydoc():
    doc = """Do it.

    Parameters
    ----------
    a, b : int
        Two numbers
        over two lines.
    **kwargs
        Passed on.

    Returns
    -------
    int
        The sum.
    """
    assert documented_parameters(doc) == {"a", "b", "kwargs"}
    assert documented_parameters("No sections.\n\nJust prose about ``a``.") is None


def test_the_covered_modules_are_all_that_is_left_pending():
    """Every function of selfbias.__all__ is in a covered or a pending module (a new module is listed)."""
    homes = {getattr(selfbias, n).__module__ for n in selfbias.__all__ if inspect.isfunction(getattr(selfbias, n))}
    assert homes <= set(COVERED) | PENDING, homes - set(COVERED) - PENDING


@pytest.mark.parametrize("name,func", _public_functions(), ids=[n for n, _ in _public_functions()])
def test_public_function_documents_every_parameter(name, func):
    params = _parameters(func)
    documented = documented_parameters(func.__doc__)
    if not params:
        return
    assert documented is not None, f"{name} takes {params} but its docstring has no 'Parameters' section"
    missing = [p for p in params if p not in documented]
    assert not missing, f"{name}: parameters not documented: {missing}"
    extra = sorted(documented - set(params))
    assert not extra, f"{name}: documented but not parameters: {extra}"
