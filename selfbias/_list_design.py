"""The list design of the judge's list modes (``own_samples`` and ``alternatives``), issue 23.

The content of every list is set by the design, not by the data: for each judged candidate c of item
i (judge J) a seeded draw decides whether the list holds a correct answer (``has_correct``, with
probability ``p_correct``, whatever c's correctness) and where (``position``, uniform over the k
slots); the other ``k - has_correct`` slots hold wrong answers other than c, chosen by one rule
whatever c's correctness:

* own list: ``k - has_correct`` of J's own wrong answers (its greedy and sampled answers, graded
  wrong); its correct entry is one of J's own correct answers;
* outside list: ``k - has_correct`` wrong answers J did not write (``alt_sources``); its correct
  entry is the reference;
* the two sets of wrong answers are the pair whose mean log-likelihoods under J are closest
  (:func:`match_pair`; ties: the first in a seeded order), so the lists differ in authorship, not
  in how plausible their wrong answers look to the judge, as far as the pools allow.

Every candidate's pools lose one answer first: itself where it is in the pool (it is never listed
to itself), else one drawn by seed, so pools have the same size whatever the candidate's
correctness. An item whose pools then cannot fill k slots is skipped in every cell; a candidate
drawn ``has_correct`` on an item where J has no correct answer of its own (or the item no
reference) is skipped in both modes (the cell cannot be filled). Both are counted in the manifest.
Everything here is pure: entries in, lists out.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from typing import Sequence

import numpy as np

__all__ = ["Entry", "CellList", "ItemPlan", "draw_cell", "example_list", "is_non_answer", "match_pair",
           "match_plausibility", "mean_loglik", "plan_item"]

MAX_COMBINATIONS = 5000  # exhaustive plausibility matching up to this many subsets, else a greedy pick
MAX_OWN_SUBSETS = 64  # own-list subsets tried against the outside pool (the first in the seeded order)


@dataclass(frozen=True)
class Entry:
    """One answer a list may show: id, text, correctness (None: ungraded), source, and its
    log-likelihood under the judge (``sum_logprob``; None where the run has no score)."""

    id: str
    text: str
    correct: bool | None
    source: str
    loglik: float | None = None


@dataclass(frozen=True)
class CellList:
    """The two lists of one judged candidate: the cell (``has_correct``, ``position``; -1 without a
    correct entry) and the own and outside lists, in the order shown."""

    has_correct: bool
    position: int
    own: tuple[Entry, ...]
    outside: tuple[Entry, ...]


@dataclass(frozen=True)
class ItemPlan:
    """The lists of one item for one judge: ``lists[candidate_id]`` (None: that candidate's cell could
    not be filled), or ``skipped`` (the pools cannot fill k slots for every candidate);
    ``non_answers``: ids of the pool entries left out as no answer at all (:func:`is_non_answer`)."""

    skipped: bool
    lists: dict[str, CellList | None]
    non_answers: tuple[str, ...] = ()


# What a generation says when it gives no answer: placeholders and refusals, the whole answer (after
# lower-casing and stripping punctuation); and markup of a model's special tokens left in the text
# ("Panama City<start_of_image>Question: ..."), which no answer contains.
_NON_ANSWERS = re.compile(  # matched against the answer lower-cased, punctuation and apostrophes as spaces
    r"(n a|none|null|nothing|unknown|not (provided|given|available|applicable|known|sure)|no answer"
    r"|(i )?(do not|don ?t|cannot|can ?t|could not|couldn ?t) (know|say|answer|tell|help)"
    r"( that| this| the answer)?( question)?"
    r"|(i ?m|i am) (sorry|not sure|unable)\b.*|sorry\b.*|as an ai\b.*|(the )?answer( is)?|question)")
_SPECIAL_TOKEN = re.compile(r"<\|[^|>]*\|>|<(start|end)_of_[a-z_]+>|</?s>|<(bos|eos|pad|unk)>")


def is_non_answer(text: str) -> bool:
    """Is ``text`` no answer at all (empty, a placeholder such as "not provided" / "N/A" / "unknown", a
    refusal such as "I don't know" / "I'm sorry, ...", or text holding a model's special-token markup)?

    Such own answers are graded wrong, but listing them would show the judge "wrong answers" that no
    outside source writes, so the list pools leave them out (:func:`plan_item`, issue 23). Wrong
    answers that are real answers ("Moldavia", "205") stay.
    """
    if _SPECIAL_TOKEN.search(text or ""):
        return True
    core = re.sub(r"[\s.,;:!?/\"'`*()\[\]-]+", " ", (text or "").lower()).strip()
    return not core or _NON_ANSWERS.fullmatch(core) is not None


def mean_loglik(entries: Sequence[Entry]) -> float:
    """Mean log-likelihood of ``entries`` under the judge (NaN when one has no score or none given)."""
    values = [e.loglik for e in entries]
    if not values or any(v is None or not math.isfinite(v) for v in values):
        return math.nan
    return float(sum(values) / len(values))  # type: ignore[arg-type]


def draw_cell(seed: int, item_id: str, candidate_id: str, p_correct: float, k: int) -> tuple[bool, int]:
    """(has_correct, position) of one judged candidate: a seeded Bernoulli(``p_correct``) draw and a
    seeded uniform slot in 0..k-1 (-1 without a correct entry). Depends on ids and seed only."""
    has = random.Random(f"{seed}|cell|{item_id}|{candidate_id}").random() < p_correct
    position = random.Random(f"{seed}|position|{item_id}|{candidate_id}").randrange(k) if has else -1
    return has, position


def _seeded(entries: Sequence[Entry], key: str) -> list[Entry]:
    order = sorted(entries, key=lambda e: e.id)
    random.Random(key).shuffle(order)
    return order


@lru_cache(maxsize=4096)
def _subset_means(values: tuple[float, ...], m: int) -> tuple[np.ndarray, np.ndarray]:
    """Every m-subset of ``values`` (index tuples in lexicographic order) and its mean."""
    subsets = np.array(list(combinations(range(len(values)), m)), dtype=np.int64).reshape(-1, m)
    return subsets, np.asarray(values, dtype=float)[subsets].mean(axis=1)


def match_plausibility(pool: Sequence[Entry], m: int, target: float) -> list[Entry]:
    """The ``m`` entries of ``pool`` (already in a seeded order) whose mean log-likelihood is closest
    to ``target``; the first ``m`` when ``target`` or a score is missing. Ties go to the subset
    that comes first in the pool's order; pools with more than :data:`MAX_COMBINATIONS` subsets
    are searched greedily (each step adds the entry that brings the running mean closest)."""
    pool = list(pool)
    if m <= 0:
        return []
    if not math.isfinite(target) or any(e.loglik is None or not math.isfinite(e.loglik) for e in pool):
        return pool[:m]
    if math.comb(len(pool), m) <= MAX_COMBINATIONS:
        subsets, means = _subset_means(tuple(e.loglik for e in pool), m)  # type: ignore[arg-type]
        best = subsets[int(np.argmin(np.abs(means - target)))]  # argmin: the first subset on ties
        return [pool[i] for i in best]
    chosen: list[Entry] = []
    rest = list(pool)
    for step in range(m):
        # the entry that keeps the final mean reachable: aim each step at the target
        pick = min(rest, key=lambda e: abs((sum(x.loglik for x in chosen) + e.loglik) / (step + 1) - target))  # type: ignore[misc]
        chosen.append(pick)
        rest.remove(pick)
    return chosen


def match_pair(own_pool: Sequence[Entry], outside_pool: Sequence[Entry], m: int) -> tuple[list[Entry], list[Entry]]:
    """``m`` wrong answers from each pool (both in a seeded order) whose mean log-likelihoods under the
    judge are as close as possible: over the own pool's subsets (the first :data:`MAX_OWN_SUBSETS`
    in the pool's order), the outside subset closest to each (:func:`match_plausibility`); the pair
    with the smallest difference, the first in order on ties. Without scores (or an empty own pool):
    the first ``m`` of each, the outside ones matched to the own ones where scores allow."""
    own_pool, outside_pool = list(own_pool), list(outside_pool)
    scored = all(e.loglik is not None and math.isfinite(e.loglik) for e in [*own_pool, *outside_pool])
    if not own_pool or not scored or m <= 0:
        own = own_pool[:m]
        return own, match_plausibility(outside_pool, m, mean_loglik(own) if own else math.nan)
    best: tuple[float, list[Entry], list[Entry]] | None = None
    for n, idx in enumerate(combinations(range(len(own_pool)), m)):
        if n >= MAX_OWN_SUBSETS:
            break
        own = [own_pool[i] for i in idx]
        out = match_plausibility(outside_pool, m, mean_loglik(own))
        gap = abs(mean_loglik(own) - mean_loglik(out))
        if best is None or gap < best[0]:
            best = (gap, own, out)
    assert best is not None
    return best[1], best[2]


def _drop_one(pool: Sequence[Entry], candidate_id: str, key: str) -> list[Entry]:
    """``pool`` less one answer: the judged candidate where it is in the pool (it is never listed to
    itself), else one drawn uniformly with ``random.Random(key)``. Every candidate's pool so has the
    same size and, over an item's candidates, the same distribution, whatever its correctness (a
    wrong answer's pool would otherwise be one smaller than a correct answer's, leaving less room to
    match plausibility)."""
    if not pool:
        return []
    order = sorted(pool, key=lambda e: e.id)
    drop = next((e for e in order if e.id == candidate_id), None)
    if drop is None:
        drop = order[random.Random(key).randrange(len(order))]
    return [e for e in order if e is not drop]


def _place(fillers: list[Entry], correct: Entry | None, position: int, key: str) -> tuple[Entry, ...]:
    shown = _seeded(fillers, key)
    if correct is not None:
        shown.insert(position, correct)
    return tuple(shown)


def plan_item(item_id: str, candidate_ids: Sequence[str], *, own_wrong: Sequence[Entry],
              own_correct: Entry | None, outside_wrong: Sequence[Entry], outside_correct: Entry | None,
              k: int, p_correct: float, seed: int, with_own: bool = True) -> ItemPlan:
    """The design's lists for every judged candidate of one item (module doc).

    ``own_wrong`` / ``outside_wrong``: the wrong answers each list may show (an entry whose id is
    the judged candidate's is never shown to it); ``own_correct`` / ``outside_correct``: the
    correct entry of each list (None: none exists); ``with_own``: the judge has answers of its
    own in the run (else only the outside lists are checked and filled).
    """
    dropped = tuple(e.id for e in [*own_wrong, *outside_wrong] if is_non_answer(e.text))
    own_wrong = [e for e in own_wrong if e.id not in dropped]
    outside_wrong = [e for e in outside_wrong if e.id not in dropped]
    if (with_own and len(own_wrong) - 1 < k) or len(outside_wrong) - 1 < k or not candidate_ids:
        return ItemPlan(True, {}, dropped)
    lists: dict[str, CellList | None] = {}
    for cid in candidate_ids:
        has, position = draw_cell(seed, item_id, cid, p_correct, k)
        if has and (outside_correct is None or (with_own and own_correct is None)):
            lists[cid] = None  # the cell cannot be filled on this item: skipped in both modes
            continue
        m = k - int(has)
        own_pool = _seeded(_drop_one(own_wrong, cid, f"{seed}|own_samples|drop|{item_id}|{cid}"),
                           f"{seed}|own_samples|{item_id}|{cid}")
        out_pool = _seeded(_drop_one(outside_wrong, cid, f"{seed}|alternatives|drop|{item_id}|{cid}"),
                           f"{seed}|alternatives|{item_id}|{cid}")
        own_fill, out_fill = match_pair(own_pool if with_own else [], out_pool, m)
        lists[cid] = CellList(
            has, position,
            _place(own_fill, own_correct if has else None, position, f"{seed}|own_samples|order|{item_id}|{cid}"),
            _place(out_fill, outside_correct if has else None, position, f"{seed}|alternatives|order|{item_id}|{cid}"),
        )
    return ItemPlan(False, lists, dropped)


def example_list(right: str, wrong: Sequence[str], key: str, k: int, p_correct: float, seed: int = 0) -> tuple[str, ...]:
    """The list shown with one few-shot example, drawn by the judged lists' rule.

    ``wrong``: the example's wrong answers other than the one it may show (the caller keeps its
    first wrong answer aside for the shown answer or the pairwise rival, so the list is the same
    whether the example's shown answer is right or wrong). A seeded draw (:func:`draw_cell` with
    ``key`` as the item and ``"few-shot"`` as the candidate) decides whether the list holds
    ``right`` and at which slot; the other slots hold the first wrong answers in a seeded order.
    Length ``min(k, len(wrong))`` (at least 1 with a correct entry) whatever the cell, so the
    length says nothing about it; the examples then teach the judge the lists it will see: a
    correct answer listed with probability ``p_correct`` (issue 23), not wrong answers only.
    """
    size = max(min(k, len(wrong)), 1)
    has, position = draw_cell(seed, key, "few-shot", p_correct, size)
    entries = [Entry(f"{i:04d}", text, False, "example") for i, text in enumerate(wrong)]
    fillers = [e.text for e in _seeded(entries, f"{seed}|few-shot|order|{key}")][:size - int(has)]
    if has:
        fillers.insert(position, right)
    return tuple(fillers)
