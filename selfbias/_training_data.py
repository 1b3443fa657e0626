"""The training examples of each objective of :func:`selfbias.train.train` (rules as data, seeded).

Every example is ``(item_id, prompt, completion)``; the loss is on the completion only. Rules:

* ``imitation``: the probe's answer prompt (:func:`selfbias.prompts.render` with the model's default
  template) -> ``" <reference>."``.
* ``imitation_trace`` (arithmetic only): the same prompt -> correct worked steps ending in the
  answer: column addition right to left with carries (``" 7 + 5 = 12; 4 + 3 + 1 = 8; so 47 + 35 =
  82."``), or partial products for a 2-digit x 1-digit product (``" 40 * 7 = 280; 7 * 7 = 49; 280 +
  49 = 329; so 47 * 7 = 329."``). The answer follows the last "=", so the probe's answer extraction
  reads it; no ". " inside (the chat template stops there).
* ``corrupted``: the same steps with every intermediate result shifted by a seeded non-zero offset
  (1-9, sign drawn), the final "so a op b = answer" right (the "traces are scaffolding" control).
* ``critique``: the judge's ``isolated`` prompt (:data:`selfbias.judge.DEFAULT_TEMPLATES`) for the
  question and a candidate answer -> ``"Yes. <rule>"`` or ``"No. <rule>"``, verdict by the task's
  checker. The rule: arithmetic ``"a op b = answer."`` followed, for a wrong candidate, by
  ``", not <candidate>"``; other tasks ``"The correct answer is <reference>."`` The verdict comes
  first because the judge reads P(Yes) at the first answer token.

Candidates of the critique objective (``errors``):

* ``static``: fixed before training; for each (item, epoch) a seeded coin (p = 0.5) picks the
  reference or a seeded perturbation of it (:func:`selfbias.tasks.numeric_perturbations` for numbers,
  :func:`selfbias.tasks.text_perturbations` otherwise).
* ``own``: the model's own sampled answers (temperature 0.7, the probe's answer prompt), drawn from the
  current weights at the start of each round; verdict by the checker.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Sequence

from .errors import InputError
from .tasks import Item, Task, numeric_perturbations, text_perturbations

OBJECTIVES = ("imitation", "critique", "corrupted", "imitation_trace")
ERRORS = ("static", "own")
TRACE_OBJECTIVES = ("corrupted", "imitation_trace")


@dataclass(frozen=True)
class Example:
    """One training example: the loss is on ``completion`` (and the end-of-sequence token after it)."""

    item_id: str
    prompt: str
    completion: str
    candidate: str | None = None  # critique: the judged answer
    candidate_correct: bool | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _arith(item: Item) -> tuple[int, int, str]:
    meta = item.meta
    if not {"a", "b", "op"} <= set(meta):
        raise ValueError(f"item {item.id!r}: worked steps need arithmetic items (meta a, b, op)")
    return int(meta["a"]), int(meta["b"]), str(meta["op"])


def trace_steps(item: Item) -> list[tuple[str, int]]:
    """The correct intermediate steps of an arithmetic item as (left-hand side, result) pairs."""
    a, b, op = _arith(item)
    steps: list[tuple[str, int]] = []
    if op == "+":
        da, db = str(a)[::-1], str(b)[::-1]
        carry = 0
        for i in range(max(len(da), len(db))):
            x = int(da[i]) if i < len(da) else 0
            y = int(db[i]) if i < len(db) else 0
            lhs = f"{x} + {y}" + (f" + {carry}" if carry else "")
            total = x + y + carry
            steps.append((lhs, total))
            carry = total // 10
        return steps
    if op == "*":
        tens, ones = a - a % 10, a % 10
        steps = [(f"{tens} * {b}", tens * b), (f"{ones} * {b}", ones * b)]
        steps.append((f"{tens * b} + {ones * b}", a * b))
        return steps
    raise ValueError(f"item {item.id!r}: no worked steps for operator {op!r}")


def trace_text(item: Item, corrupt_seed: int | None = None) -> str:
    """Worked steps then ``so a op b = answer.``; with ``corrupt_seed`` every step's result is wrong."""
    a, b, op = _arith(item)
    answer = a + b if op == "+" else a * b
    rng = random.Random(f"corrupt|{corrupt_seed}|{item.id}")
    parts = []
    for lhs, result in trace_steps(item):
        if corrupt_seed is not None:
            shift = rng.randint(1, 9)
            # a shift down that would leave a non-positive number goes up instead: still wrong
            result = result - shift if rng.random() < 0.5 and result - shift > 0 else result + shift
        parts.append(f"{lhs} = {result}")
    return " " + "; ".join(parts) + f"; so {a} {op} {b} = {answer}."


def critique_text(item: Item, candidate: str, correct: bool) -> str:
    """``Yes. ...`` / ``No. ...`` naming the correct computation (arithmetic) or the correct answer."""
    verdict = "Yes" if correct else "No"
    if {"a", "b", "op"} <= set(item.meta):
        a, b, op = _arith(item)
        answer = a + b if op == "+" else a * b
        body = f"{a} {op} {b} = {answer}" + ("" if correct else f", not {candidate.strip()}")
        return f"{verdict}. {body}."
    return f"{verdict}. The correct answer is {item.references[0]}."


def static_candidate(task: Task, item_index: int, epoch: int, seed: int) -> tuple[str, bool]:
    """The (candidate, correct) of an item in an epoch under ``errors="static"`` (seeded, see module doc)."""
    item = task.items[item_index]
    rng = random.Random(f"static|{seed}|{epoch}|{item.id}")
    if rng.random() < 0.5:
        return item.references[0], True
    if item.answer_type == "number":
        wrong = numeric_perturbations(item.references[0])
    else:
        wrong = text_perturbations(task.items, item_index, k=3, seed=seed)
    if not wrong:
        return item.references[0], True
    return rng.choice(wrong), False


def example_stream(objective: str, task: Task, items: Sequence[Item], n_examples: int, seed: int,
                   answer_prompt, judge_prompt, candidates=None) -> list[Example]:
    """``n_examples`` examples in training order: epochs over ``items``, each a seeded permutation.

    ``answer_prompt(question)`` / ``judge_prompt(question, answer)`` render the prompts;
    ``candidates[item_id][epoch]`` = (answer, correct) overrides the static critique candidates
    (``errors="own"``; epochs beyond its length wrap around).
    """
    index = {it.id: i for i, it in enumerate(task.items)}
    out: list[Example] = []
    epoch = 0
    while len(out) < n_examples:
        order = list(items)
        random.Random(f"order|{seed}|{epoch}").shuffle(order)
        for item in order:
            if len(out) == n_examples:
                break
            if objective == "imitation":
                out.append(Example(item.id, answer_prompt(item.question), f" {item.references[0]}."))
            elif objective == "imitation_trace":
                out.append(Example(item.id, answer_prompt(item.question), trace_text(item)))
            elif objective == "corrupted":
                out.append(Example(item.id, answer_prompt(item.question), trace_text(item, corrupt_seed=seed)))
            elif objective == "critique":
                if candidates is not None:
                    draws = candidates[item.id]
                    cand, ok = draws[epoch % len(draws)]
                else:
                    cand, ok = static_candidate(task, index[item.id], epoch, seed)
                out.append(Example(item.id, judge_prompt(item.question, cand), critique_text(item, cand, ok),
                                   candidate=cand, candidate_correct=bool(ok)))
            else:
                raise ValueError(f"unknown objective {objective!r}; use one of {', '.join(OBJECTIVES)}")
        epoch += 1
    return out


def split_items(items: Sequence[Item], eval_fraction: float, seed: int) -> tuple[list[Item], list[Item]]:
    """Disjoint (train, eval) items: a ``Random(f"split|{seed}")`` shuffle, the first share is evaluation."""
    if not 0 < eval_fraction < 1:
        raise InputError(f"eval_fraction must be between 0 and 1, got {eval_fraction}")
    order = list(items)
    random.Random(f"split|{seed}").shuffle(order)
    n_eval = max(1, round(len(order) * eval_fraction))
    if n_eval >= len(order):
        raise InputError(f"{len(order)} items cannot be split into training and evaluation items")
    eval_ids = {it.id for it in order[:n_eval]}
    return [it for it in items if it.id not in eval_ids], [it for it in items if it.id in eval_ids]
