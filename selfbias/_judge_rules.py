"""What the judge is shown, as names: the list modes and designs, and the sources of listed and paired answers.

One home for these names, read by :mod:`selfbias.judge` (which re-exports them), the validation step
(:mod:`selfbias._validate`) and the frames (:mod:`selfbias.frames`), so none of them defines its own copy.
Sources are relative to the judge: ``other_model`` is an answer another model wrote, the rest are the
dataset's (see ARCHITECTURE.md, "Lists" and "Pairs").
"""

from __future__ import annotations

import random
from typing import Any, Sequence

LIST_MODES = ("own_samples", "alternatives")
LIST_DESIGNS = ("cells", "pooled")  # cells: the design of issue 23 (default); pooled: the earlier matched pools
DEFAULT_P_CORRECT = 0.5

# Sources of listed / paired answers, relative to the judge: another model's answer, or a dataset source.
ALT_SOURCES = ("other_model", "distractor", "perturbation", "reference", "correct")
DEFAULT_ALT_SOURCES = ("other_model", "distractor", "perturbation")
PAIR_SOURCES = ("other_model", "reference", "distractor", "perturbation")
DEFAULT_PAIR_SOURCES = ("other_model",)
KIND_ORDER = ("other_model", "reference", "distractor", "perturbation")  # the order a pair_type names its kinds
PAIR_NAME = {"other_model": "other"}  # pair_type spells another model's answer "other"


# ------------------------------------------------------------------- whose answer, as the judge sees it


def kinds(c: Any, judge: str) -> list[str]:
    """The sources of ``c`` as seen by ``judge``, best first: another model's answer (``other_model``),
    then the dataset sources. Empty for an answer only the judge gave."""
    found = set()
    for source, author in zip(c.sources, c.authors):
        if author == judge:
            continue
        found.add("other_model" if source in ("own_greedy", "own_sample") else source)
    return [k for k in KIND_ORDER if k in found]


def shown_kind(c: Any, judge: str, allowed: Sequence[str]) -> str | None:
    """The source under which ``c`` may be shown to ``judge`` (None: not at all): never an answer the
    judge wrote itself, else the first of its sources that ``allowed`` holds."""
    if judge in c.authors:
        return None
    return next((k for k in kinds(c, judge) if k in allowed), None)


def seeded(entries: list, key: str) -> list:
    """``entries`` sorted by id (their first element) and shuffled with ``random.Random(key)``."""
    order = sorted(entries, key=lambda e: e[0])
    random.Random(key).shuffle(order)
    return order


def loose(text: str) -> str:
    return " ".join(text.split()).casefold()
