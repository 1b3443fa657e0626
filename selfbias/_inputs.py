"""Checks of single values and messages about them, needed below the validation step.

The scorer, the generator, the run store and the task loaders check a value or describe a bad file with
these; they import nothing of selfbias but its errors, so those low modules need not import
:mod:`selfbias._validate` (which sits above the models and backends). ``_validate`` re-exports them.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import InputError


def check_int(name: str, value: Any, low: int) -> int:
    """``value`` as an int >= ``low`` (bools refused: ``True`` is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_generation(*, temperature: Any = 0.0, top_p: Any = 1.0, samples: Any = 0, max_new_tokens: Any = 1,
                     n: Any = 1, prefix: str = "") -> None:
    """Sampling settings: temperature finite and >= 0, top_p in (0, 1], samples >= 0,
    max_new_tokens >= 1, n >= 1. ``prefix`` names the options (``"--"`` on the command line)."""
    def name(s: str) -> str:
        return prefix + (s.replace("_", "-") if prefix else s)

    for key, value in (("temperature", temperature), ("top_p", top_p)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(f"{name(key)} must be a finite number, got {value!r}")
    if temperature < 0:
        raise InputError(f"{name('temperature')} must be >= 0 (0 = greedy), got {temperature!r}")
    if not 0 < top_p <= 1:
        raise InputError(f"{name('top_p')} must be in (0, 1], got {top_p!r}")
    check_int(name("samples"), samples, 0)
    check_int(name("max_new_tokens"), max_new_tokens, 1)
    check_int(name("n"), n, 1)


def json_problem(exc: BaseException) -> str:
    """Why a file that looks like JSON could not be read (Python's limits on integer digits and nesting)."""
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply to read"
    if "digits" in str(exc):
        return "JSON holds a number too long to read (over 4300 digits)"
    return f"unreadable JSON ({' '.join(str(exc).split())[:100]})"


def show(value: Any, limit: int = 80) -> str:
    """``repr`` of user input for an error line: control characters escaped, long values cut."""
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."
