"""Progress on stderr (stdout keeps the results): bars counted in items with an ETA for the long
stages, and a status line while something without a count runs (a model loading, a server's checks).

In a terminal both are live (rich); elsewhere (a log file, a pipe, CI) each stage writes one plain
line when it starts and one when it ends, so a log says what ran and how long, without the cursor
codes of a live display.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def _console():
    """A console on the current ``sys.stderr`` (looked up at each write, so captured streams work)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


@contextmanager
def stage(description: str, total: int, enabled: bool = True, unit: str = "items") -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n=1)``; ``total`` and every advance count ``unit`` (items of the task, times the
    models that work on them), never chunks. A terminal gets a bar with elapsed time and ETA; elsewhere
    one line at the start and one at the end. Nothing is shown when disabled or when no work remains."""
    if not enabled or total == 0:
        yield lambda n=1: None
        return
    console = _console()
    if not console.is_terminal:
        done = [0]
        start = time.perf_counter()
        console.print(f"{description}: {total} {unit}", soft_wrap=True)

        def count(n: int = 1) -> None:
            done[0] += n

        yield count
        console.print(f"{description}: {done[0]}/{total} {unit} in {_seconds(time.perf_counter() - start)}",
                      soft_wrap=True)
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    columns = (TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


@contextmanager
def status(message: str, enabled: bool = True) -> Iterator[None]:
    """A status line while ``message`` is under way (a spinner in a terminal, a plain line elsewhere),
    then one line saying how long it took."""
    if not enabled:
        yield
        return
    console = _console()
    start = time.perf_counter()
    if console.is_terminal:
        with console.status(f"{message} ..."):
            yield
    else:
        console.print(f"{message} ...", soft_wrap=True)
        yield
    console.print(f"{message}: done in {_seconds(time.perf_counter() - start)}", soft_wrap=True)


def loading(spec: str, enabled: bool = True):
    """:func:`status` for making a model's backend: weights loading here, or a server's checks."""
    return status(load_message(spec), enabled)


def load_message(spec: str) -> str:
    """What making the backend of ``spec`` does, in words: ``loading smollm2-135m`` or, for a served
    model, ``connecting to http://host:8000/v1 for NAME (capability and alignment checks)``. A URL is
    shown as scheme, host and port only (never a user name or password)."""
    if not (isinstance(spec, str) and spec.startswith("openai:")):
        return f"loading {spec}"
    name, _, url = spec[len("openai:"):].partition("@")
    where = "the --base-url server"
    if url:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(url)
            host = parts.hostname or "?"
            where = f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"
        except ValueError:
            where = "the server"
    return f"connecting to {where} for {name} (capability and alignment checks)"


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"
