"""selfbias: measure self-preference bias in language models.

A model tends to trust answers it generated itself, because high-likelihood text *feels* correct
when the same model judges it. selfbias records how likely each candidate answer is under each
model (probe), asks models to judge answers with and without outside alternatives (judge), and
estimates how likelihood drives misplaced confidence (stats), with paper-ready figures (plots).

Heavy modules (torch, transformers, matplotlib) load on first use, so `import selfbias` is fast.
`selfbias.probe` and `selfbias.judge` are the functions (imported here, eagerly, so that they and not
their same-named modules are the package attributes); their modules' other names are importable with
`from selfbias.probe import ...`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__  # one place: selfbias/_version.py (read by setuptools)

# public name -> module that defines it
_EXPORTS = {
    "load_model": "models", "wrap_model": "models", "LoadedModel": "models", "ModelError": "models",
    "BUNDLED_MODELS": "models", "DEFAULT_MODEL": "models",
    "score": "scoring", "score_requests": "scoring", "score_token_ids": "scoring",
    "next_token_logprobs": "scoring", "Score": "scoring", "ScoringError": "scoring",
    "generate": "generation", "Generation": "generation",
    "load_task": "tasks", "list_tasks": "tasks", "Item": "tasks", "Task": "tasks", "TaskError": "tasks",
    "Run": "runs", "RunStore": "runs", "RunError": "runs", "load_run": "runs",
    "RunAnalysis": "analysis", "analyze_run": "analysis",
    "SelfbiasError": "errors", "InputError": "errors",
    "TrainResult": "train",
    "Backend": "backends", "HFBackend": "backends", "load_backend": "backends",
    "write_report": "report", "read_eval_log": "eval_logs",
    "JudgeMode": "judge_modes", "register_judge_mode": "judge_modes",
}
_SUBMODULES = {"backends", "errors", "models", "scoring", "generation", "tasks", "prompts", "store", "frames",
               "runs", "analysis", "stats", "plots", "cli", "report", "eval_logs", "judge_modes"}

from .judge import judge  # noqa: E402  (light modules: torch loads inside the functions)
from .probe import probe  # noqa: E402
from .train import train  # noqa: E402  (light: torch and transformers load inside the function)

__all__ = sorted([*_EXPORTS, "probe", "judge", "train", "__version__"])


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'selfbias' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | _SUBMODULES)


if TYPE_CHECKING:  # for editors and type checkers
    from .backends import Backend, HFBackend, load_backend
    from .generation import Generation, generate
    from .models import BUNDLED_MODELS, DEFAULT_MODEL, LoadedModel, ModelError, load_model, wrap_model
    from .analysis import RunAnalysis, analyze_run
    from .runs import Run, RunError, RunStore, load_run
    from .scoring import Score, ScoringError, next_token_logprobs, score, score_requests, score_token_ids
    from .errors import InputError, SelfbiasError
    from .tasks import Item, Task, TaskError, list_tasks, load_task
    from .train import TrainResult
    from .report import write_report
    from .eval_logs import read_eval_log
    from .judge_modes import JudgeMode, register_judge_mode
