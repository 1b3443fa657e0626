"""The backend interface: the three operations selfbias needs from a language model.

(Local mirror of the `backend` helper's ``selfbias/backends/base.py``, written from the agreed
interface so that the server backend can be built and tested before the merge; the integrator keeps
theirs.)

Every stage (probe, judge) talks to a model only through :class:`Backend`: score continuations
(per-token log-probs), generate (with the drawn tokens' raw log-probs) and read a next-token
distribution (chosen ids plus the top-k).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..generation import Generation
from ..scoring import NextToken, Score

__all__ = ["Backend", "Capabilities"]


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do: ``next_token`` is "exact" (whole distribution), "top_k" or "none"."""

    score: bool = True
    generate: bool = True
    next_token: str = "exact"
    max_top_k: int | None = None
    detail: dict = field(default_factory=dict, compare=False)


@runtime_checkable
class Backend(Protocol):
    name: str
    prompt_format: str
    chat_template_kwargs: dict
    tokenizer: Any | None
    capabilities: Capabilities

    def to_manifest(self) -> dict: ...

    def score_requests(self, requests: Sequence[tuple[str, Sequence[str]]], *, truncate: bool = False
                       ) -> list[list[Score]]: ...

    def generate(self, prompts: Sequence[str], *, n: int = 1, temperature: float = 0.0, top_p: float = 1.0,
                 max_new_tokens: int = 48, stop: Sequence[str] = (), seed: int = 0
                 ) -> list[list[Generation]]: ...

    def next_token_logprobs(self, requests: Sequence[tuple[str, Sequence[str]]], *, select: Sequence[int] = (),
                            top_k: int = 10) -> list[list[NextToken]]: ...

    def close(self) -> None: ...
