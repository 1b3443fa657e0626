"""Runs distributed on Ray: a run's missing chunks computed by actors that each hold one model replica.

``probe(..., ray=...)``, ``judge(..., ray=...)`` and ``selfbias probe|judge --ray [ADDRESS]`` hand the
missing chunks of each stage (:class:`selfbias._chunks.ChunkJob`) to a :class:`RayExecutor`:

* each actor loads one model (``load_backend(name, **the prompt settings the run recorded)``) and checks
  that it is the model the driver loaded (name, source, sha256, revision, dtype, prompt format);
* the actors of a stage are split evenly over the stage's models and kept while the next stage needs
  the same models (generation -> scoring -> judging), so no actor reloads weights per chunk;
* an actor computes a chunk with the same function as a local run and writes it into the run folder
  with the same atomic write (temporary file, fsync, rename);
* the driver holds the run lock, dispatches every chunk to one actor at a time (a chunk is never
  computed by two actors at once), retries the chunk of an actor that died on a fresh actor, shows
  one progress bar over all actors' chunks and finalizes the run.

Storage: the run folder must be reachable from every node at the same path (a shared filesystem such
as NFS). Each actor checks at start that it sees the driver's folder (a token file the driver wrote)
and can write there, else the run stops with an error naming the path and the node.

Ray is an optional dependency (``pip install 'selfbias[ray]'``), imported only here and only when
asked for.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _storage as st
from .errors import InputError, SelfbiasError
from .runs import RunError

__all__ = ["RayOptions", "RayExecutor", "ray_options", "check_ray", "open_executor", "check_storage", "split_actors"]

TOKEN_NAME = ".ray-token.tmp-"  # a tmp-style name: removed with the other temporary files on resume
_IDENTITY = ("name", "source", "sha256", "revision", "dtype", "prompt_format", "chat_template_kwargs")


@dataclass(frozen=True)
class RayOptions:
    """Where and how to run a run's chunks on Ray.

    ``address``: a Ray cluster (``ray://host:10001``, ``host:6379`` or ``auto``); None connects to
    ``$RAY_ADDRESS`` when set, else starts a local cluster. ``actors``: model replicas (default: one per
    GPU of the cluster, else one per ``num_cpus`` CPUs). ``num_gpus`` / ``num_cpus`` per actor (default:
    one GPU where the cluster has GPUs, else none; one CPU). ``max_retries``: how often a chunk whose
    actor died is given to a fresh actor. ``connect_timeout``: seconds a ``HOST:PORT`` address has to
    accept a connection when the arguments are checked (nothing listening: one line, nothing written). ``after_chunk(executor, job)`` is called on the driver after
    each chunk is written (tests use it to kill an actor mid-run).
    """

    address: str | None = None
    actors: int | None = None
    num_gpus: float | None = None
    num_cpus: float | None = None
    max_retries: int = 3
    connect_timeout: float = 5.0  # seconds to wait for a HOST:PORT address to accept a connection
    after_chunk: Callable[["RayExecutor", Any], None] | None = field(default=None, repr=False, compare=False)


def ray_options(value: Any) -> RayOptions | None:
    """The ``ray=`` keyword of probe/judge as options.

    Parameters
    ----------
    value : None, bool, str, mapping or RayOptions
        None/False (no Ray), True or "" (default cluster), an address string, a dict of
        :class:`RayOptions` fields or RayOptions.

    Returns
    -------
    RayOptions or None
        None when Ray is not asked for.

    Raises
    ------
    ValueError, TypeError
        An unknown field or a value of another type.
    """
    if value is None or value is False:
        return None
    if value is True:
        return RayOptions()
    if isinstance(value, str):
        return RayOptions(address=value.strip() or None)
    if isinstance(value, RayOptions):
        return value
    if isinstance(value, Mapping):
        try:
            return RayOptions(**value)
        except TypeError as e:
            raise InputError(f"ray: {e}") from None
    raise TypeError(f"ray must be None, True, an address, a dict or RayOptions, got {type(value).__name__}")


def check_ray(value: Any) -> None:
    """Refuse a bad ``ray=`` value, or Ray not installed, before any model loads (Ray is not imported).

    Parameters
    ----------
    value : Any
        The ``ray=`` keyword (see :func:`ray_options`) or a :class:`RayExecutor`.

    Raises
    ------
    ValueError
        A negative or non-numeric actor/GPU/CPU/retry count.
    SelfbiasError
        Ray is asked for but not installed.
    """
    import importlib.util

    if isinstance(value, RayExecutor):
        return
    options = ray_options(value)
    if options is None:
        return
    for name in ("actors", "num_gpus", "num_cpus", "max_retries", "connect_timeout"):
        v = getattr(options, name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                              or v < 0 or (name in ("actors", "connect_timeout") and v <= 0)):
            raise InputError(f"ray: {name} must be a "
                             f"{'positive' if name in ('actors', 'connect_timeout') else 'non-negative'} "
                             f"number, got {v!r}")
    if importlib.util.find_spec("ray") is None:
        raise SelfbiasError("ray: Ray is not installed; pip install 'selfbias[ray]'")
    _check_reachable(options)


def _check_reachable(options: RayOptions) -> None:
    """A HOST:PORT (or ray://HOST:PORT) address accepts a TCP connection within ``connect_timeout``
    seconds: nothing listening is one line naming the address, before the run folder is touched
    (``ray.init`` would otherwise retry for minutes). ``auto`` and ``local`` are left to Ray."""
    address = options.address
    if address in (None, "auto"):
        address = os.environ.get("RAY_ADDRESS") or None
    if address in (None, "auto", "local"):
        return
    hostport = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = hostport.rstrip("/").rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"ray: address {address!r} is not HOST:PORT, ray://HOST:PORT, auto or local")
    try:
        with socket.create_connection((host, int(port)), timeout=options.connect_timeout):
            pass
    except OSError as e:
        reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or type(e).__name__)
        raise InputError(f"ray: nothing answers at {address} ({reason}, waited up to {options.connect_timeout:g} s); "
                         "start the cluster there (`ray start --head`) or fix --ray / --ray-timeout") from None


def open_executor(value: Any, store) -> "RayExecutor | None":
    """An executor for ``ray=value`` over the run folder of ``store`` (None: compute locally).

    Parameters
    ----------
    value : Any
        The ``ray=`` keyword (see :func:`ray_options`); a :class:`RayExecutor` passed in (probe hands
        its own to judge) is reused as it is.
    store : RunStore
        The open run whose folder the actors write into.

    Returns
    -------
    RayExecutor or None
        None when the chunks are computed in this process.
    """
    if value is None or value is False:
        return None
    if isinstance(value, RayExecutor):
        return value
    return RayExecutor(ray_options(value), Path(store.path))


def split_actors(n_actors: int, models: Sequence[str]) -> list[dict[str, int]]:
    """Waves of ``{model: actors}``: the actors split evenly over the models (the first ones get one
    more), in waves of at most ``n_actors`` models when there are more models than actors.

    Every model of a stage has the same number of chunks (one per chunk of items), so an even split
    keeps all actors busy until the stage ends.

    Parameters
    ----------
    n_actors : int
        Model replicas the cluster can hold at once.
    models : sequence of str
        The stage's models, in order.

    Returns
    -------
    list of dict of str to int
        One ``{model: actors}`` per wave.
    """
    models = list(models)
    width = max(1, min(n_actors, len(models)))
    waves = []
    for i in range(0, len(models), width):
        wave = models[i:i + width]
        waves.append({m: n_actors // len(wave) + (j < n_actors % len(wave)) for j, m in enumerate(wave)})
    return waves


def model_identity(lm) -> dict:
    """What must agree between the driver's model and an actor's replica."""
    m = lm.to_manifest()
    return {k: m.get(k) for k in _IDENTITY}


def check_storage(run_path: str | os.PathLike, token_file: str, token: str, node: str) -> None:
    """Raise :class:`RunError` unless this process sees the driver's run folder and can write there.

    The driver wrote ``token`` into ``run_path / token_file``: a node whose path leads to another
    folder (a local disk instead of the shared one) cannot read it, even if the folder exists.

    Parameters
    ----------
    run_path : str or os.PathLike
        The run folder as the driver sees it (absolute).
    token_file, token : str
        The file the driver wrote in it and its content.
    node : str
        This node's name, for the message.

    Raises
    ------
    RunError
        The folder is another one, unreadable or not writable here.
    """
    path = Path(run_path)
    hint = "the run folder must be on storage shared by every Ray node, at the same path (e.g. NFS)"
    try:
        seen = (path / token_file).read_text()
    except OSError as e:
        raise RunError(f"{path}: Ray actor on node {node} cannot read the run folder ({e.strerror or e}); "
                       f"{hint}") from None
    if seen != token:
        raise RunError(f"{path}: Ray actor on node {node} sees another folder than the driver's; {hint}")
    probe_file = path / f".write-check{st.TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"
    try:
        probe_file.write_bytes(b"ok")
        probe_file.unlink()
    except OSError as e:
        raise RunError(f"{path}: Ray actor on node {node} cannot write the run folder ({e.strerror or e}); "
                       f"{hint}") from None


def _node() -> str:
    try:
        import ray

        ip = ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - only for the message
        ip = "?"
    return f"{socket.gethostname()} ({ip})"


class _Replica:
    """A Ray actor holding one model replica; computes chunks and writes them into the run folder."""

    def __init__(self, threads: int):
        os.environ["OMP_NUM_THREADS"] = str(threads)
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import torch

        torch.set_num_threads(threads)  # a chunk's float sums depend on the thread count: keep it fixed
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # one progress bar: the driver's
        self.lm = None

    def setup(self, spec: str, kwargs: dict, expect: dict, run_path: str, token_file: str, token: str) -> str:
        from .backends import keep_responses, load_backend
        from .models import ModelError

        node = _node()
        check_storage(run_path, token_file, token, node)
        self.lm = load_backend(spec, **kwargs)
        keep_responses([self.lm], run_path)  # a served model's responses land in the run, as locally
        got = model_identity(self.lm)
        if got != expect:
            diff = next(k for k in _IDENTITY if got.get(k) != expect.get(k))
            raise ModelError(f"Ray actor on node {node} loaded {spec} with {diff}={got.get(diff)!r}, the driver "
                             f"has {expect.get(diff)!r}; every node needs the same model files and packages")
        return node

    def run(self, path: str, fn, *args) -> float:
        """Compute one chunk and write it; the seconds it took on this actor (for the benchmark)."""
        start = time.perf_counter()
        frame = fn(self.lm, *args)
        st.atomic_write_table(Path(path), st.df_to_arrow(frame))
        return time.perf_counter() - start


@dataclass
class _Slot:
    model: str
    actor: Any
    node: str = ""
    since: float = field(default_factory=time.perf_counter)


class RayExecutor:
    """Computes a run's chunks on Ray actors, one model replica each (see the module docstring)."""

    def __init__(self, options: RayOptions, run_path: Path):
        self.options = options
        # absolute (actors have another working folder), symlinks kept (the mount path every node shares)
        self.path = Path(os.path.abspath(run_path))
        self.connected = False  # Ray is reached at the first chunk: a finished run never starts it
        self.owns_ray = False
        self.slots: list[_Slot] = []
        self._running: dict[Any, tuple[_Slot, Any]] = {}  # ObjectRef -> (slot, job) of the chunks in flight
        self.started = 0  # actors started (each loads its model once)
        self.startup: list[float] = []  # seconds from asking for an actor to its model loaded and storage checked
        self.timings: list[dict] = []  # per written chunk: table, stage, key, node, seconds on the actor
        self.retried: list[tuple[str, str, str]] = []  # (table, stage, key) of chunks redone after an actor died
        self.token_file = f"{TOKEN_NAME}{secrets.token_hex(8)}"  # written at connection, read by every actor
        self.token = secrets.token_hex(16)

    def _connect(self) -> None:
        """Reach the cluster (or start a local one), size the actors, write the storage token."""
        try:
            import ray
        except ImportError:
            raise SelfbiasError("--ray needs Ray: pip install 'selfbias[ray]'") from None
        options = self.options
        self.owns_ray = not ray.is_initialized()
        if self.owns_ray:
            try:
                ray.init(address=options.address, include_dashboard=False, logging_level="ERROR",
                         log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                where = options.address or os.environ.get("RAY_ADDRESS") or "a local cluster"
                raise SelfbiasError(f"ray: cannot start or reach {where}: {str(e).splitlines()[0]}") from None
        self.connected = True  # from here close() stops what this executor started
        resources = ray.cluster_resources()
        gpus = float(resources.get("GPU", 0))
        self.num_gpus = options.num_gpus if options.num_gpus is not None else (1.0 if gpus >= 1 else 0.0)
        self.num_cpus = options.num_cpus if options.num_cpus is not None else 1.0
        if options.actors is not None:
            self.n_actors = int(options.actors)
        elif self.num_gpus:
            self.n_actors = int(gpus // self.num_gpus)
        else:
            self.n_actors = int(float(resources.get("CPU", 1)) // max(self.num_cpus, 1e-9))
        self.n_actors = max(1, self.n_actors)
        st.atomic_write_bytes(self.path / self.token_file, self.token.encode())
        self._remote = ray.remote(max_restarts=0, max_task_retries=0)(_Replica)
        # an actor asking for more than any node has would wait for ever: refuse it now
        for name, want, have in (("num_gpus", self.num_gpus, gpus), ("num_cpus", self.num_cpus,
                                                                     float(resources.get("CPU", 0)))):
            if want > have:
                self.close()
                raise SelfbiasError(f"ray: each actor asks for {name}={want:g} but the cluster has {have:g}")

    # -- actors -------------------------------------------------------------------------------

    def _start(self, model: str, lm) -> tuple[_Slot, Any]:
        threads = max(1, int(self.num_cpus))
        # no runtime_env: an actor may then start in one of Ray's prestarted workers; threads are set in it
        actor = self._remote.options(num_cpus=self.num_cpus, num_gpus=self.num_gpus).remote(threads)
        self.started += 1
        m = lm.to_manifest()
        kwargs = {"dtype": m["dtype"], "prompt_format": lm.prompt_format,
                  "chat_template_kwargs": dict(lm.chat_template_kwargs) or None}
        ready = actor.setup.remote(model, kwargs, model_identity(lm), str(self.path), self.token_file, self.token)
        return _Slot(model, actor), ready

    def _ready(self, started: list[tuple[_Slot, Any]]) -> None:
        import ray

        for slot, ref in started:
            try:
                slot.node = ray.get(ref)
            except ray.exceptions.RayTaskError as e:
                raise _cause(e) from None
            except ray.exceptions.RayActorError as e:
                raise RunError(f"{self.path}: a Ray actor died while loading {slot.model}: "
                               f"{str(e).splitlines()[0]}") from None
            self.startup.append(time.perf_counter() - slot.since)
            self.slots.append(slot)

    def _staff(self, wanted: dict[str, int], lms) -> None:
        """Keep the actors of the models in ``wanted`` (up to their share), stop the others, start the rest."""
        import ray

        keep = []
        for slot in self.slots:
            if sum(s.model == slot.model for s in keep) < wanted.get(slot.model, 0):
                keep.append(slot)
            else:
                ray.kill(slot.actor)
        self.slots = keep
        started = [self._start(m, lms[m]) for m, n in wanted.items()
                   for _ in range(n - sum(s.model == m for s in keep))]
        self._ready(started)

    def running_actors(self) -> list[Any]:
        """Actors that hold a chunk now (for tests that kill one mid-run)."""
        return [slot.actor for slot, _ in self._running.values()]

    # -- work ---------------------------------------------------------------------------------

    def run(self, store, lms: Mapping[str, Any], jobs: Sequence, description: str, progress: bool) -> None:
        """Compute ``jobs`` on the actors; each chunk is written by its actor when done.

        Parameters
        ----------
        store : RunStore
            The open run (its lock is held by this driver).
        lms : mapping of str to Backend
            The driver's models by name (their settings are what every actor loads).
        jobs : sequence of ChunkJob
            The missing chunks.
        description : str
            The progress bar's label.
        progress : bool
            Show the progress bar.
        """
        import ray

        from ._progress import stage

        if not jobs:
            return
        if not self.connected:
            self._connect()
        _invalidate(store, {j.table for j in jobs})
        shared: dict[int, tuple[Any, Any]] = {}  # id(arg) -> (arg, ObjectRef): a task or table put once

        def refs(args: tuple) -> list:
            out = []
            for a in args:
                if isinstance(a, (str, int, float, bool, type(None))):
                    out.append(a)
                    continue
                if id(a) not in shared:
                    shared[id(a)] = (a, ray.put(a))
                out.append(shared[id(a)][1])
            return out

        by_model: dict[str, deque] = {}
        for job in jobs:
            by_model.setdefault(job.model, deque()).append(job)
        from ._chunks import total_items

        with stage(description, total_items(jobs), progress) as advance:
            for wave in split_actors(self.n_actors, list(by_model)):
                self._staff(wave, lms)
                self._run_wave(store, lms, {m: by_model[m] for m in wave}, refs, advance)

    def _run_wave(self, store, lms, queues: dict[str, deque], refs, advance) -> None:
        import ray

        tries: dict[tuple, int] = {}
        running = self._running = {}
        idle = list(self.slots)
        while any(queues.values()) or running:
            for slot in idle:
                queue = queues.get(slot.model)
                if queue:
                    job = queue.popleft()
                    target = os.path.abspath(store._chunk_path(job.table, job.stage, job.key))
                    running[slot.actor.run.remote(target, job.fn, *refs(job.args))] = (slot, job)
            idle = []
            if not running:
                break
            (ref,), _ = ray.wait(list(running), num_returns=1)
            slot, job = running.pop(ref)
            try:
                seconds = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as e:
                where = (job.table, job.stage, job.key)
                tries[where] = tries.get(where, 0) + 1
                if tries[where] > self.options.max_retries:
                    self._stop_running(running)
                    raise RunError(f"{self.path}: chunk {'/'.join(where)} failed on {tries[where]} Ray actors "
                                   f"(last on {slot.node}): {str(e).splitlines()[0]}") from None
                self.retried.append(where)
                queues[slot.model].appendleft(job)  # the dead actor's chunk goes to a fresh actor
                self.slots = [s for s in self.slots if s is not slot]
                fresh = [self._start(slot.model, lms[slot.model])]
                self._ready(fresh)
                idle.append(fresh[0][0])
                continue
            except ray.exceptions.RayTaskError as e:
                self._stop_running(running)
                raise _cause(e) from None
            self.timings.append({"table": job.table, "stage": job.stage, "key": job.key, "node": slot.node,
                                 "seconds": seconds})
            advance(job.n_items)
            idle.append(slot)
            if self.options.after_chunk is not None:
                self.options.after_chunk(self, job)

    def _stop_running(self, running: dict) -> None:
        import ray

        for ref in running:
            try:
                ray.cancel(ref, force=False)
            except Exception:  # noqa: BLE001 - the actors are killed at close() anyway
                pass

    def close(self) -> None:
        """Stop the actors, remove the token file, and shut Ray down if this executor started it."""
        if not self.connected:
            return
        self.connected = False
        try:
            import ray

            for slot in self.slots:
                ray.kill(slot.actor)
            self.slots = []
            if self.owns_ray and ray.is_initialized():
                ray.shutdown()
        finally:
            try:
                (self.path / self.token_file).unlink()
            except OSError:
                pass

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _invalidate(store, tables: set[str]) -> None:
    """What ``RunStore.write_chunk`` does before a write, done once on the driver since the actors
    write the chunk files themselves: the consolidated copies of the tables become stale."""
    for table in tables:
        consolidated = Path(store.path) / f"{table}{st.PARQUET}"
        if consolidated.exists():
            consolidated.unlink()
            if store.manifest.get("finalized"):
                store.update_manifest(finalized=None)


def _cause(e: Exception) -> BaseException:
    """The exception an actor raised (a SelfbiasError, ValueError, ...), without Ray's wrapping."""
    cause = getattr(e, "cause", None)
    return cause if isinstance(cause, BaseException) else e
