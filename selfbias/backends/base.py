"""The backend interface: the three model operations every stage of selfbias needs.

A backend answers, for one model:

* ``score_requests``: per-token log-probabilities of given continuations after given prompts
  (:class:`selfbias.scoring.Score`, with the join rules of :mod:`selfbias.scoring`);
* ``generate``: sampled or greedy answers with the raw log-probabilities of the drawn tokens
  (:class:`selfbias.generation.Generation`);
* ``next_token_logprobs``: the next-token distribution after a prompt, as the log-probs of chosen
  ids plus the top-k (:class:`selfbias.scoring.NextToken`); a server that returns only a top-k
  records the mass it covers (``NextToken.covered_mass``) and which chosen ids are only bounded.

``probe`` and ``judge`` call nothing else of a model. The Hugging Face backend
(:mod:`selfbias.backends.hf`) is the default; a new backend is one module implementing
:class:`Backend` (see ARCHITECTURE.md, "Backends").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .types import Generation, NextToken, Score

__all__ = ["NEXT_TOKEN_KINDS", "Backend", "Capabilities"]

NEXT_TOKEN_KINDS = ("exact", "top_k", "none")


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, recorded in the run manifest.

    Parameters
    ----------
    score : bool
        Whether ``score_requests`` works (per-token log-probs of given continuations).
    generate : bool
        Whether ``generate`` works (with the drawn tokens' log-probs).
    next_token : str
        "exact" (the whole next-token distribution is read, so chosen ids' log-probs are exact),
        "top_k" (only a top-k is returned; chosen ids outside it are upper bounds) or "none".
    max_top_k : int or None
        The largest top-k the backend returns (None: no limit).
    detail : dict
        Backend-specific facts (e.g. which scoring route a server offers), JSON-serialisable.
    """

    score: bool = True
    generate: bool = True
    next_token: str = "exact"
    max_top_k: int | None = None
    detail: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.next_token not in NEXT_TOKEN_KINDS:
            raise ValueError(f"Capabilities.next_token must be one of {NEXT_TOKEN_KINDS}, not {self.next_token!r}")

    def to_dict(self) -> dict[str, Any]:
        """The capabilities as a JSON-serialisable dict (for the run manifest)."""
        return {"score": self.score, "generate": self.generate, "next_token": self.next_token,
                "max_top_k": self.max_top_k, "detail": dict(self.detail)}


@runtime_checkable
class Backend(Protocol):
    """One model behind the three operations selfbias needs (see module doc).

    Attributes
    ----------
    name : str
        The model's name in the run (its key in ``loaded=``, the generations' ``model`` column).
    prompt_format : str
        "chat" or "plain": how answer and judge prompts are rendered for this model.
    chat_template_kwargs : dict
        Extra keyword arguments of the tokenizer's ``apply_chat_template``.
    tokenizer : Any or None
        A Hugging Face tokenizer, used to render chat templates and read option token ids; None
        where the backend has none (chat prompts and the judge then refuse with a clear error).
    capabilities : Capabilities
        What the backend can do.
    """

    name: str
    prompt_format: str
    chat_template_kwargs: dict
    tokenizer: Any | None
    capabilities: Capabilities

    def to_manifest(self) -> dict[str, Any]:
        """What the run manifest records about this model (``models_loaded.<model>``).

        Returns
        -------
        dict
            JSON-serialisable: at least ``name``, ``backend`` (the kind, e.g. "hf", "openai") and
            ``capabilities`` (:meth:`Capabilities.to_dict`); where meaningful ``source``, ``sha256``,
            ``revision``, ``dtype``, ``prompt_format``, ``chat_template_kwargs``.
        """
        ...

    def score_requests(self, requests: Sequence[tuple[str, Sequence[str]]], *, truncate: bool = False
                       ) -> list[list[Score]]:
        """Per-token log-probs of continuations (the join rules of :mod:`selfbias.scoring`).

        Parameters
        ----------
        requests : sequence of (prompt, [continuation, ...])
        truncate : bool
            Drop prompt tokens on the left to fit the context (recorded in ``Score.truncated_tokens``).

        Returns
        -------
        list of list of Score
            ``scores[i][j]`` for continuation j of request i.
        """
        ...

    def generate(self, prompts: Sequence[str], *, n: int = 1, temperature: float = 0.0, top_p: float = 1.0,
                 max_new_tokens: int = 48, stop: Sequence[str] = (), seed: int = 0) -> list[list[Generation]]:
        """Answers with the raw (untempered) log-probs of their tokens.

        Parameters
        ----------
        prompts : sequence of str
        n, temperature, top_p, max_new_tokens, stop, seed
            As in :func:`selfbias.generation.generate` (temperature 0: greedy; samples seeded).

        Returns
        -------
        list of list of Generation
            ``out[i][j]`` for sample j of prompt i.
        """
        ...

    def next_token_logprobs(self, requests: Sequence[tuple[str, Sequence[str]]], *, select: Sequence[int] = (),
                            top_k: int = 10) -> list[list[NextToken]]:
        """The next-token distribution after ``prefix + suffix``: chosen ids' log-probs and the top-k.

        Parameters
        ----------
        requests : sequence of (prefix, [suffix, ...])
            A suffix may be "" (the prefix alone is the prompt).
        select : sequence of int
            Token ids whose log-probs go into ``NextToken.selected`` (every one of them; an id the
            backend could not read exactly is listed in ``NextToken.bounded``).
        top_k : int
            How many most likely tokens to return.

        Returns
        -------
        list of list of NextToken
            ``out[i][j]`` for suffix j of request i, with ``covered_mass`` set.
        """
        ...

    def close(self) -> None:
        """Release what the backend holds (connections, worker pools); the HF backend holds nothing."""
        ...
