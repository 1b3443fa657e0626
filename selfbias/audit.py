"""Audit a grader: does the model that graded an evaluation favour answers that are likelier to it?

``selfbias audit LOG [LOG ...] --grader MODEL`` reads evaluation logs (:mod:`selfbias.eval_logs`:
lm-evaluation-harness samples, inspect_ai logs) in which answers were graded, scores every graded
answer's log-likelihood under the grader (after the same answer prompt the probe uses, so answers to
one question compare), grades each answer independently against the dataset's reference with the
task's checker, and reports, with item-clustered bootstrap intervals (:mod:`selfbias.stats`):

* false acceptance: the share of answers the reference calls wrong that the grader accepted, by the
  answer's relation to the grader (``own``: written by the grader model itself, ``family``: by a
  model of its family, ``other``), and by whether the grader finds the wrong answer likelier than
  the reference (Wataoka et al. 2024: self-preference as a preference for low-perplexity text);
* likelihood vs acceptance: AUROC of the grader's mean log-probability of an answer for accepted vs
  rejected answers, among all answers and among wrong ones only (0.5: acceptance does not follow
  likelihood).

A grader whose acceptance follows its own likelihood among wrong answers is the self-preference the
toolkit measures, found in a log nobody ran for that purpose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

__all__ = ["AuditResult", "audit", "relation"]


@dataclass(frozen=True)
class AuditResult:
    """What :func:`audit` found.

    Attributes
    ----------
    answers : pandas.DataFrame
        One row per graded answer: ``item_id, candidate_id, author, relation, scorer, answer,
        accepted`` (the log's grade), ``correct`` (the checker against the reference; NA when it
        cannot tell), ``sum_logprob, mean_logprob, n_tokens`` (under the grader),
        ``reference_sum_logprob`` and ``likelier_than_reference``.
    false_acceptance : pandas.DataFrame
        :func:`selfbias.stats.misplaced_confidence` of the wrong answers (``measure``
        ``share_above_threshold``: accepted); column ``by`` says the grouping: ``relation`` (own,
        family, other) or ``likelihood`` (the ``likelier_than_reference`` column's two values).
    likelihood_auroc : pandas.DataFrame
        :func:`selfbias.stats.discrimination` of ``mean_logprob`` for accepted vs rejected answers;
        ``subset`` all or wrong (the reference calls them wrong).
    grader : str
        The grader model.
    logs : tuple of str
        The logs read.
    """

    answers: pd.DataFrame
    false_acceptance: pd.DataFrame
    likelihood_auroc: pd.DataFrame
    grader: str
    logs: tuple[str, ...]

    def write(self, folder: str | Path) -> Path:
        """Write ``answers.parquet`` and the two tables as CSV into ``folder`` (created).

        Parameters
        ----------
        folder : str or Path
            The output folder.

        Returns
        -------
        Path
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.answers.to_parquet(folder / "answers.parquet", index=False)
        self.false_acceptance.to_csv(folder / "false_acceptance.csv", index=False)
        self.likelihood_auroc.to_csv(folder / "likelihood_auroc.csv", index=False)
        return folder


def _base(name: str) -> str:
    """A model name without provider, path, server address or file suffix, lower case."""
    name = str(name).split("@", 1)[0]
    name = re.sub(r"^(openai|hf|vllm|anthropic|google|together|ollama):", "", name)
    return Path(name.rstrip("/")).name.removesuffix(".gguf").lower()


def relation(author: str | None, grader: str) -> str:
    """How an answer's author relates to the grader: ``own``, ``family`` or ``other``.

    ``own`` when the names agree without provider prefixes, paths, server addresses and case
    (``openai/gpt-4o-mini`` and ``gpt-4o-mini``); ``family`` when their leading letters agree
    (``qwen2.5-7b`` and ``Qwen3-8B``: qwen; ``smollm2-135m`` and ``SmolLM2-360M``: smollm).

    Parameters
    ----------
    author : str or None
        The evaluated model as the log names it (None: unknown, ``other``).
    grader : str
        The grader's model spec.

    Returns
    -------
    str
    """
    if not author:
        return "other"
    a, g = _base(author), _base(grader)
    if a == g:
        return "own"
    family = re.compile(r"[a-z]+")
    fa, fg = family.match(a), family.match(g)
    return "family" if fa and fg and fa.group(0) == fg.group(0) else "other"


def _choice_text(item, answer: str) -> str:
    letter = answer.strip().strip("()").upper()
    if item.choices and len(letter) == 1 and 0 <= ord(letter) - ord("A") < len(item.choices):
        return item.choices[ord(letter) - ord("A")]
    return answer


def audit(logs: Sequence[str | Path] | str | Path, grader: Any, *, n: int | None = None,
          device: str | None = None, n_boot: int = 2000, seed: int = 0) -> AuditResult:
    """Audit ``grader`` on the graded answers of evaluation logs (see the module docstring).

    Parameters
    ----------
    logs : path or sequence of paths
        lm-eval samples logs and/or inspect_ai logs; their questions are joined by item id.
    grader : str or LoadedModel or Backend
        The model that graded (a spec :func:`selfbias.backends.load_backend` takes, or a loaded one).
    n : int or None
        Audit the first ``n`` questions only (None: all).
    device : str or None
        Where a grader given by name is loaded.
    n_boot : int
        Item-bootstrap resamples of every interval.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    AuditResult

    Raises
    ------
    TaskError
        A log that cannot be read.
    InputError
        No graded answers in the logs.
    """
    from . import stats
    from .backends import as_backend, load_backend
    from .errors import InputError
    from .eval_logs import read_eval_log
    from .prompts import default_template, render

    paths = [logs] if isinstance(logs, (str, Path)) else list(logs)
    read = [read_eval_log(p) for p in paths]
    items, tasks = {}, {}
    for log in read:
        for item in log.task.items:
            if item.id not in items:
                items[item.id], tasks[item.id] = item, log.task
    keep = set(list(items)[:n]) if n is not None else set(items)
    answers = pd.concat([log.answers.assign(author=log.model or log.framework) for log in read], ignore_index=True)
    answers = answers[answers["item_id"].isin(keep) & answers["answer"].str.strip().ne("")
                      & answers["correct"].notna()].reset_index(drop=True)
    if answers.empty:
        raise InputError(f"{', '.join(map(str, paths))}: no graded answers to audit")
    lm = load_backend(grader, device=device) if isinstance(grader, str) else as_backend(grader)
    name = grader if isinstance(grader, str) else lm.name
    template = default_template(lm)
    order = list(dict.fromkeys(answers["item_id"]))
    texts = {iid: list(dict.fromkeys(answers.loc[answers["item_id"] == iid, "answer"].map(str.strip)))
             for iid in order}
    # a multiple-choice answer given as its letter is scored as the choice's text, as the reference is
    spelled = {(iid, t): _choice_text(items[iid], t) for iid in order for t in texts[iid]}
    requests = [(render(template, lm, items[iid].question), [" " + items[iid].references[0]] +
                 [" " + spelled[(iid, t)] for t in texts[iid]]) for iid in order]
    scored = lm.score_requests(requests, truncate=True)
    by_text, reference = {}, {}
    for iid, scores in zip(order, scored):
        reference[iid] = scores[0].sum_logprob
        for k, (text, s) in enumerate(zip(texts[iid], scores[1:])):
            by_text[(iid, text)] = (f"{iid}#a{k}", s.sum_logprob, s.mean_logprob, s.n_tokens)
    rows = []
    for row in answers.itertuples():
        text = row.answer.strip()
        cid, total, mean, n_tokens = by_text[(row.item_id, text)]
        item = items[row.item_id]
        rows.append({
            "item_id": row.item_id, "candidate_id": cid, "author": row.author, "relation": relation(row.author, name),
            "scorer": row.scorer, "answer": text, "accepted": bool(row.correct),
            "correct": tasks[row.item_id].grade(text, item),
            "sum_logprob": total, "mean_logprob": mean, "n_tokens": n_tokens,
            "reference_sum_logprob": reference[row.item_id],
            "likelier_than_reference": "likelier than reference" if total > reference[row.item_id]
            else "not likelier than reference",
        })
    frame = pd.DataFrame(rows)
    frame["correct"] = frame["correct"].astype("boolean")
    analysis = frame.assign(judge=name, mode=frame["scorer"].fillna("grade"), p_yes=frame["accepted"].astype(float))
    graded = analysis[analysis["correct"].notna()].assign(correct=lambda d: d["correct"].astype(bool))
    boot = {"n_boot": n_boot, "seed": seed}
    false_acceptance = pd.concat([
        stats.misplaced_confidence(graded, by=(by,), **boot).rename(columns={by: "group"})
        .assign(by="likelihood" if by == "likelier_than_reference" else by)
        for by in ("relation", "likelier_than_reference")], ignore_index=True)
    false_acceptance = false_acceptance[(false_acceptance["correctness"] == "wrong")
                                        & (false_acceptance["measure"] == "share_above_threshold")]
    by_accept = analysis.assign(correct=analysis["accepted"])
    wrong = by_accept[graded.reindex(by_accept.index)["correct"].eq(False).fillna(False).astype(bool)]
    auroc = pd.concat([
        stats.discrimination(d, score="mean_logprob", by=("judge", "mode"), **boot).assign(subset=subset)
        for subset, d in (("all", by_accept), ("wrong", wrong)) if len(d)], ignore_index=True)
    return AuditResult(answers=frame, false_acceptance=false_acceptance.reset_index(drop=True),
                       likelihood_auroc=auroc, grader=name, logs=tuple(map(str, paths)))
