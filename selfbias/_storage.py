"""Low-level storage helpers for run folders (private; used by :mod:`selfbias.runs`).

* atomic writes: a temporary file in the destination folder, flushed and fsync'd, then
  ``os.replace``'d over the destination, then the folder is fsync'd.  A reader therefore sees either
  the old file or the complete new one, never a partial file, even after ``kill -9``.
* temporary files are named ``.<final name>.tmp-<pid>-<random>`` so that they are hidden, never end
  in ``.parquet`` and can be recognised and removed when a run is resumed.
* DataFrame <-> Arrow conversion with one fixed convention for list columns: they are written as
  Arrow ``list<...>`` columns (NaN inside float lists stays NaN, ``None`` becomes null) and always
  read back as Python ``list`` objects holding Python scalars.
* an advisory per-folder lock (``fcntl.flock`` on ``RUN/.lock``) so that two processes never work on
  the same run at once; the kernel releases it when a process dies, even by ``kill -9``.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import threading
from pathlib import Path
from urllib.parse import quote, unquote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

try:  # POSIX only; elsewhere the lock is a no-op.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

TMP_MARK = ".tmp-"
LOCK_NAME = ".lock"
PARQUET = ".parquet"


# ----------------------------------------------------------------------------- atomic files


def tmp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def is_tmp(name: str) -> bool:
    return name.startswith(".") and TMP_MARK in name


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(final: Path, data: bytes, *, sync_dir: bool = False) -> None:
    """Write ``data`` to ``final`` atomically: tmp file + fsync + os.replace (+ fsync of the folder).

    The file is fsync'd before the rename so that the new name never points at missing data, even
    after a power loss.  ``sync_dir`` also makes the rename itself durable; without it a power loss
    may at worst forget the rename (a chunk is then simply redone).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(final)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:  # also KeyboardInterrupt: leave no tmp file behind
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if sync_dir:
        fsync_dir(final.parent)


def atomic_write_table(final: Path, table: pa.Table) -> None:
    """Write an Arrow table as Parquet, atomically."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    atomic_write_bytes(final, buf.getvalue())


def clean_tmp_files(root: Path) -> list[Path]:
    """Remove temporary files left behind by an interrupted writer (only call while holding the lock)."""
    removed = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            if is_tmp(name):
                p = Path(dirpath) / name
                try:
                    p.unlink()
                    removed.append(p)
                except OSError:
                    pass
    return removed


# ----------------------------------------------------------------------------- names


_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=-]*$")


def check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or name.endswith(PARQUET):
        raise ValueError(
            f"invalid {kind} name {name!r}: use letters, digits, '_', '-', '.', '=' "
            "(not starting with '.' and not ending in '.parquet')"
        )
    return name


def stage_dirname(stage: str) -> str:
    """A stage name (a model or judge name, possibly a path such as ``/models/my-run``) -> a safe
    folder name, percent-encoded and reversible (:func:`dirname_to_stage`); safe names stay as they are."""
    if not isinstance(stage, str) or stage == "":
        raise ValueError(f"stage name must be a non-empty string, got {stage!r}")
    name = quote(stage, safe="-_=.+,@")
    if name.startswith("."):
        name = "%2E" + name[1:]
    if len(name.encode()) > 250:
        raise ValueError(f"stage name too long for a folder name ({len(name)} characters): {stage[:60]!r}...")
    return name


def dirname_to_stage(name: str) -> str:
    return unquote(name)


def key_to_filename(key: str) -> str:
    """Any non-empty string key -> a safe file name (percent-encoded; reversible)."""
    if not isinstance(key, str) or key == "":
        raise ValueError(f"chunk key must be a non-empty string, got {key!r}")
    name = quote(key, safe="-_=+,@")
    if name.startswith("."):
        name = "%2E" + name[1:]
    name += PARQUET
    if len(name.encode()) > 250:
        raise ValueError(f"chunk key too long for a file name ({len(name)} characters): {key[:60]!r}...")
    return name


def filename_to_key(name: str) -> str:
    return unquote(name[: -len(PARQUET)])


_DIGITS = re.compile(r"(\d+)")


def natural_key(s: str) -> tuple:
    """Sort key in which digit runs compare as numbers: 'c2' < 'c10'; ties broken by the text."""
    parts = _DIGITS.split(s)
    return tuple((int(p), p) if i % 2 else (0, p) for i, p in enumerate(parts))


# ----------------------------------------------------------------------------- DataFrame <-> Arrow


def _is_list_type(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _plain_cell(v):
    """A list-column cell as pyarrow should see it: lists stay lists, a top-level NaN/None becomes None."""
    if v is None:
        return None
    if isinstance(v, float) and v != v:
        return None
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        return v.tolist()  # numpy array / scalar -> Python objects (keeps NaN as NaN)
    if isinstance(v, tuple):
        return list(v)
    return v


def df_to_arrow(df: pd.DataFrame) -> pa.Table:
    """Convert a DataFrame (index dropped) to Arrow.

    ``pa.Table.from_pandas`` turns NaN *inside* lists into null; list columns are therefore
    re-converted with ``from_pandas=False`` so that a float NaN inside a list round-trips as NaN.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
    bad = [c for c in df.columns if not isinstance(c, str)]
    if bad:
        raise ValueError(f"column names must be strings, got {bad!r}")
    if df.columns.duplicated().any():
        raise ValueError(f"duplicate column names: {sorted(set(df.columns[df.columns.duplicated()]))!r}")
    table = pa.Table.from_pandas(df, preserve_index=False)
    for i, field in enumerate(table.schema):
        if _is_list_type(field.type):
            values = [_plain_cell(v) for v in df[field.name].tolist()]
            arr = pa.array(values, type=field.type, from_pandas=False)
            table = table.set_column(i, field, arr)
    return table


def arrow_to_df(table: pa.Table) -> pd.DataFrame:
    """Convert Arrow to pandas; list columns become Python lists of Python scalars."""
    list_cols = [f.name for f in table.schema if _is_list_type(f.type)]
    if not list_cols:
        return table.to_pandas()
    names = table.column_names
    df = table.drop_columns(list_cols).to_pandas()
    for name in list_cols:
        df[name] = pd.Series(table.column(name).to_pylist(), index=df.index, dtype=object)
    return df[names]


def concat_arrow(tables: list[pa.Table]) -> pa.Table:
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="permissive")


def read_parquet_arrow(path: Path, columns: list[str] | None = None) -> pa.Table:
    if columns is not None:
        schema = pq.read_schema(path)
        columns = [c for c in columns if c in schema.names]
    return pq.read_table(path, columns=columns)


# ----------------------------------------------------------------------------- folder lock


class DirLock:
    """One process-wide hold of a run folder's flock; shared by every RunStore of that folder."""

    def __init__(self, key: str, fd: int | None):
        self.key = key
        self.fd = fd
        self.users = 0


_HELD: dict[str, DirLock] = {}
_HELD_GUARD = threading.Lock()


class LockBusy(Exception):
    def __init__(self, holder: str):
        super().__init__(holder)
        self.holder = holder


def acquire_lock(folder: Path) -> tuple[DirLock, bool]:
    """Lock ``folder`` for this process.  Returns (lock, fresh); fresh = this process just took it.

    Raises :class:`LockBusy` (with the holder's pid, if known) when another process holds it.
    """
    key = os.path.realpath(folder)
    with _HELD_GUARD:
        lk = _HELD.get(key)
        if lk is not None and lk.fd is not None and not _same_file(lk.fd, os.path.join(folder, LOCK_NAME)):
            del _HELD[key]  # the folder was removed and recreated behind our back
            _close(lk)
            lk = None
        fresh = False
        if lk is None:
            fd = None
            if fcntl is not None:
                fd = os.open(os.path.join(folder, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    try:
                        holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
                    except OSError:  # pragma: no cover
                        holder = ""
                    os.close(fd)
                    raise LockBusy(holder) from None
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
            lk = DirLock(key, fd)
            _HELD[key] = lk
            fresh = True
        lk.users += 1
        return lk, fresh


def _same_file(fd: int, path: str) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def release_lock(lk: DirLock) -> None:
    with _HELD_GUARD:
        lk.users -= 1
        if lk.users <= 0 and _HELD.get(lk.key) is lk:
            del _HELD[lk.key]
            _close(lk)


def drop_lock(lk: DirLock) -> None:
    """Close this process's hold of a lock whose folder is being removed (other users of it too)."""
    with _HELD_GUARD:
        if _HELD.get(lk.key) is lk:
            del _HELD[lk.key]
        _close(lk)


def _close(lk: DirLock) -> None:
    if lk.fd is not None:
        try:
            os.close(lk.fd)  # closing the descriptor releases the flock
        except OSError:  # pragma: no cover
            pass
        lk.fd = None
