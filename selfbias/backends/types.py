"""The backend interface's data: what a backend returns and the rules every backend shares (no torch).

:class:`Score` (a continuation's per-token log-probs), :class:`NextToken` (a next-token
distribution) and :class:`Generation` (a generated answer) are what the three operations of
:class:`selfbias.backends.Backend` return; :func:`join_texts` and :func:`split_join` are the join rule
of a prompt and its continuation (see :mod:`selfbias.scoring`), :func:`row_seed` the per-sample seed
of generation, and :data:`BACKEND_KINDS` the table of model spec prefixes (``openai:NAME@URL``) that
:func:`selfbias.backends.load_backend` and the validation step both read.

This module imports neither torch nor transformers, so a backend talking to a server
(:mod:`selfbias.backends.openai`) runs without them; :mod:`selfbias.scoring` and
:mod:`selfbias.generation` re-export these names where they were first defined.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ScoringError

__all__ = ["BACKEND_KINDS", "BackendKind", "Generation", "NextToken", "Score", "ScoringError", "backend_kind",
           "common_prefix", "join_texts", "row_seed", "split_join"]


@dataclass(frozen=True)
class Score:
    """Log-probability of one continuation under one model, token by token (natural log)."""

    token_ids: tuple[int, ...]
    tokens: tuple[str, ...]
    logprobs: tuple[float, ...]
    is_argmax: tuple[bool, ...]  # was each token the model's most likely next token?
    truncated_tokens: int = 0  # prompt tokens dropped on the left to fit the context window
    join_overlap: int = 0  # prompt tokens re-tokenised into the continuation (see selfbias.scoring)

    @property
    def sum_logprob(self) -> float:
        return float(sum(self.logprobs))

    @property
    def n_tokens(self) -> int:
        return len(self.logprobs)

    @property
    def mean_logprob(self) -> float:
        return self.sum_logprob / self.n_tokens


@dataclass(frozen=True)
class NextToken:
    """The next-token distribution after one prompt: chosen ids' log-probs and the top-k."""

    selected: dict[int, float]  # token id -> log-prob, for the ids asked for
    top_ids: tuple[int, ...]
    top_logprobs: tuple[float, ...]
    # Probability mass of the returned top-k; 1.0 where the full distribution was read (HF backend).
    # A server returning only a top-k covers less, so a judge's P(Yes) read from it is a bound.
    covered_mass: float = 1.0
    # Ids in ``selected`` whose value is only an upper bound (the server did not return them).
    bounded: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Generation:
    """One generated answer: its text, tokens, raw log-probs and why it ended."""

    text: str  # decoded tokens; a stop string and what follows it are not included
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]  # log p_model(token | prompt, earlier tokens), before temperature
    finish_reason: str  # "eos" | "stop" | "length"

    @property
    def sum_logprob(self) -> float:
        return float(sum(self.logprobs))


# ------------------------------------------------------------------------------ the join rule


def _split_trailing_spaces(prompt: str, continuation: str) -> tuple[str, str]:
    stripped = prompt.rstrip(" \t")
    return stripped, prompt[len(stripped):] + continuation


def join_texts(prompt: str, continuation: str) -> tuple[str, str]:
    """The two texts a continuation's join is read from (see :mod:`selfbias.scoring`'s diagram).

    Parameters
    ----------
    prompt, continuation : str
        The prompt and the answer scored after it.

    Returns
    -------
    (str, str)
        The context text (the prompt without its trailing spaces, which move to the continuation)
        and the whole text (prompt + continuation).

    Raises
    ------
    ScoringError
        An empty continuation.
    """
    if not continuation:
        raise ScoringError(f"empty continuation for prompt {prompt[-60:]!r}: nothing to score")
    context_text, cont_text = _split_trailing_spaces(prompt, continuation)
    return context_text, context_text + cont_text


def common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    """How many leading tokens every sequence of ``seqs`` shares.

    Parameters
    ----------
    seqs : sequence of sequences of int
        At least one token id sequence.

    Returns
    -------
    int
        The length of their longest common prefix.
    """
    first, n, k = seqs[0], min(len(q) for q in seqs), 0
    while k < n and all(q[k] == first[k] for q in seqs):
        k += 1
    return k


def split_join(context: Sequence[int], whole: Sequence[int], continuation: str
               ) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """Split the whole text's ids into context and continuation ids where the two tokenisations differ.

    The tokenizer may merge the prompt's last tokens with the answer's first ones: the longest common
    prefix of the two tokenisations is the context, the rest the continuation, and the prompt tokens
    re-tokenised into the continuation are counted (``join_overlap``). Every backend uses it, so a
    served model's join is read the way the local scorer reads it.

    Parameters
    ----------
    context : sequence of int
        Ids of the context text (:func:`join_texts`), shape ``[n_context]``.
    whole : sequence of int
        Ids of the whole text, shape ``[n_whole]``.
    continuation : str
        The continuation (named in the errors).

    Returns
    -------
    (tuple of int, tuple of int, int)
        Context ids, continuation ids and the join overlap.

    Raises
    ------
    ScoringError
        The continuation adds no token, or there is nothing to condition its first token on.
    """
    k = common_prefix((context, whole))
    if k == len(whole):
        raise ScoringError(f"continuation {continuation!r} adds no token to its prompt")
    if k == 0:
        raise ScoringError("nothing to condition the first token on: the prompt is empty and the model adds no BOS")
    return tuple(whole[:k]), tuple(whole[k:]), len(context) - k


# ------------------------------------------------------------------------------ generation seeds


def row_seed(seed: int, prompt: str, index: int) -> int:
    """The seed of sample ``index`` of ``prompt``: each sample draws from its own stream.

    A sample's stream depends on (seed, prompt, sample index) only, not on which other prompts share
    its batch or its request, so a resumed run regenerates identical answers (local backend) and a
    served model gets the same per-request seed on every call.

    Parameters
    ----------
    seed : int
        The run's generation seed.
    prompt : str
        The rendered prompt.
    index : int
        The sample's index among the prompt's samples.

    Returns
    -------
    int
        A non-negative 63-bit seed (first 8 bytes of SHA-256 of the three, little-endian).
    """
    digest = hashlib.sha256(f"{seed}\x00{index}\x00{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


# ------------------------------------------------------------------------------ spec prefixes


@dataclass(frozen=True)
class BackendKind:
    """A kind of backend named by a model spec prefix (``openai:NAME@URL``).

    Parameters
    ----------
    kind : str
        The backend's name in a run's manifest (``to_manifest()["backend"]``).
    prefix : str
        What a model spec starts with to name this kind (``"openai:"``).
    module : str
        The module holding the backend, imported only when a spec names it.
    factory : str
        The module's callable that takes the spec and options and returns the backend.
    parse : str or None
        The module's callable that checks a spec without connecting (``spec -> anything``,
        raising a :class:`~selfbias.errors.SelfbiasError`); None: no check before loading.
    """

    kind: str
    prefix: str
    module: str
    factory: str
    parse: str | None = None


# The model spec prefixes: a spec starting with one goes to its backend, anything else is loaded with
# Hugging Face (selfbias.backends.hf). Validation (selfbias._validate) and load_backend read this table.
BACKEND_KINDS: dict[str, BackendKind] = {
    "openai": BackendKind(kind="openai", prefix="openai:", module="selfbias.backends.openai",
                          factory="OpenAIBackend.from_spec", parse="parse_spec"),
}


def backend_kind(spec: object) -> BackendKind | None:
    """The backend kind whose prefix a model spec starts with, or None (a Hugging Face model).

    Parameters
    ----------
    spec : object
        A model spec (anything but a string names no kind).

    Returns
    -------
    BackendKind or None
    """
    if not isinstance(spec, str):
        return None
    for entry in BACKEND_KINDS.values():
        if spec.startswith(entry.prefix):
            return entry
    return None
