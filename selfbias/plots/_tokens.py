"""Per-token log-probabilities of a model's own answer against the reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .. import stats as _stats
from . import _style
from ._common import NoData, attach, short
from ._style import readable_tokens


def _as_list(v) -> list:
    if isinstance(v, (list, tuple, np.ndarray)):
        return list(v)
    return []


def _pick_trace(sc: pd.DataFrame, item_id, scorer, max_tokens: int):
    """(scorer, item_id, own row, reference row) for token_trace."""
    has_authors = "authors" in sc.columns
    has_sources = "sources" in sc.columns

    def own_greedy(row) -> bool:
        srcs = set(_as_list(row["sources"])) if has_sources else set()
        is_greedy = row["source"] == "own_greedy" or "own_greedy" in srcs
        return bool(is_greedy and (not has_authors or row["scorer"] in _as_list(row["authors"])))

    def reference(row) -> bool:
        srcs = set(_as_list(row["sources"])) if has_sources else set()
        return bool((row["source"] == "reference" or "reference" in srcs) and bool(row["correct"]))

    scorers = [str(scorer)] if scorer is not None else sorted(sc["scorer"].astype(str).unique())
    candidates = []
    for s in scorers:
        sub = sc[sc["scorer"].astype(str) == s]
        if item_id is not None:
            sub = sub[sub["item_id"].astype(str) == str(item_id)]
        if sub.empty:
            continue
        own_mask = np.array([own_greedy(r) for r in sub.to_dict("records")], dtype=bool)
        ref_mask = np.array([reference(r) for r in sub.to_dict("records")], dtype=bool)
        own, ref = sub[own_mask], sub[ref_mask]
        for item, o in own.groupby("item_id", sort=True):
            r = ref[ref["item_id"] == item]
            if r.empty:
                continue
            orow = o.iloc[0]
            rrow = r.sort_values("sum_logprob", ascending=False).iloc[0]
            margin = float(orow["sum_logprob"]) - float(rrow["sum_logprob"])
            wrong = not bool(orow["correct"])
            n_tok = len(_as_list(orow["logprobs"])) + len(_as_list(rrow["logprobs"]))
            candidates.append((s, item, orow, rrow, wrong, margin, n_tok))
    if not candidates:
        where = f" for item {item_id!r}" if item_id is not None else ""
        by = f" under scorer {scorer!r}" if scorer is not None else ""
        raise NoData(f"token_trace: no item{where} with both a model's own greedy answer and a reference "
                      f"scored by that model{by}")
    if item_id is not None:
        chosen = sorted(candidates, key=lambda c: (not c[4], -c[5]))[0]
    else:
        eligible = [c for c in candidates if c[4] and c[5] > 0]
        if not eligible:
            raise NoData("token_trace: no item where a model's own greedy answer is wrong and has a higher "
                          "log-likelihood than the reference under that model")
        chosen = sorted(eligible, key=lambda c: (c[6] > 2 * max_tokens, -c[5], str(c[0]), str(c[1])))[0]
    return chosen[:4]


def token_trace(
    scores_df: pd.DataFrame,
    candidates_df: pd.DataFrame,
    item_id: str | None = None,
    scorer: str | None = None,
    *,
    items_df: pd.DataFrame | None = None,
    max_tokens: int = 30,
) -> Figure:
    """Per-token log-probabilities of a model's own (wrong) greedy answer against the reference.

    Bars are the log-probability of each token under ``scorer`` (nats; a taller bar downwards is a
    less likely token), with the tokens written under them (``␣`` space, ``↵`` newline); titles give
    the answer text and the total log-likelihood. The own answer is the candidate with source (or
    sources) ``own_greedy`` authored by ``scorer``; the reference is the correct ``reference``
    candidate with the highest log-likelihood. With ``item_id`` None the item is picked
    automatically: the own greedy answer is wrong and outscores the reference (largest margin
    first, preferring short answers); with ``scorer`` None every scorer is considered. At most
    ``max_tokens`` tokens per answer are drawn (the sum covers all). ``items_df`` adds the
    question to the title. Data: one row per drawn token.

    Parameters
    ----------
    scores_df : pandas.DataFrame
        The ``scores`` table (``item_id, candidate_id, scorer, tokens, logprobs, sum_logprob``).
    candidates_df : pandas.DataFrame
        The ``candidates`` table (``item_id, candidate_id, text, source, correct``; ``sources``
        and ``authors`` when present).
    item_id : str, optional
        The item to show; picked automatically when None.
    scorer : str, optional
        The scoring model; every scorer is considered when None.
    items_df : pandas.DataFrame, optional
        The ``items`` table, for the question in the title.
    max_tokens : int
        Most tokens drawn per answer.

    Returns
    -------
    matplotlib.figure.Figure
        The figure, with the numbers it shows as ``fig.selfbias_data`` (one row per drawn token).

    Raises
    ------
    ValueError
        Missing columns; no item with both an own greedy answer and a reference.
    """
    _stats.require_columns(scores_df, ["item_id", "candidate_id", "scorer", "tokens", "logprobs", "sum_logprob"],
                           "token_trace")
    _stats.require_columns(candidates_df, ["item_id", "candidate_id", "text", "source", "correct"], "token_trace")
    keep = [c for c in ("item_id", "candidate_id", "text", "source", "sources", "authors", "correct")
            if c in candidates_df.columns]
    sc = scores_df.merge(candidates_df[keep], on=["item_id", "candidate_id"], how="inner")
    sc = sc.dropna(subset=["sum_logprob", "correct"])
    if sc.empty:
        raise NoData("token_trace: no scored candidates")
    s, item, own, ref = _pick_trace(sc, item_id, scorer, max_tokens)
    own_label = "own greedy answer (" + ("correct" if bool(own["correct"]) else "wrong") + ")"
    parts = [(own_label, own, _style.SOURCE_COLORS["own greedy"]),
             ("reference", ref, _style.SOURCE_COLORS["reference"])]
    rows = []
    shown = []
    for role, row, color in parts:
        lps = [float(v) if v is not None else np.nan for v in _as_list(row["logprobs"])]
        toks = _as_list(row["tokens"])
        toks = toks + [""] * (len(lps) - len(toks))
        argmax = _as_list(row["is_argmax"]) if "is_argmax" in row.index else []
        disp = readable_tokens(toks[: len(lps)])
        n_all = len(lps)
        lps, disp = lps[:max_tokens], disp[:max_tokens]
        shown.append((role, row, color, lps, disp, n_all))
        for pos, (lp, d) in enumerate(zip(lps, disp)):
            rows.append({"scorer": s, "item_id": item, "candidate_id": row["candidate_id"], "role": role,
                         "position": pos, "token": toks[pos], "token_display": d, "logprob": lp,
                         "is_argmax": bool(argmax[pos]) if pos < len(argmax) and argmax[pos] is not None else None,
                         "sum_logprob": float(row["sum_logprob"]), "correct": bool(row["correct"]),
                         "text": row["text"]})
    widths = [max(len(x[3]), 4) for x in shown]
    total = sum(widths)
    fig_width = _style.COLUMN_WIDTH if total <= 10 else _style.PAGE_WIDTH
    long_labels = any(len(d) > 3 for x in shown for d in x[4]) or total > 16
    lowest = min([v for x in shown for v in x[3] if np.isfinite(v)] or [-1.0])
    question = None
    if items_df is not None and {"item_id", "question"} <= set(items_df.columns):
        q = items_df.loc[items_df["item_id"].astype(str) == str(item), "question"]
        question = str(q.iloc[0]) if len(q) else None
    with _style.context():
        fig, axes = _style.new_figure(fig_width, 2.5 + (0.35 if long_labels else 0) + (0.2 if question else 0),
                                      1, 2, sharey=True, gridspec_kw={"width_ratios": widths})
        for k, (role, row, color, lps, disp, n_all) in enumerate(shown):
            ax = axes[0, k]
            _style.finish(ax, grid="y")
            x = np.arange(len(lps))
            ax.bar(x, lps, width=0.75, color=color, edgecolor="none", zorder=2)
            ax.axhline(0, color="black", linewidth=0.6, zorder=3)
            ax.set_xticks(x)
            ax.set_xticklabels(disp, rotation=90 if long_labels else 0, fontsize=_style.SMALL_FONT_SIZE)
            ax.set_xlim(-0.6, max(len(lps), 2) - 0.4)
            more = f" (+{n_all - len(lps)} tokens)" if n_all > len(lps) else ""
            # the answer in full (fit_labels wraps it to the panel), unless it is a paragraph
            text = _style.renderable(_style.shorten(str(row["text"]), 160))
            total_lp = f"{float(row['sum_logprob']):.2f}".replace("-", "−")
            ax.set_title(f"{role}\n“{text}”{more}\nΣ = {total_lp} nats",
                         color="black", fontsize=_style.SMALL_FONT_SIZE)
            if k == 0:
                ax.set_ylabel("token log-probability (nats)")
        axes[0, 0].set_ylim(min(lowest * 1.12, -0.5), 0.0)
        head = f"{_style.renderable(_style.shorten(str(item), 30))} under {short(s)}"
        if question:
            head += ": " + _style.renderable(_style.shorten(question, 160))
        _style.fit_labels(fig)
        fig.suptitle(_style.wrap_to(head, fig_width * 0.95, _style.TITLE_FONT_SIZE),
                     fontsize=_style.TITLE_FONT_SIZE)
    return attach(fig, pd.DataFrame(rows))


