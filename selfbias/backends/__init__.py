"""Model backends: the operations selfbias needs from a model, behind one interface.

``base``: the :class:`Backend` protocol and :class:`Capabilities`; ``hf``: the Hugging Face backend
(the default, a model loaded in this process); ``openai``: an OpenAI-compatible server (vLLM, ...).
A new backend is one module implementing :class:`Backend` (see ARCHITECTURE.md, "Backends").
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .base import Backend, Capabilities
from .hf import HFBackend, as_backend
from .types import BACKEND_KINDS, BackendKind, backend_kind

__all__ = ["BACKEND_KINDS", "OPENAI_PREFIX", "Backend", "BackendKind", "Capabilities", "HFBackend", "as_backend",
           "backend_kind", "is_server_spec", "keep_responses", "load_backend"]

OPENAI_PREFIX = BACKEND_KINDS["openai"].prefix
_HF_LOADING = ("device", "dtype", "cache_dir", "device_map")  # load_model options a server spec drops


def is_server_spec(spec: str) -> bool:
    """Whether a model spec names a backend of :data:`BACKEND_KINDS` (``openai:NAME@URL``) rather than a
    local Hugging Face model.

    Parameters
    ----------
    spec : str

    Returns
    -------
    bool
    """
    return backend_kind(spec) is not None


def load_backend(spec: str, **options: Any) -> Backend:
    """The backend a model spec names.

    Parameters
    ----------
    spec : str
        ``openai:NAME@http://HOST:PORT/v1`` (an OpenAI-compatible server, see
        :mod:`selfbias.backends.openai`), or anything :func:`selfbias.models.load_model` accepts
        (bundled alias, ``.gguf`` file, local folder, hub id), loaded here with Hugging Face.
    **options
        Passed to the backend's loader: :func:`selfbias.models.load_model` (``device``, ``dtype``,
        ``prompt_format``, ...) or ``OpenAIBackend.from_spec`` (which gets every option but the
        weight-loading ones: ``device``, ``dtype``, ``cache_dir``, ``device_map``).
        ``server_options`` (:class:`selfbias.backends.openai.ServerOptions`: concurrency, timeout,
        retries) goes to served models only; a local model ignores it.

    Returns
    -------
    Backend
    """
    entry = backend_kind(spec)
    if entry is not None:
        try:
            module = importlib.import_module(entry.module)
        except ModuleNotFoundError as exc:
            if exc.name != entry.module:
                raise
            from ..errors import ModelError

            raise ModelError(f"model {spec!r}: the {entry.kind} backend ({entry.module}) "
                             "is not installed in this version of selfbias") from None
        for option in _HF_LOADING:  # how to load weights here means nothing to a served model
            options.pop(option, None)
        factory: Any = module
        for attr in entry.factory.split("."):
            factory = getattr(factory, attr)
        return factory(spec, **options)
    import pickle
    import warnings

    from ..models import ModelError, load_model

    options.pop("server_options", None)  # how to reach a server means nothing to weights loaded here
    try:
        with warnings.catch_warnings():  # torch's note on the pickle protocol of a file it then refuses
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")
            return HFBackend(load_model(spec, **options))
    except pickle.UnpicklingError:  # torch.load(weights_only=True) refused a pickle: never run it
        raise ModelError(f"model {spec!r}: its weights file is a pickle that torch refuses to load safely "
                         "(it may run code); use a safetensors copy of the model") from None


def keep_responses(backends: Iterable[Any], run_path: str | os.PathLike) -> None:
    """Make backends that ask a server keep every response in the run folder.

    A backend with the optional method ``use_cache_dir`` (the OpenAI-compatible one) stores each
    response under ``RUN/cache/<backend kind>``, so a killed or interrupted run resumes without asking
    the server again; other backends are left alone.

    Parameters
    ----------
    backends : iterable of Backend
        The run's backends.
    run_path : str or os.PathLike
        The run folder.
    """
    for backend in backends:
        if hasattr(backend, "use_cache_dir"):
            kind = backend.to_manifest().get("backend") or "server"
            backend.use_cache_dir(Path(run_path) / "cache" / str(kind))
