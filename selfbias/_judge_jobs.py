"""The built-in judge modes' job builders: a run's items -> one :class:`JudgeJob` per prompt to read.

``isolated`` / ``critique`` judge every candidate on its own, the list modes after the list their
design (:class:`selfbias.judge.ListRule`) draws, ``pairwise`` the judge's own greedy answer against
others and control pairs of answers it did not write, in both orders. Registered with their modes by
:mod:`selfbias.judge` (:mod:`selfbias.judge_modes`); whose answer is whose, as the judge sees it, is
:mod:`selfbias._judge_rules`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from ._judge_rules import KIND_ORDER, PAIR_NAME, loose, seeded, shown_kind
from ._judge_templates import format_list
from .judge_modes import JobContext


@dataclass
class JudgeJob:
    """One prompt to read: a row of the judgments table before the verdict is known.

    A judge mode's job builder (:class:`selfbias.judge_modes.JudgeMode`) returns these. The first
    seven fields are the mode's to fill: the judged candidate, ``order`` (0, or 1 for the second
    presentation of a pair), the other candidate of a pair, the ids shown in a list or pair
    (``alternatives``), the template ``fields`` and ``vary`` (the fields that differ between the
    prompts of one item; the text before the first of them is shared and runs once). The list and
    pair columns follow; ``prompt``, ``prefix`` and ``suffix`` are filled by rendering.
    """

    item_id: str
    candidate_id: str
    order: int
    other_candidate_id: str | None
    alternatives: list[str]
    fields: dict[str, str]
    vary: tuple[str, ...]  # fields that differ between the prompts sharing a prefix
    critique: str | None = None
    chosen_second: bool = False  # pairwise: the judged candidate is shown second (p_yes = P(option 2))
    gold_shown: bool = False
    shown_sources: tuple[str, ...] = ()
    judged_in_list: bool = False
    pair_type: str | None = None
    list_has_correct: bool = False  # the design's cell (pooled design: a listed answer is correct)
    correct_position: int = -1  # slot of the correct answer in the list (-1: none)
    list_mean_loglik: float = math.nan  # mean log-likelihood of the listed answers under the judge
    prompt: str = ""
    prefix: str = ""
    suffix: str = ""


def pair_name(kind: str) -> str:
    return PAIR_NAME.get(kind, kind)


def pair_jobs(iid: str, q: str, a: Any, b: Any, pair_type: str) -> list[JudgeJob]:
    """Both orders of the pair (a, b); ``p_yes`` will be P(a chosen)."""
    return [
        JudgeJob(iid, a.candidate_id, 0, b.candidate_id, [a.candidate_id, b.candidate_id],
             {"question": q, "answer_1": a.text, "answer_2": b.text}, ("answer_2",), pair_type=pair_type),
        JudgeJob(iid, a.candidate_id, 1, b.candidate_id, [b.candidate_id, a.candidate_id],
             {"question": q, "answer_1": b.text, "answer_2": a.text}, ("answer_1", "answer_2"),
             chosen_second=True, pair_type=pair_type),
    ]


def mean_loglik(data: Any, judge: str, item_id: str, shown: Sequence[Any]) -> float:
    """Mean log-likelihood under the judge of the listed answers (NaN where one has no score)."""
    values = [data.loglik.get((judge, item_id, x.id)) for x in shown]
    if not values or any(v is None for v in values):
        return math.nan
    return float(sum(values) / len(values))  # type: ignore[arg-type]


def list_job(iid: str, q: str, c: Any, field: str, shown: Sequence[Any], has_correct: bool, position: int,
              loglik: float) -> JudgeJob:
    return JudgeJob(
        iid, c.candidate_id, 0, None, [x.id for x in shown],
        {"question": q, field: format_list([x.text for x in shown]), "answer": c.text}, (field, "answer"),
        gold_shown=any(x.correct is True for x in shown), shown_sources=tuple(x.source for x in shown),
        judged_in_list=any(x.id == c.candidate_id or loose(x.text) == loose(c.text) for x in shown),
        list_has_correct=has_correct, correct_position=position, list_mean_loglik=loglik)


def isolated_jobs(ctx: JobContext) -> list[JudgeJob]:
    """``isolated`` and ``critique``: every candidate of every item, on its own."""
    jobs: list[JudgeJob] = []
    for iid in ctx.item_ids:
        q = ctx.data.questions[iid]
        for c in ctx.data.candidates[iid]:
            jobs.append(JudgeJob(iid, c.candidate_id, 0, None, [], {"question": q, "answer": c.text}, ("answer", "critique")))
    return jobs


def list_jobs(ctx: JobContext, mode: str) -> list[JudgeJob]:
    """``own_samples`` / ``alternatives``: every candidate after its list (the list design of ``ctx.lists``)."""
    data, judge_name, lists, seed = ctx.data, ctx.judge, ctx.lists, ctx.seed
    field = "samples" if mode == "own_samples" else "alternatives"
    jobs: list[JudgeJob] = []
    for iid in ctx.item_ids:
        q = data.questions[iid]
        cands = data.candidates[iid]
        if lists.design == "cells":
            plan = lists.plan(data, judge_name, iid, seed)
            if plan.skipped:
                continue  # pools too small: skipped in every cell (counted by ListRule.skipped)
            for c in cands:
                cell = plan.lists.get(c.candidate_id)
                if cell is None:
                    continue  # its drawn cell cannot be filled here: skipped in both modes (counted)
                shown = list(cell.own if mode == "own_samples" else cell.outside)
                jobs.append(list_job(iid, q, c, field, shown, cell.has_correct, cell.position,
                                      mean_loglik(data, judge_name, iid, shown)))
            continue
        n = lists.item_k(data, judge_name, iid)
        if n == 0:
            continue  # pool too small: skipped in both list modes (counted by ListRule.skipped)
        for c in cands:
            pool = [(x.id, x) for x in lists.pools(data, judge_name, iid, c)[mode]]
            shown = [x for _, x in seeded(pool, f"{seed}|{mode}|{iid}|{c.candidate_id}")[:n]]
            where = [i for i, x in enumerate(shown) if x.correct is True]
            jobs.append(list_job(iid, q, c, field, shown, bool(where), where[0] if where else -1,
                                  mean_loglik(data, judge_name, iid, shown)))
    return jobs


def pairwise_jobs(ctx: JobContext) -> list[JudgeJob]:
    """``pairwise``: self pairs (the judge's greedy answer against others) and control pairs, both orders."""
    data, judge_name, k, seed, pair_sources = ctx.data, ctx.judge, ctx.k, ctx.seed, ctx.pair_sources
    jobs: list[JudgeJob] = []
    for iid in ctx.item_ids:
        q = data.questions[iid]
        cands = data.candidates[iid]
        others = [(x.candidate_id, x) for x in cands if judge_name not in x.authors]
        a = data.own_greedy(judge_name, iid)
        if a is not None:
            for _, b in [e for e in seeded(others, f"{seed}|pairwise|{iid}")
                         if shown_kind(e[1], judge_name, pair_sources)][:k]:
                kind = pair_name(shown_kind(b, judge_name, pair_sources))
                jobs += pair_jobs(iid, q, a, b, f"self_{kind}")
        control = ("other_model", "distractor", "perturbation") + (
            ("reference",) if "reference" in pair_sources else ())
        pool = sorted((x for _, x in others if shown_kind(x, judge_name, control)), key=lambda x: x.candidate_id)
        pairs = [(f"{x.candidate_id}|{y.candidate_id}", (x, y)) for i, x in enumerate(pool) for y in pool[i + 1:]]
        for _, (x, y) in seeded(pairs, f"{seed}|controls|{iid}")[:k]:
            kx, ky = shown_kind(x, judge_name, control), shown_kind(y, judge_name, control)
            if KIND_ORDER.index(ky) < KIND_ORDER.index(kx):  # name the pair in kind order
                (x, kx), (y, ky) = (y, ky), (x, kx)
            jobs += pair_jobs(iid, q, x, y, f"{pair_name(kx)}_{pair_name(ky)}")
    return jobs
