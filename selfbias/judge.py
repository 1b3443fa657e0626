"""Judgments: P(Yes) / P(True), pairwise preference and critique-then-verdict, by any model of any answer.

``judge(run)`` asks each judge model (by default every model of the run: self-judgment) whether
each candidate answer of each item is correct, and writes the ``judgments`` table (ARCHITECTURE.md).

Modes (templates are data: :data:`DEFAULT_TEMPLATES`, overridable, recorded in the manifest):

* ``isolated`` (Kadavath et al. 2022, P(True)): question, proposed answer, "Is the proposed answer
  correct?". P(Yes) is read from the next-token distribution: the mass on every single-token
  spelling of the first option ("Yes": lower/Title/UPPER, with and without a leading space) over
  the mass on the spellings of both options. ``yes_no_mass`` is that denominator (a judge that puts
  little mass on yes/no is not answering); ``top_tokens``/``top_probs`` are the top-5 next tokens.
* ``own_samples`` (Kadavath's brainstormed variant): the same after listing the judge's own first
  ``k`` samples of the item (``generations`` rows, kind ``sample``, in sample order).
* ``alternatives``: the same after listing up to ``k`` external alternatives (see the rule below),
  never marked, in a seeded random order; ``alternatives`` holds the ids shown, in order.
* ``pairwise`` (Panickssery et al. 2024; Chen et al. 2025): "which is correct, 1 or 2?" for the
  judge's own greedy candidate ``a`` (``candidate_id``) against up to ``k`` other candidates ``b``
  (``other_candidate_id``), in both orders: ``order`` 0 = a shown first, 1 = a shown second;
  ``p_yes`` = P(a chosen) in that order (normalised over the spellings of "1" and "2");
  ``alternatives`` = [id shown first, id shown second]. ``Run.pairwise_frame()`` combines the orders.
* ``critique``: the judge first writes a short critique (greedy, one line, at most
  ``CRITIQUE_MAX_NEW_TOKENS`` tokens; recorded in ``critique``), then P(Yes) after its own critique.

Seeded rules (recorded in the manifest under ``judge.rules``):

* alternatives: the item's candidates are shuffled with ``random.Random(f"{seed}|alternatives|{item_id}")``
  (ids sorted first); the pool of judge J is that order without the candidates J authored; candidate
  c is shown the first ``k`` of the pool other than c, in pool order. Candidates that are not among
  the first ``k`` of the pool (J's own answers, for instance) therefore all see the same list and
  share their prompt prefix.
* pairwise: the item's candidates are shuffled with ``random.Random(f"{seed}|pairwise|{item_id}")``;
  the partners of J's own greedy candidate a are the candidates other than a that J did not author
  (in that order), then J's other candidates (in that order); the first ``k`` are used.
* own_samples: the listed answers are mapped to candidate ids (exact text, else case- and
  whitespace-insensitive match), else written ``sample:<index>``.

Models prompted in chat (``LoadedModel.prompt_format == "chat"``) get the chat templates (an explicit system message,
so SmolLM2 does not insert its default one), others the plain ones. Few-shot examples come from a
built-in pool (``few_shot`` of them, minus any whose normalised question equals a run item's),
shown as earlier turns (chat) or blocks (plain) in the mode's own template.

Speed: the prompts of one item for one judge and mode share their text up to the proposed answer;
:func:`selfbias.scoring.next_token_logprobs` runs each distinct prefix once, reuses its KV cache for
every suffix and computes only the last position's logits.

Resume: the work is written in chunks (table ``judgments``, stage ``<judge>=<mode>``, key = chunk
index of ``CHUNK_ITEMS`` items); a rerun with the same settings skips written chunks and ends with
the same table as an uninterrupted run. Other settings refuse unless ``overwrite=True``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import string
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ._judge_templates import (
    DEFAULT_TEMPLATES,
    MODES,
    JudgeTemplate,
    example_fields,
    find_option_tokens,
    format_list,
    render,
    resolve_templates,
    select_examples,
)

if TYPE_CHECKING:
    import pandas as pd

    from .models import LoadedModel
    from .runs import Run

__all__ = [
    "judge",
    "judge_prompts",
    "find_option_tokens",
    "JudgeTemplate",
    "DEFAULT_TEMPLATES",
    "MODES",
    "JUDGMENT_COLUMNS",
]

JUDGMENT_COLUMNS = [
    "item_id", "candidate_id", "judge", "mode", "order", "other_candidate_id", "p_yes", "yes_no_mass",
    "top_tokens", "top_probs", "prompt_hash", "alternatives", "critique",
]
CHUNK_ITEMS = 16  # items per chunk of work
TOP_K = 5
CRITIQUE_MAX_NEW_TOKENS = 48
CRITIQUE_STOP = ("\n",)
SETTINGS_VERSION = 1

RULES = {
    "alternatives": (
        "candidates of the item sorted by id, shuffled with random.Random(f'{seed}|alternatives|{item_id}'); "
        "pool = that order without candidates the judge authored; candidate c is shown the first k of the "
        "pool other than c, in pool order; never marked"
    ),
    "pairwise": (
        "anchor a = the judge's own greedy candidate; candidates sorted by id, shuffled with "
        "random.Random(f'{seed}|pairwise|{item_id}'); partners = candidates != a not authored by the judge "
        "(shuffled order), then the judge's other candidates (shuffled order); first k; both orders"
    ),
    "own_samples": (
        "the judge's generations of kind 'sample' with a non-empty answer, in sample_index order, first k "
        "(duplicates kept)"
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


def _loose(text: str) -> str:
    return " ".join(text.split()).casefold()


@dataclass
class _Candidate:
    candidate_id: str
    text: str
    sources: list[str]
    authors: list[str]


@dataclass
class _RunData:
    """What the judge reads from a run: items, their candidates and each model's samples."""

    item_ids: list[str]
    questions: dict[str, str]
    candidates: dict[str, list[_Candidate]]
    samples: dict[tuple[str, str], list[tuple[int, str]]]  # (model, item) -> [(sample_index, answer)]

    @classmethod
    def from_tables(cls, items: "pd.DataFrame", candidates: "pd.DataFrame", generations: "pd.DataFrame", where: str) -> "_RunData":
        for name, table, cols in (("items", items, ("item_id", "question")),
                                  ("candidates", candidates, ("item_id", "candidate_id", "text", "sources", "authors"))):
            if table.empty:
                raise ValueError(f"{where}: the run has no '{name}' table; run the probe (or write it) first")
            missing = [c for c in cols if c not in table.columns]
            if missing:
                raise ValueError(f"{where}: table '{name}' lacks column(s) {', '.join(missing)}")
        item_ids = [str(i) for i in items["item_id"].tolist()]
        questions = dict(zip(item_ids, (_as_text(q) for q in items["question"].tolist())))
        cands: dict[str, list[_Candidate]] = {i: [] for i in item_ids}
        for row in candidates.to_dict("records"):
            iid = str(row["item_id"])
            if iid in cands:
                cands[iid].append(_Candidate(str(row["candidate_id"]), _as_text(row["text"]),
                                             [str(s) for s in _as_list(row["sources"])],
                                             [str(a) for a in _as_list(row["authors"])]))
        samples: dict[tuple[str, str], list[tuple[int, str]]] = {}
        if not generations.empty and {"item_id", "model", "kind", "answer"} <= set(generations.columns):
            for row in generations.to_dict("records"):
                ans = row["answer"]
                if ans is None or (isinstance(ans, float) and math.isnan(ans)) or not str(ans).strip():
                    continue  # nothing extracted
                key = (str(row["model"]), str(row["item_id"]))
                if row["kind"] == "sample":
                    samples.setdefault(key, []).append((int(row.get("sample_index", 0) or 0), str(ans)))
            for v in samples.values():
                v.sort(key=lambda t: t[0])
        return cls(item_ids, questions, cands, samples)

    def own_greedy(self, judge: str, item_id: str) -> _Candidate | None:
        """The candidate holding the judge's greedy answer: ``("own_greedy", judge)`` among its
        aligned (source, author) pairs."""
        for c in self.candidates[item_id]:
            if ("own_greedy", judge) in zip(c.sources, c.authors):
                return c
        return None


def _shuffled(cands: list[_Candidate], seed: int, what: str, item_id: str) -> list[_Candidate]:
    order = sorted(cands, key=lambda c: c.candidate_id)
    random.Random(f"{seed}|{what}|{item_id}").shuffle(order)
    return order


# ------------------------------------------------------------------------------------ jobs


@dataclass
class _Job:
    """One prompt to read: a row of the judgments table before the verdict is known."""

    item_id: str
    candidate_id: str
    order: int
    other_candidate_id: str | None
    alternatives: list[str]
    fields: dict[str, str]
    vary: tuple[str, ...]  # fields that differ between the prompts sharing a prefix
    critique: str | None = None
    chosen_second: bool = False  # pairwise: the judged candidate is shown second (p_yes = P(option 2))
    prompt: str = ""
    prefix: str = ""
    suffix: str = ""


def _build_jobs(data: _RunData, judge_name: str, mode: str, item_ids: Sequence[str], k: int, seed: int) -> list[_Job]:
    jobs: list[_Job] = []
    for iid in item_ids:
        q = data.questions[iid]
        cands = data.candidates[iid]
        if mode in ("isolated", "critique"):
            for c in cands:
                jobs.append(_Job(iid, c.candidate_id, 0, None, [], {"question": q, "answer": c.text},
                                 ("answer", "critique")))
        elif mode == "own_samples":
            drawn = data.samples.get((judge_name, iid), [])[:k]
            exact = {c.text: c.candidate_id for c in cands}
            loose = {}
            for c in cands:
                loose.setdefault(_loose(c.text), c.candidate_id)
            shown = [exact.get(a) or loose.get(_loose(a)) or f"sample:{idx}" for idx, a in drawn]
            listing = format_list([a for _, a in drawn])
            for c in cands:
                jobs.append(_Job(iid, c.candidate_id, 0, None, list(shown),
                                 {"question": q, "samples": listing, "answer": c.text}, ("answer",)))
        elif mode == "alternatives":
            pool = [c for c in _shuffled(cands, seed, "alternatives", iid) if judge_name not in c.authors]
            for c in cands:
                alts = [a for a in pool if a.candidate_id != c.candidate_id][:k]
                jobs.append(_Job(iid, c.candidate_id, 0, None, [a.candidate_id for a in alts],
                                 {"question": q, "alternatives": format_list([a.text for a in alts]), "answer": c.text},
                                 ("answer",)))
        elif mode == "pairwise":
            a = data.own_greedy(judge_name, iid)
            if a is None:
                continue
            order = [c for c in _shuffled(cands, seed, "pairwise", iid) if c.candidate_id != a.candidate_id]
            partners = ([c for c in order if judge_name not in c.authors]
                        + [c for c in order if judge_name in c.authors])[:k]
            for b in partners:
                jobs.append(_Job(iid, a.candidate_id, 0, b.candidate_id, [a.candidate_id, b.candidate_id],
                                 {"question": q, "answer_1": a.text, "answer_2": b.text}, ("answer_2",)))
                jobs.append(_Job(iid, a.candidate_id, 1, b.candidate_id, [b.candidate_id, a.candidate_id],
                                 {"question": q, "answer_1": b.text, "answer_2": a.text}, ("answer_1", "answer_2"),
                                 chosen_second=True))
        else:  # pragma: no cover - modes are checked earlier
            raise ValueError(f"unknown judge mode {mode!r}")
    return jobs


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


def _write_critiques(lm: "LoadedModel", jobs: list[_Job], template: JudgeTemplate, examples, batch_size) -> None:
    from .generation import generate

    lead = _critique_lead(template.suffix)
    prompts = [render(template, job.fields, lm.tokenizer, examples, suffix=lead) for job in jobs]
    if not prompts:
        return
    outs = generate(lm, prompts, temperature=0.0, max_new_tokens=CRITIQUE_MAX_NEW_TOKENS, stop=CRITIQUE_STOP,
                    batch_size=batch_size)
    for job, (g,) in zip(jobs, outs):
        job.critique = g.text.strip()
        job.fields["critique"] = job.critique


def _logsumexp(values: Sequence[float]) -> float:
    m = max(values)
    if m == -math.inf:
        return -math.inf
    return m + math.log(sum(math.exp(v - m) for v in values))


def _read_verdicts(lm: "LoadedModel", jobs: list[_Job], first_ids: Sequence[int], second_ids: Sequence[int],
                   batch_size: int | None) -> list[dict]:
    from .scoring import next_token_logprobs

    groups: dict[str, list[int]] = {}
    for i, job in enumerate(jobs):
        groups.setdefault(job.prefix, []).append(i)
    requests = [(prefix, [jobs[i].suffix for i in idx]) for prefix, idx in groups.items()]
    results = next_token_logprobs(lm, requests, select=list(first_ids) + list(second_ids), top_k=TOP_K,
                                  batch_size=batch_size) if requests else []
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
                      "top_probs": [float(math.exp(v)) for v in nt.top_logprobs]}
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
        })
    df = pd.DataFrame(rows, columns=JUDGMENT_COLUMNS)
    df["order"] = df["order"].astype("int64")
    for c in ("p_yes", "yes_no_mass"):
        df[c] = df[c].astype("float64")
    for c in ("other_candidate_id", "critique"):
        df[c] = df[c].astype(object)
    return df


# ------------------------------------------------------------------------------------ per judge


@dataclass
class _JudgeSetup:
    """A loaded judge with its format, templates, option ids and few-shot examples per mode."""

    name: str
    lm: "LoadedModel"
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


def _option_ids(lm: "LoadedModel", template: JudgeTemplate) -> tuple[list[int], list[int]]:
    ids = []
    for word in template.options:
        found = find_option_tokens(lm.tokenizer, word)
        if not found:
            raise ValueError(
                f"judge template '{template.name}': option {word!r} has no single-token spelling in the "
                f"tokenizer of {lm.name}; use option words that are one token"
            )
        ids.append(found)
    if set(ids[0]) & set(ids[1]):
        raise ValueError(f"judge template '{template.name}': options {template.options!r} share a token in {lm.name}")
    return ids[0], ids[1]


def _setup(name: str, lm: "LoadedModel", modes: Sequence[str], templates: dict[str, dict[str, JudgeTemplate]],
           example_ids: Sequence[int], k: int) -> _JudgeSetup:
    fmt = lm.prompt_format
    chosen = {m: templates[m][fmt] for m in modes}
    option_ids = {m: _option_ids(lm, t) for m, t in chosen.items()}
    examples = {m: [example_fields(i, pos, m, k) for pos, i in enumerate(example_ids)] for m in modes}
    return _JudgeSetup(name, lm, fmt, chosen, option_ids, examples)


def _judge_items(setup: _JudgeSetup, data: _RunData, mode: str, item_ids: Sequence[str], k: int, seed: int,
                 batch_size: int | None) -> tuple[list[_Job], list[dict]]:
    template = setup.templates[mode]
    jobs = _build_jobs(data, setup.name, mode, item_ids, k, seed)
    if mode == "critique":
        _write_critiques(setup.lm, jobs, template, setup.examples[mode], batch_size)
    _render_jobs(jobs, template, setup.lm.tokenizer, setup.examples[mode])
    first, second = setup.option_ids[mode]
    return jobs, _read_verdicts(setup.lm, jobs, first, second, batch_size)


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
        raise ValueError(f"judge spec {dict(spec)!r} has no 'name'")
    name = getattr(spec, "name", None)
    if isinstance(name, str) and hasattr(spec, "tokenizer"):
        return name  # a LoadedModel
    raise ValueError(f"judge spec must be a model name, a dict with 'name' or a LoadedModel, got {type(spec).__name__}")


def _check_modes(modes: Any) -> tuple[str, ...]:
    if isinstance(modes, str):
        modes = (modes,)
    modes = tuple(modes)
    if not modes:
        raise ValueError("modes is empty; use some of " + ", ".join(MODES))
    for m in modes:
        if m not in MODES:
            raise ValueError(f"unknown judge mode {m!r}; use one of {', '.join(MODES)}")
    if len(set(modes)) != len(modes):
        raise ValueError(f"modes has duplicates: {list(modes)}")
    return modes


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def _example_ids(data: _RunData, few_shot: int) -> tuple[list[int], list[str]]:
    from ._checkers import normalize_text

    return select_examples(few_shot, [data.questions[i] for i in data.item_ids], normalize_text)


def _settings(modes, names, k, few_shot, seed, templates, example_ids, dropped) -> dict[str, Any]:
    from ._judge_templates import FEW_SHOT_POOL

    return {
        "version": SETTINGS_VERSION,
        "modes": list(modes),
        "judges": list(names),
        "k": k,
        "few_shot": few_shot,
        "seed": seed,
        "chunk_items": CHUNK_ITEMS,
        "top_k": TOP_K,
        "templates": {m: {fmt: {**t.to_dict(), "hash": t.digest} for fmt, t in templates[m].items()} for m in modes},
        "critique": {"decoding": "greedy", "max_new_tokens": CRITIQUE_MAX_NEW_TOKENS, "stop": list(CRITIQUE_STOP)},
        "rules": {key: RULES[key] for key in RULES if key in modes or key in ("p_yes", "prompt_hash")},
        "few_shot_examples": [FEW_SHOT_POOL[i][0] for i in example_ids],
        "few_shot_dropped": list(dropped),
    }


def _drop_judgments(store) -> None:
    import shutil

    from .runs import CHUNKS

    shutil.rmtree(store.path / CHUNKS / "judgments", ignore_errors=True)
    consolidated = store.path / "judgments.parquet"
    if consolidated.exists():
        consolidated.unlink()


# ------------------------------------------------------------------------------------ public API


def judge(
    run: "Run | str | os.PathLike",
    *,
    modes: Sequence[str] = ("isolated", "alternatives"),
    judges: Sequence[Any] | None = None,
    models: Mapping[str, "LoadedModel"] | None = None,
    k: int = 3,
    few_shot: int = 0,
    seed: int = 0,
    templates: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    batch_size: int | None = None,
    progress: bool = True,
) -> "Run":
    """Add judgments to an existing run (table ``judgments``) and return the finalized :class:`Run`.

    ``judges``: model names, dicts with a ``name`` or LoadedModels (default: the run's models, so
    each model judges its own and the others' answers: the full judge x author matrix). ``models``:
    name -> already loaded LoadedModel (else :func:`selfbias.models.load_model` loads by name).
    ``k``: samples / alternatives listed, and pairwise partners per anchor. ``few_shot``: built-in
    examples shown first (disjoint from the run's items). ``templates``: per-mode overrides of
    :data:`DEFAULT_TEMPLATES` (a JudgeTemplate, a dict of its fields, or ``{"chat": ..., "plain": ...}``).
    Settings are recorded in ``manifest["judge"]``; a run with judgments made under other settings is
    refused unless ``overwrite=True``, which drops them. Resumable: written chunks are kept.
    """
    from ._progress import stage
    from .runs import Run, RunError, RunStore

    modes = _check_modes(modes)
    k = _check_int("k", k, 1)
    few_shot = _check_int("few_shot", few_shot, 0)
    seed = _check_int("seed", seed, 0)
    resolved = resolve_templates(templates, modes)
    path = Path(run.path) if isinstance(run, Run) else Path(run)
    models = dict(models or {})
    started = time.perf_counter()

    store = RunStore.open(path, None)
    try:
        manifest = store.manifest
        specs = list(judges) if judges is not None and not isinstance(judges, (str, Mapping)) else (
            [judges] if judges is not None else list(manifest.get("request", {}).get("models") or []))
        if not specs:
            raise ValueError(f"{path}: no judges given and the run's request names no models")
        names = [_judge_name(s) for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"judges has duplicate names: {names}")
        for spec, name in zip(specs, names):
            if not isinstance(spec, (str, Mapping)):
                models.setdefault(name, spec)

        data = _RunData.from_tables(store.read_table("items"), store.read_table("candidates"),
                                    store.read_table("generations"), str(path))
        for name in names:
            if "own_samples" in modes and not any(m == name for m, _ in data.samples):
                raise ValueError(
                    f"{path}: mode 'own_samples' needs the judge's own samples, but 'generations' has no "
                    f"sample rows of model {name!r}"
                )
            if "pairwise" in modes and not any(data.own_greedy(name, i) for i in data.item_ids):
                raise ValueError(
                    f"{path}: mode 'pairwise' anchors on the judge's own greedy answer, but no candidate has "
                    f"source 'own_greedy' authored by {name!r}"
                )
        example_ids, dropped = _example_ids(data, few_shot)
        settings = _settings(modes, names, k, few_shot, seed, resolved, example_ids, dropped)
        settings = json.loads(json.dumps(settings))

        previous = manifest.get("judge") or {}
        if "judgments" in store.tables():
            if overwrite:
                _drop_judgments(store)
                previous = {}
            else:
                from .runs import _ABSENT, _first_difference, _show

                diff = _first_difference({key: previous.get(key, _ABSENT) for key in settings}, settings, "judge")
                if diff:
                    where, old, new = diff
                    raise RunError(
                        f"{path}: the run's judgments were made with other judge settings ({where}: "
                        f"{_show(old)} in the run, {_show(new)} requested); pass overwrite=True "
                        "(--overwrite) to drop them and judge again"
                    )
        spellings = dict(previous.get("spellings") or {}) if previous else {}
        store.update_manifest(judge={**settings, "spellings": spellings})

        chunks = [data.item_ids[i:i + CHUNK_ITEMS] for i in range(0, len(data.item_ids), CHUNK_ITEMS)]
        todo = {name: [(m, c) for m in modes for c in range(len(chunks))
                       if not store.has_chunk("judgments", _stage(name, m), str(c))] for name in names}
        for name in names:
            if not todo[name]:
                continue
            lm, loaded_here = models.get(name), False
            if lm is None:
                from .models import load_model

                lm, loaded_here = load_model(name), True
            setup = _setup(name, lm, modes, resolved, example_ids, k)
            spellings[name] = setup.spellings()
            store.update_manifest(judge={**settings, "spellings": spellings})
            with stage(f"judge {name}", len(todo[name]), progress) as advance:
                for mode, c in todo[name]:
                    jobs, verdicts = _judge_items(setup, data, mode, chunks[c], k, seed, batch_size)
                    store.write_chunk("judgments", _stage(name, mode), str(c), _frame(jobs, verdicts, name, mode))
                    advance(1)
            del setup
            if loaded_here:
                del lm
        store.record_timing("judge", time.perf_counter() - started)
        return store.finalize()
    finally:
        store.close()


def judge_prompts(
    run: "Run | str | os.PathLike",
    lm: "LoadedModel",
    mode: str,
    *,
    judge_name: str | None = None,
    items: Sequence[str] | None = None,
    k: int = 3,
    few_shot: int = 0,
    seed: int = 0,
    templates: Mapping[str, Any] | None = None,
    read: bool = False,
    batch_size: int | None = None,
) -> "pd.DataFrame":
    """The prompts that :func:`judge` would read for one judge and mode, without writing anything.

    One row per judgment: ``item_id``, ``candidate_id``, ``order``, ``other_candidate_id``,
    ``alternatives``, ``critique`` (critique mode generates it), ``prompt`` (full text),
    ``prompt_prefix`` / ``prompt_suffix`` (the shared part and the per-candidate rest),
    ``prompt_hash``, ``options`` (the two verdict words); with ``read=True`` also the judgments'
    ``p_yes``, ``yes_no_mass``, ``top_tokens`` and ``top_probs``.
    """
    import pandas as pd

    from .runs import Run, load_run

    (mode,) = _check_modes(mode)
    r = run if isinstance(run, Run) else load_run(run)
    data = _RunData.from_tables(r.items, r.candidates, r.generations, str(r.path))
    example_ids, _ = _example_ids(data, _check_int("few_shot", few_shot, 0))
    setup = _setup(judge_name or lm.name, lm, (mode,), resolve_templates(templates, (mode,)), example_ids,
                   _check_int("k", k, 1))
    item_ids = list(items) if items is not None else data.item_ids
    template = setup.templates[mode]
    jobs = _build_jobs(data, setup.name, mode, item_ids, k, seed)
    if mode == "critique":
        _write_critiques(lm, jobs, template, setup.examples[mode], batch_size)
    _render_jobs(jobs, template, lm.tokenizer, setup.examples[mode])
    df = pd.DataFrame([{
        "item_id": j.item_id, "candidate_id": j.candidate_id, "order": j.order,
        "other_candidate_id": j.other_candidate_id, "alternatives": list(j.alternatives), "critique": j.critique,
        "prompt": j.prompt, "prompt_prefix": j.prefix, "prompt_suffix": j.suffix,
        "prompt_hash": _prompt_hash(j.prompt), "options": list(template.options),
    } for j in jobs])
    if read and jobs:
        first, second = setup.option_ids[mode]
        verdicts = pd.DataFrame(_read_verdicts(lm, jobs, first, second, batch_size))
        df = pd.concat([df, verdicts], axis=1)
    return df
