"""One call from a run's tables to every statistic, and plain-words findings.

:func:`summarize` runs judge health, misplaced confidence, discrimination (P(Yes), the answer's
log-likelihood, sample agreement), calibration, the comparison effect, the likelihood regression
and -- when a pairwise frame is given -- the published pairwise metrics, and returns a frozen
:class:`Summary`. Its ``findings`` say the main results in sentences with intervals, degenerate
judges first (their other numbers describe noise).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ._health import judge_health
from ._metrics import (
    DEFAULT_CONFIDENCE,
    DEFAULT_N_BOOT,
    DEFAULT_N_PERM,
    agreement_discrimination,
    calibration,
    comparison_effect,
    discrimination,
    likelihood_discrimination,
    misplaced_confidence,
)
from ._published import (
    chen_metrics,
    panickssery_self_preference,
    roytburg_baseline,
    wataoka_bias,
)

__all__ = ["Summary", "summarize"]

_TABLES = ("health", "misplaced", "discrimination", "calibration", "comparison", "likelihood", "published")


@dataclass(frozen=True, eq=False)
class Summary:
    """Everything :func:`summarize` computed.

    Attributes
    ----------
    misplaced: :func:`misplaced_confidence` by judge x source x mode.
    comparison: :func:`comparison_effect` (empty when no mode to compare with the baseline).
    discrimination: AUROC rows of P(Yes) (:func:`discrimination`, per judge x mode), of
        ``sum_logprob``/``mean_logprob`` (:func:`likelihood_discrimination`, ``mode`` empty) and of
        sample ``agreement`` (:func:`agreement_discrimination`, ``judge`` = the generating model);
        the ``score`` column says which.
    calibration: :func:`calibration` (Brier, ECE, RMS calibration error) per judge x mode.
    health: :func:`judge_health` per judge x mode, with ``degenerate`` and ``reasons``.
    likelihood: coefficients of ``likelihood_regression`` per judge (column ``judge``), or None when
        it could not be fitted (the reason is in ``notes``).
    published: pairwise metrics (Panickssery, Wataoka, Chen, Roytburg) stacked with a ``source``
        column naming the paper, or None without a pairwise frame.
    findings: plain-words sentences with intervals, degenerate judges first.
    notes: what was skipped or failed, and why.
    """

    misplaced: pd.DataFrame
    comparison: pd.DataFrame
    discrimination: pd.DataFrame
    calibration: pd.DataFrame
    health: pd.DataFrame
    likelihood: pd.DataFrame | None
    published: pd.DataFrame | None = None
    findings: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The non-empty tables by name, in report order."""
        out = {}
        for name in _TABLES:
            t = getattr(self, name)
            if t is not None:
                out[name] = t
        return out

    # ---------------------------------------------------------------- renderings
    def to_markdown(self, digits: int = 3) -> str:
        """A Markdown report: findings, notes, then every table."""
        lines = ["# selfbias summary", "", "## Findings", ""]
        lines += [f"- {f}" for f in self.findings] or ["- (none)"]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        for name, t in self.tables().items():
            lines += ["", f"## {name}", "", _markdown_table(t, digits)]
        return "\n".join(lines) + "\n"

    def write(self, folder: str | Path) -> Path:
        """Write every table as ``<name>.csv`` and the report as ``summary.md``; returns the folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, t in self.tables().items():
            t.to_csv(folder / f"{name}.csv", index=False)
        (folder / "summary.md").write_text(self.to_markdown(), encoding="utf-8")
        return folder

    def _repr_html_(self) -> str:
        parts = ["<h3>selfbias summary</h3>", "<ul>"]
        parts += [f"<li>{html.escape(f)}</li>" for f in self.findings]
        parts.append("</ul>")
        if self.notes:
            parts.append("<p><b>Notes</b></p><ul>")
            parts += [f"<li>{html.escape(n)}</li>" for n in self.notes]
            parts.append("</ul>")
        for name, t in self.tables().items():
            parts.append(f"<h4>{html.escape(name)}</h4>")
            parts.append(t.to_html(index=False, float_format=lambda x: f"{x:.3g}", na_rep=""))
        return "\n".join(parts)

    def print_rich(self, console=None, max_rows: int = 40) -> None:
        """Print findings and tables with rich (to ``console``, or a new ``rich.console.Console``)."""
        from rich.console import Console
        from rich.table import Table

        console = console or Console()
        console.rule("selfbias summary")
        for f in self.findings:
            console.print(f"• {f}", markup=False, highlight=False)
        for n in self.notes:
            console.print(f"note: {n}", style="dim", markup=False, highlight=False)
        for name, t in self.tables().items():
            table = Table(title=name, show_lines=False)
            for c in t.columns:
                table.add_column(str(c), overflow="fold")
            for _, row in t.head(max_rows).iterrows():
                table.add_row(*[_fmt(v) for v in row])
            console.print(table)
            if len(t) > max_rows:
                console.print(f"({len(t) - max_rows} more rows)", style="dim")

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={v.shape[0]}x{v.shape[1]}" for k, v in self.tables().items())
        return f"Summary({shapes}, findings={len(self.findings)})"


def _fmt(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return ""
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.{digits}g}"
    return str(v)


def _markdown_table(df: pd.DataFrame, digits: int = 3) -> str:
    if df.empty:
        return "(empty)"
    cols = [str(c) for c in df.columns]
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in df.iterrows():
        cells = [_fmt(v, digits).replace("|", "\\|") for v in row]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def _ci(est: float, lo: float, hi: float, pct: bool = False) -> str:
    if pct:
        body = f"{est:.0%}"
        return body + (f" [{lo:.0%}, {hi:.0%}]" if np.isfinite(lo) and np.isfinite(hi) else "")
    body = f"{est:.2f}"
    return body + (f" [{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) and np.isfinite(hi) else "")


def _likelihood(analysis_df: pd.DataFrame, notes: list[str]) -> pd.DataFrame | None:
    try:
        from ._regression import likelihood_regression
    except Exception as exc:  # the regression module is optional for the summary
        notes.append(f"likelihood regression unavailable: {type(exc).__name__}: {exc}")
        return None
    tables = []
    for judge in sorted(pd.unique(analysis_df["judge"].astype(str))):
        try:
            res = likelihood_regression(analysis_df[analysis_df["judge"].astype(str) == judge])
        except Exception as exc:
            notes.append(f"likelihood regression failed for judge {judge}: {type(exc).__name__}: {exc}")
            continue
        t = res.coefficients.copy()
        t.insert(0, "judge", judge)
        t["n_obs"] = res.n_obs
        t["n_clusters"] = res.n_clusters
        tables.append(t)
        notes.extend(f"likelihood regression ({judge}): {n}" for n in getattr(res, "notes", ()))
    return pd.concat(tables, ignore_index=True) if tables else None


def _findings(
    health: pd.DataFrame,
    misplaced_pooled: pd.DataFrame,
    disc: pd.DataFrame,
    calib: pd.DataFrame,
    comparison: pd.DataFrame,
    likelihood: pd.DataFrame | None,
    published: pd.DataFrame | None,
    confidence: float,
) -> list[str]:
    level = f"{confidence:.0%}"
    out: list[str] = []
    # 1. degenerate judges first
    for _, h in health[health["degenerate"]].iterrows():
        out.append(
            f"Judge {h['judge']} ({h['mode']}) is a degenerate judge, so its other statistics describe "
            f"noise: {h['reasons']}."
        )
    healthy = health[~health["degenerate"]]
    for _, h in healthy.iterrows():
        out.append(
            f"Judge {h['judge']} ({h['mode']}) passes the health checks: AUROC "
            f"{_ci(h['auroc'], h['auroc_ci_low'], h['auroc_ci_high'])}, P(Yes) sd {h['p_yes_sd']:.2f}."
        )
    # 2. misplaced confidence, pooled over sources
    for (judge, mode), g in misplaced_pooled.groupby(["judge", "mode"], sort=True):
        get = {(r["measure"], r["correctness"]): r for _, r in g.iterrows()}
        w = get.get(("mean_p_yes", "wrong"))
        c = get.get(("mean_p_yes", "correct"))
        fa = get.get(("share_above_threshold", "wrong"))
        if w is None:
            continue
        s = (f"Judge {judge} ({mode}): mean P(Yes) on wrong answers "
             f"{_ci(w['estimate'], w['ci_low'], w['ci_high'])} (n={w['n']})")
        if c is not None:
            s += f" vs {_ci(c['estimate'], c['ci_low'], c['ci_high'])} on correct answers (n={c['n']})"
        if fa is not None:
            s += (f"; it accepts {_ci(fa['estimate'], fa['ci_low'], fa['ci_high'], pct=True)} of wrong "
                  f"answers (P(Yes) > {fa['threshold']:g})")
        out.append(s + f" ({level} item-bootstrap intervals).")
    # 3. discrimination: judge vs likelihood
    pyes = disc[disc["score"] == "p_yes"]
    lik = disc[disc["score"].isin(["sum_logprob", "mean_logprob"])]
    for _, r in pyes.iterrows():
        if not np.isfinite(r["estimate"]):
            continue
        s = f"Judge {r['judge']} ({r['mode']}) separates correct from wrong answers with AUROC " \
            f"{_ci(r['estimate'], r['ci_low'], r['ci_high'])}"
        ll = lik[lik["judge"] == r["judge"]]
        if len(ll):
            best = ll.sort_values("estimate", ascending=False).iloc[0]
            s += (f"; the answer's own {best['score']} alone reaches "
                  f"{_ci(best['estimate'], best['ci_low'], best['ci_high'])}")
        out.append(s + ".")
    agr = disc[disc["score"] == "agreement"]
    for _, r in agr.iterrows():
        if np.isfinite(r["estimate"]):
            out.append(f"Sample agreement of {r['judge']} predicts a correct greedy answer with AUROC "
                       f"{_ci(r['estimate'], r['ci_low'], r['ci_high'])}.")
    # 4. calibration
    for _, r in calib[calib["measure"] == "ece"].iterrows():
        out.append(f"Judge {r['judge']} ({r['mode']}): ECE {_ci(r['estimate'], r['ci_low'], r['ci_high'])} "
                   f"({int(r['n_bins'])} equal-count bins).")
    # 5. comparison effect
    if comparison is not None and len(comparison):
        for _, r in comparison.iterrows():
            if r["measure"] not in ("mean_p_yes_wrong", "false_acceptance", "auroc"):
                continue
            if not np.isfinite(r["estimate"]):
                continue
            sig = np.isfinite(r["p_holm"]) and r["p_holm"] < 0.05
            what = {"mean_p_yes_wrong": "mean P(Yes) on wrong answers",
                    "false_acceptance": "the share of wrong answers accepted",
                    "auroc": "AUROC"}[r["measure"]]
            out.append(
                f"Judge {r['judge']}: showing {r['against']} instead of {r['baseline']} changes {what} by "
                f"{_ci(r['estimate'], r['ci_low'], r['ci_high'])} (Holm p = {r['p_holm']:.3g}, "
                f"{'significant' if sig else 'not significant'} at 5%; n={r['n']})."
            )
    # 6. likelihood regression
    if likelihood is not None and "term" in likelihood.columns:
        for _, r in likelihood[likelihood["term"] == "z_loglik"].iterrows():
            out.append(
                f"Judge {r['judge']}: one SD more log-likelihood moves logit P(Yes) by "
                f"{_ci(r['estimate'], r['ci_low'], r['ci_high'])} with correctness held fixed "
                f"(p = {r['p_value']:.3g})."
            )
    # 7. published pairwise metrics
    if published is not None and len(published):
        for _, r in published.iterrows():
            key = (r["source"], r["metric"])
            label = {
                ("panickssery", "self_preference"): "self-preference score (Panickssery et al. 2024)",
                ("wataoka", "equal_opportunity"): "equal-opportunity self-preference bias (Wataoka et al. 2024)",
                ("chen", "hspp"): "harmful self-preference propensity (Chen et al. 2025)",
                ("roytburg", "difference"): "self-preference beyond the evaluator-quality baseline "
                                             "(Roytburg et al. 2026)",
            }.get(key)
            if label and np.isfinite(r["estimate"]):
                out.append(f"Judge {r['judge']}: {label} {_ci(r['estimate'], r['ci_low'], r['ci_high'])} "
                           f"(n={r['n']}).")
    return out


def summarize(
    analysis_df: pd.DataFrame,
    pairwise_df: pd.DataFrame | None = None,
    agreement_df: pd.DataFrame | None = None,
    *,
    baseline: str = "isolated",
    against: Sequence[str] | None = None,
    threshold: float = 0.5,
    n_bins: int = 10,
    n_boot: int = DEFAULT_N_BOOT,
    n_perm: int = DEFAULT_N_PERM,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Summary:
    """Every statistic of the package on a run's tables, with findings in plain words.

    ``analysis_df``: the analysis frame; ``pairwise_df``: the pairwise frame (optional, enables
    the published pairwise metrics); ``agreement_df``: the agreement table (optional, adds the
    AUROC of sample agreement). ``against`` defaults to every mode other than ``baseline`` that
    is present (except ``critique``/``pairwise``). A failure of the likelihood regression is
    reported in ``notes`` rather than raised.
    """
    notes: list[str] = []
    common = dict(n_boot=n_boot, seed=seed, confidence=confidence)
    health = judge_health(analysis_df, **common)
    by_source = ("source", "mode") if "source" in analysis_df.columns else ("mode",)
    misplaced = misplaced_confidence(analysis_df, by=by_source, threshold=threshold, **common)
    misplaced_pooled = misplaced_confidence(analysis_df, by=("mode",), threshold=threshold, **common)

    disc_tables = [discrimination(analysis_df, **common)]
    if {"sum_logprob", "mean_logprob", "candidate_id"} <= set(analysis_df.columns):
        lik = likelihood_discrimination(analysis_df, **common)
        lik.insert(1, "mode", pd.Series([pd.NA] * len(lik), dtype="object"))
        disc_tables.append(lik)
    else:
        notes.append("no log-likelihood columns: likelihood discrimination skipped")
    if agreement_df is not None and len(agreement_df):
        agr = agreement_discrimination(agreement_df, **common).rename(columns={"model": "judge"})
        agr.insert(1, "mode", pd.Series([pd.NA] * len(agr), dtype="object"))
        disc_tables.append(agr)
    disc = pd.concat([t for t in disc_tables if len(t)], ignore_index=True) if any(
        len(t) for t in disc_tables) else disc_tables[0]

    calib = calibration(analysis_df, n_bins=n_bins, **common)

    modes = list(pd.unique(analysis_df["mode"].astype(str)))
    if against is None:
        against = [m for m in modes if m not in (baseline, "critique", "pairwise")]
    if baseline in modes and against:
        comparison = comparison_effect(
            analysis_df, baseline=baseline, against=tuple(against), threshold=threshold,
            n_perm=n_perm, **common,
        )
    else:
        comparison = comparison_effect(analysis_df.iloc[0:0], baseline=baseline, against=())
        notes.append(f"comparison effect skipped: needs mode {baseline!r} and another mode; found {modes}")

    likelihood = _likelihood(analysis_df, notes)

    published = None
    if pairwise_df is not None and len(pairwise_df):
        parts = []
        for source, fn in (("panickssery", panickssery_self_preference), ("wataoka", wataoka_bias),
                           ("chen", chen_metrics), ("roytburg", roytburg_baseline)):
            try:
                t = fn(pairwise_df, **common)
            except Exception as exc:
                notes.append(f"{source} metrics failed: {type(exc).__name__}: {exc}")
                continue
            t = t[["judge", "metric", "estimate", "ci_low", "ci_high", "n", "n_items"]].copy()
            t.insert(0, "source", source)
            parts.append(t)
        published = pd.concat(parts, ignore_index=True) if parts else None

    findings = _findings(health, misplaced_pooled, disc, calib, comparison, likelihood, published,
                         confidence)
    return Summary(
        misplaced=misplaced, comparison=comparison, discrimination=disc, calibration=calib,
        health=health, likelihood=likelihood, published=published, findings=tuple(findings),
        notes=tuple(notes),
    )
