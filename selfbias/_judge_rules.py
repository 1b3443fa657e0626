"""What the judge is shown, as names: the list modes and designs, and the sources of listed and paired answers.

One home for these names, read by :mod:`selfbias.judge` (which re-exports them), the validation step
(:mod:`selfbias._validate`) and the frames (:mod:`selfbias.frames`), so none of them defines its own copy.
Sources are relative to the judge: ``other_model`` is an answer another model wrote, the rest are the
dataset's (see ARCHITECTURE.md, "Lists" and "Pairs").
"""

from __future__ import annotations

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
