"""The analysis frames of a run and the rules that say who wrote what relative to a judge.

A run stores what happened (:mod:`selfbias.store`): judgments, candidates, scores. The statistics
(:mod:`selfbias.stats`) and figures (:mod:`selfbias.plots`) read two joins of them, built here
from DataFrames only (nothing reads files):

* :func:`make_analysis_frame` -- one row per judged candidate x judge x mode (pairwise rows
  excluded), with the candidate's correctness, its source *relative to the judge* and its
  log-likelihood under the judge;
* :func:`make_pairwise_frame` -- one row per judged pair x judge, the two presentation orders
  combined into one preference and an order-consistent verdict.

The self/other rules: a candidate is ``self_authored`` when the judge is among its authors; its
source relative to the judge keeps ``own_greedy``/``own_sample`` for the judge's own answers, is
``other_model`` for an answer only other models gave, and keeps its dataset source otherwise; a
pair's ``pair_type`` is :func:`pair_type_name` of its two kinds. Columns: ARCHITECTURE.md, "The
analysis frame".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ._judge_rules import LIST_MODES
from .errors import RunError
from .judge_modes import frame_of

__all__ = ["ANALYSIS_COLUMNS", "PAIRWISE_COLUMNS", "make_analysis_frame", "make_pairwise_frame", "pair_type_name"]

ANALYSIS_COLUMNS = [
    "item_id", "candidate_id", "judge", "mode", "p_yes", "yes_no_mass", "correct", "source",
    "self_authored", "sum_logprob", "mean_logprob", "n_tokens", "author", "gold_shown", "list_length",
    "list_has_correct", "correct_position", "list_mean_loglik",
]
PAIRWISE_COLUMNS = [
    "item_id", "judge", "candidate_a", "candidate_b", "p_a_first", "p_a_second", "pref_a",
    "orders_agree", "a_correct", "b_correct", "a_self", "b_self", "a_sum_logprob", "b_sum_logprob",
    "a_mean_logprob", "b_mean_logprob", "pair_type", "verdict",
]

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
        shown = list(shown) if _listlike(shown) and mode in LIST_MODES else []
        length.append(int(L) if L is not None and not (isinstance(L, float) and math.isnan(L)) else len(shown))
        if g is not None and not (isinstance(g, float) and math.isnan(g)):
            gold.append(bool(g))
        else:
            gold.append(any(correct.get((item, c), False) for c in shown))
    return gold, length




def _design_info(j: pd.DataFrame, gold: list[bool]) -> dict[str, pd.Series]:
    """``list_has_correct``, ``correct_position``, ``list_mean_loglik`` of judgment rows: the recorded
    columns; for runs judged before they existed, ``gold_shown``, -1 and NaN."""
    def column(name: str, fallback, dtype) -> pd.Series:
        if name in j:
            values = j[name]
            if values.isna().any():  # chunks written before the column existed read back missing
                values = values.where(values.notna(), pd.Series(fallback, index=j.index))
            return values.astype(dtype)
        return pd.Series(fallback, index=j.index, dtype=dtype)

    return {"list_has_correct": column("list_has_correct", gold, bool),
            "correct_position": column("correct_position", [-1] * len(j), "int64"),
            "list_mean_loglik": column("list_mean_loglik", [float("nan")] * len(j), "float64")}


def make_analysis_frame(
    judgments: pd.DataFrame, candidates: pd.DataFrame, scores: pd.DataFrame
) -> pd.DataFrame:
    """The analysis frame: one row per judged candidate x judge x mode (pairwise rows excluded).

    It joins each P(Yes) judgment with what the statistics read about the judged answer: whether
    it is correct, who wrote it relative to the judge (the self/other rules of the module
    docstring), and how likely it is under the judge -- the inputs of the likelihood-driven
    self-preference measures (misplaced confidence, comparison effect, likelihood regression).

    Parameters
    ----------
    judgments : pandas.DataFrame
        The ``judgments`` table (``item_id, candidate_id, judge, mode, p_yes, yes_no_mass``;
        ``gold_shown, list_length`` or, for runs judged before they existed, ``alternatives``).
    candidates : pandas.DataFrame
        The ``candidates`` table (``item_id, candidate_id, correct, source, sources, authors``).
    scores : pandas.DataFrame
        The ``scores`` table (``item_id, candidate_id, scorer, sum_logprob, mean_logprob,
        n_tokens``); a judgment gets the scores of ``scorer == judge``.

    Returns
    -------
    pandas.DataFrame
        :data:`ANALYSIS_COLUMNS`, rows in the judgments' order: ``item_id, candidate_id, judge,
        mode, p_yes, yes_no_mass`` (judgments); ``correct``, ``source`` (relative to the judge),
        ``author`` (the judge, another model, or ``dataset``), ``self_authored`` (the judge is
        among the authors); ``sum_logprob, mean_logprob, n_tokens`` (NaN where the judge did not
        score the candidate; ``n_tokens`` is then float64 instead of int64); ``gold_shown,
        list_length``; ``list_has_correct, correct_position, list_mean_loglik`` (the list
        design's cell, ARCHITECTURE.md; for runs judged before them: ``gold_shown``, -1, NaN).
        Empty, with these columns, when there are no judgments.

    Raises
    ------
    RunError
        ``candidates`` or ``scores`` repeat a key.
    """
    if judgments.empty or "mode" not in judgments:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ANALYSIS_COLUMNS})
    j = judgments[judgments["mode"].map(frame_of) == "analysis"]  # the modes whose rows are per candidate
    gold, length = _list_info(j, candidates)
    design = _design_info(j, gold)
    j = j.reindex(columns=["item_id", "candidate_id", "judge", "mode", "p_yes", "yes_no_mass"])
    j = j.assign(gold_shown=pd.Series(gold, index=j.index, dtype=bool),
                 list_length=pd.Series(length, index=j.index, dtype="int64"), **design)
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
    """The name of a pair's type, from the kinds of its two members as seen by the judge.

    Parameters
    ----------
    kind_a, kind_b : str
        ``self``, ``other`` (another model's answer) or a dataset source (``reference``,
        ``distractor``, ``perturbation``); unknown kinds sort last, by name.

    Returns
    -------
    str
        ``<kind>_<kind>`` with the kinds in the order self, other, reference, distractor,
        perturbation (``self_other``, ``other_other``, ``reference_distractor``): unordered, like
        the pair.
    """
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
    """The pairwise frame: one row per judged pair x judge, the two presentation orders combined.

    Pairwise judgment rows give P(``candidate_id`` is chosen) with ``other_candidate_id`` as the
    rival. The position at which ``candidate_id`` was shown is taken from ``alternatives`` (the
    two ids in the order shown) when present, else from ``order`` (0 = shown first).
    ``candidate_a`` is the candidate of the pair's first row in the judgments table. P(a) in a
    position comes from a's own rows, or else as 1 - P(b) from b's rows. Combining the orders
    separates preference from position bias (Zheng et al. 2023; Wang et al. 2023), the input of
    the published pairwise self-preference metrics (Panickssery et al. 2024; Wataoka et al. 2024).

    Parameters
    ----------
    judgments : pandas.DataFrame
        The ``judgments`` table; only ``mode == "pairwise"`` rows are read (``item_id,
        candidate_id, other_candidate_id, judge, p_yes``; ``alternatives``, ``order``,
        ``pair_type`` when present).
    candidates : pandas.DataFrame
        The ``candidates`` table (correctness and authors of the two members).
    scores : pandas.DataFrame
        The ``scores`` table (log-likelihoods of the two members under the judge).

    Returns
    -------
    pandas.DataFrame
        :data:`PAIRWISE_COLUMNS`: ``p_a_first``, ``p_a_second`` (P(a) shown first / second),
        ``pref_a`` (mean of the available orders), ``orders_agree`` (both orders exist and pick the
        same candidate), ``a_/b_correct``, ``a_/b_self`` (the judge wrote it), ``a_/b_sum_logprob``,
        ``a_/b_mean_logprob``, ``pair_type`` (recorded, or derived with :func:`pair_type_name`)
        and ``verdict`` (``a``/``b`` when both orders pick it, ``inconsistent`` when they
        disagree, None when an order is missing). Empty, with these columns, without pairwise
        judgments.

    Raises
    ------
    RunError
        A pairwise judgment without ``other_candidate_id``, or repeated candidate / score keys.
    """
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


