"""A run as one self-contained HTML file, and its summary as JSON.

:func:`write_report` writes ``RUN/analysis/report.html``: the probe summary, the findings and notes,
judge health (degenerate judges named first), the thesis estimates, every table of the summary,
every figure the run supports (PNG embedded as a ``data:`` URI; the figures the run cannot support
are listed with the reason), and the manifest. Nothing is fetched when the file is opened: no
scripts, no style sheets, no images from elsewhere, so it can be mailed, attached to a paper's
supplement or opened offline. :func:`summary_dict` is the same summary as plain JSON values,
written beside it as ``summary.json``.

The numbers are the run's one analysis (:meth:`selfbias.runs.Run.analysis`, the default bootstrap
setting), so the report shows what ``selfbias analyze`` and ``selfbias figures`` show.
"""

from __future__ import annotations

import base64
import html
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["Report", "write_report", "summary_dict"]


@dataclass(frozen=True)
class Report:
    """What :func:`write_report` wrote.

    Attributes
    ----------
    html : pathlib.Path
        The report file.
    json : pathlib.Path
        ``summary.json`` (:func:`summary_dict`).
    figures : pandas.DataFrame
        One row per registered figure (:func:`selfbias.plots.draw_all`'s table): ``figure``,
        ``status`` (drawn, skipped, failed) and ``reason``.
    summary : dict
        :func:`summary_dict` of the run.
    """

    html: Path
    json: Path
    figures: pd.DataFrame
    summary: dict


def _plain(value: Any) -> Any:
    """A JSON value: NaN and NA as None, numpy scalars as Python numbers, arrays as lists."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy scalar or array
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _records(frame: pd.DataFrame | None) -> list[dict] | None:
    if frame is None:
        return None
    return [_plain(dict(zip(frame.columns, row))) for row in frame.itertuples(index=False, name=None)]


def summary_dict(run) -> dict:
    """The run's summary as JSON values: what ``summary.md`` says, for programs.

    Parameters
    ----------
    run : selfbias.runs.Run or str or Path
        A run (or its folder).

    Returns
    -------
    dict
        ``run`` (folder), ``selfbias_version``, ``probe`` (one record per model, as
        :func:`selfbias.probe.probe_summary`), ``findings`` and ``notes`` (lists of sentences),
        ``tables`` (each table of :meth:`selfbias.stats.Summary.tables` as a list of records, NaN
        as null); ``findings``, ``notes`` and ``tables`` are empty when the run has no judgments yet.
    """
    from ._version import __version__
    from .runs import Run, load_run

    run = run if isinstance(run, Run) else load_run(run)
    summary = _summary_or_none(run)
    return {
        "run": str(run.path), "selfbias_version": __version__,
        "probe": _records(_probe_table(run)) or [],
        "findings": list(summary.findings) if summary else [],
        "notes": list(summary.notes) if summary else [],
        "tables": {name: _records(t) for name, t in summary.tables().items()} if summary else {},
    }


def _summary_or_none(run):
    analysis = run.analysis()
    return None if analysis.frame.empty else analysis.summary


def _probe_table(run) -> pd.DataFrame | None:
    from .probe import probe_summary

    if "generations" not in run.tables():
        return None
    return probe_summary(run)


def _table_html(frame: pd.DataFrame, cls: str = "") -> str:
    # to_html escapes every cell (escape=True is its default)
    return frame.to_html(index=False, float_format=lambda x: f"{x:.3g}", na_rep="", border=0,
                         classes=cls or None)


def _figures(run, analysis, folder: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """Every registered figure the run supports, drawn as PNG into ``folder``: the status table
    and {figure: data URI}."""
    from .plots import draw_all

    table = draw_all(run, folder, formats=("png",), analysis=analysis)
    uris = {}
    for row in table.itertuples():
        png = next((f for f in row.files if f.endswith(".png")), None)
        if row.status == "drawn" and png:
            uris[row.figure] = "data:image/png;base64," + base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return table, uris


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: .85em; width: max-content; }
td { max-width: 36em; }
th, td { border: 1px solid #ddd; padding: .25em .5em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.degenerate { background: #fff3cd; border-left: 4px solid #e0a800; padding: .5em 1em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #555; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: .8em; }
.scroll { overflow-x: auto; }
"""


def write_report(run, out: str | Path | None = None) -> Report:
    """Write the run's self-contained HTML report and ``summary.json``.

    The report holds the probe summary, the findings and notes, judge health, the thesis
    estimates (the outside-list vs own-list contrast of :func:`selfbias.stats.thesis_effect`),
    every table of the summary, every figure of :data:`selfbias.plots.FIGURES` the run supports
    (embedded PNG; the others listed with the reason) and the manifest. Nothing in it is fetched
    when it is opened.

    Parameters
    ----------
    run : selfbias.runs.Run or str or Path
        A run (or its folder).
    out : str or Path or None
        The HTML file (default ``RUN/analysis/report.html``); ``summary.json`` goes beside it.

    Returns
    -------
    Report
        The paths written, the figures' status table and the summary as JSON values.
    """
    from ._version import __version__
    from .runs import Run, load_run

    run = run if isinstance(run, Run) else load_run(run)
    out = Path(out) if out is not None else Path(run.path) / "analysis" / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    analysis = run.analysis()
    summary = None if analysis.frame.empty else analysis.summary
    probe_table = _probe_table(run)
    with tempfile.TemporaryDirectory(prefix="selfbias-report-") as tmp:
        figures, uris = _figures(run, analysis, Path(tmp))

    esc = html.escape
    request = run.manifest.get("request") or {}
    models = ", ".join(m.get("name", "?") for m in request.get("models") or []) or ", ".join(run.models)
    task = (request.get("task") or {}).get("spec") or run.task_name
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>selfbias report: {esc(Path(run.path).name)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>selfbias report: {esc(Path(run.path).name)}</h1>",
        f"<p>Models: <b>{esc(models)}</b>. Task: <b>{esc(str(task))}</b>. "
        f"{len(run.items) if 'items' in run.tables() else 0} items. selfbias {esc(__version__)}. "
        f"Intervals: {analysis.confidence:.0%}, {analysis.n_boot} item-bootstrap resamples, seed {analysis.seed}.</p>",
    ]
    if probe_table is not None:
        parts += ["<h2 id='probe'>Probe</h2>",
                  "<p>Per model: greedy accuracy of the graded answers, ungraded answers, and how often the "
                  "model's own wrong answer out-scores the reference under itself.</p>",
                  f"<div class='scroll'>{_table_html(probe_table)}</div>"]
    if summary is None:
        parts.append("<h2 id='findings'>Findings</h2><p>No judgments yet: run <code>selfbias judge RUN</code>.</p>")
    else:
        parts.append("<h2 id='findings'>Findings</h2><ul>")
        parts += [f"<li>{esc(f)}</li>" for f in summary.findings] or ["<li>(none)</li>"]
        parts.append("</ul>")
        if summary.notes:
            parts.append("<h3>Notes</h3><ul>" + "".join(f"<li>{esc(n)}</li>" for n in summary.notes) + "</ul>")
        health = summary.health
        parts.append("<h2 id='health'>Judge health</h2>")
        for row in health[health["degenerate"]].itertuples():
            parts.append(f"<p class='degenerate'><b>degenerate judge {esc(str(row.judge))} ({esc(str(row.mode))})</b>: "
                         f"{esc(str(row.reasons))}; its P(Yes) numbers describe noise, not judgment.</p>")
        parts.append(f"<div class='scroll'>{_table_html(health)}</div>")
        parts.append("<h2 id='thesis'>Thesis estimates</h2>")
        if summary.thesis is not None and len(summary.thesis):
            parts.append("<p>Outside alternatives vs the judge's own samples, lists matched in length, on the "
                         "judge's own wrong answers (selfbias.stats.thesis_effect).</p>")
            parts.append(f"<div class='scroll'>{_table_html(summary.thesis)}</div>")
        else:
            parts.append("<p>None: the thesis contrast needs the judge modes <code>alternatives</code> and "
                         "<code>own_samples</code> (<code>selfbias judge RUN --mode own_samples --mode "
                         "alternatives</code>).</p>")
        parts.append("<h2 id='tables'>Tables</h2>")
        for name, t in summary.tables().items():
            if name in ("health", "thesis"):
                continue
            parts.append(f"<h3>{esc(name)}</h3><div class='scroll'>{_table_html(t)}</div>")
    parts.append("<h2 id='figures'>Figures</h2>")
    from .plots import REGISTRY

    described = {spec.name: spec.description for spec in REGISTRY}
    for row in figures.itertuples():
        if row.figure in uris:
            note = f" ({esc(row.reason)})" if row.reason else ""
            parts.append(f"<figure id='fig-{esc(row.figure)}'><img alt='{esc(row.figure)}' src='{uris[row.figure]}'>"
                         f"<figcaption><b>{esc(row.figure)}</b>: {esc(described.get(row.figure, ''))}{note}"
                         "</figcaption></figure>")
    missing = figures[~figures["figure"].isin(list(uris))]
    if len(missing):
        parts.append("<p>Not drawn for this run:</p><ul>" + "".join(
            f"<li><b>{esc(r.figure)}</b> ({esc(r.status)}): {esc(str(r.reason))}</li>" for r in missing.itertuples())
            + "</ul>")
    parts.append("<h2 id='manifest'>Manifest</h2>")
    parts.append(f"<pre>{esc(json.dumps(_plain(run.manifest), indent=2, ensure_ascii=False))}</pre>")
    parts.append("</body></html>")
    out.write_text("\n".join(parts), encoding="utf-8")
    data = summary_dict(run)
    json_path = out.with_name("summary.json")
    json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False), encoding="utf-8")
    return Report(html=out, json=json_path, figures=figures[["figure", "status", "reason"]], summary=data)
