"""Run folders: a manifest, chunked atomic Parquet tables, resume, :class:`Run` and :func:`load_run`.

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
import html
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
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from selfbias import _storage as st
from selfbias.errors import SelfbiasError

__all__ = [
    "RunError",
    "RunStore",
    "Run",
    "load_run",
    "package_versions",
    "file_hash",
    "make_analysis_frame",
    "make_pairwise_frame",
    "first_difference",
    "show_value",
    "TABLES",
    "ANALYSIS_COLUMNS",
    "PAIRWISE_COLUMNS",
]

TABLES = ("items", "generations", "candidates", "scores", "agreement", "judgments")
MANIFEST = "manifest.json"
CHUNKS = "chunks"
FORMAT = "selfbias-run/1"

ANALYSIS_COLUMNS = [
    "item_id", "candidate_id", "judge", "mode", "p_yes", "yes_no_mass", "correct", "source",
    "self_authored", "sum_logprob", "mean_logprob", "n_tokens", "author", "gold_shown", "list_length",
]
PAIRWISE_COLUMNS = [
    "item_id", "judge", "candidate_a", "candidate_b", "p_a_first", "p_a_second", "pref_a",
    "orders_agree", "a_correct", "b_correct", "a_self", "b_self", "a_sum_logprob", "b_sum_logprob",
    "a_mean_logprob", "b_mean_logprob", "pair_type", "verdict",
]

_VERSION_PACKAGES = (
    "selfbias", "torch", "transformers", "numpy", "pandas", "pyarrow", "scipy", "statsmodels",
)


class RunError(SelfbiasError, RuntimeError):
    """A run folder cannot be used as asked; the message is one line naming the path or field."""


# ----------------------------------------------------------------------------- small helpers


def package_versions() -> dict[str, str]:
    """Versions of Python, selfbias and the numerical packages, plus the platform string.

    Read from package metadata (nothing is imported); a missing package reads "not installed".
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
    """``"<algorithm>:<hex digest>"`` of a file's bytes (for the task source in a request)."""
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
    """The first key path at which two JSON values (e.g. recorded and requested settings) differ, with
    both values (``"absent"`` in :func:`show_value` for a missing key); None if they are equal."""
    return _first_difference(old, new, path)


def show_value(v: Any, limit: int = 80) -> str:
    """A value of :func:`first_difference` as short JSON text for a one-line error."""
    return _show(v, limit)


def _show(v: Any, limit: int = 80) -> str:
    if v is _ABSENT:
        return "absent"
    s = json.dumps(v, default=_json_default)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _read_manifest(path: Path) -> dict:
    mpath = path / MANIFEST
    try:
        with open(mpath, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except FileNotFoundError:
        raise RunError(f"{path}: not a selfbias run folder (no {MANIFEST})") from None
    except (OSError, ValueError) as e:
        raise RunError(f"{mpath}: unreadable run manifest ({e})") from None
    if not isinstance(manifest, dict) or "request" not in manifest:
        raise RunError(f"{mpath}: not a selfbias run manifest (no 'request' field)")
    return manifest


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


def _check_table(name: str) -> str:
    return st.check_name("table", name)


def _chunk_files(run_path: Path, table: str) -> list[Path]:
    """Complete chunk files of a table, in natural (stage, key) order."""
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


def _read_arrow(path: Path, columns: list[str] | None = None) -> pa.Table:
    try:
        return st.read_parquet_arrow(path, columns)
    except (OSError, pa.ArrowException) as e:
        raise RunError(f"{path}: unreadable Parquet file ({e}); delete it to redo that chunk") from None


def _read_chunks_arrow(run_path: Path, table: str, columns: list[str] | None = None) -> pa.Table | None:
    files = _chunk_files(run_path, table)
    if not files:
        return None
    parts = [_read_arrow(f, columns) for f in files]
    try:
        return st.concat_arrow(parts)
    except pa.ArrowException as e:
        raise RunError(f"{run_path}: chunks of table '{table}' have incompatible columns ({e})") from None


def _table_names(run_path: Path) -> list[str]:
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
    """

    def __init__(self, path: Path, manifest: dict, lock: st.DirLock | None, resumed: bool):
        self.path = path
        self.resumed = resumed  # True when an existing run was reopened
        self._manifest = manifest
        self._finalizer = weakref.finalize(self, st.release_lock, lock) if lock is not None else None

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
            manifest = _read_manifest(path)
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
        store._update(lambda m: m.setdefault("sessions", []).append(session))
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
        """Release the run's lock (also done at garbage collection and at process exit)."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- manifest -----------------------------------------------------------------------------

    @property
    def manifest(self) -> dict:
        """A copy of the current manifest."""
        return copy.deepcopy(self._manifest)

    @property
    def request(self) -> dict:
        return copy.deepcopy(self._manifest["request"])

    def _update(self, change) -> dict:
        manifest = _read_manifest(self.path)
        change(manifest)
        st.atomic_write_bytes(self.path / MANIFEST, _dumps(manifest).encode(), sync_dir=True)
        self._manifest = manifest
        return manifest

    def record_timing(self, stage: str, seconds: float) -> None:
        """Add ``seconds`` to ``manifest["timing"][stage]`` (a resumed run sums all its sessions)."""
        seconds = float(seconds)

        def change(m):
            timing = m.setdefault("timing", {})
            timing[stage] = round(float(timing.get(stage, 0.0)) + seconds, 3)

        self._update(change)

    def update_manifest(self, **fields: Any) -> None:
        """Set top-level manifest fields (e.g. ``skipped=...``, ``notes=...``); never ``request``."""
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
        """Whether the chunk was committed (a committed chunk is always complete)."""
        return self._chunk_path(table, stage, key).exists()

    def write_chunk(self, table: str, stage: str, key: str, df: pd.DataFrame) -> None:
        """Commit ``df`` (index dropped) as one chunk of ``table``, atomically; replaces an existing chunk."""
        final = self._chunk_path(table, stage, key)
        data = st.df_to_arrow(df)
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
        """
        sdir = self.path / CHUNKS / _check_table(table) / st.stage_dirname(stage)
        consolidated = self.path / f"{table}{st.PARQUET}"
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
        """Stages of ``table`` that hold committed chunks, in natural order."""
        tdir = self.path / CHUNKS / _check_table(table)
        if not tdir.is_dir():
            return []
        names = [st.dirname_to_stage(d.name) for d in os.scandir(tdir) if d.is_dir() and not d.name.startswith(".")]
        return sorted((n for n in names if self.chunk_keys(table, n)), key=st.natural_key)

    def chunk_keys(self, table: str, stage: str) -> list[str]:
        """Keys of the committed chunks of ``table`` / ``stage``, in natural order."""
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
        return _table_names(self.path)

    def read_table(self, table: str) -> pd.DataFrame:
        """All chunks of ``table`` concatenated in natural (stage, key) order, fresh index.

        An empty ``pd.DataFrame()`` when the table has no chunk.
        """
        data = _read_chunks_arrow(self.path, table)
        return pd.DataFrame() if data is None else st.arrow_to_df(data)

    def finalize(self) -> "Run":
        """Write the consolidated ``RUN/<table>.parquet`` of every table (atomically); return the Run."""
        cdir = self.path / CHUNKS
        names = [t.name for t in os.scandir(cdir) if t.is_dir() and not t.name.startswith(".")] if cdir.is_dir() else []
        for name in sorted(names):
            data = _read_chunks_arrow(self.path, name)
            if data is not None:
                st.atomic_write_table(self.path / f"{name}{st.PARQUET}", data)
        self._update(lambda m: m.update(finalized=_now()))
        return Run(self.path, manifest=copy.deepcopy(self._manifest))

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r}, resumed={self.resumed})"


# ----------------------------------------------------------------------------- frames


def _listlike(v: Any) -> bool:
    return isinstance(v, (list, tuple, np.ndarray))


def _candidate_info(candidates: pd.DataFrame) -> pd.DataFrame:
    cols = ["item_id", "candidate_id", "correct", "source", "authors", "sources"]
    c = candidates if not candidates.empty else pd.DataFrame(columns=cols)
    c = c.reindex(columns=cols)
    if c.duplicated(["item_id", "candidate_id"]).any():
        raise RunError("candidates has duplicate (item_id, candidate_id) rows")
    return c


def _score_info(scores: pd.DataFrame) -> pd.DataFrame:
    cols = ["item_id", "candidate_id", "scorer", "sum_logprob", "mean_logprob", "n_tokens"]
    s = scores if not scores.empty else pd.DataFrame(columns=cols)
    s = s.reindex(columns=cols).rename(columns={"scorer": "judge"})
    if s.duplicated(["item_id", "candidate_id", "judge"]).any():
        raise RunError("scores has duplicate (item_id, candidate_id, scorer) rows")
    return s


_OWN = ("own_greedy", "own_sample")
_DATASET_ORDER = ("reference", "distractor", "perturbation")


def _relative_source(sources, authors, judge: str, primary) -> tuple[str, str]:
    """(source, author) of a candidate as seen by ``judge``.

    The judge's own answer keeps its own source; an answer that only other models gave becomes
    ``other_model`` (author: the first such model); anything else keeps its dataset source.
    """
    if not (_listlike(sources) and _listlike(authors)):
        return primary, "dataset" if primary not in _OWN else "unknown"
    pairs = list(zip(sources, authors))
    own = [s for s, a in pairs if a == judge and s in _OWN]
    if own:
        return min(own, key=_OWN.index), judge
    others = [a for s, a in pairs if s in _OWN]
    if others:
        return "other_model", others[0]
    dataset = [s for s, _ in pairs if s in _DATASET_ORDER]
    return (min(dataset, key=_DATASET_ORDER.index) if dataset else primary), "dataset"


def _self_flags(authors: pd.Series, judges: pd.Series) -> list[bool]:
    return [bool(_listlike(a) and j in list(a)) for a, j in zip(authors, judges)]


def _int_if_complete(s: pd.Series) -> pd.Series:
    if len(s) and s.notna().all():
        return s.astype("int64")
    return s.astype("float64")


def _list_info(j: pd.DataFrame, candidates: pd.DataFrame) -> tuple[list[bool], list[int]]:
    """(gold_shown, list_length) of judgment rows: the recorded columns, or, for runs judged before
    they existed, derived from ``alternatives`` (ids shown) and the candidates' ``correct`` flag."""
    n = len(j)
    recorded_gold = j["gold_shown"].tolist() if "gold_shown" in j else [None] * n
    recorded_len = j["list_length"].tolist() if "list_length" in j else [None] * n
    correct = {}
    if not candidates.empty and {"item_id", "candidate_id", "correct"} <= set(candidates.columns):
        correct = {(i, c): v is True or (not pd.isna(v) and bool(v)) for i, c, v in
                   zip(candidates["item_id"], candidates["candidate_id"], candidates["correct"])}
    alts = j["alternatives"].tolist() if "alternatives" in j else [None] * n
    gold, length = [], []
    for item, mode, shown, g, L in zip(j["item_id"], j["mode"], alts, recorded_gold, recorded_len):
        shown = list(shown) if _listlike(shown) and mode in _LIST_MODES else []
        length.append(int(L) if L is not None and not (isinstance(L, float) and math.isnan(L)) else len(shown))
        if g is not None and not (isinstance(g, float) and math.isnan(g)):
            gold.append(bool(g))
        else:
            gold.append(any(correct.get((item, c), False) for c in shown))
    return gold, length


_LIST_MODES = ("own_samples", "alternatives")


def make_analysis_frame(
    judgments: pd.DataFrame, candidates: pd.DataFrame, scores: pd.DataFrame
) -> pd.DataFrame:
    """The analysis frame (ARCHITECTURE.md) from the three tables; see :meth:`Run.analysis_frame`."""
    if judgments.empty or "mode" not in judgments:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ANALYSIS_COLUMNS})
    j = judgments[judgments["mode"] != "pairwise"]
    gold, length = _list_info(j, candidates)
    j = j.reindex(columns=["item_id", "candidate_id", "judge", "mode", "p_yes", "yes_no_mass"])
    j = j.assign(gold_shown=pd.Series(gold, index=j.index, dtype=bool),
                 list_length=pd.Series(length, index=j.index, dtype="int64"))
    out = j.merge(_candidate_info(candidates), on=["item_id", "candidate_id"], how="left")
    out["self_authored"] = _self_flags(out["authors"], out["judge"])
    relative = [_relative_source(s, a, j, p) for s, a, j, p in
                zip(out["sources"], out["authors"], out["judge"], out["source"])]
    out["source"] = [r[0] for r in relative]
    out["author"] = [r[1] for r in relative]
    out = out.merge(_score_info(scores), on=["item_id", "candidate_id", "judge"], how="left")
    out["n_tokens"] = _int_if_complete(out["n_tokens"])
    for c in ("p_yes", "yes_no_mass", "sum_logprob", "mean_logprob"):
        out[c] = out[c].astype("float64")
    return out[ANALYSIS_COLUMNS].reset_index(drop=True)


_PAIR_KINDS = ("self", "other", "reference", "distractor", "perturbation")


def _pair_kind(judge: str, sources, authors, primary) -> str:
    """A pair member's kind as seen by ``judge``: self, other (another model's answer) or its dataset source."""
    source, _author = _relative_source(sources, authors, judge, primary)
    return "self" if source in _OWN else "other" if source == "other_model" else str(source)


def pair_type_name(kind_a: str, kind_b: str) -> str:
    """``<kind>_<kind>`` of a pair, kinds in the order self, other, reference, distractor, perturbation
    (so ``self_other``, ``other_other``, ``reference_distractor``; unordered, like the pair)."""
    rank = {k: i for i, k in enumerate(_PAIR_KINDS)}
    a, b = sorted((kind_a, kind_b), key=lambda k: (rank.get(k, len(rank)), k))
    return f"{a}_{b}"


def _verdict(first: float, second: float) -> str | None:
    """The order-consistent verdict: 'a' (or 'b') when both orders pick it, else 'inconsistent';
    None when an order is missing."""
    if math.isnan(first) or math.isnan(second):
        return None
    if first > 0.5 and second > 0.5:
        return "a"
    if first < 0.5 and second < 0.5:
        return "b"
    return "inconsistent"


def make_pairwise_frame(
    judgments: pd.DataFrame, candidates: pd.DataFrame, scores: pd.DataFrame
) -> pd.DataFrame:
    """The pairwise frame (ARCHITECTURE.md) from the three tables; see :meth:`Run.pairwise_frame`."""
    if judgments.empty or "mode" not in judgments:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PAIRWISE_COLUMNS})
    pw = judgments[judgments["mode"] == "pairwise"]
    has_alts = "alternatives" in pw
    pairs: dict[tuple, dict] = {}
    for row in pw.to_dict("records"):
        c, o, p = row["candidate_id"], row.get("other_candidate_id"), float(row["p_yes"])
        if not isinstance(o, str):
            raise RunError(f"pairwise judgment of {c!r} by {row['judge']!r} has no other_candidate_id")
        alts = row.get("alternatives") if has_alts else None
        if _listlike(alts) and len(alts) == 2 and c in list(alts) and o in list(alts):
            pos = list(alts).index(c)  # the order the judge actually showed
        else:
            pos = int(row.get("order", 0) or 0)  # order 0: this candidate shown first
        key = (row["item_id"], row["judge"], frozenset((c, o)))
        pair = pairs.setdefault(key, {"a": c, "b": o, "direct": ([], []), "mirror": ([], []), "type": None})
        recorded = row.get("pair_type")
        if pair["type"] is None and isinstance(recorded, str):
            pair["type"] = recorded
        if c == pair["a"]:
            pair["direct"][pos].append(p)
        else:
            pair["mirror"][1 - pos].append(1.0 - p)
    records = []
    for (item_id, judge, _), pair in pairs.items():
        vals = []
        for pos in (0, 1):
            src = pair["direct"][pos] or pair["mirror"][pos]
            vals.append(float(np.mean(src)) if src else math.nan)
        first, second = vals
        present = [v for v in vals if not math.isnan(v)]
        records.append({
            "item_id": item_id, "judge": judge, "candidate_a": pair["a"], "candidate_b": pair["b"],
            "p_a_first": first, "p_a_second": second,
            "pref_a": float(np.mean(present)) if present else math.nan,
            "orders_agree": bool(len(present) == 2 and (first - 0.5) * (second - 0.5) > 0),
            "pair_type": pair["type"], "verdict": _verdict(first, second),
        })
    if not records:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PAIRWISE_COLUMNS})
    out = pd.DataFrame.from_records(records)
    info = _candidate_info(candidates)
    kinds = {(i, c): (s, a, p) for i, c, s, a, p in
             zip(info["item_id"], info["candidate_id"], info["sources"], info["authors"], info["source"])}
    missing = out["pair_type"].isna()
    if missing.any():  # judged before pair_type was recorded: derive it from the candidates
        out.loc[missing, "pair_type"] = [
            pair_type_name(_pair_kind(j, *kinds.get((i, a), (None, None, "unknown"))),
                           _pair_kind(j, *kinds.get((i, b), (None, None, "unknown"))))
            for i, j, a, b in zip(out.loc[missing, "item_id"], out.loc[missing, "judge"],
                                  out.loc[missing, "candidate_a"], out.loc[missing, "candidate_b"])]
    for c in ("pair_type", "verdict"):  # text or None
        out[c] = out[c].astype(object)
    cand = info[["item_id", "candidate_id", "correct", "authors"]]
    sc = _score_info(scores)[["item_id", "candidate_id", "judge", "sum_logprob", "mean_logprob"]]
    for side in ("a", "b"):
        ren = {"candidate_id": f"candidate_{side}"}
        out = out.merge(
            cand.rename(columns={**ren, "correct": f"{side}_correct", "authors": f"{side}_authors"}),
            on=["item_id", f"candidate_{side}"], how="left",
        )
        out[f"{side}_self"] = _self_flags(out[f"{side}_authors"], out["judge"])
        out = out.merge(
            sc.rename(columns={**ren, "sum_logprob": f"{side}_sum_logprob", "mean_logprob": f"{side}_mean_logprob"}),
            on=["item_id", "judge", f"candidate_{side}"], how="left",
        )
        for c in (f"{side}_sum_logprob", f"{side}_mean_logprob"):
            out[c] = out[c].astype("float64")
    return out[PAIRWISE_COLUMNS].reset_index(drop=True)


# ----------------------------------------------------------------------------- Run


# Per-token list columns of scores and judgments: large on long answers and used by no frame.
_UNUSED_BY_FRAMES = frozenset({"token_ids", "tokens", "logprobs", "is_argmax", "top_tokens", "top_probs"})


def _name_of(x: Any) -> str:
    if isinstance(x, dict):
        for k in ("name", "alias", "id", "identity", "model", "spec"):
            if isinstance(x.get(k), str):
                return x[k]
        return _show(x, 60)
    return str(x)


class Run:
    """A run folder opened for reading: the manifest and the tables as pandas DataFrames.

    Tables are read lazily from ``RUN/<table>.parquet`` or, if absent (run not finalized), from the
    chunks, and cached; :meth:`refresh` drops the cache.  A table that does not exist reads as an
    empty DataFrame.
    """

    def __init__(self, path: str | os.PathLike, manifest: dict | None = None):
        self.path = Path(path).expanduser()
        self.manifest = manifest if manifest is not None else _read_manifest(self.path)
        self._cache: dict[str, pd.DataFrame] = {}

    def refresh(self) -> "Run":
        self.manifest = _read_manifest(self.path)
        self._cache.clear()
        return self

    def _arrow(self, name: str, columns: list[str] | None = None) -> pa.Table | None:
        consolidated = self.path / f"{_check_table(name)}{st.PARQUET}"
        if consolidated.exists():
            return _read_arrow(consolidated, columns)
        return _read_chunks_arrow(self.path, name, columns)

    def _frame_input(self, name: str) -> pd.DataFrame:
        """Table ``name`` without the per-token list columns that no frame uses (Arrow column
        projection: they are never read from disk), cached apart from the full table."""
        if name in self._cache:  # the full table is already in memory
            return self._cache[name].copy(deep=False)
        key = f"{name}:frame"  # not a valid table name, so never a table's cache entry
        if key not in self._cache:
            consolidated = self.path / f"{_check_table(name)}{st.PARQUET}"
            files = [consolidated] if consolidated.exists() else _chunk_files(self.path, name)
            names: list[str] = []
            for f in files:
                try:
                    names += [c for c in pq.read_schema(f).names if c not in names]
                except (OSError, pa.ArrowException) as e:
                    raise RunError(f"{f}: unreadable Parquet file ({e}); delete it to redo that chunk") from None
            data = self._arrow(name, [c for c in names if c not in _UNUSED_BY_FRAMES]) if files else None
            self._cache[key] = pd.DataFrame() if data is None else st.arrow_to_df(data)
        return self._cache[key].copy(deep=False)

    def table(self, name: str) -> pd.DataFrame:
        """Table ``name`` as a DataFrame (list columns as Python lists); empty if it doesn't exist."""
        if name not in self._cache:
            data = self._arrow(name)
            self._cache[name] = pd.DataFrame() if data is None else st.arrow_to_df(data)
        return self._cache[name].copy(deep=False)

    def tables(self) -> list[str]:
        """Names of the tables that exist, the standard ones first."""
        return _table_names(self.path)

    @property
    def items(self) -> pd.DataFrame:
        return self.table("items")

    @property
    def generations(self) -> pd.DataFrame:
        return self.table("generations")

    @property
    def candidates(self) -> pd.DataFrame:
        return self.table("candidates")

    @property
    def scores(self) -> pd.DataFrame:
        return self.table("scores")

    @property
    def agreement(self) -> pd.DataFrame:
        return self.table("agreement")

    @property
    def judgments(self) -> pd.DataFrame:
        return self.table("judgments")

    @property
    def request(self) -> dict:
        return self.manifest.get("request", {})

    def analysis_frame(self) -> pd.DataFrame:
        """One row per judged candidate x judge x mode (pairwise rows excluded).

        Columns: item_id, candidate_id, judge, mode, p_yes, yes_no_mass (judgments); correct, source
        (candidates); self_authored (= judge in the candidate's authors); sum_logprob, mean_logprob,
        n_tokens (scores with scorer == judge; NaN where the judge did not score the candidate, and
        n_tokens is then float64 instead of int64).  Rows keep the judgments' order.
        """
        return make_analysis_frame(*(self._frame_input(t) for t in ("judgments", "candidates", "scores")))

    def pairwise_frame(self) -> pd.DataFrame:
        """One row per judged pair x judge, the two presentation orders combined.

        Pairwise judgment rows give P(candidate_id is chosen) with ``other_candidate_id`` as the
        rival.  The position at which ``candidate_id`` was shown is taken from ``alternatives``
        (the two ids in the order shown) when present, else from ``order`` (0 = shown first).
        ``candidate_a`` is the candidate of the pair's first row in the judgments table.  P(a) in a
        position comes from a's own rows, or else as 1 - P(b) from b's rows.  ``pref_a`` is the mean
        of the available orders; ``orders_agree`` is True when both orders exist and pick the same
        candidate (both P(a) above 0.5 or both below).
        """
        return make_pairwise_frame(*(self._frame_input(t) for t in ("judgments", "candidates", "scores")))

    # -- display --------------------------------------------------------------------------------

    def row_counts(self) -> dict[str, int]:
        """Rows per table, read from Parquet metadata (no table is loaded)."""
        counts = {}
        for name in self.tables():
            consolidated = self.path / f"{name}{st.PARQUET}"
            files = [consolidated] if consolidated.exists() else _chunk_files(self.path, name)
            try:
                counts[name] = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
            except (OSError, pa.ArrowException):
                counts[name] = -1
        return counts

    def models(self) -> list[str]:
        req = self.request
        names: list[str] = []
        for key in ("models", "model", "scorers", "judges"):
            v = req.get(key)
            for x in v if isinstance(v, list) else ([v] if v is not None else []):
                n = _name_of(x)
                if n not in names:
                    names.append(n)
        if not names:
            for table, col in (("generations", "model"), ("scores", "scorer"), ("judgments", "judge")):
                data = self._arrow(table, [col]) if table in self.tables() else None
                if data is not None and col in data.column_names:
                    for n in data.column(col).unique().to_pylist():
                        if n is not None and str(n) not in names:
                            names.append(str(n))
        return names

    def task_name(self) -> str:
        t = self.request.get("task")
        return "" if t is None else _name_of(t)

    def summary(self, **kwargs):
        """The headline statistics of this run (:func:`selfbias.stats.summarize`): misplaced
        confidence, comparison effect, likelihood coefficients, judge health, findings in words."""
        from .stats import summarize

        frame = self.analysis_frame()
        if frame.empty:
            raise RunError(f"{self.path}: no judgments yet; run selfbias.judge(run) first")
        pairwise = self.pairwise_frame()
        return summarize(frame, pairwise if len(pairwise) else None,
                         self.agreement if len(self.agreement) else None, **kwargs)

    def accuracy(self) -> dict[str, float]:
        """Greedy accuracy per model (from generations, else agreement); {} if unavailable."""
        names = self.tables()
        if "generations" in names:
            data = self._arrow("generations", ["model", "kind", "correct"])
            if data is not None and {"model", "kind", "correct"} <= set(data.column_names):
                df = data.to_pandas()
                df = df[df["kind"] == "greedy"]
                if len(df):
                    return {str(k): float(v) for k, v in df.groupby("model", sort=True)["correct"].mean().items()}
        if "agreement" in names:
            data = self._arrow("agreement", ["model", "greedy_correct"])
            if data is not None and {"model", "greedy_correct"} <= set(data.column_names):
                df = data.to_pandas()
                if len(df):
                    return {str(k): float(v) for k, v in df.groupby("model", sort=True)["greedy_correct"].mean().items()}
        return {}

    def _status(self) -> str:
        return f"finalized {self.manifest['finalized']}" if self.manifest.get("finalized") else "not finalized"

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.row_counts().items())
        return (
            f"Run({str(self.path)!r}, task={self.task_name()!r}, models={self.models()!r}"
            + (f", {counts}" if counts else "")
            + ")"
        )

    def _repr_html_(self) -> str:
        e = html.escape
        m = self.manifest
        rows = [
            ("path", f"<code>{e(str(self.path))}</code>"),
            ("task", e(self.task_name() or "-")),
            ("models", e(", ".join(self.models()) or "-")),
            ("created", e(str(m.get("created", "-")))),
            ("status", e(self._status())),
            ("selfbias", e(str((m.get("versions") or {}).get("selfbias", "-")))),
        ]
        timing = m.get("timing") or {}
        if timing:
            rows.append(("timing", e(", ".join(f"{k} {v:.1f}s" for k, v in timing.items()))))
        out = ['<div class="selfbias-run"><strong>selfbias run</strong>', "<table>"]
        out += [f'<tr><th style="text-align:left">{k}</th><td style="text-align:left">{v}</td></tr>' for k, v in rows]
        out.append("</table>")
        counts = self.row_counts()
        if counts:
            out.append("<table><tr><th>table</th><th>rows</th></tr>")
            out += [f"<tr><td>{e(k)}</td><td>{v:,}</td></tr>" for k, v in counts.items()]
            out.append("</table>")
        acc = self.accuracy()
        if acc:
            out.append("<table><tr><th>model</th><th>greedy accuracy</th></tr>")
            out += [f"<tr><td>{e(k)}</td><td>{v:.1%}</td></tr>" for k, v in acc.items()]
            out.append("</table>")
        out.append("</div>")
        return "\n".join(out)


def load_run(path: str | os.PathLike) -> Run:
    """Open an existing run folder for reading; :class:`RunError` if it is not a run."""
    p = Path(path).expanduser()
    if not p.exists():
        raise RunError(f"{p}: no such run folder")
    if not p.is_dir():
        raise RunError(f"{p}: not a folder")
    return Run(p)
