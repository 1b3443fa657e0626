# Over 600 lines: the judging orchestration (settings, resume, overwrite, chunks), the run reader and judge_prompts; mode rules are in judge_modes/_judge_jobs/_judge_rules, the settings split is left for later.
"""Judgments: P(Yes) / P(True), pairwise preference and critique-then-verdict, by any model of any answer.

``judge(run)`` asks each judge model (by default every model of the run: self-judgment) whether
each candidate answer of each item is correct, and writes the ``judgments`` table (ARCHITECTURE.md).

Modes (templates are data: :data:`DEFAULT_TEMPLATES`, overridable, recorded in the manifest; each mode is
a :class:`~selfbias.judge_modes.JudgeMode` of the registry in :mod:`selfbias.judge_modes`, where
:func:`~selfbias.judge_modes.register_judge_mode` adds others):

* ``isolated`` (Kadavath et al. 2022, P(True)): question, proposed answer, "Is the proposed answer
  correct?". P(Yes) is read from the next-token distribution: the mass on every single-token
  spelling of the first option ("Yes": lower/Title/UPPER, with and without a leading space) over
  the mass on the spellings of both options. ``yes_no_mass`` is that denominator (a judge that puts
  little mass on yes/no is not answering); ``top_tokens``/``top_probs`` are the top-5 next tokens.
* ``own_samples`` (Kadavath's brainstormed variant) and ``alternatives``: the same after a list of
  answers: the judge's own sampled answers, or answers from outside it (other models' answers,
  dataset distractors, perturbations, and the reference where the design lists a correct answer).
  Both list modes follow one list design (below, and ARCHITECTURE.md), so the two lists differ
  only in who wrote them. ``alternatives`` holds the ids shown, in order.
* ``pairwise`` (Panickssery et al. 2024; Chen et al. 2025): "which is correct, 1 or 2?" in both
  orders: ``order`` 0 = ``candidate_id`` shown first, 1 = shown second; ``p_yes`` = P(candidate_id
  chosen) (normalised over the spellings of "1" and "2"); ``alternatives`` = [id shown first, id
  shown second]. Self pairs: the judge's own greedy answer against another model's answer (the
  reference, distractors or perturbations only when asked, ``pair_sources``). Control pairs: two
  answers the judge did not write (``pair_type`` ``other_other``, ``distractor_perturbation``,
  ``reference_distractor`` when the reference is allowed, ...), so position bias and self-preference
  separate. ``Run.pairwise_frame()`` combines the orders.
* ``critique``: the judge first writes a short critique (greedy, one line, at most
  ``CRITIQUE_MAX_NEW_TOKENS`` tokens; recorded in ``critique``), then P(Yes) after its own critique.

Matched lists (``own_samples`` and ``alternatives``; recorded in the manifest under the stage's ``rules``;
ARCHITECTURE.md, "Matched lists"):

* ``list_design="cells"`` (default, :mod:`selfbias._list_design`): every list holds ``k``
  answers; whether one is correct (``list_has_correct``, probability ``p_correct``) and where
  (``correct_position``) are seeded draws per candidate, the same in both modes and independent
  of the judged answer's correctness; the wrong answers are the judge's own wrong answers (own
  list) or wrong answers it did not write (outside list), each pool less one answer (the judged
  candidate where it is there, else one drawn by seed), chosen so the two lists' mean
  log-likelihoods under the judge are as close as the pools allow (``list_mean_loglik``); the
  correct answer is one of the judge's own correct answers (own list) or the reference (outside
  list). Items whose pools hold fewer than k + 1 wrong answers are skipped in every cell, and
  candidates drawn into a cell the item cannot fill (no own correct answer) in both modes; both
  counted in ``manifest["judge"]["list_designs"]``, with the realised lengths and plausibility gap.
* ``list_design="pooled"`` (the earlier rule): own pool = the judge's distinct sampled answers other
  than c; external pool = the item's candidates the judge did not write with a source in
  ``alt_sources``, other than c; correct answers only when ``alt_sources`` holds ``reference`` or
  ``correct``; k of an item = min(``k``, the smallest pool), items below ``min_k`` skipped; c is
  shown the first k of its pool (sorted by id) shuffled with
  ``random.Random(f"{seed}|{mode}|{item_id}|{candidate_id}")``.
* Each row records ``gold_shown`` (a listed answer is correct), ``shown_sources`` (aligned with
  ``alternatives``), ``judged_in_list``, ``list_length`` (0 where there is no list),
  ``list_has_correct``, ``correct_position`` and ``list_mean_loglik``.

Models prompted in chat (``LoadedModel.prompt_format == "chat"``) get the chat templates (an explicit system message,
so SmolLM2 does not insert its default one), others the plain ones. Few-shot examples come from a
built-in pool or a JSONL file (``few_shot_file``; ``few_shot`` of them, minus any whose normalised
question equals a run item's), shown as earlier turns (chat) or blocks (plain) in the mode's own
template; their listed answers do not depend on whether the shown answer is right.
``template_set``: ``default`` (Yes/No) or ``ptrue`` (Kadavath et al. 2022's "(A) True (B) False").

Speed: the prompts of one item for one judge and mode share their text up to the first field that
differs (the list in the list modes, else the proposed answer);
:func:`selfbias.scoring.next_token_logprobs` runs each distinct prefix once, reuses its KV cache for
every suffix and computes only the last position's logits.

Resume: the work is written in chunks (table ``judgments``, stage ``<judge>=<mode>``, key = chunk
index of ``CHUNK_ITEMS`` items); a rerun with the same settings skips written chunks and ends with
the same table as an uninterrupted run. Modes and judges are additive: settings are recorded per
judge and mode (``manifest["judge"]["stages"]``) and only a change within one judge and mode (for
the list modes: also of the list settings the two share) is refused, unless ``overwrite=True``,
which redoes that judge and mode only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import string
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ._judge_templates import (
    ALLOWED_FIELDS,
    DEFAULT_OPTIONS,
    DEFAULT_TEMPLATES,
    MODES,
    REQUIRED_FIELDS,
    PTRUE_TEMPLATES,
    TEMPLATE_SETS,
    FewShotExample,
    JudgeTemplate,
    builtin_examples,
    example_fields,
    find_option_tokens,
    read_few_shot_file,
    render,
    resolve_templates,
    select_examples,
)
from .errors import InputError
from .judge_modes import JobContext, JudgeMode, judge_mode, judge_mode_names, register_judge_mode
from ._judge_jobs import JudgeJob, isolated_jobs, list_jobs, pairwise_jobs
from ._judge_jobs import JudgeJob as _Job
from ._judge_rules import loose as _loose, shown_kind as _shown_kind
from ._judge_rules import (  # re-exported: the names of what the judge is shown live in _judge_rules
    ALT_SOURCES,
    DEFAULT_ALT_SOURCES,
    DEFAULT_P_CORRECT,
    DEFAULT_PAIR_SOURCES,
    LIST_DESIGNS,
    LIST_MODES,
    PAIR_SOURCES,
)

if TYPE_CHECKING:
    import pandas as pd

    from .backends import Backend
    from .models import LoadedModel
    from .runs import Run

__all__ = [
    "judge",
    "judge_prompts",
    "find_option_tokens",
    "JudgeTemplate",
    "DEFAULT_TEMPLATES",
    "PTRUE_TEMPLATES",
    "TEMPLATE_SETS",
    "MODES",
    "JUDGMENT_COLUMNS",
    "ALT_SOURCES",
    "DEFAULT_ALT_SOURCES",
    "PAIR_SOURCES",
    "DEFAULT_PAIR_SOURCES",
    # the mode registry (selfbias.judge_modes) and what a mode's job builder makes and reads
    "JudgeMode",
    "JobContext",
    "JudgeJob",
    "RunData",
    "register_judge_mode",
]

JUDGMENT_COLUMNS = [
    "item_id", "candidate_id", "judge", "mode", "order", "other_candidate_id", "p_yes", "yes_no_mass",
    "top_tokens", "top_probs", "prompt_hash", "alternatives", "critique",
    "gold_shown", "shown_sources", "judged_in_list", "list_length", "pair_type", "top_k_mass",
    "list_has_correct", "correct_position", "list_mean_loglik",
]
CHUNK_ITEMS = 16  # items per chunk of work
TOP_K = 5
CRITIQUE_MAX_NEW_TOKENS = 48
CRITIQUE_STOP = ("\n",)
SETTINGS_VERSION = 2

RULES = {
    "lists": (
        "own pool of candidate c: the judge's distinct sampled answers (sample order) other than c; external "
        "pool of c: candidates the judge did not write with a source in alt_sources, other than c; correct "
        "answers only when alt_sources has 'reference' or 'correct'; k_item = min(k, smallest pool over the "
        "item's candidates and both modes (own pools only if the judge has samples in the run)); items with "
        "k_item < min_k are skipped in both list modes; c is shown the first k_item of its pool sorted by id "
        "and shuffled with random.Random(f'{seed}|{mode}|{item_id}|{candidate_id}'); never marked"
    ),
    "list_cells": (
        "cells design: for judged candidate c of item i, has_correct = random.Random(f'{seed}|cell|{item_id}|"
        "{candidate_id}').random() < p_correct and position = random.Random(f'{seed}|position|{item_id}|"
        "{candidate_id}').randrange(k) (the same in both modes, whatever c's correctness); own pool: the "
        "judge's own answers graded wrong (its greedy and sampled candidates); outside pool: wrong candidates "
        "the judge did not write with a source in alt_sources; each pool loses one answer for c: c itself if "
        "there, else one drawn with random.Random(f'{seed}|<mode>|drop|{item_id}|{candidate_id}') from the pool "
        "sorted by id; then each is sorted by id and shuffled with random.Random(f'{seed}|<mode>|{item_id}|"
        "{candidate_id}'); the wrong answers shown: over the own pool's (k - has_correct)-subsets (the first "
        "64 in that order) and, for each, the outside subset whose mean sum_logprob under the judge is closest "
        "(exhaustive up to 5000 subsets, else greedy), the pair with the smallest difference of means (first "
        "on ties); shown in the order random.Random(f'{seed}|<mode>|order|{item_id}|{candidate_id}') with, "
        "when has_correct, the judge's own correct answer (own list) or the reference (outside list) at "
        "position; an item whose pools hold fewer than k + 1 wrong answers is skipped in every cell; a "
        "candidate drawn has_correct on an item with no own correct answer (or no reference) is skipped in "
        "both modes"
    ),
    "pairwise": (
        "self pairs: anchor a = the judge's own greedy candidate; partners = candidates the judge did not "
        "write with a source in pair_sources, sorted by id, shuffled with random.Random(f'{seed}|pairwise|{item_id}'), "
        "first k. control pairs: unordered pairs of candidates the judge did not write with a source in "
        "other_model, distractor, perturbation (and reference if in pair_sources), sorted, shuffled with "
        "random.Random(f'{seed}|controls|{item_id}'), first k. Both orders of every pair"
    ),
    "p_yes": "sum p(spellings of option 1) / sum p(spellings of options 1 and 2) at the next token",
    "prompt_hash": "sha256 of the full rendered prompt text, first 16 hex",
}

_SENTINEL = "\u27e6selfbias:{}\u27e7"


# ------------------------------------------------------------------------------------ run data


def _as_list(v: Any) -> list:
    if v is None:
        return []
    if isinstance(v, float) and math.isnan(v):
        return []
    if isinstance(v, str):
        return [v]
    return list(v)


def _as_text(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v)


@dataclass
class _Candidate:
    candidate_id: str
    text: str
    sources: list[str]
    authors: list[str]
    correct: bool | None = False  # None: ungraded (the checker could not tell)


@dataclass
class _RunData:
    """What the judge reads from a run: items, their candidates and each model's samples."""

    item_ids: list[str]
    questions: dict[str, str]
    candidates: dict[str, list[_Candidate]]
    # (model, item) -> [(sample_index, answer, correct)]
    samples: dict[tuple[str, str], list[tuple[int, str, bool]]]
    # (scorer, item, candidate) -> sum_logprob: the plausibility of a listed answer under the judge
    loglik: dict[tuple[str, str, str], float] = dataclasses.field(default_factory=dict)
    # caches: the models with samples, and the cells design's plans by (rule, judge, item, seed)
    _sampled: set[str] | None = dataclasses.field(default=None, repr=False, compare=False)
    _plans: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_tables(cls, items: "pd.DataFrame", candidates: "pd.DataFrame", generations: "pd.DataFrame", where: str,
                    scores: "pd.DataFrame | None" = None) -> "_RunData":
        for name, table, cols in (("items", items, ("item_id", "question")),
                                  ("candidates", candidates, ("item_id", "candidate_id", "text", "sources", "authors"))):
            if table.empty:
                raise InputError(f"{where}: the run has no '{name}' table; run the probe (or write it) first")
            missing = [c for c in cols if c not in table.columns]
            if missing:
                raise InputError(f"{where}: table '{name}' lacks column(s) {', '.join(missing)}")
        item_ids = [str(i) for i in items["item_id"].tolist()]
        questions = dict(zip(item_ids, (_as_text(q) for q in items["question"].tolist())))
        cands: dict[str, list[_Candidate]] = {i: [] for i in item_ids}
        for row in candidates.to_dict("records"):
            iid = str(row["item_id"])
            if iid in cands:
                cands[iid].append(_Candidate(str(row["candidate_id"]), _as_text(row["text"]),
                                             [str(s) for s in _as_list(row["sources"])],
                                             [str(a) for a in _as_list(row["authors"])],
                                             _as_bool(row.get("correct"))))
        samples: dict[tuple[str, str], list[tuple[int, str, bool]]] = {}
        if not generations.empty and {"item_id", "model", "kind", "answer"} <= set(generations.columns):
            for row in generations.to_dict("records"):
                ans = row["answer"]
                if ans is None or (isinstance(ans, float) and math.isnan(ans)) or not str(ans).strip():
                    continue  # nothing extracted
                key = (str(row["model"]), str(row["item_id"]))
                if row["kind"] == "sample":
                    samples.setdefault(key, []).append((int(row.get("sample_index", 0) or 0), str(ans),
                                                        _as_bool(row.get("correct"))))
            for v in samples.values():
                v.sort(key=lambda t: t[0])
        loglik: dict[tuple[str, str, str], float] = {}
        if scores is not None and not scores.empty and {"scorer", "item_id", "candidate_id", "sum_logprob"} <= set(
                scores.columns):
            for sc, iid, cid, v in zip(scores["scorer"], scores["item_id"], scores["candidate_id"], scores["sum_logprob"]):
                if v is not None and not (isinstance(v, float) and math.isnan(v)):
                    loglik[(str(sc), str(iid), str(cid))] = float(v)
        return cls(item_ids, questions, cands, samples, loglik)

    def own_greedy(self, judge: str, item_id: str) -> _Candidate | None:
        """The candidate holding the judge's greedy answer: ``("own_greedy", judge)`` among its
        aligned (source, author) pairs."""
        for c in self.candidates[item_id]:
            if ("own_greedy", judge) in zip(c.sources, c.authors):
                return c
        return None

    def has_samples(self, judge: str) -> bool:
        if self._sampled is None:
            self._sampled = {m for m, _ in self.samples}
        return judge in self._sampled


def _as_bool(v: Any) -> bool | None:
    """A stored correctness flag: True, False, or None for ungraded (None, NaN or pandas.NA)."""
    import pandas as pd

    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    return bool(v)


@dataclass(frozen=True)
class _Listed:
    """One answer a list may show: candidate id (or ``sample:<index>``), text, correctness, source."""

    id: str
    text: str
    correct: bool | None  # None: ungraded
    source: str


def _own_pool(data: _RunData, judge: str, item_id: str, c: _Candidate, show_correct: bool) -> list[_Listed]:
    """The judge's distinct sampled answers of the item other than ``c`` (sample order)."""
    cands = data.candidates[item_id]
    exact = {x.text: x for x in cands}
    loose: dict[str, _Candidate] = {}
    for x in cands:
        loose.setdefault(_loose(x.text), x)
    out: list[_Listed] = []
    seen = set()
    for idx, answer, correct in data.samples.get((judge, item_id), []):
        match = exact.get(answer) or loose.get(_loose(answer))
        sid = match.candidate_id if match else f"sample:{idx}"
        if match is not None:
            correct = match.correct
        if sid in seen or sid == c.candidate_id or _loose(answer) == _loose(c.text):
            continue
        seen.add(sid)
        # Only answers known to be wrong by default: an ungraded one may be the gold.
        if correct is not False and not show_correct:
            continue
        out.append(_Listed(sid, answer, correct, "own_sample"))
    return out


def _external_pool(data: _RunData, judge: str, item_id: str, c: _Candidate, sources: Sequence[str],
                   show_correct: bool) -> list[_Listed]:
    """The item's candidates the judge did not write, with a source in ``sources``, other than ``c``."""
    out = []
    for x in data.candidates[item_id]:
        kind = _shown_kind(x, judge, sources)
        if kind is None or x.candidate_id == c.candidate_id or (x.correct is not False and not show_correct):
            continue
        out.append(_Listed(x.candidate_id, x.text, x.correct, kind))
    return out


def _own_answers(data: _RunData, judge: str, item_id: str) -> list[_Candidate]:
    """The item's candidates the judge wrote (its greedy or sampled answers)."""
    return [x for x in data.candidates[item_id]
            if any(a == judge and s in ("own_greedy", "own_sample") for s, a in zip(x.sources, x.authors))]


@dataclass(frozen=True)
class ListRule:
    """The list settings shared by ``own_samples`` and ``alternatives`` of one judge.

    ``design="cells"`` (default): the design of :mod:`selfbias._list_design` (k slots, a correct
    answer in the list with probability ``p_correct`` whatever the judged answer's correctness, at a
    seeded position; outside wrong answers matched to the own ones in log-likelihood under the
    judge). ``design="pooled"``: the earlier rule (k = the smallest pool, never a correct answer
    unless ``sources`` admits one; ``min_k``)."""

    k: int
    min_k: int
    sources: tuple[str, ...]
    design: str = "cells"
    p_correct: float = DEFAULT_P_CORRECT

    @property
    def show_correct(self) -> bool:
        return "reference" in self.sources or "correct" in self.sources

    def pools(self, data: _RunData, judge: str, item_id: str, c: _Candidate) -> dict[str, list[_Listed]]:
        return {"own_samples": _own_pool(data, judge, item_id, c, self.show_correct),
                "alternatives": _external_pool(data, judge, item_id, c, self.sources, self.show_correct)}

    def item_k(self, data: _RunData, judge: str, item_id: str) -> int:
        """The list length of the item for this judge (0: skipped): min(k, smallest pool) or 0 below min_k
        (pooled design); k or 0 (cells design)."""
        if self.design == "cells":
            plan = self.plan(data, judge, item_id, 0)
            return 0 if plan.skipped or not data.candidates[item_id] else self.k
        modes = LIST_MODES if data.has_samples(judge) else ("alternatives",)
        sizes = [len(self.pools(data, judge, item_id, c)[m]) for c in data.candidates[item_id] for m in modes]
        k = min([self.k, *sizes])
        return k if k >= self.min_k and k > 0 else 0

    def plan(self, data: _RunData, judge: str, item_id: str, seed: int):
        """The cells design's lists of one item (:func:`selfbias._list_design.plan_item`; computed
        once per rule, judge, item and seed)."""
        key = (self, judge, item_id, seed)
        if key not in data._plans:
            data._plans[key] = self._plan(data, judge, item_id, seed)
        return data._plans[key]

    def _plan(self, data: _RunData, judge: str, item_id: str, seed: int):
        from ._list_design import Entry, plan_item

        def entry(x: _Candidate, source: str) -> Entry:
            return Entry(x.candidate_id, x.text, x.correct, source, data.loglik.get((judge, item_id, x.candidate_id)))

        own = sorted(_own_answers(data, judge, item_id), key=lambda x: x.candidate_id)
        outside = sorted((x for x in data.candidates[item_id] if _shown_kind(x, judge, self.sources)),
                         key=lambda x: x.candidate_id)
        gold = sorted((x for x in data.candidates[item_id] if x.correct is True and "reference" in x.sources),
                      key=lambda x: x.candidate_id)
        own_correct = [x for x in own if x.correct is True]
        return plan_item(
            item_id, [c.candidate_id for c in data.candidates[item_id]],
            own_wrong=[entry(x, "own_sample") for x in own if x.correct is False],
            own_correct=entry(own_correct[0], "own_sample") if own_correct else None,
            outside_wrong=[entry(x, _shown_kind(x, judge, self.sources)) for x in outside if x.correct is False],
            outside_correct=entry(gold[0], "reference") if gold else None,
            k=self.k, p_correct=self.p_correct, seed=seed, with_own=data.has_samples(judge))

    def skipped(self, data: _RunData, judge: str) -> list[str]:
        return [i for i in data.item_ids if data.candidates[i] and self.item_k(data, judge, i) == 0]

    def summary(self, data: _RunData, judge: str, seed: int) -> dict[str, Any]:
        """What the design gave for one judge (recorded in the manifest): the realised list lengths
        (judged candidates per length), items skipped in every cell, candidates whose drawn cell could
        not be filled, and the realised own - outside difference of mean log-likelihood of the lists."""
        from ._list_design import mean_loglik

        lengths: dict[str, int] = {}
        cells = {"with_correct": 0, "without_correct": 0}
        unfilled: list[str] = []
        diffs: list[float] = []
        non_answers = 0  # pool entries that are no answer ("not provided", refusals): never listed
        for iid in data.item_ids:
            if not data.candidates[iid]:
                continue
            if self.design != "cells":
                n = self.item_k(data, judge, iid)
                if n:
                    lengths[str(n)] = lengths.get(str(n), 0) + len(data.candidates[iid])
                continue
            plan = self.plan(data, judge, iid, seed)
            non_answers += len(set(plan.non_answers))
            for cid, cell in plan.lists.items():
                if cell is None:
                    unfilled.append(cid)
                    continue
                lengths[str(self.k)] = lengths.get(str(self.k), 0) + 1
                cells["with_correct" if cell.has_correct else "without_correct"] += 1
                d = mean_loglik(cell.own) - mean_loglik(cell.outside)
                if math.isfinite(d):
                    diffs.append(d)
        out: dict[str, Any] = {"design": self.design, "list_lengths": lengths,
                               "items_skipped": len(self.skipped(data, judge))}
        if self.design == "cells":
            out.update(cells=cells, candidates_unfilled=len(unfilled), unfilled_candidates=unfilled,
                       non_answers_dropped=non_answers,
                       loglik_own_minus_outside={
                           "n": len(diffs), "mean": float(sum(diffs) / len(diffs)) if diffs else None,
                           "mean_abs": float(sum(map(abs, diffs)) / len(diffs)) if diffs else None,
                           "max_abs": float(max(map(abs, diffs))) if diffs else None})
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"k": self.k, "min_k": self.min_k, "sources": list(self.sources)}
        if self.design != "pooled":  # a run judged before the cells design resumes with design="pooled"
            out.update(design=self.design, p_correct=self.p_correct)
        return out


# ------------------------------------------------------------------------------------ jobs


RunData = _RunData  # what a job builder reads (JobContext.data)


def _context(data: _RunData | None, judge_name: str, item_ids: Sequence[str], k: int, seed: int,
             lists: ListRule | None, pair_sources: Sequence[str]) -> JobContext:
    return JobContext(data, judge_name, tuple(item_ids), k, seed, lists or ListRule(k, 1, DEFAULT_ALT_SOURCES),
                      tuple(pair_sources))


def _build_jobs(data: _RunData, judge_name: str, mode: str, item_ids: Sequence[str], k: int, seed: int,
                lists: ListRule | None = None, pair_sources: Sequence[str] = DEFAULT_PAIR_SOURCES) -> list[_Job]:
    """The jobs of one judge, mode and chunk of items: the mode's builder (:mod:`selfbias.judge_modes`)."""
    return list(judge_mode(mode).build_jobs(_context(data, judge_name, item_ids, k, seed, lists, pair_sources)))


def _critique_lead(suffix: str) -> str:
    """The part of a critique template's suffix before ``{critique}`` (still a format string)."""
    parts = []
    for literal, name, _spec, _conv in string.Formatter().parse(suffix):
        parts.append(literal.replace("{", "{{").replace("}", "}}"))
        if name == "critique":
            break
        if name is not None:
            parts.append("{" + name + "}")
    return "".join(parts).rstrip(" \t")


def _prompt_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _render_jobs(jobs: list[_Job], template: JudgeTemplate, tokenizer, examples) -> None:
    """Fill each job's full prompt and its split into a shared prefix and a per-candidate suffix."""
    prefix_cache: dict[tuple, str] = {}
    for job in jobs:
        job.prompt = render(template, job.fields, tokenizer, examples)
        masked = {**job.fields, **{f: _SENTINEL.format(f) for f in job.vary}}
        key = tuple(sorted(masked.items()))
        if key not in prefix_cache:
            text = render(template, masked, tokenizer, examples)
            cuts = [text.find(_SENTINEL.format(f)) for f in job.vary if _SENTINEL.format(f) in text]
            prefix_cache[key] = text[: min(cuts)] if cuts else text
        prefix = prefix_cache[key]
        suffix = job.prompt[len(prefix):]
        if not prefix.strip() or not job.prompt.startswith(prefix) or not suffix.strip():
            prefix, suffix = job.prompt, ""  # nothing to share: the prompt is read on its own
        job.prefix, job.suffix = prefix, suffix


def _write_critiques(lm: "Backend", jobs: list[_Job], template: JudgeTemplate, examples) -> None:
    lead = _critique_lead(template.suffix)
    prompts = [render(template, job.fields, lm.tokenizer, examples, suffix=lead) for job in jobs]
    if not prompts:
        return
    outs = lm.generate(prompts, temperature=0.0, max_new_tokens=CRITIQUE_MAX_NEW_TOKENS, stop=CRITIQUE_STOP)
    for job, (g,) in zip(jobs, outs):
        job.critique = g.text.strip()
        job.fields["critique"] = job.critique


def _logsumexp(values: Sequence[float]) -> float:
    m = max(values)
    if m == -math.inf:
        return -math.inf
    return m + math.log(sum(math.exp(v - m) for v in values))


def _read_verdicts(lm: "Backend", jobs: list[_Job], first_ids: Sequence[int], second_ids: Sequence[int]
                   ) -> list[dict]:
    groups: dict[str, list[int]] = {}
    for i, job in enumerate(jobs):
        groups.setdefault(job.prefix, []).append(i)
    requests = [(prefix, [jobs[i].suffix for i in idx]) for prefix, idx in groups.items()]
    results = lm.next_token_logprobs(requests, select=list(first_ids) + list(second_ids), top_k=TOP_K
                                     ) if requests else []
    decoded: dict[int, str] = {}
    out: list[dict | None] = [None] * len(jobs)
    for idx, res in zip(groups.values(), results):
        for i, nt in zip(idx, res):
            log_first = _logsumexp([nt.selected[t] for t in first_ids])
            log_second = _logsumexp([nt.selected[t] for t in second_ids])
            log_mass = _logsumexp([log_first, log_second])
            p = math.exp(log_first - log_mass) if log_mass > -math.inf else math.nan
            if jobs[i].chosen_second:
                p = math.exp(log_second - log_mass) if log_mass > -math.inf else math.nan
            for t in nt.top_ids:
                if t not in decoded:
                    decoded[t] = lm.tokenizer.decode([t])
            out[i] = {"p_yes": float(p), "yes_no_mass": float(math.exp(log_mass)),
                      "top_tokens": [decoded[t] for t in nt.top_ids],
                      "top_probs": [float(math.exp(v)) for v in nt.top_logprobs],
                      # mass of the top-k the backend returned: 1.0 when it read the whole distribution;
                      # less from a server's top-k, where p_yes and yes_no_mass are bounds (issue 12)
                      "top_k_mass": float(nt.covered_mass)}
    return out  # type: ignore[return-value]


def _frame(jobs: list[_Job], verdicts: list[dict], judge_name: str, mode: str) -> "pd.DataFrame":
    import pandas as pd

    rows = []
    for job, v in zip(jobs, verdicts):
        rows.append({
            "item_id": job.item_id, "candidate_id": job.candidate_id, "judge": judge_name, "mode": mode,
            "order": int(job.order), "other_candidate_id": job.other_candidate_id,
            "p_yes": v["p_yes"], "yes_no_mass": v["yes_no_mass"], "top_tokens": v["top_tokens"],
            "top_probs": v["top_probs"], "prompt_hash": _prompt_hash(job.prompt),
            "alternatives": list(job.alternatives), "critique": job.critique,
            "gold_shown": bool(job.gold_shown), "shown_sources": list(job.shown_sources),
            "judged_in_list": bool(job.judged_in_list),
            "list_length": len(job.alternatives) if mode in LIST_MODES else 0, "pair_type": job.pair_type,
            "top_k_mass": v["top_k_mass"],
            "list_has_correct": bool(job.list_has_correct) if mode in LIST_MODES else False,
            "correct_position": int(job.correct_position) if mode in LIST_MODES else -1,
            "list_mean_loglik": float(job.list_mean_loglik) if mode in LIST_MODES else math.nan,
        })
    df = pd.DataFrame(rows, columns=JUDGMENT_COLUMNS)
    for c in ("order", "list_length", "correct_position"):
        df[c] = df[c].astype("int64")
    for c in ("p_yes", "yes_no_mass", "top_k_mass", "list_mean_loglik"):
        df[c] = df[c].astype("float64")
    for c in ("gold_shown", "judged_in_list", "list_has_correct"):
        df[c] = df[c].astype(bool)
    for c in ("other_candidate_id", "critique", "pair_type"):
        df[c] = df[c].astype(object)
    return df


# ------------------------------------------------------------------------------------ per judge


@dataclass
class _JudgeSetup:
    """A loaded judge with its format, templates, option ids and few-shot examples per mode."""

    name: str
    lm: "Backend"
    format: str
    templates: dict[str, JudgeTemplate]
    option_ids: dict[str, tuple[list[int], list[int]]]
    examples: dict[str, list[tuple[dict, int]]]

    def spellings(self) -> dict[str, Any]:
        conv = self.lm.tokenizer.convert_ids_to_tokens
        out: dict[str, Any] = {"format": self.format, "options": {}}
        for mode, (first, second) in self.option_ids.items():
            w1, w2 = self.templates[mode].options
            out["options"][w1] = conv(list(first))
            out["options"][w2] = conv(list(second))
        return out


def _option_ids(lm: "Backend", template: JudgeTemplate) -> tuple[list[int], list[int]]:
    if lm.tokenizer is None:
        raise InputError(f"judge {lm.name!r}: its backend has no tokenizer, and the judge reads the option words' "
                         "token ids from it; give the backend a tokenizer (e.g. tokenizer=FOLDER)")
    ids = []
    for word in template.options:
        found = find_option_tokens(lm.tokenizer, word)
        if not found:
            raise InputError(
                f"judge template '{template.name}': option {word!r} has no single-token spelling in the "
                f"tokenizer of {lm.name}; use option words that are one token"
            )
        ids.append(found)
    if set(ids[0]) & set(ids[1]):
        raise InputError(f"judge template '{template.name}': options {template.options!r} share a token in {lm.name}")
    return ids[0], ids[1]


def _as_backend(model: Any, batch_size: int | None) -> "Backend":
    """A judge model as a backend (a LoadedModel is wrapped; ``batch_size`` goes to the HF backend)."""
    from .backends import as_backend

    return as_backend(model, batch_size=batch_size)


def _recorded_prompting(store, name: str) -> dict[str, Any]:
    """The prompt format and chat-template kwargs the run recorded for model ``name`` (none for a
    judge that is not one of the run's models, or a run made before formats were recorded)."""
    for m in (store.request or {}).get("models") or []:
        if m.get("name") == name and "prompt_format" in m:
            return {"prompt_format": m["prompt_format"], "chat_template_kwargs": m.get("chat_template_kwargs") or None}
    return {}


def _setup(name: str, lm: "Backend", modes: Sequence[str], templates: dict[str, dict[str, JudgeTemplate]],
           examples: Sequence[FewShotExample], k: int) -> _JudgeSetup:
    fmt = lm.prompt_format
    chosen = {m: templates[m][fmt] for m in modes}
    option_ids = {m: _option_ids(lm, t) for m, t in chosen.items()}
    shots = {m: [example_fields(ex, pos, m, k) for pos, ex in enumerate(examples)] for m in modes}
    return _JudgeSetup(name, lm, fmt, chosen, option_ids, shots)


def _judge_items(setup: _JudgeSetup, data: _RunData, mode: str, item_ids: Sequence[str], k: int, seed: int,
                 batch_size: int | None, lists: ListRule, pair_sources: Sequence[str]) -> tuple[list[_Job], list[dict]]:
    template = setup.templates[mode]
    jobs = _build_jobs(data, setup.name, mode, item_ids, k, seed, lists, pair_sources)
    prepare = judge_mode(mode).prepare
    if prepare is not None:
        prepare(setup.lm, jobs, template, setup.examples[mode])
    _render_jobs(jobs, template, setup.lm.tokenizer, setup.examples[mode])
    _check_context(setup.lm, jobs, mode)
    first, second = setup.option_ids[mode]
    return jobs, _read_verdicts(setup.lm, jobs, first, second)


def _check_context(lm: "Backend", jobs: list[_Job], mode: str) -> None:
    """Refuse, naming the item, a judge prompt that does not fit the judge's context (checked on
    each item's longest prompt, before any of the chunk is read)."""
    from ._validate import context_message, too_long

    longest: dict[str, str] = {}
    for job in jobs:
        if len(job.prompt) > len(longest.get(job.item_id, "")):
            longest[job.item_id] = job.prompt
    overflow = too_long(lm, longest, 1)
    if overflow:
        raise InputError(context_message(lm, overflow, 1, f"judge ({mode})", skippable=False))


# ------------------------------------------------------------------------------------ settings


def _stage(judge_name: str, mode: str) -> str:
    """Chunk stage of a judge and mode: ``<judge>=<mode>`` (judge names made file-safe)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", judge_name)
    if safe != judge_name or safe.startswith("."):
        safe = "_" + safe.lstrip(".") + "-" + hashlib.sha256(judge_name.encode()).hexdigest()[:8]
    return f"{safe}={mode}"


def _judge_name(spec: Any) -> str:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, Mapping):
        for key in ("name", "alias", "spec", "model"):
            if isinstance(spec.get(key), str):
                return spec[key]
        raise InputError(f"judge spec {dict(spec)!r} has no 'name'")
    name = getattr(spec, "name", None)
    if isinstance(name, str) and hasattr(spec, "tokenizer"):
        return name  # a LoadedModel or a Backend
    raise InputError(f"judge spec must be a model name, a dict with 'name', a LoadedModel or a Backend, "
                     f"got {type(spec).__name__}")


def _check_modes(modes: Any) -> tuple[str, ...]:
    if isinstance(modes, str):
        modes = (modes,)
    modes = tuple(modes)
    if not modes:
        raise InputError("modes is empty; use some of " + ", ".join(judge_mode_names()))
    for m in modes:
        if m not in judge_mode_names():
            raise InputError(f"unknown judge mode {m!r}; use one of {', '.join(judge_mode_names())}")
    if len(set(modes)) != len(modes):
        raise InputError(f"modes has duplicates: {list(modes)}")
    return modes


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def _check_design(design: Any, p_correct: Any) -> tuple[str, float]:
    if design not in LIST_DESIGNS:
        raise InputError(f"list_design: unknown design {design!r}; use one of {', '.join(LIST_DESIGNS)}")
    if isinstance(p_correct, bool) or not isinstance(p_correct, (int, float)) or not 0 <= p_correct <= 1:
        raise InputError(f"p_correct must be a number in [0, 1], got {p_correct!r}")
    return design, float(p_correct)


def _check_sources(name: str, value: Any, allowed: Sequence[str], default: Sequence[str]) -> tuple[str, ...]:
    """A source list from a sequence or a comma-separated string; one-line error on an unknown name."""
    if value is None:
        return tuple(default)
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    out: list[str] = []
    for v in value:
        if v not in allowed:
            raise InputError(f"{name}: unknown source {v!r}; use some of {', '.join(allowed)}")
        if v not in out:
            out.append(v)
    if not out:
        raise InputError(f"{name} is empty; use some of {', '.join(allowed)}")
    return tuple(out)


def _examples(data: _RunData, few_shot: int, few_shot_file) -> tuple[list[FewShotExample], list[str], Any]:
    """The few-shot examples (disjoint from the run's items), the dropped questions and their source.

    Built-in: the first ``few_shot`` of the pool, right and wrong shown answers alternating. From a file:
    its first ``few_shot`` examples (0: all of them), in file order."""
    from ._checkers import normalize_text
    from ._judge_templates import FEW_SHOT_POOL

    questions = [data.questions[i] for i in data.item_ids]
    if few_shot_file is not None:
        from .runs import file_hash

        pool = read_few_shot_file(few_shot_file)
        keep, dropped = select_examples(few_shot or None, pool, questions, normalize_text)
        # the name and content identify the file (not its folder: a moved run or file still resumes)
        return keep, dropped, {"file": Path(few_shot_file).name, "sha256": file_hash(few_shot_file)}
    base = builtin_examples(range(len(FEW_SHOT_POOL)))
    keep, dropped = select_examples(few_shot, base, questions, normalize_text)
    return builtin_examples([base.index(e) for e in keep]), dropped, "built-in"


def _probe_examples(run: Any, few_shot: int | None, few_shot_file: Any) -> tuple[Any, Any]:
    """``few_shot=None``: the examples the probe wrote into the run (``few_shot.jsonl``, built from
    held-out items of the task) when there are any and no file is given, else none (0)."""
    if few_shot is not None:
        return few_shot, few_shot_file
    where = getattr(run, "path", run)
    found = Path(where) / "few_shot.jsonl" if isinstance(where, (str, os.PathLike)) else None
    if few_shot_file is None and found is not None and found.is_file():
        return 0, found
    return 0, few_shot_file


def _stage_settings(mode: str, *, k: int, seed: int, template_set: str, templates: dict[str, JudgeTemplate],
                    examples: Sequence[FewShotExample], dropped: Sequence[str], few_shot: int, few_shot_source: Any,
                    lists: ListRule, pair_sources: Sequence[str]) -> dict[str, Any]:
    """What determines the judgments of one judge and mode (compared on resume; only these may conflict)."""
    out: dict[str, Any] = {
        "version": SETTINGS_VERSION,
        "mode": mode,
        "template_set": template_set,
        "templates": {fmt: {**t.to_dict(), "hash": t.digest} for fmt, t in templates.items()},
        "few_shot": few_shot,
        "few_shot_source": few_shot_source,
        "few_shot_examples": [{f: v for f, v in dataclasses.asdict(e).items() if f != "where"} for e in examples],
        "few_shot_dropped": list(dropped),
        "chunk_items": CHUNK_ITEMS,
        "top_k": TOP_K,
        "rules": {"p_yes": RULES["p_yes"], "prompt_hash": RULES["prompt_hash"]},
    }
    settings = judge_mode(mode).settings
    if settings is not None:  # the mode's own settings; its rules join the common ones
        extra = dict(settings(_context(None, "", (), k, seed, lists, pair_sources)))
        rules = extra.pop("rules", {})
        out.update(extra)
        out["rules"].update(rules)
    return json.loads(json.dumps(out))


def _conflicts(store, recorded: dict, wanted: dict[str, dict], where: str) -> list[tuple[str, str]]:
    """(stage, message) for every requested stage whose written judgments were made with other settings;
    for a list mode also the other list mode of the same judge when their shared list settings differ."""
    from .runs import first_difference, show_value

    out = []
    for stage, new in wanted.items():
        checks = [(stage, recorded.get(stage), new, stage)]
        judge_part, mode = stage.rsplit("=", 1)
        if mode in LIST_MODES:
            sibling = f"{judge_part}={LIST_MODES[1 - LIST_MODES.index(mode)]}"
            old = recorded.get(sibling)
            if sibling not in wanted and old is not None:
                checks.append((sibling, {"lists": old.get("lists")}, {"lists": new["lists"]}, sibling))
        for target, old, want, label in checks:
            if not store.chunk_keys("judgments", target):
                continue
            diff = first_difference(old, want, f"judge.stages[{label}]") if old is not None else (
                f"judge.stages[{label}]", None, "recorded settings")
            if diff:
                at, before, after = diff
                out.append((target, f"{where}: the run's judgments {label} were made with other judge settings "
                                    f"({at}: {show_value(before)} in the run, {show_value(after)} requested); pass "
                                    "overwrite=True (--overwrite) to redo that judge and mode"))
    return out


# ------------------------------------------------------------------------------------ public API


def judge(
    run: "Run | str | os.PathLike",
    *,
    modes: Sequence[str] = ("isolated", "alternatives"),
    judges: Sequence[Any] | None = None,
    models: Mapping[str, "LoadedModel | Backend"] | None = None,
    k: int = 3,
    min_k: int = 1,
    alt_sources: Sequence[str] | str | None = None,
    pair_sources: Sequence[str] | str | None = None,
    few_shot: int | None = None,
    few_shot_file: str | os.PathLike | None = None,
    seed: int = 0,
    templates: Mapping[str, Any] | None = None,
    template_set: str = "default",
    list_design: str = "cells",
    p_correct: float = DEFAULT_P_CORRECT,
    overwrite: bool = False,
    batch_size: int | None = None,
    progress: bool = True,
    ray: Any = None,
    base_url: str | None = None,
    trust_run_servers: bool = False,
    server_options: Any = None,
) -> "Run":
    """Add judgments to an existing run (table ``judgments``) and return the finalized :class:`Run`.

    Measures each judge's confidence in each candidate answer, the model's own and others', as P(Yes)
    read from next-token probabilities (Kadavath et al. 2022), alone and after matched lists of its own
    samples or of outside answers, and its preference in answer pairs with control pairs (Panickssery
    et al. 2024); the modes are in the module doc. Settings are recorded per judge and mode in
    ``manifest["judge"]["stages"]``. Modes and judges add to the judgments already there; a judge and
    mode already judged with other settings is refused unless ``overwrite=True``, which redoes that
    judge and mode only. Resumable.

    Parameters
    ----------
    run : Run or str or PathLike
        A probed run (or its folder).
    modes : sequence of str
        Judge modes (:data:`MODES`): ``isolated``, ``own_samples``, ``alternatives``, ``pairwise``,
        ``critique``.
    judges : sequence or None
        Model names, dicts with a ``name``, LoadedModels or backends (default: the run's models, so
        each model judges its own and the others' answers: the full judge x author matrix).
    models : mapping of str to LoadedModel or Backend, or None
        Already loaded models by name (else :func:`selfbias.backends.load_backend` loads by name). The
        judge reaches a model only through the backend interface (``next_token_logprobs``,
        ``generate``, ``tokenizer``).
    k : int
        The longest list in the list modes, and the self / control pairs per item in pairwise mode.
    min_k : int
        Pooled design: items whose matched list would be shorter are skipped in both list modes
        (their ids, in either design: ``run.manifest["judge"]["skipped_items"][judge]``).
    alt_sources : str or sequence of str or None
        Sources of the ``alternatives`` list's answers (:data:`ALT_SOURCES`; default
        :data:`DEFAULT_ALT_SOURCES`). Cells design: its wrong answers (the correct one is the
        reference, by the design); pooled design: wrong answers only unless ``reference`` or
        ``correct`` admits correct ones, in both list modes.
    pair_sources : str or sequence of str or None
        What the judge's answer is paired with (:data:`PAIR_SOURCES`; default another model's answer).
    few_shot : int or None
        Grading examples shown first (disjoint from the run's items), from the built-in pool or
        ``few_shot_file``. None (default): the examples :func:`selfbias.probe.probe` built from held-out
        items of the task and wrote into the run (``few_shot.jsonl``) when there are any, else none;
        0: zero-shot.
    few_shot_file : str or PathLike or None
        JSONL of examples (see :func:`selfbias._judge_templates.read_few_shot_file`; ``few_shot=0``
        with a file: all its examples).
    seed : int
        Seed of the list orders.
    templates : mapping or None
        Per-mode overrides (a JudgeTemplate, a dict of its fields, or ``{"chat": ..., "plain": ...}``).
    template_set : str
        ``default`` (Yes/No) or ``ptrue`` (Kadavath et al. 2022's "(A) True (B) False").
    list_design : str
        ``cells`` (default): every list holds ``k`` answers, a correct one with probability
        ``p_correct`` at a seeded position whatever the judged answer's correctness, outside wrong
        answers matched to the own ones in log-likelihood (ARCHITECTURE.md, "Matched lists");
        ``pooled``: the earlier rule (k = the smallest pool, ``min_k``, correct answers only when
        ``alt_sources`` admits them).
    p_correct : float
        Probability that a list (cells design) holds a correct answer.
    overwrite : bool
        Redo a judge and mode already judged with other settings.
    batch_size : int or None
        Most prompts per forward pass of the Hugging Face backend (None: sized by memory).
    progress : bool
        Show progress bars.
    ray : None, bool, str, dict or RayOptions
        Judge the missing chunks on a Ray cluster (see :func:`selfbias.probe.probe`); same judgments.
    base_url : str or None
        Server of ``openai:NAME`` judges given without ``@URL``; naming the URL of a served model that
        the run records is also the consent to send it the API key.
    trust_run_servers : bool
        Send the API key to the servers the run folder names without naming them again (else a served
        model recorded in the run, with a key in the environment, is refused before it is contacted).
    server_options : ServerOptions, dict or None
        How requests reach the served judges loaded here (:class:`selfbias.backends.openai.ServerOptions`).

    Returns
    -------
    Run
        The run with its ``judgments`` table (columns :data:`JUDGMENT_COLUMNS`, ARCHITECTURE.md).

    Raises
    ------
    InputError
        A bad mode, k, few_shot, seed, template or judge spec, before the run is opened.
    RunError
        Settings that conflict with the judgments already recorded (without ``overwrite``).
    ValueError
        No judges to run, duplicate judge names, or an option word with no single-token spelling.
    """
    from ._chunks import ChunkJob, run_chunks
    from ._validate import validate_judge
    from .runs import Run, RunError, RunStore

    few_shot, few_shot_file = _probe_examples(run, few_shot, few_shot_file)
    # Every argument (modes, counts, templates, run folder, judge model specs) before any model loads.
    validate_judge(run, modes=modes, judges=judges, k=k, few_shot=few_shot, seed=seed, templates=templates,
                   models=models, min_k=min_k, alt_sources=alt_sources, pair_sources=pair_sources,
                   template_set=template_set, few_shot_file=few_shot_file)
    design = _check_design(list_design, p_correct)
    from ._validate import check_server_consent

    check_server_consent(run, judges, base_url=base_url, trust=trust_run_servers, models=models)
    if ray is not None and ray is not False:
        from .distributed import check_ray

        check_ray(ray)
    modes = _check_modes(modes)
    k = _check_int("k", k, 1)
    min_k = _check_int("min_k", min_k, 1)
    few_shot = _check_int("few_shot", few_shot, 0)
    seed = _check_int("seed", seed, 0)
    alt_sources = _check_sources("alt_sources", alt_sources, ALT_SOURCES, DEFAULT_ALT_SOURCES)
    pair_sources = _check_sources("pair_sources", pair_sources, PAIR_SOURCES, DEFAULT_PAIR_SOURCES)
    resolved = resolve_templates(templates, modes, template_set)
    lists = ListRule(k, min_k, alt_sources, *design)
    path = Path(run.path) if isinstance(run, Run) else Path(run)
    models = dict(models or {})
    started = time.perf_counter()

    store = RunStore.open(path, None)
    executor = None
    try:
        manifest = store.manifest
        specs = list(judges) if judges is not None and not isinstance(judges, (str, Mapping)) else (
            [judges] if judges is not None else list(manifest.get("request", {}).get("models") or []))
        if not specs:
            raise InputError(f"{path}: no judges given and the run's request names no models")
        names = [_judge_name(s) for s in specs]
        if len(set(names)) != len(names):
            raise InputError(f"judges has duplicate names: {names}")
        for spec, name in zip(specs, names):
            if not isinstance(spec, (str, Mapping)):
                models.setdefault(name, spec)

        data = _RunData.from_tables(store.read_table("items"), store.read_table("candidates"),
                                    store.read_table("generations"), str(path), store.read_table("scores"))
        for name in names:
            if "own_samples" in modes and not data.has_samples(name):
                raise InputError(
                    f"{path}: mode 'own_samples' needs the judge's own samples, but 'generations' has no "
                    f"sample rows of model {name!r}"
                )
            if "pairwise" in modes and not any(data.own_greedy(name, i) for i in data.item_ids):
                raise InputError(
                    f"{path}: mode 'pairwise' anchors on the judge's own greedy answer, but no candidate has "
                    f"source 'own_greedy' authored by {name!r}"
                )
        examples, dropped, shot_source = _examples(data, few_shot, few_shot_file)
        wanted = {_stage(name, m): _stage_settings(
            m, k=k, seed=seed, template_set=template_set, templates=resolved[m], examples=examples, dropped=dropped,
            few_shot=few_shot, few_shot_source=shot_source, lists=lists, pair_sources=pair_sources)
            for name in names for m in modes}

        previous = manifest.get("judge") or {}
        written = store.stages("judgments")
        # Stages that --overwrite redoes: dropped only once that judge is loaded and its templates
        # and prompts are known to work (a refused template or option word deletes nothing).
        drops: list[str] = []
        if written and previous.get("version") != SETTINGS_VERSION:
            if not overwrite:
                raise RunError(f"{path}: the run's judgments were made by an older selfbias (settings not recorded "
                               "per judge and mode); pass overwrite=True (--overwrite) to judge again")
            drops.extend(written)
            previous = {}
        recorded = dict(previous.get("stages") or {})
        kept = dict(recorded)  # what the manifest says of a dropped stage while its old chunks are still there
        for st_name, message in _conflicts(store, recorded, wanted, str(path)):
            if not overwrite:
                raise RunError(message)
            drops.append(st_name)
            recorded.pop(st_name, None)
        recorded.update(wanted)
        spellings = dict(previous.get("spellings") or {})
        skipped = dict(previous.get("skipped_items") or {})
        designs = dict(previous.get("list_designs") or {})
        served = dict(previous.get("backends") or {})  # judges behind a server: what they are (judge only?)
        for name in names:
            if any(m in LIST_MODES for m in modes):
                skipped[name] = lists.skipped(data, name)
                designs[name] = {**lists.to_dict(), "seed": seed, **lists.summary(data, name, seed)}

        def save() -> None:
            # A stage whose old chunks are still there keeps its old settings in the manifest.
            stages = {**{d: kept[d] for d in drops if d in kept},
                      **{st_name: v for st_name, v in recorded.items() if st_name not in drops}}
            store.update_manifest(judge={"version": SETTINGS_VERSION, "stages": stages, "spellings": spellings,
                                         "skipped_items": skipped, "list_designs": designs,
                                         **({"backends": served} if served else {})})

        def drop(owner: str | None) -> None:
            """Drop the overwritten stages of judge ``owner`` (None: every one left)."""
            for st_name in [d for d in drops if owner is None or d.startswith(_stage(owner, ""))]:
                store.drop_stage("judgments", st_name)
                drops.remove(st_name)

        chunks = [data.item_ids[i:i + CHUNK_ITEMS] for i in range(0, len(data.item_ids), CHUNK_ITEMS)]
        todo = {name: [(m, c) for m in modes for c in range(len(chunks))
                       if _stage(name, m) in drops or not store.has_chunk("judgments", _stage(name, m), str(c))]
                for name in names}
        if ray is not None and ray is not False and any(todo.values()):
            from .distributed import open_executor

            executor = open_executor(ray, store)
        for name in names:
            if not todo[name]:
                continue
            lm, loaded_here = models.get(name), False
            if lm is None:
                from .backends import load_backend

                # Prompt the judge as the probe prompted this model (a run records its format per model).
                options = _recorded_prompting(store, name)
                if base_url and name.startswith("openai:"):
                    options["base_url"] = base_url
                options["server_options"] = server_options
                from ._progress import loading

                with loading(name, progress):
                    lm, loaded_here = load_backend(name, **options), True
            lm = _as_backend(lm, batch_size)
            from .backends import keep_responses

            keep_responses([lm], store.path)
            if lm.to_manifest().get("backend", "hf") != "hf":
                served[name] = lm.to_manifest()
            setup = _setup(name, lm, modes, resolved, examples, k)
            if any(d.startswith(_stage(name, "")) for d in drops):
                _precheck(setup, data, modes, chunks, k, seed, lists, tuple(pair_sources))
                drop(name)
            found = setup.spellings()
            old = spellings.get(name) or {}
            spellings[name] = {**old, **found, "options": {**(old.get("options") or {}), **found["options"]}}
            save()
            bare = dataclasses.replace(setup, lm=None)  # a job carries no weights (Ray sends it to an actor)
            jobs = [ChunkJob(name, "judgments", _stage(name, mode), str(c), _judge_chunk,
                             (bare, data, mode, chunks[c], k, seed, batch_size, lists, tuple(pair_sources)),
                             n_items=len(chunks[c]))
                    for mode, c in todo[name]]
            n_modes = len({mode for mode, _ in todo[name]})
            run_chunks(store, {name: lm}, jobs, f"judge {name}" + (f", {n_modes} modes" if n_modes > 1 else ""),
                       progress, executor)
            del setup
            if loaded_here:
                lm.close()
                del lm
        drop(None)  # overwritten stages of judges not run now (a run from an older selfbias)
        save()
        store.record_timing("judge", time.perf_counter() - started)
        return store.finalize()
    finally:
        if executor is not None and executor is not ray:
            executor.close()
        store.close()


def _precheck(setup: _JudgeSetup, data: _RunData, modes: Sequence[str], chunks: Sequence[Sequence[str]], k: int,
              seed: int, lists: ListRule, pair_sources: Sequence[str]) -> None:
    """Render every prompt of the modes about to be overwritten and check it fits the judge's context,
    so that --overwrite deletes the old judgments only when the new ones can be made (critique
    prompts hold generated text and are checked as they are made)."""
    for mode in modes:
        if judge_mode(mode).prepare is not None:  # its prompts hold text made while judging
            continue
        for item_ids in chunks:
            jobs = _build_jobs(data, setup.name, mode, item_ids, k, seed, lists, pair_sources)
            _render_jobs(jobs, setup.templates[mode], setup.lm.tokenizer, setup.examples[mode])
            _check_context(setup.lm, jobs, mode)


def _judge_chunk(lm: "LoadedModel", setup: _JudgeSetup, data: _RunData, mode: str, item_ids: Sequence[str], k: int,
                 seed: int, batch_size: int | None, lists: ListRule, pair_sources: Sequence[str]) -> "pd.DataFrame":
    """The ``judgments`` rows of one chunk of items, judged by ``lm`` with ``setup``'s templates."""
    jobs, verdicts = _judge_items(dataclasses.replace(setup, lm=lm), data, mode, item_ids, k, seed, batch_size,
                                  lists, pair_sources)
    return _frame(jobs, verdicts, setup.name, mode)


def judge_prompts(
    run: "Run | str | os.PathLike",
    lm: "LoadedModel | Backend",
    mode: str,
    *,
    judge_name: str | None = None,
    items: Sequence[str] | None = None,
    k: int = 3,
    min_k: int = 1,
    alt_sources: Sequence[str] | str | None = None,
    pair_sources: Sequence[str] | str | None = None,
    few_shot: int | None = None,
    few_shot_file: str | os.PathLike | None = None,
    seed: int = 0,
    templates: Mapping[str, Any] | None = None,
    template_set: str = "default",
    list_design: str = "cells",
    p_correct: float = DEFAULT_P_CORRECT,
    read: bool = False,
    batch_size: int | None = None,
) -> "pd.DataFrame":
    """The prompts that :func:`judge` would read for one judge and mode, without writing anything.

    Parameters
    ----------
    run : Run or str or PathLike
        A probed run (or its folder).
    lm : LoadedModel
        The judge model (its tokenizer renders the prompts; with ``read=True`` it reads them).
    mode : str
        One judge mode (:data:`MODES`).
    judge_name : str or None
        The judge's name in the run (what decides self vs other; default ``lm.name``).
    items : sequence of str or None
        Only these item ids (default: all).
    k : int
        The longest list in the list modes, and the self / control pairs per item in pairwise mode.
    min_k : int
        Pooled design: items whose matched list would be shorter are skipped in both list modes
        (their ids, in either design: ``run.manifest["judge"]["skipped_items"][judge]``).
    alt_sources : str or sequence of str or None
        Sources of the ``alternatives`` list's answers (:data:`ALT_SOURCES`; default
        :data:`DEFAULT_ALT_SOURCES`). Cells design: its wrong answers (the correct one is the
        reference, by the design); pooled design: wrong answers only unless ``reference`` or
        ``correct`` admits correct ones, in both list modes.
    pair_sources : str or sequence of str or None
        What the judge's answer is paired with (:data:`PAIR_SOURCES`; default another model's answer).
    few_shot : int or None
        Grading examples shown first (disjoint from the run's items), from the built-in pool or
        ``few_shot_file``; None (default): the probe's examples in the run, if any (as :func:`judge`).
    few_shot_file : str or PathLike or None
        JSONL of examples (see :func:`selfbias._judge_templates.read_few_shot_file`; ``few_shot=0``
        with a file: all its examples).
    seed : int
        Seed of the list orders.
    templates : mapping or None
        Per-mode overrides (a JudgeTemplate, a dict of its fields, or ``{"chat": ..., "plain": ...}``).
    template_set : str
        ``default`` (Yes/No) or ``ptrue`` (Kadavath et al. 2022's "(A) True (B) False").
    list_design : str
        ``cells`` (default): every list holds ``k`` answers, a correct one with probability
        ``p_correct`` at a seeded position whatever the judged answer's correctness, outside wrong
        answers matched to the own ones in log-likelihood (ARCHITECTURE.md, "Matched lists");
        ``pooled``: the earlier rule (k = the smallest pool, ``min_k``, correct answers only when
        ``alt_sources`` admits them).
    p_correct : float
        Probability that a list (cells design) holds a correct answer.
    read : bool
        Also run the judge and return its verdicts.
    batch_size : int or None
        Most prompts per forward pass (None: sized by memory).

    Returns
    -------
    pandas.DataFrame
        One row per judgment: ``item_id``, ``candidate_id``, ``order``, ``other_candidate_id``,
        ``alternatives``, ``critique`` (critique mode generates it), ``gold_shown``,
        ``shown_sources``, ``judged_in_list``, ``list_length``, ``pair_type``, ``list_has_correct``,
        ``correct_position``, ``list_mean_loglik``, ``prompt`` (full text),
        ``prompt_prefix`` / ``prompt_suffix`` (the shared part and the per-candidate rest),
        ``prompt_hash``, ``options`` (the two verdict words); with ``read=True`` also the judgments'
        ``p_yes``, ``yes_no_mass``, ``top_tokens`` and ``top_probs``.
    """
    import pandas as pd

    from .runs import Run, load_run

    (mode,) = _check_modes(mode)
    lm = _as_backend(lm, batch_size)
    r = run if isinstance(run, Run) else load_run(run)
    data = _RunData.from_tables(r.items, r.candidates, r.generations, str(r.path), r.scores)
    few_shot, few_shot_file = _probe_examples(r, few_shot, few_shot_file)
    examples, _, _ = _examples(data, _check_int("few_shot", few_shot, 0), few_shot_file)
    k = _check_int("k", k, 1)
    lists = ListRule(k, _check_int("min_k", min_k, 1),
                     _check_sources("alt_sources", alt_sources, ALT_SOURCES, DEFAULT_ALT_SOURCES),
                     *_check_design(list_design, p_correct))
    pair_sources = _check_sources("pair_sources", pair_sources, PAIR_SOURCES, DEFAULT_PAIR_SOURCES)
    setup = _setup(judge_name or lm.name, lm, (mode,), resolve_templates(templates, (mode,), template_set), examples, k)
    item_ids = list(items) if items is not None else data.item_ids
    template = setup.templates[mode]
    jobs = _build_jobs(data, setup.name, mode, item_ids, k, seed, lists, pair_sources)
    prepare = judge_mode(mode).prepare
    if prepare is not None:
        prepare(lm, jobs, template, setup.examples[mode])
    _render_jobs(jobs, template, lm.tokenizer, setup.examples[mode])
    df = pd.DataFrame([{
        "item_id": j.item_id, "candidate_id": j.candidate_id, "order": j.order,
        "other_candidate_id": j.other_candidate_id, "alternatives": list(j.alternatives), "critique": j.critique,
        "gold_shown": j.gold_shown, "shown_sources": list(j.shown_sources), "judged_in_list": j.judged_in_list,
        "list_length": len(j.alternatives) if mode in LIST_MODES else 0, "pair_type": j.pair_type,
        "list_has_correct": j.list_has_correct, "correct_position": j.correct_position,
        "list_mean_loglik": j.list_mean_loglik,
        "prompt": j.prompt, "prompt_prefix": j.prefix, "prompt_suffix": j.suffix,
        "prompt_hash": _prompt_hash(j.prompt), "options": list(template.options),
    } for j in jobs])
    if read and jobs:
        first, second = setup.option_ids[mode]
        verdicts = pd.DataFrame(_read_verdicts(lm, jobs, first, second))
        df = pd.concat([df, verdicts], axis=1)
    return df


# ------------------------------------------------------------------------------------ built-in modes


def _list_settings(ctx: JobContext) -> dict[str, Any]:
    return {"seed": ctx.seed, "lists": ctx.lists.to_dict(),
            "rules": {"lists": RULES["list_cells" if ctx.lists.design == "cells" else "lists"]}}


def _pairwise_settings(ctx: JobContext) -> dict[str, Any]:
    return {"seed": ctx.seed, "k": ctx.k, "pair_sources": list(ctx.pair_sources), "rules": {"pairwise": RULES["pairwise"]}}


def _critique_settings(ctx: JobContext) -> dict[str, Any]:
    return {"critique": {"decoding": "greedy", "max_new_tokens": CRITIQUE_MAX_NEW_TOKENS, "stop": list(CRITIQUE_STOP)}}


def _builtin(name: str, build, **extra: Any) -> JudgeMode:
    return JudgeMode(name, REQUIRED_FIELDS[name], build, options=DEFAULT_OPTIONS.get(name, ("Yes", "No")),
                     allowed_fields=ALLOWED_FIELDS[name], builtin=True, **extra)


for _mode in (
    _builtin("isolated", isolated_jobs, description="P(Yes) that the proposed answer is correct (Kadavath et al. 2022)"),
    _builtin("own_samples", lambda ctx: list_jobs(ctx, "own_samples"), settings=_list_settings,
             description="the same after a list of the judge's own answers"),
    _builtin("alternatives", lambda ctx: list_jobs(ctx, "alternatives"), settings=_list_settings,
             description="the same after a list of answers from outside the judge"),
    _builtin("pairwise", pairwise_jobs, settings=_pairwise_settings, frame="pairwise",
             description="which of two answers is correct, in both orders (Panickssery et al. 2024)"),
    _builtin("critique", isolated_jobs, settings=_critique_settings, prepare=_write_critiques,
             description="P(Yes) after the judge's own one-line critique"),
):
    if _mode.name not in judge_mode_names():  # a reloaded module keeps the first registration
        register_judge_mode(_mode)
