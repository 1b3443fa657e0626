# Over 600 lines: the run folder's writer (manifest, lock, chunks, resume, drop, finalize) and its reading functions share the layout.
"""The run store: a run folder's manifest, lock and chunked atomic Parquet tables (:class:`RunStore`).

Writing a run (``probe``, ``judge``) goes through :class:`RunStore`; reading one goes through
:class:`selfbias.runs.Run`, which uses the public reading functions here (:func:`read_manifest`,
:func:`table_files`, :func:`read_table_arrow`, :func:`table_names`). This module knows nothing of
what the tables mean (that is :mod:`selfbias.frames`) and imports no statistics.

Layout of a run folder::

    RUN/manifest.json                              request, package versions, created, timing, sessions
    RUN/chunks/<table>/<stage>/<key>.parquet       the work, one atomically committed chunk per file
    RUN/<table>.parquet                            consolidated copy written by finalize() (derived)
    RUN/.lock                                      advisory lock held by the process working on the run

Every file is written to a hidden temporary file in the same folder, fsync'd and ``os.replace``'d
into place, so a run killed at any moment (Ctrl-C or ``kill -9``) contains only complete chunks and
a complete manifest.  Re-running the same command reopens the run (:meth:`RunStore.open` with the
same request), skips the chunks that exist (:meth:`RunStore.has_chunk`) and ends with tables
identical to an uninterrupted run, provided that a chunk's content depends only on its key and the
request (the callers' part of the contract).

Conventions
-----------
* A table is the concatenation of its chunks in natural order of (stage, key): digit runs compare as
  numbers ("c2" < "c10"), so keys need no zero-padding, but they must be unique within a stage.
  Keys may be any non-empty string (they are percent-encoded into file names).
* The DataFrame index is not stored; tables are read back with a fresh ``RangeIndex``.
* **List columns** (``token_ids``, ``logprobs``, ``tokens``, ``is_argmax``, ``references``, ...)
  are stored as Arrow ``list<...>`` columns and always come back as Python ``list`` objects holding
  Python scalars (``int``, ``float``, ``str``, ``bool``; ``None`` for a null element), in ``object``
  columns.  NumPy arrays or tuples given on write are stored the same way and also come back as lists.
  float64 values (also NaN and +-inf inside lists) round-trip exactly.
* Scalar columns keep their dtypes (``int64``, ``float64``, ``bool``, pandas ``str``).
* Reading consolidated files and reading the chunks give identical DataFrames.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import secrets
import shutil
import warnings
import weakref
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from selfbias import _storage as st
from selfbias.errors import RunError  # RunError re-exported (defined in errors)

if TYPE_CHECKING:
    from selfbias.runs import Run

__all__ = [
    "RunError",
    "RunStore",
    "package_versions",
    "file_hash",
    "first_difference",
    "show_value",
    "read_manifest",
    "table_names",
    "table_files",
    "read_table_arrow",
    "TABLES",
    "MANIFEST",
    "CHUNKS",
]

TABLES = ("items", "generations", "candidates", "scores", "agreement", "judgments")
MANIFEST = "manifest.json"
CHUNKS = "chunks"
FORMAT = "selfbias-run/1"


_VERSION_PACKAGES = (
    "selfbias", "torch", "transformers", "numpy", "pandas", "pyarrow", "scipy", "statsmodels",
)


# ----------------------------------------------------------------------------- small helpers


def package_versions() -> dict[str, str]:
    """Versions of Python, selfbias and the numerical packages, plus the platform string.

    Read from package metadata (nothing is imported); a missing package reads "not installed".

    Returns
    -------
    dict of str to str
        ``python``, one entry per package of ``_VERSION_PACKAGES`` and ``platform``.
    """
    out = {"python": platform.python_version()}
    for name in _VERSION_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["platform"] = platform.platform()
    return out


def file_hash(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """The digest of a file's bytes (for the task source in a request).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    algorithm : str
        A :func:`hashlib.new` algorithm name.

    Returns
    -------
    str
        ``"<algorithm>:<hex digest>"``.
    """
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return f"{algorithm}:{h.hexdigest()}"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _json_default(o: Any) -> Any:
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o, key=str)
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    raise TypeError(f"{type(o).__name__} value {o!r} cannot be stored in a run manifest")


def _jsonable(obj: Any) -> Any:
    """The JSON-normalised form of ``obj`` (what the manifest stores and what is compared)."""
    return json.loads(json.dumps(obj, default=_json_default))


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default, indent=2) + "\n"


_ABSENT = object()


def _leaf_equal(a: Any, b: Any) -> bool:
    num = (int, float)
    if isinstance(a, num) and isinstance(b, num) and not isinstance(a, bool) and not isinstance(b, bool):
        return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b


def _first_difference(old: Any, new: Any, path: str) -> tuple[str, Any, Any] | None:
    """The first key path at which two JSON values differ, with both values; None if equal."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in list(new) + [k for k in old if k not in new]:
            d = _first_difference(old.get(k, _ABSENT), new.get(k, _ABSENT), f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            d = _first_difference(a, b, f"{path}[{i}]")
            if d:
                return d
        return None
    if old is not _ABSENT and new is not _ABSENT and _leaf_equal(old, new):
        return None
    return (path, old, new)


def first_difference(old: Any, new: Any, path: str) -> tuple[str, Any, Any] | None:
    """The first key path at which two JSON values (e.g. recorded and requested settings) differ.

    Dict keys are visited in ``new``'s order, then the keys only ``old`` has; lists of equal length
    element by element; numbers compare by value (``1 == 1.0``, NaN equals NaN), other leaves by
    type and value.

    Parameters
    ----------
    old, new : JSON value
        The recorded and the requested value.
    path : str
        Name of the root in the returned path (e.g. ``"request"``).

    Returns
    -------
    tuple of (str, object, object) or None
        ``(path, old value, new value)`` at the first difference (a missing key's value shows as
        ``"absent"`` in :func:`show_value`); None if the two are equal.
    """
    return _first_difference(old, new, path)


def show_value(v: Any, limit: int = 80) -> str:
    """A value of :func:`first_difference` as short JSON text for a one-line error.

    Parameters
    ----------
    v : object
        A JSON value, or the missing-key marker of :func:`first_difference`.
    limit : int
        Longest text; longer text is cut and ends in ``"..."``.

    Returns
    -------
    str
        The JSON text, or ``"absent"`` for a missing key.
    """
    return _show(v, limit)


def _show(v: Any, limit: int = 80) -> str:
    if v is _ABSENT:
        return "absent"
    s = json.dumps(v, default=_json_default)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _folder_state(path: Path) -> str:
    """'missing' | 'empty' | 'run' | 'foreign' (non-empty, no manifest)."""
    if not path.exists():
        return "missing"
    if (path / MANIFEST).exists():
        return "run"
    for entry in os.scandir(path):
        if entry.name != st.LOCK_NAME and not st.is_tmp(entry.name):
            return "foreign"
    return "empty"


# ----------------------------------------------------------------------------- reading


def read_manifest(path: Path) -> dict:
    """The manifest of the run folder ``path``.

    Parameters
    ----------
    path : pathlib.Path
        A run folder.

    Returns
    -------
    dict
        The parsed ``manifest.json``.

    Raises
    ------
    RunError
        No manifest (not a run folder), an unreadable one, or one without a ``request``.
    """
    mpath = path / MANIFEST
    try:
        with open(mpath, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except FileNotFoundError:
        raise RunError(f"{path}: not a selfbias run folder (no {MANIFEST})") from None
    except (OSError, ValueError, RecursionError) as e:
        from ._inputs import json_problem

        reason = json_problem(e) if isinstance(e, RecursionError) or "digits" in str(e) else e
        raise RunError(f"{mpath}: unreadable run manifest ({reason})") from None
    if not isinstance(manifest, dict) or "request" not in manifest:
        raise RunError(f"{mpath}: not a selfbias run manifest (no 'request' field)")
    _check_manifest(manifest, mpath)
    return manifest


# Manifest fields and their JSON types (None allowed where a field may be null).
_MANIFEST_TYPES: dict[str, tuple[type, ...]] = {
    "request": (dict,), "format": (str,), "versions": (dict, type(None)), "timing": (dict, type(None)),
    "sessions": (list, type(None)), "judge": (dict, type(None)), "models_loaded": (dict, type(None)),
    "skipped_rows": (list, type(None)), "skipped_too_long": (list, type(None)),
}
_REQUEST_TYPES: dict[str, tuple[type, ...]] = {
    "models": (list, type(None)), "task": (dict, str, type(None)), "settings": (dict, type(None)),
    "templates": (dict, type(None)), "judge_modes": (list, type(None)),
}


def _check_manifest(manifest: dict, mpath: Path) -> None:
    """The format is one this selfbias reads, and the fields it reads have their JSON types."""
    fmt = manifest.get("format", FORMAT)
    if fmt != FORMAT:
        shown = fmt if isinstance(fmt, str) else type(fmt).__name__
        name, _, version = str(shown).partition("/")
        newer = name == FORMAT.split("/")[0] and version.isdigit() and int(version) > int(FORMAT.split("/")[1])
        raise RunError(f"{mpath}: the run's format is {_show(shown)}" + (
            ", written by a newer selfbias; upgrade selfbias to read it" if newer else
            f"; this selfbias reads {FORMAT}"))

    def check(obj: dict, types: dict, where: str) -> None:
        for key, allowed in types.items():
            if key in obj and not isinstance(obj[key], allowed):
                want = " or ".join("null" if t is type(None) else {"dict": "an object", "list": "a list",
                                                                  "str": "a string"}[t.__name__] for t in allowed)
                raise RunError(f"{mpath}: field '{where}{key}' must be {want}, got {type(obj[key]).__name__}")

    check(manifest, _MANIFEST_TYPES, "")
    check(manifest["request"], _REQUEST_TYPES, "request.")
    for i, model in enumerate(manifest["request"].get("models") or []):
        if not isinstance(model, str) and not (isinstance(model, dict) and isinstance(model.get("name"), str)):
            raise RunError(f"{mpath}: field 'request.models[{i}]' must be an object with a string 'name'")


def _check_table(name: str) -> str:
    """``name`` if it can be a table name (a safe file name), else a ValueError naming it."""
    return st.check_name("table", name)


def _chunk_files(run_path: Path, table: str) -> list[Path]:
    """The complete chunk files of a table, in natural (stage, key) order (hidden files left out)."""
    tdir = run_path / CHUNKS / _check_table(table)
    if not tdir.is_dir():
        return []
    found = []
    for sdir in os.scandir(tdir):
        if not sdir.is_dir() or sdir.name.startswith("."):
            continue
        for f in os.scandir(sdir.path):
            if f.name.endswith(st.PARQUET) and not f.name.startswith("."):
                key = st.filename_to_key(f.name)
                found.append(((st.natural_key(sdir.name), st.natural_key(key)), Path(f.path)))
    found.sort(key=lambda t: t[0])
    return [p for _, p in found]


def table_files(run_path: Path, table: str) -> list[Path]:
    """The files that hold a table: the consolidated ``RUN/<table>.parquet`` when it exists (it is
    removed whenever a chunk changes, so it is never stale), else its chunks.

    Parameters
    ----------
    run_path : pathlib.Path
        A run folder.
    table : str
        A table name.

    Returns
    -------
    list of pathlib.Path
        One consolidated file, or the chunk files in natural order (empty: no such table).
    """
    consolidated = run_path / f"{_check_table(table)}{st.PARQUET}"
    return [consolidated] if consolidated.exists() else _chunk_files(run_path, table)


def _read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """One Parquet file of a run as Arrow; RunError (saying to delete it) when unreadable."""
    try:
        return st.read_parquet_arrow(path, columns)
    except (OSError, pa.ArrowException) as e:
        raise RunError(f"{path}: unreadable Parquet file ({e}); delete it to redo that chunk") from None


def _read_chunks(run_path: Path, table: str, columns: list[str] | None = None) -> pa.Table | None:
    """All chunks of a table concatenated in natural (stage, key) order; None without chunks."""
    files = _chunk_files(run_path, table)
    if not files:
        return None
    parts = [_read_parquet(f, columns) for f in files]
    try:
        return st.concat_arrow(parts)
    except pa.ArrowException as e:
        raise RunError(f"{run_path}: chunks of table '{table}' have incompatible columns ({e})") from None


def read_table_arrow(run_path: Path, table: str, columns: list[str] | None = None) -> pa.Table | None:
    """A table of a run as Arrow: the consolidated file when it exists, else its chunks.

    Parameters
    ----------
    run_path : pathlib.Path
        A run folder.
    table : str
        A table name.
    columns : list of str, optional
        Columns to read; all when None.

    Returns
    -------
    pyarrow.Table or None
        None when the run has no such table.
    """
    consolidated = run_path / f"{_check_table(table)}{st.PARQUET}"
    if consolidated.exists():
        return _read_parquet(consolidated, columns)
    return _read_chunks(run_path, table, columns)


def table_names(run_path: Path) -> list[str]:
    """The tables a run folder holds (consolidated or as chunks).

    Parameters
    ----------
    run_path : pathlib.Path
        A run folder.

    Returns
    -------
    list of str
        The standard tables (:data:`TABLES`) first, in their order, then the others by name.
    """
    names = set()
    for f in run_path.glob("*" + st.PARQUET):
        if not f.name.startswith("."):
            names.add(f.name[: -len(st.PARQUET)])
    cdir = run_path / CHUNKS
    if cdir.is_dir():
        for t in os.scandir(cdir):
            if t.is_dir() and not t.name.startswith(".") and _chunk_files(run_path, t.name):
                names.add(t.name)
    order = {n: i for i, n in enumerate(TABLES)}
    return sorted(names, key=lambda n: (order.get(n, len(order)), n))


# ----------------------------------------------------------------------------- RunStore


class RunStore:
    """Chunked, atomic storage in a run folder (see the module docstring for the layout).

    Obtain one with :meth:`RunStore.open`.  While a store is alive this process holds the run's lock
    (released by :meth:`close`, at garbage collection, or when the process dies), so a second process
    opening the same run gets a :class:`RunError` instead of interleaving its writes.

    Parameters
    ----------
    path : pathlib.Path
        The run folder.
    manifest : dict
        Its manifest as read or written.
    lock : DirLock or None
        The run's lock, held until :meth:`close`.
    resumed : bool
        True when an existing run was reopened.

    Attributes
    ----------
    path : pathlib.Path
        The run folder.
    resumed : bool
        True when an existing run was reopened.
    """

    def __init__(self, path: Path, manifest: dict, lock: st.DirLock | None, resumed: bool):
        self.path = path
        self.resumed = resumed  # True when an existing run was reopened
        self._manifest = manifest
        self._finalizer = weakref.finalize(self, st.release_lock, lock) if lock is not None else None
        # A resumed session is recorded with the first write, so a command refused after opening the
        # run (a bad template, an unreachable server) leaves the manifest as it was.
        self._session: dict | None = None

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike, request: dict | None, *, overwrite: bool = False) -> "RunStore":
        """Create, resume or replace the run folder ``path``.

        ``request`` is the part of the manifest that defines the run's identity (model identities,
        task and source hash, templates, seeds, arguments); it must be JSON-serialisable (paths and
        NumPy scalars are converted).  A missing or empty folder becomes a new run.  An existing run
        is resumed when its request equals ``request``; otherwise :class:`RunError` names the first
        differing field.  ``overwrite=True`` removes an existing run first.  A non-empty folder
        without a manifest is never used or removed.  ``request=None`` reopens an existing run
        without checking it (for stages that add tables to a finished run).

        Parameters
        ----------
        path : str or os.PathLike
            The run folder (a link is followed).
        request : dict or None
            The run's identity; None to reopen an existing run unchecked.
        overwrite : bool
            Remove an existing run made with another request first.

        Returns
        -------
        RunStore
            Holding the run's lock; ``resumed`` says whether the run existed.

        Raises
        ------
        RunError
            The folder is not a run and not empty, the run was made with another request, another
            process holds the run, or the request cannot be stored.
        """
        path = Path(path).expanduser()
        if path.is_symlink():
            path = path.resolve()
        if request is not None:
            if not isinstance(request, dict):
                raise TypeError(f"request must be a dict, got {type(request).__name__}")
            try:
                request = _jsonable(request)
            except (TypeError, ValueError) as e:
                raise RunError(f"{path}: request cannot be stored in the manifest: {e}") from None
        if path.exists() and not path.is_dir():
            raise RunError(f"{path}: exists and is not a folder")
        state = _folder_state(path)
        if state == "foreign":
            raise RunError(
                f"{path}: folder is not empty and is not a selfbias run (no {MANIFEST}); "
                "refusing to use or replace it, choose another folder"
            )
        if request is None:
            if state != "run":
                raise RunError(f"{path}: not a selfbias run folder (no {MANIFEST})")
            if overwrite:
                raise ValueError("overwrite=True needs a request to create the new run")
            return cls._resume(path, None)
        if state == "run" and overwrite:
            cls._remove(path)
            state = "missing"
        if state == "run":
            return cls._resume(path, request)
        return cls._create(path, request)

    @staticmethod
    def _lock(path: Path) -> tuple[st.DirLock, bool]:
        try:
            return st.acquire_lock(path)
        except st.LockBusy as e:
            who = f" (pid {e.holder})" if e.holder else ""
            raise RunError(f"{path}: run is in use by another process{who}; wait for it or stop it") from None

    @classmethod
    def _create(cls, path: Path, request: dict) -> "RunStore":
        path.mkdir(parents=True, exist_ok=True)
        lock, _fresh = cls._lock(path)
        try:
            if (path / MANIFEST).exists():  # another process created it meanwhile
                st.release_lock(lock)
                lock = None
                return cls._resume(path, request)
            st.clean_tmp_files(path)
            now = _now()
            manifest = {
                "format": FORMAT,
                "request": request,
                "versions": package_versions(),
                "created": now,
                "timing": {},
                "sessions": [{"started": now, "pid": os.getpid()}],
            }
            st.atomic_write_bytes(path / MANIFEST, _dumps(manifest).encode(), sync_dir=True)
        except BaseException:
            if lock is not None:
                st.release_lock(lock)
            raise
        return cls(path, manifest, lock, resumed=False)

    @classmethod
    def _resume(cls, path: Path, request: dict | None) -> "RunStore":
        lock, fresh = cls._lock(path)
        try:
            manifest = read_manifest(path)
            if request is not None:
                diff = _first_difference(manifest.get("request"), request, "request")
                if diff:
                    where, old, new = diff
                    raise RunError(
                        f"{path}: the run folder was made with a different request: {where}: "
                        f"{_show(old)} in the run, {_show(new)} requested; "
                        "use overwrite=True (--overwrite) to replace it, or choose another folder"
                    )
            if fresh:
                st.clean_tmp_files(path)
            store = cls(path, manifest, lock, resumed=True)
        except BaseException:
            st.release_lock(lock)
            raise
        versions = package_versions()
        old = manifest.get("versions") or {}
        changed = {k: [old.get(k), v] for k, v in versions.items() if old.get(k) != v}
        session = {"started": _now(), "pid": os.getpid(), "resumed": True}
        if changed:
            session["versions_changed"] = changed
            pkgs = [k for k in changed if k != "platform"]
            if pkgs:
                warnings.warn(
                    f"{path}: resuming a run made with other package versions ("
                    + ", ".join(f"{k} {changed[k][0]} -> {changed[k][1]}" for k in pkgs)
                    + "); new chunks may differ slightly from old ones",
                    stacklevel=3,
                )
        store._session = session
        return store

    @classmethod
    def _remove(cls, path: Path) -> None:
        """Remove a run folder: lock it (no other process may be using it), move it aside, delete it."""
        lock, _fresh = cls._lock(path)
        trash = path.with_name(f".{path.name}.removing-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            os.rename(path, trash)
        except OSError as e:
            st.release_lock(lock)
            raise RunError(f"{path}: cannot remove the old run ({e})") from None
        st.drop_lock(lock)
        shutil.rmtree(trash, ignore_errors=True)

    def close(self) -> None:
        """Release the run's lock (also done at garbage collection and at process exit).

        Returns
        -------
        None
        """
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- manifest -----------------------------------------------------------------------------

    @property
    def manifest(self) -> dict:
        """A copy of the current manifest.

        Returns
        -------
        dict
        """
        manifest = copy.deepcopy(self._manifest)
        if self._session is not None:  # this session, written with the first change
            manifest.setdefault("sessions", []).append(dict(self._session))
        return manifest

    @property
    def request(self) -> dict:
        """A copy of the manifest's ``request`` (the run's identity).

        Returns
        -------
        dict
        """
        return copy.deepcopy(self._manifest["request"])

    def _update(self, change) -> dict:
        manifest = read_manifest(self.path)
        if self._session is not None:
            manifest.setdefault("sessions", []).append(self._session)
            self._session = None
        change(manifest)
        st.atomic_write_bytes(self.path / MANIFEST, _dumps(manifest).encode(), sync_dir=True)
        self._manifest = manifest
        return manifest

    def record_timing(self, stage: str, seconds: float) -> None:
        """Add ``seconds`` to ``manifest["timing"][stage]`` (a resumed run sums all its sessions).

        Parameters
        ----------
        stage : str
            Name of the stage (``generate``, ``score``, ``judge``, ...).
        seconds : float
            Wall-clock seconds of this session's part.
        """
        seconds = float(seconds)

        def change(m):
            timing = m.setdefault("timing", {})
            timing[stage] = round(float(timing.get(stage, 0.0)) + seconds, 3)

        self._update(change)

    def update_manifest(self, **fields: Any) -> None:
        """Set top-level manifest fields (e.g. ``skipped=...``, ``notes=...``); never ``request``.

        Parameters
        ----------
        **fields
            JSON-serialisable values by field name (paths and NumPy scalars are converted).

        Raises
        ------
        RunError
            A field is ``request`` or ``format``, or a value cannot be stored.
        """
        protected = {"request", "format"} & set(fields)
        if protected:
            raise RunError(f"{self.path}: manifest field(s) {sorted(protected)} cannot be changed")
        try:
            values = _jsonable(fields)
        except (TypeError, ValueError) as e:
            raise RunError(f"{self.path}: manifest fields cannot be stored: {e}") from None
        self._update(lambda m: m.update(values))

    # -- chunks -------------------------------------------------------------------------------

    def _chunk_path(self, table: str, stage: str, key: str) -> Path:
        return (
            self.path / CHUNKS / _check_table(table) / st.stage_dirname(stage) / st.key_to_filename(key)
        )

    def has_chunk(self, table: str, stage: str, key: str) -> bool:
        """Whether the chunk was committed (a committed chunk is always complete).

        Parameters
        ----------
        table, stage, key : str
            The chunk's table, stage (partition, e.g. a model) and key.

        Returns
        -------
        bool
        """
        return self._chunk_path(table, stage, key).exists()

    def write_chunk(self, table: str, stage: str, key: str, df: pd.DataFrame) -> None:
        """Commit ``df`` (index dropped) as one chunk of ``table``, atomically; replaces an existing chunk.

        The stale consolidated ``RUN/<table>.parquet`` is removed (readers fall back to the chunks)
        and the run is marked not finalized.

        Parameters
        ----------
        table, stage, key : str
            The chunk's table, stage and key.
        df : pandas.DataFrame
            The rows (list columns as lists or arrays; see the module docstring).
        """
        final = self._chunk_path(table, stage, key)
        data = st.df_to_arrow(df)
        if self._session is not None:
            self._update(lambda m: None)
        consolidated = self.path / f"{table}{st.PARQUET}"
        if consolidated.exists():  # derived copy now stale: readers fall back to the chunks
            consolidated.unlink()
            if self._manifest.get("finalized"):
                self._update(lambda m: m.update(finalized=None))
        st.atomic_write_table(final, data)

    def drop_stage(self, table: str, stage: str) -> bool:
        """Remove every chunk of ``table`` / ``stage`` (one partition, e.g. one judge and mode) and the
        now stale consolidated ``RUN/<table>.parquet``; the other stages stay. True if chunks existed.

        The stage folder is first renamed to a hidden name (atomic), so a kill during the removal
        leaves either the whole partition or none of it visible to readers.

        Parameters
        ----------
        table, stage : str
            The partition to remove.

        Returns
        -------
        bool
            True if the partition had chunks.
        """
        sdir = self.path / CHUNKS / _check_table(table) / st.stage_dirname(stage)
        consolidated = self.path / f"{table}{st.PARQUET}"
        if self._session is not None:
            self._update(lambda m: None)
        if consolidated.exists():
            consolidated.unlink()
            if self._manifest.get("finalized"):
                self._update(lambda m: m.update(finalized=None))
        if not sdir.is_dir():
            return False
        trash = sdir.with_name(f".{sdir.name}.removing-{os.getpid()}-{secrets.token_hex(4)}")
        os.rename(sdir, trash)
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def stages(self, table: str) -> list[str]:
        """Stages of ``table`` that hold committed chunks, in natural order.

        Parameters
        ----------
        table : str

        Returns
        -------
        list of str
        """
        tdir = self.path / CHUNKS / _check_table(table)
        if not tdir.is_dir():
            return []
        names = [st.dirname_to_stage(d.name) for d in os.scandir(tdir) if d.is_dir() and not d.name.startswith(".")]
        return sorted((n for n in names if self.chunk_keys(table, n)), key=st.natural_key)

    def chunk_keys(self, table: str, stage: str) -> list[str]:
        """Keys of the committed chunks of ``table`` / ``stage``, in natural order.

        Parameters
        ----------
        table, stage : str

        Returns
        -------
        list of str
        """
        sdir = self.path / CHUNKS / _check_table(table) / st.stage_dirname(stage)
        if not sdir.is_dir():
            return []
        keys = [
            st.filename_to_key(f.name)
            for f in os.scandir(sdir)
            if f.name.endswith(st.PARQUET) and not f.name.startswith(".")
        ]
        return sorted(keys, key=st.natural_key)

    def tables(self) -> list[str]:
        """Names of the tables the run holds (:func:`table_names`).

        Returns
        -------
        list of str
        """
        return table_names(self.path)

    def read_table(self, table: str) -> pd.DataFrame:
        """All chunks of ``table`` concatenated in natural (stage, key) order, fresh index.

        Parameters
        ----------
        table : str

        Returns
        -------
        pandas.DataFrame
            An empty ``pd.DataFrame()`` when the table has no chunk.
        """
        data = _read_chunks(self.path, table)
        return pd.DataFrame() if data is None else st.arrow_to_df(data)

    def finalize(self) -> "Run":
        """Write the consolidated ``RUN/<table>.parquet`` of every table (atomically).

        Returns
        -------
        selfbias.runs.Run
            The finished run, opened for reading.
        """
        cdir = self.path / CHUNKS
        names = [t.name for t in os.scandir(cdir) if t.is_dir() and not t.name.startswith(".")] if cdir.is_dir() else []
        for name in sorted(names):
            data = _read_chunks(self.path, name)
            if data is not None:
                st.atomic_write_table(self.path / f"{name}{st.PARQUET}", data)
        self._update(lambda m: m.update(finalized=_now()))
        from .runs import Run  # the reader sits above the store: imported here, not at module level

        return Run(self.path, manifest=copy.deepcopy(self._manifest))

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r}, resumed={self.resumed})"
