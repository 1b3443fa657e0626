"""Reading a run: :class:`Run` and :func:`load_run` (tables as DataFrames, the analysis frames, display).

A run folder is written by :class:`selfbias.store.RunStore` (manifest, lock, chunked atomic
Parquet tables; the layout is in :mod:`selfbias.store`). This module reads it: each table once,
lazily; the analysis and pairwise frames of :mod:`selfbias.frames`; the run's analysis
(:meth:`Run.analysis`, computed once per bootstrap setting, see :mod:`selfbias.analysis`); and
its display in a terminal or a notebook. Statistics are imported only when asked for.

The names of the store and the frames are re-exported here, so ``from selfbias.runs import
RunStore, make_analysis_frame`` keeps working.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import _storage as st
from .frames import ANALYSIS_COLUMNS, PAIRWISE_COLUMNS, make_analysis_frame, make_pairwise_frame, pair_type_name
from .store import (
    TABLES,
    RunError,
    RunStore,
    file_hash,
    first_difference,
    package_versions,
    read_manifest,
    read_table_arrow,
    show_value,
    table_files,
    table_names,
)

if TYPE_CHECKING:
    from .analysis import RunAnalysis

__all__ = [
    "Run",
    "load_run",
    # re-exported from selfbias.store and selfbias.frames
    "RunError",
    "RunStore",
    "package_versions",
    "file_hash",
    "first_difference",
    "show_value",
    "make_analysis_frame",
    "make_pairwise_frame",
    "pair_type_name",
    "TABLES",
    "ANALYSIS_COLUMNS",
    "PAIRWISE_COLUMNS",
]

# Per-token list columns of scores and judgments: large on long answers and used by no frame.
_UNUSED_BY_FRAMES = frozenset({"token_ids", "tokens", "logprobs", "is_argmax", "top_tokens", "top_probs"})


def _name_of(x: Any) -> str:
    if isinstance(x, dict):
        for k in ("name", "alias", "id", "identity", "model", "spec"):
            if isinstance(x.get(k), str):
                return x[k]
        return show_value(x, 60)
    return str(x)



# Columns without which a table cannot feed the analysis frames (selfbias.frames).
_FRAME_NEEDS = {"judgments": ("item_id", "candidate_id", "judge", "mode", "p_yes"),
                "candidates": ("item_id", "candidate_id", "correct", "source"),
                "scores": ("item_id", "candidate_id", "sum_logprob")}

class Run:
    """A run folder opened for reading: the manifest and the tables as pandas DataFrames.

    Tables are read lazily from ``RUN/<table>.parquet`` or, if absent (run not finalized), from the
    chunks, and cached; :meth:`refresh` drops the cache.  A table that does not exist reads as an
    empty DataFrame.  :meth:`analysis` computes the run's frames and statistics once per bootstrap
    setting and caches them too.

    Parameters
    ----------
    path : str or os.PathLike
        The run folder.
    manifest : dict, optional
        The manifest when already read (else read from ``path``).

    Attributes
    ----------
    path : pathlib.Path
        The run folder.
    manifest : dict
        The manifest (``request``, ``versions``, ``timing``, ``judge`` settings, ...).
    items, generations, candidates, scores, agreement, judgments : pandas.DataFrame
        The tables (ARCHITECTURE.md, "Data contracts"); empty when absent.
    request : dict
        The manifest's ``request`` (the run's identity).

    Raises
    ------
    RunError
        ``path`` has no readable manifest.
    """

    def __init__(self, path: str | os.PathLike, manifest: dict | None = None):
        self.path = Path(path).expanduser()
        self.manifest = manifest if manifest is not None else read_manifest(self.path)
        self._cache: dict[str, pd.DataFrame] = {}
        self._analyses: dict[tuple, RunAnalysis] = {}

    def refresh(self) -> "Run":
        """Re-read the manifest and drop every cached table and analysis (after the run changed).

        Returns
        -------
        Run
            This run.
        """
        self.manifest = read_manifest(self.path)
        self._cache.clear()
        self._analyses.clear()
        return self

    def _arrow(self, name: str, columns: list[str] | None = None) -> pa.Table | None:
        return read_table_arrow(self.path, name, columns)

    def _frame_input(self, name: str) -> pd.DataFrame:
        """Table ``name`` without the per-token list columns that no frame uses (Arrow column
        projection: they are never read from disk), cached apart from the full table."""
        if name in self._cache:  # the full table is already in memory
            return self._cache[name].copy(deep=False)
        key = f"{name}:frame"  # not a valid table name, so never a table's cache entry
        if key not in self._cache:
            files = table_files(self.path, name)
            names: list[str] = []
            for f in files:
                try:
                    own = pq.read_schema(f).names
                except (OSError, pa.ArrowException) as e:
                    raise RunError(f"{f}: unreadable Parquet file ({e}); delete it to redo that chunk") from None
                lacking = [c for c in _FRAME_NEEDS.get(name, ()) if c not in own]
                if lacking:  # another table's file, or a damaged one: not "no judgments yet"
                    raise RunError(f"{f}: damaged '{name}' table (no column {', '.join(lacking)}); delete it to "
                                   "redo that chunk (a consolidated table is rebuilt from the chunks)")
                names += [c for c in own if c not in names]
            data = self._arrow(name, [c for c in names if c not in _UNUSED_BY_FRAMES]) if files else None
            self._cache[key] = pd.DataFrame() if data is None else st.arrow_to_df(data)
        return self._cache[key].copy(deep=False)

    def table(self, name: str) -> pd.DataFrame:
        """Table ``name`` as a DataFrame (list columns as Python lists), read once and cached.

        Parameters
        ----------
        name : str
            A table name (:data:`TABLES`, or another table the run holds).

        Returns
        -------
        pandas.DataFrame
            A shallow copy of the cached table; empty if the run has no such table.
        """
        if name not in self._cache:
            data = self._arrow(name)
            self._cache[name] = pd.DataFrame() if data is None else st.arrow_to_df(data)
        return self._cache[name].copy(deep=False)

    def tables(self) -> list[str]:
        """Names of the tables that exist, the standard ones first.

        Returns
        -------
        list of str
        """
        return table_names(self.path)

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
        df = self.table("judgments")
        if len(df):
            # Judgments written before `top_k_mass` existed all came from the Hugging Face backend,
            # which reads the full next-token distribution: their covered mass is exactly 1.
            df["top_k_mass"] = df["top_k_mass"].fillna(1.0) if "top_k_mass" in df else 1.0
        return df

    @property
    def request(self) -> dict:
        return self.manifest.get("request", {})

    def analysis_frame(self) -> pd.DataFrame:
        """The analysis frame: one row per judged candidate x judge x mode (pairwise rows excluded).

        Built anew on each call from the cached tables (:func:`selfbias.frames.make_analysis_frame`);
        :meth:`analysis` keeps one.

        Returns
        -------
        pandas.DataFrame
            :data:`ANALYSIS_COLUMNS`: ``item_id, candidate_id, judge, mode, p_yes, yes_no_mass``
            (judgments); ``correct``, ``source`` (relative to the judge), ``author``,
            ``self_authored`` (candidates); ``sum_logprob, mean_logprob, n_tokens`` (scores with
            scorer == judge; NaN where the judge did not score the candidate, and ``n_tokens`` is
            then float64 instead of int64); ``gold_shown, list_length``. Rows keep the judgments'
            order.
        """
        return make_analysis_frame(*(self._frame_input(t) for t in ("judgments", "candidates", "scores")))

    def pairwise_frame(self) -> pd.DataFrame:
        """The pairwise frame: one row per judged pair x judge, the two presentation orders combined.

        Built anew on each call (:func:`selfbias.frames.make_pairwise_frame`, which says how the
        orders are combined); :meth:`analysis` keeps one.

        Returns
        -------
        pandas.DataFrame
            :data:`PAIRWISE_COLUMNS`; ``pref_a`` is the mean of the available orders,
            ``orders_agree`` is True when both orders exist and pick the same candidate (both P(a)
            above 0.5 or both below).
        """
        return make_pairwise_frame(*(self._frame_input(t) for t in ("judgments", "candidates", "scores")))

    def analysis(self, n_boot: int | None = None, seed: int | None = None,
                 confidence: float | None = None) -> RunAnalysis:
        """The run's analysis under one bootstrap setting, computed once and cached on this run.

        Every command and figure of a run reads this one object, so the judge-health table is the
        same everywhere (:mod:`selfbias.analysis`). :meth:`refresh` drops the cache.

        Parameters
        ----------
        n_boot : int, optional
            Item-bootstrap resamples (default :data:`selfbias.analysis.DEFAULT_N_BOOT`, 2000).
        seed : int, optional
            Seed of every bootstrap and permutation (default 0).
        confidence : float, optional
            Two-sided interval level (default 0.95).

        Returns
        -------
        selfbias.analysis.RunAnalysis
            The frames now; health, pairwise health and summary computed on first use.
        """
        from . import analysis as _analysis  # statistics load only when asked for

        setting = {
            "n_boot": _analysis.DEFAULT_N_BOOT if n_boot is None else n_boot,
            "seed": _analysis.DEFAULT_SEED if seed is None else seed,
            "confidence": _analysis.DEFAULT_CONFIDENCE if confidence is None else confidence,
        }
        key = tuple(setting.values())
        if key not in self._analyses:
            self._analyses[key] = _analysis.analyze_run(self, **setting)
        return self._analyses[key]

    # -- display --------------------------------------------------------------------------------

    def row_counts(self) -> dict[str, int]:
        """Rows per table, read from Parquet metadata (no table is loaded).

        Returns
        -------
        dict of str to int
            Rows by table name; -1 for a table whose files cannot be read.
        """
        counts = {}
        for name in self.tables():
            files = table_files(self.path, name)
            try:
                counts[name] = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
            except (OSError, pa.ArrowException):
                counts[name] = -1
        return counts

    def models(self) -> list[str]:
        """The run's model names: from the request, else from the tables' model columns.

        Returns
        -------
        list of str
            In first-seen order, without repeats.
        """
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
        """The task's name from the request.

        Returns
        -------
        str
            Empty when the request names no task.
        """
        t = self.request.get("task")
        return "" if t is None else _name_of(t)

    def summary(self, n_boot: int | None = None, seed: int | None = None, confidence: float | None = None,
                **options: Any):
        """The headline statistics of this run: misplaced confidence, comparison effect, likelihood
        coefficients, judge health, findings in words (:func:`selfbias.stats.summarize`).

        The summary of :meth:`analysis` under the same bootstrap setting (computed once).

        Parameters
        ----------
        n_boot, seed, confidence : optional
            The bootstrap setting (:meth:`analysis`).
        **options
            Further options of :func:`selfbias.stats.summarize` (``baseline``, ``against``,
            ``threshold``, ``n_bins``, ``n_perm``); with any, the summary is computed anew.

        Returns
        -------
        selfbias.stats.Summary

        Raises
        ------
        RunError
            The run has no P(Yes) judgments yet.
        """
        analysis = self.analysis(n_boot=n_boot, seed=seed, confidence=confidence)
        return analysis.summarize(**options) if options else analysis.summary

    def accuracy(self) -> dict[str, float]:
        """Greedy accuracy per model (from generations, else agreement).

        Returns
        -------
        dict of str to float
            Share of correct greedy answers by model; empty if unavailable.
        """
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
    """Open an existing run folder for reading.

    Parameters
    ----------
    path : str or os.PathLike
        A run folder made by ``selfbias probe`` (or :class:`RunStore`).

    Returns
    -------
    Run

    Raises
    ------
    RunError
        The folder does not exist, is not a folder, or is not a run.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise RunError(f"{p}: no such run folder")
    if not p.is_dir():
        raise RunError(f"{p}: not a folder")
    return Run(p)
