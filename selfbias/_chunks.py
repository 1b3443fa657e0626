"""The unit of distributed work: one missing chunk of a run, computed by a pure function of a model.

probe and judge describe each missing chunk as a :class:`ChunkJob` and hand the list to
:func:`run_chunks`: without an executor the chunks are computed here, one after the other, and
written by the run's store; with a :class:`selfbias.distributed.RayExecutor` they are computed by Ray
actors that each hold one model replica. The job function is the same either way, so a chunk holds
the same rows whoever computes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._progress import stage


@dataclass(frozen=True)
class ChunkJob:
    """One chunk to compute: ``fn(lm_of(model), *args)`` returns the DataFrame stored as
    ``table`` / ``stage`` / ``key``. ``fn`` must be a module-level function (Ray pickles it by name).
    ``n_items``: the task items the chunk covers (what progress counts; 1 when not said)."""

    model: str
    table: str
    stage: str
    key: str
    fn: Callable[..., Any]
    args: tuple = ()
    n_items: int = 1


def total_items(jobs: Sequence[ChunkJob]) -> int:
    """The items ``jobs`` cover, counted once per job (the unit of the progress bars)."""
    return sum(job.n_items for job in jobs)


def run_local(store, lms: Mapping[str, Any], jobs: Sequence[ChunkJob], description: str, progress: bool) -> None:
    """Compute ``jobs`` in this process, in order, each written atomically by ``store`` as it finishes."""
    with stage(description, total_items(jobs), progress) as advance:
        for job in jobs:
            store.write_chunk(job.table, job.stage, job.key, job.fn(lms[job.model], *job.args))
            advance(job.n_items)


def run_chunks(store, lms: Mapping[str, Any], jobs: Sequence[ChunkJob], description: str, progress: bool,
               executor=None) -> None:
    """Compute the missing chunks ``jobs`` here (``executor`` None) or on the executor's workers."""
    if executor is None:
        run_local(store, lms, jobs, description, progress)
    else:
        executor.run(store, lms, jobs, description, progress)
