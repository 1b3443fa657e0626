# Over 600 lines: the run summary assembles every statistic into one table and its plain-words findings.
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

from . import _health, _regression
from ._discrimination import prediction_rejection_ratio
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
from ._thesis import thesis_effect

__all__ = ["Summary", "summarize"]

_TABLES = ("health", "pairwise_health", "misplaced", "discrimination", "prr", "calibration", "comparison",
           "likelihood", "thesis", "published")
#: A published metric computed from fewer rows/pairs than this is printed as "n too small (n=k)"
#: instead of a number (issue 10: Chen's propensity printed as 0.00 [0.00, 0.00] from one pair).
MIN_N_PUBLISHED = 10
#: Published pairwise metrics that a position-degenerate pairwise judge makes uninterpretable.
_ORDER_SENSITIVE = ("panickssery", "wataoka", "chen", "roytburg")


@dataclass(frozen=True, eq=False)
class Summary:
    """Everything :func:`summarize` computed.

    Attributes
    ----------
    misplaced : DataFrame
        :func:`misplaced_confidence` by judge x source x mode.
    comparison : DataFrame
        :func:`comparison_effect` (empty when no mode to compare with the baseline).
    discrimination : DataFrame
        AUROC rows of P(Yes) (:func:`discrimination`, per judge x mode), of
        ``sum_logprob``/``mean_logprob`` (:func:`likelihood_discrimination`, ``mode`` empty) and of
        sample ``agreement`` (:func:`agreement_discrimination`, ``judge`` = the generating model);
        the ``score`` column says which.
    calibration : DataFrame
        :func:`calibration` (Brier, ECE, RMS calibration error) per judge x mode.
    health : DataFrame
        :func:`judge_health` per judge x mode, with ``degenerate`` and ``reasons``.
    likelihood : DataFrame or None
        Coefficients of ``likelihood_regression`` per judge (column ``judge``), or None when it
        could not be fitted (the reason is in ``notes``).
    published : DataFrame or None
        Pairwise metrics (Panickssery, Wataoka, Chen, Roytburg) stacked with a ``source`` column
        naming the paper, or None without a pairwise frame.
    findings : tuple of str
        Plain-words sentences with intervals, degenerate judges first.
    notes : tuple of str
        What was skipped or failed, and why.
    prr : DataFrame or None
        :func:`prediction_rejection_ratio` of P(Yes) per judge x mode.
    pairwise_health : DataFrame or None
        :func:`pairwise_health` per judge (None without a pairwise frame).
    thesis : DataFrame or None
        :func:`thesis_effect` table (None unless modes ``alternatives`` and ``own_samples``).
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
    prr: pd.DataFrame | None = None
    pairwise_health: pd.DataFrame | None = None
    thesis: pd.DataFrame | None = None

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables that were computed, by name, in report order.

        Returns
        -------
        dict of str to DataFrame
            ``health, pairwise_health, misplaced, discrimination, prr, calibration, comparison,
            likelihood, thesis, published``, leaving out those that are None.
        """
        out = {}
        for name in _TABLES:
            t = getattr(self, name)
            if t is not None:
                out[name] = t
        return out

    # ---------------------------------------------------------------- renderings
    def to_markdown(self, digits: int = 3) -> str:
        """A Markdown report: findings, notes, then every table.

        Parameters
        ----------
        digits : int
            Significant digits of the numbers.

        Returns
        -------
        str
        """
        lines = ["# selfbias summary", "", "## Findings", ""]
        lines += [f"- {f}" for f in self.findings] or ["- (none)"]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        for name, t in self.tables().items():
            lines += ["", f"## {name}", "", _markdown_table(t, digits)]
        return "\n".join(lines) + "\n"

    def write(self, folder: str | Path) -> Path:
        """Write every table as ``<name>.csv`` and the report as ``summary.md``.

        Parameters
        ----------
        folder : str or pathlib.Path
            Created if missing; files already there with these names are replaced.

        Returns
        -------
        pathlib.Path
            The folder.
        """
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
        """Print findings and compact tables with rich (to ``console``, or a new Console).

        Each table is shown in at most five narrow columns -- what (the key columns joined),
        estimate, interval, p, n -- so it fits an 80-column terminal; the full tables are in the
        CSVs that :meth:`write` produces.

        Parameters
        ----------
        console : rich.console.Console, optional
            Where to print (a new Console when None).
        max_rows : int
            Rows shown per table; the rest are counted.
        """
        from rich.console import Console
        from rich.table import Table

        console = console or Console()
        console.rule("selfbias summary")
        for f in self.findings:
            console.print(f"• {f}", markup=False, highlight=False)
        for n in self.notes:
            console.print(f"note: {n}", style="dim", markup=False, highlight=False)
        for name, t in self.tables().items():
            view = compact_table(t)
            table = Table(title=name, show_lines=False)
            for c in view.columns:
                if c == "what":
                    table.add_column(c, overflow="fold", ratio=1)
                else:
                    table.add_column(c, no_wrap=True, justify="right")
            for _, row in view.head(max_rows).iterrows():
                table.add_row(*[str(v) for v in row])
            console.print(table)
            if len(view) > max_rows:
                console.print(f"({len(view) - max_rows} more rows in {name}.csv)", style="dim")

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={v.shape[0]}x{v.shape[1]}" for k, v in self.tables().items())
        return f"Summary({shapes}, findings={len(self.findings)})"


_KEY_COLUMNS = ("judge", "mode", "source", "baseline", "against", "score", "correctness", "measure", "term",
                "metric", "estimand", "effect")


def compact_table(t: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A narrow view of a result table for a terminal: ``what`` (key columns joined),
    ``estimate``, ``interval`` ("[lo, hi]"), ``p`` (Holm-adjusted when the table has it) and ``n``.
    Tables without an ``estimate`` (the health reports) show the verdict and its reasons instead.

    Parameters
    ----------
    t : DataFrame
        A result table of this package.
    digits : int
        Significant digits.

    Returns
    -------
    DataFrame
        ``what, estimate, interval, p, n`` (the columns the table supports).
    """
    if t.empty:
        return pd.DataFrame({"what": ["(empty)"]})
    keys = [c for c in _KEY_COLUMNS if c in t.columns and t[c].notna().any()]
    cells = t[keys].map(lambda v: "" if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else str(v))
    what = cells.agg(lambda r: " ".join(x for x in r if x), axis=1) if keys else pd.Series("", index=t.index)
    if "estimate" not in t.columns:
        out = pd.DataFrame({"what": what})
        if "degenerate" in t.columns:
            out["verdict"] = np.where(t["degenerate"], "degenerate", "ok")
            reasons = t["reasons"].fillna("").astype(str) if "reasons" in t.columns else ""
            out["what"] = out["what"] + np.where(reasons != "", ": " + reasons, "")
        return out.reset_index(drop=True)
    out = pd.DataFrame({"what": what, "estimate": [_fmt(v, digits) for v in t["estimate"]]})
    if {"ci_low", "ci_high"} <= set(t.columns):
        out["interval"] = [f"[{_fmt(lo, digits)}, {_fmt(hi, digits)}]" if np.isfinite(lo) and np.isfinite(hi) else ""
                           for lo, hi in zip(t["ci_low"].astype(float), t["ci_high"].astype(float))]
    p_col = "p_holm" if "p_holm" in t.columns and t["p_holm"].notna().any() else "p_value"
    if p_col in t.columns:
        out["p"] = [_fmt(v, 2) for v in t[p_col]]
    if HEALTH_COLUMN in t.columns:  # a judge that failed its health checks: say so beside its numbers
        out["what"] = out["what"] + np.where(t[HEALTH_COLUMN].astype(bool), "", " [judge fails health]")
    if "status" in t.columns:
        ok = t["status"].astype(str) == "ok"
        out.loc[~ok.to_numpy(), ["estimate", "interval"]] = ""
        out["what"] = out["what"] + np.where(ok, "", " (" + t["status"].astype(str) + ")")
    n_col = "n" if "n" in t.columns else ("n_obs" if "n_obs" in t.columns else None)
    if n_col:
        out["n"] = t[n_col].astype("Int64").astype(str).to_numpy()
    return out.reset_index(drop=True)


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
    tables = []
    for judge in sorted(pd.unique(analysis_df["judge"].astype(str))):
        try:
            res = _regression.likelihood_regression(analysis_df[analysis_df["judge"].astype(str) == judge])
        except (ValueError, np.linalg.LinAlgError) as exc:  # unfit designs are reported, not raised
            notes.append(f"likelihood regression failed for judge {judge}: {type(exc).__name__}: {exc}")
            continue
        t = res.coefficients.copy()
        t.insert(0, "judge", judge)
        t["n_obs"] = res.n_obs
        t["n_clusters"] = res.n_clusters
        tables.append(t)
        notes.extend(f"likelihood regression ({judge}): {n}" for n in res.notes)
    return pd.concat(tables, ignore_index=True) if tables else None


#: The column that marks, in every table of :func:`summarize`, the rows computed from a judge
#: that failed its health checks (False) -- so a p-value or interval read from a CSV carries it.
HEALTH_COLUMN = "judge_passes_health"


def _mark_health(table: pd.DataFrame | None, health: pd.DataFrame, *, modes: Sequence[str] = ("mode",),
                 pair_health: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """``table`` with :data:`HEALTH_COLUMN`: False when the row's judge failed :func:`judge_health`
    in the row's mode (every mode named by the ``modes`` columns, e.g. both sides of a contrast),
    or in any mode when the row has none (a regression over all modes, the thesis, likelihood
    AUROC); with ``pair_health``, the pairwise judge's :func:`pairwise_health` decides."""
    if table is None or "judge" not in table.columns:
        return table
    out = table.copy()
    if pair_health is not None:
        bad_pair = set(pair_health.loc[pair_health["degenerate"], "judge"].astype(str))
        out[HEALTH_COLUMN] = [str(j) not in bad_pair for j in out["judge"]]
        return out
    unhealthy = set(_unhealthy(health))
    bad_judges = {j for j, _ in unhealthy}
    cols = [c for c in modes if c in out.columns]
    passes = []
    for _, r in out.iterrows():
        judge = str(r["judge"])
        named = [str(r[c]) for c in cols if not (r[c] is None or r[c] is pd.NA
                                                 or (isinstance(r[c], float) and math.isnan(r[c])))]
        passes.append(not any((judge, m) in unhealthy for m in named) if named else judge not in bad_judges)
    out[HEALTH_COLUMN] = np.array(passes, dtype=bool)
    return out


def _unhealthy(health: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(judge, mode) -> reasons, for the judge x modes that failed the health checks."""
    bad = health[health["degenerate"]]
    return {(str(r["judge"]), str(r["mode"])): str(r["reasons"]) for _, r in bad.iterrows()}


def _published_status(published: pd.DataFrame, pair_health: pd.DataFrame | None) -> pd.Series:
    """"ok", "n too small (n=k)" or "not interpretable: ..." for each published metric row."""
    locked = {}
    if pair_health is not None:
        locked = {str(r["judge"]): str(r["reasons"]) for _, r in pair_health[pair_health["degenerate"]].iterrows()}
    status = []
    for _, r in published.iterrows():
        if r["source"] in _ORDER_SENSITIVE and str(r["judge"]) in locked:
            status.append(f"not interpretable: position-degenerate pairwise judge ({locked[str(r['judge'])]})")
        elif not (r["n"] >= MIN_N_PUBLISHED):
            status.append(f"n too small (n={int(r['n']) if np.isfinite(r['n']) else 0})")
        else:
            status.append("ok")
    return pd.Series(status, index=published.index, dtype=object)


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
    # 4. calibration: ECE is biased upward, so the debiased squared error says whether it is real
    deb = calib[calib["measure"] == "sq_ce_debiased"].set_index(["judge", "mode"])
    for _, r in calib[calib["measure"] == "ece"].iterrows():
        s = (f"Judge {r['judge']} ({r['mode']}): ECE {_ci(r['estimate'], r['ci_low'], r['ci_high'])} "
             f"({int(r['n_bins'])} equal-count bins)")
        pv = r.get("p_value", np.nan)
        if np.isfinite(pv):
            # the consistency-resampling test: sized correctly, unlike the debiased interval (issue 27)
            s += (f"; test of calibration p = {pv:.3g} "
                  f"({'miscalibrated' if pv < 0.05 else 'no evidence of miscalibration'} at 5%)")
        if (r["judge"], r["mode"]) in deb.index:
            d = deb.loc[(r["judge"], r["mode"])]
            s += f"; debiased squared calibration error {d['estimate']:.4f} [{d['ci_low']:.4f}, {d['ci_high']:.4f}]"
            if not np.isfinite(pv):
                real = np.isfinite(d["ci_low"]) and d["ci_low"] > 0
                s += f" ({'miscalibrated' if real else 'consistent with a calibrated judge'})"
        out.append(s + ".")
    # 5. comparison effect (no significance claimed for a judge that failed its health checks)
    unhealthy = _unhealthy(health)
    if comparison is not None and len(comparison):
        for _, r in comparison.iterrows():
            if r["measure"] not in ("mean_p_yes_wrong", "false_acceptance", "auroc"):
                continue
            if not np.isfinite(r["estimate"]):
                continue
            what = {"mean_p_yes_wrong": "mean P(Yes) on wrong answers",
                    "false_acceptance": "the share of wrong answers accepted",
                    "auroc": "AUROC"}[r["measure"]]
            bad = [m for m in (r["baseline"], r["against"]) if (str(r["judge"]), str(m)) in unhealthy]
            if bad:
                verdict = (f"no significance claimed: the judge failed the health checks in "
                           f"{' and '.join(map(str, bad))}, so its P(Yes) there is noise")
            else:
                sig = np.isfinite(r["p_holm"]) and r["p_holm"] < 0.05
                verdict = (f"Holm p = {r['p_holm']:.3g}, {'significant' if sig else 'not significant'} at 5%, "
                           "item-clustered test")
            out.append(
                f"Judge {r['judge']}: showing {r['against']} instead of {r['baseline']} changes {what} by "
                f"{_ci(r['estimate'], r['ci_low'], r['ci_high'])} ({verdict}; n={r['n']})."
            )
    # 6. likelihood regression: the within-item slope is the headline, the between part beside it
    if likelihood is not None and "term" in likelihood.columns:
        between = likelihood[likelihood["term"] == "z_loglik_between"].set_index("judge")
        for _, r in likelihood[likelihood["term"] == "z_loglik"].iterrows():
            s = (f"Judge {r['judge']}: among answers to the same question, one SD more log-likelihood moves "
                 f"logit P(Yes) by {_ci(r['estimate'], r['ci_low'], r['ci_high'])} with correctness held "
                 f"fixed (p = {r['p_value']:.3g})")
            if r["judge"] in between.index:
                b = between.loc[r["judge"]]
                s += (f"; between questions (item-mean likelihood) {_ci(b['estimate'], b['ci_low'], b['ci_high'])}")
            if any(str(j) == str(r["judge"]) for j, _ in unhealthy):
                s += "; the judge failed health checks in some mode, so read this as noise there"
            out.append(s + ".")
    # 7. published pairwise metrics: only with enough pairs and a judge that reads the answers
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
            if not label:
                continue
            status = r.get("status", "ok")
            if status != "ok":
                out.append(f"Judge {r['judge']}: {label}: {status}.")
            elif np.isfinite(r["estimate"]):
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
    health: pd.DataFrame | None = None,
    pairwise_health: pd.DataFrame | None = None,
) -> Summary:
    """Every statistic of the package on a run's tables, with findings in plain words.

    ``analysis_df``: the analysis frame; ``pairwise_df``: the pairwise frame (optional, enables
    the published pairwise metrics); ``agreement_df``: the agreement table (optional, adds the
    AUROC of sample agreement). ``against`` defaults to every mode other than ``baseline`` that
    is present (except ``critique``/``pairwise``); with both ``own_samples`` and ``alternatives``
    the comparison also contrasts them, and :func:`thesis_effect` runs. A likelihood regression
    that cannot be fitted (ValueError, LinAlgError) is reported in ``notes`` rather than raised.
    Wording rules: a judge x mode that fails :func:`judge_health` never gets "significant";
    published pairwise metrics need ``MIN_N_PUBLISHED`` pairs and a judge that passes
    :func:`pairwise_health`, else their ``status`` (and the findings) say why not.

    Parameters
    ----------
    analysis_df : DataFrame
        The analysis frame.
    pairwise_df : DataFrame
        ``Run.pairwise_frame()``.
    agreement_df : DataFrame
        The ``agreement`` table (one row per model x item).
    baseline : str
        Baseline mode of the contrasts.
    against : sequence of str
        Modes compared with the baseline.
    threshold : float
        P(Yes) above which a verdict counts as accept.
    n_bins : int
        Number of equal-count bins.
    n_boot : int
        Item-bootstrap resamples (0: no intervals).
    n_perm : int
        Permutations of the item sign-flip tests (0: no tests).
    seed : int
        Seed of the bootstrap / permutations / simulations.
    confidence : float
        Two-sided interval level.
    health : DataFrame, optional
        The :func:`judge_health` table of ``analysis_df`` when already computed (by a
        :class:`selfbias.analysis.RunAnalysis`, with the same ``n_boot``, ``seed`` and
        ``confidence``); computed here when None.
    pairwise_health : DataFrame, optional
        The :func:`pairwise_health` table of ``pairwise_df`` when already computed; computed here
        (when there is a pairwise frame) when None.

    Returns
    -------
    Summary
        Every table, the findings in words and the notes.
    """
    notes: list[str] = []
    common = dict(n_boot=n_boot, seed=seed, confidence=confidence)
    if health is None:
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
    contrasts = [(baseline, m) for m in against] if baseline in modes else []
    if {"own_samples", "alternatives"} <= set(modes):
        contrasts.append(("own_samples", "alternatives"))  # where the shown list came from
    if contrasts:
        comparison = comparison_effect(
            analysis_df, contrasts=contrasts, threshold=threshold, n_perm=n_perm, **common,
        )
    else:
        comparison = comparison_effect(analysis_df.iloc[0:0], baseline=baseline, against=())
        notes.append(f"comparison effect skipped: needs mode {baseline!r} and another mode; found {modes}")

    likelihood = _likelihood(analysis_df, notes)
    prr = prediction_rejection_ratio(analysis_df, **common)

    thesis = None
    thesis_sentences: tuple[str, ...] = ()
    if {"own_samples", "alternatives"} <= set(modes):
        res = thesis_effect(analysis_df, n_perm=n_perm, **common)
        thesis, thesis_sentences = res.table, res.sentences
        notes.extend(f"thesis: {n}" for n in res.notes)

    published = pair_health = None
    if pairwise_df is not None and len(pairwise_df):
        pair_health = pairwise_health
        if pair_health is None:  # the parameter's name hides the function: called through its module
            pair_health = _health.pairwise_health(pairwise_df, **common)
        parts = []
        for source, fn in (("panickssery", panickssery_self_preference), ("wataoka", wataoka_bias),
                           ("chen", chen_metrics), ("roytburg", roytburg_baseline)):
            try:
                t = fn(pairwise_df, **common)
            except ValueError as exc:  # a pairwise frame lacking what a metric needs
                notes.append(f"{source} metrics failed: {exc}")
                continue
            t = t[["judge", "metric", "estimate", "ci_low", "ci_high", "n", "n_items"]].copy()
            t.insert(0, "source", source)
            parts.append(t)
        if parts:
            published = pd.concat(parts, ignore_index=True)
            published["status"] = _published_status(published, pair_health)

    ungraded = int(analysis_df["correct"].isna().sum()) if "correct" in analysis_df.columns else 0
    if ungraded:
        notes.append(f"{ungraded} ungraded rows (correct is missing) are left out of every statistic")

    findings = _findings(health, misplaced_pooled, disc, calib, comparison, likelihood, published,
                         confidence)
    findings = _with_thesis(findings, thesis_sentences, health)
    # every p-value and interval of a judge that failed its health checks is marked in the tables
    misplaced, disc, calib, prr = (_mark_health(t, health) for t in (misplaced, disc, calib, prr))
    comparison = _mark_health(comparison, health, modes=("baseline", "against"))
    likelihood = _mark_health(likelihood, health, modes=())
    thesis = _mark_health(thesis, health, modes=())
    if published is not None and pair_health is not None:
        published = _mark_health(published, health, pair_health=pair_health)
    return Summary(
        misplaced=misplaced, comparison=comparison, discrimination=disc, calibration=calib,
        health=health, likelihood=likelihood, published=published, findings=tuple(findings),
        notes=tuple(notes), prr=prr, pairwise_health=pair_health, thesis=thesis,
    )


def _with_thesis(findings: list[str], sentences: Sequence[str], health: pd.DataFrame) -> list[str]:
    """The thesis sentences after the health findings, marked when the judge failed its checks."""
    unhealthy = _unhealthy(health)
    out = []
    for sentence in sentences:
        judge = sentence.split(":", 1)[0].removeprefix("Judge ").strip()
        bad = [m for (j, m) in unhealthy if j == judge and m in ("own_samples", "alternatives")]
        if bad:
            sentence += f" Not interpretable: the judge failed the health checks in {' and '.join(sorted(bad))}."
        out.append(sentence)
    n_health = int(len(health))
    return findings[:n_health] + out + findings[n_health:]
