"""The Hugging Face backend: a model loaded in this process (:class:`selfbias.models.LoadedModel`).

A thin layer over :func:`selfbias.scoring.score_requests`, :func:`selfbias.generation.generate` and
:func:`selfbias.scoring.next_token_logprobs`: its results are exactly theirs. The next-token read
sees the whole distribution, so ``NextToken.covered_mass`` is 1.0 and nothing is bounded.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .base import Capabilities

if TYPE_CHECKING:  # selfbias.models imports torch: loaded only when a LoadedModel is wrapped
    from ..models import LoadedModel

__all__ = ["HFBackend", "as_backend"]

KIND = "hf"


class HFBackend:
    """A :class:`~selfbias.models.LoadedModel` behind the :class:`~selfbias.backends.base.Backend` protocol.

    Parameters
    ----------
    lm : LoadedModel
        The loaded model and tokenizer (:func:`selfbias.models.load_model` or
        :func:`selfbias.models.wrap_model`).
    memory_mb : float or None
        Memory budget of one scoring / next-token batch (None: the scoring functions' default).
    generate_memory_mb : float or None
        Memory budget of one generation batch (None: :func:`selfbias.generation.generate`'s default).
    batch_size : int or None
        Cap on contexts per batch (None: adapt batches to the memory budget).

    Attributes
    ----------
    lm : LoadedModel
        The wrapped model: the only way to reach the transformers model (stages never do).
    """

    def __init__(self, lm: LoadedModel, *, memory_mb: float | None = None, generate_memory_mb: float | None = None,
                 batch_size: int | None = None) -> None:
        if not _is_loaded_model(lm):
            raise TypeError(f"HFBackend wraps a LoadedModel, got {type(lm).__name__}")
        self.lm = lm
        self.memory_mb = memory_mb
        self.generate_memory_mb = generate_memory_mb
        self.batch_size = batch_size
        self.capabilities = Capabilities(score=True, generate=True, next_token="exact", max_top_k=None)

    # The protocol's model facts are the LoadedModel's (properties: a re-prompted copy stays in step).
    @property
    def name(self) -> str:
        return self.lm.name

    @property
    def prompt_format(self) -> str:
        return self.lm.prompt_format

    @property
    def chat_template_kwargs(self) -> dict:
        return self.lm.chat_template_kwargs

    @property
    def tokenizer(self) -> Any:
        return self.lm.tokenizer

    @property
    def has_chat_template(self) -> bool:
        return self.lm.has_chat_template

    @property
    def context_length(self) -> int:
        return self.lm.context_length

    @property
    def adds_bos(self) -> bool:
        return self.lm.adds_bos

    def to_manifest(self) -> dict[str, Any]:
        """The model's identity and loading facts plus ``backend`` ("hf"), ``capabilities`` and the
        device map (where the weights were spread over devices).

        Returns
        -------
        dict
            JSON-serialisable; recorded as ``models_loaded.<model>`` in the run manifest.
        """
        out = self.lm.to_manifest()
        out["device_map"] = device_map(self.lm.model)
        out["backend"] = KIND
        out["capabilities"] = self.capabilities.to_dict()
        return out

    def _budget(self, memory_mb: float | None) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if memory_mb is not None:
            kw["memory_mb"] = memory_mb
        if self.batch_size is not None:
            kw["batch_size"] = self.batch_size
        return kw

    def score_requests(self, requests: Sequence[tuple[str, Sequence[str]]], *, truncate: bool = False,
                       **kwargs: Any) -> list[list[Any]]:
        """Per-token log-probs of continuations; see :func:`selfbias.scoring.score_requests`.

        Parameters
        ----------
        requests : sequence of (prompt, [continuation, ...])
            Each prompt with the continuations to score after it.
        truncate : bool
            Drop prompt tokens on the left when a request exceeds the context window (recorded in
            ``Score.truncated_tokens``); otherwise that raises ``ContextTooLong``.
        **kwargs
            HF-only options of :func:`selfbias.scoring.score_requests` (``memory_mb``, ``batch_size``,
            ``prefix_trie``, ``padding_side``), overriding the backend's own.

        Returns
        -------
        list of list of Score
            ``scores[i][j]`` for continuation j of request i.
        """
        from ..scoring import score_requests

        return score_requests(self.lm, requests, truncate=truncate, **{**self._budget(self.memory_mb), **kwargs})

    def generate(self, prompts: Sequence[str], *, n: int = 1, temperature: float = 0.0, top_p: float = 1.0,
                 max_new_tokens: int = 48, stop: Sequence[str] = (), seed: int = 0, **kwargs: Any) -> list[list[Any]]:
        """Answers with the raw log-probs of their tokens; see :func:`selfbias.generation.generate`.

        Parameters
        ----------
        prompts : sequence of str
            Rendered prompts.
        n, temperature, top_p, max_new_tokens, stop, seed
            As in :func:`selfbias.generation.generate` (temperature 0 is greedy).
        **kwargs
            HF-only options (``memory_mb``, ``batch_size``, ``batch_seconds``), overriding the backend's own.

        Returns
        -------
        list of list of Generation
            ``out[i][j]`` for sample j of prompt i.
        """
        from ..generation import generate

        return generate(self.lm, prompts, n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                        stop=stop, seed=seed, **{**self._budget(self.generate_memory_mb), **kwargs})

    def next_token_logprobs(self, requests: Sequence[tuple[str, Sequence[str]]], *, select: Sequence[int] = (),
                            top_k: int = 10, **kwargs: Any) -> list[list[Any]]:
        """The exact next-token distribution after each prompt; see :func:`selfbias.scoring.next_token_logprobs`.

        Parameters
        ----------
        requests : sequence of (prefix, [suffix, ...])
            Each prefix with the suffixes whose next token is read after it.
        select : sequence of int
            Token ids whose log-probs are returned (exact: the whole distribution is read).
        top_k : int
            How many of the most likely next tokens to return.
        **kwargs
            HF-only options (``memory_mb``, ``batch_size``, ``prefix_trie``).

        Returns
        -------
        list of list of NextToken
            ``out[i][j]`` for suffix j of request i; ``covered_mass`` 1.0, nothing ``bounded``.
        """
        from ..scoring import next_token_logprobs

        return next_token_logprobs(self.lm, requests, select=select, top_k=top_k,
                                   **{**self._budget(self.memory_mb), **kwargs})

    def replace(self, *, lm: LoadedModel | None = None, **options: Any) -> HFBackend:
        """A copy with another LoadedModel (e.g. re-prompted) and/or other batch options.

        Parameters
        ----------
        lm : LoadedModel or None
            The model of the copy (None: this backend's).
        **options
            ``memory_mb``, ``generate_memory_mb``, ``batch_size``.

        Returns
        -------
        HFBackend
        """
        kept = {"memory_mb": self.memory_mb, "generate_memory_mb": self.generate_memory_mb,
                "batch_size": self.batch_size}
        unknown = set(options) - set(kept)
        if unknown:
            raise TypeError(f"HFBackend.replace: unknown option(s) {sorted(unknown)}")
        return HFBackend(lm if lm is not None else self.lm, **{**kept, **options})

    def close(self) -> None:
        """Nothing to release: the model lives as long as the LoadedModel does."""

    def __repr__(self) -> str:
        return f"HFBackend({self.lm!r})"


def device_map(model: Any) -> dict[str, str]:
    """Where a model's weights are: ``{"": device}`` when on one device, else module -> device.

    Parameters
    ----------
    model : torch.nn.Module
        A loaded model (possibly spread over devices by ``device_map="auto"``).

    Returns
    -------
    dict
        Module name prefix (up to the layer index, e.g. ``model.layers.12``) -> device, as
        accelerate writes device maps; ``{"": "cpu"}`` for a model on one device.
    """
    recorded = getattr(model, "hf_device_map", None)  # older transformers keep the map they used
    if recorded:
        return {str(k): str(v) for k, v in recorded.items()}
    out: dict[str, str] = {}
    for name, param in model.named_parameters():
        parts = name.split(".")
        cut = next((i + 1 for i, p in enumerate(parts) if p.isdigit()), len(parts) - 1)
        out.setdefault(".".join(parts[:cut]), str(param.device))
    return {"": next(iter(out.values()))} if len(set(out.values())) == 1 else out


def as_backend(model: Any, *, batch_size: int | None = None) -> Any:
    """A Backend for ``model``: a :class:`LoadedModel` is wrapped in :class:`HFBackend`; an object that
    already implements the protocol is returned as it is.

    Parameters
    ----------
    model : LoadedModel or Backend
    batch_size : int or None
        For the HF backend: cap on contexts per batch (None keeps the backend's own). Other backends
        bound their own concurrency and ignore it.

    Returns
    -------
    Backend

    Raises
    ------
    TypeError
        If ``model`` is neither.
    """
    from .base import Backend

    if _is_loaded_model(model):
        return HFBackend(model, batch_size=batch_size)
    if isinstance(model, HFBackend):
        return model if batch_size is None else model.replace(batch_size=batch_size)
    if isinstance(model, Backend):
        return model
    raise TypeError(f"expected a LoadedModel or a selfbias Backend, got {type(model).__name__}")


def _is_loaded_model(obj: Any) -> bool:
    """Whether ``obj`` is a :class:`~selfbias.models.LoadedModel`, without importing torch: one can only
    exist once :mod:`selfbias.models` has been imported."""
    models = sys.modules.get("selfbias.models")
    return models is not None and isinstance(obj, models.LoadedModel)
