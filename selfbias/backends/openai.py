# Over 600 lines: one HTTP backend: connection, capability detection, alignment check, scoring, generation, next-token reads, cache.
"""An OpenAI-compatible server backend (vLLM, SGLang, TGI, ...): ``-m openai:NAME@http://HOST:PORT/v1``.

What the server must offer, detected once when the backend connects (:meth:`OpenAIBackend.connect`)
and recorded in :meth:`OpenAIBackend.to_manifest` (so in the run):

* scoring: ``/v1/completions`` with vLLM's ``prompt_logprobs`` (preferred: it gives each prompt token's
  rank, so ``is_argmax`` is exact) or ``echo`` + ``logprobs``. Either returns, for a prompt of token ids
  ``[t0 t1 ... tn]``, ``[null, log p(t1|t0), ..., log p(tn|t<n)]``; a server that offers neither can
  still generate and judge, but cannot score (no likelihood statistics, no ``scores`` table).
* next token: ``logprobs=K`` on a one-token completion at temperature 0 gives the top-K of the next
  token; ``NextToken.covered_mass`` records the mass they cover. A selected id (the judge's Yes/No
  spellings) missing from the top-K is read exactly by scoring ``prompt + [id]`` when the server scores,
  else it is only bounded above (listed in ``NextToken.bounded``).
* tokens: the server's tokenization is what is scored. With ``/tokenize`` the prompt and the
  continuation are joined exactly as the local scorer does (:mod:`selfbias.scoring`: trailing spaces
  move to the continuation; a token straddling the join is cut at the longest common prefix) and the
  token ids are sent; without it a local tokenizer does the same.

Alignment check at connect: served log-probs are known to come wrong (llama-cpp-python's echo reads
each token at its own position; batching and padding bugs elsewhere). A text repeated twice must have
a null first entry, a near-certain second copy (induction), and its second token's log-prob must equal
the server's own next-token read after the first token. A server failing this is refused.

Every response is cached on disk (``cache_dir``, under the run folder when probe/judge give one),
keyed by the hash of the request, so a killed run or a run whose server went away resumes without
asking again. Requests run concurrently (``concurrency`` threads), with a timeout and retries with
exponential backoff on 429, 5xx and connection errors.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SelfbiasError, ServerError, ServerMisaligned, ServerUnavailable  # re-exported (defined in errors)
from ..errors import ContextTooLong, ScoringError
from .types import Generation, NextToken, Score, join_texts, row_seed, split_join
from .base import Capabilities

__all__ = ["OpenAIBackend", "ServerError", "ServerUnavailable", "ServerMisaligned", "ServerOptions", "API_KEY_ENVS",
           "identity_mismatch",
           "parse_spec", "check_url"]

API_KEY_ENVS = ("SELFBIAS_API_KEY", "OPENAI_API_KEY")  # first one set wins
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# The alignment probe: ordinary words in an order no text has, so the first copy is improbable and
# the second copy is predictable only by copying (what every causal LM above toy size learns).
ALIGNMENT_TEXT = " violet engine quietly borrowed seven maps from a patient lighthouse"
ALIGNMENT_REPEATS = 3
# Mean log-prob per token of the second half of the last copy at least this (p ~ 0.22), and this many nats
# above the first copy: SmolLM2-135M scores about -0.5 against -9.4 (measured on vLLM 0.32).
ALIGNMENT_COPY_MIN = -1.5
ALIGNMENT_COPY_GAIN = 3.0
ALIGNMENT_POSITION_TOL = 0.05  # nats: the same server reading one position twice
# Identity: the same model answers a fixed probe with the same log-probs up to the server's float32
# arithmetic (two vLLM runs: 2.2e-05 at most, ARCHITECTURE.md); another model, or the same one quantised,
# moves them by far more (SmolLM2-135M float32 against a random 2-layer model: nats).
IDENTITY_TOL = 1e-3
IDENTITY_FILE = "identity-{}.json"  # RUN/cache/openai/identity-<served name hash>.json (beside, not among, the responses)
SEED_PROBE_TOKENS = 8  # tokens drawn at temperature 1.5 to tell whether the server honours per-request seeds


DEFAULT_CONCURRENCY = 8
DEFAULT_TIMEOUT = 60.0
DEFAULT_RETRIES = 5


@dataclass(frozen=True)
class ServerOptions:
    """How requests reach a served model: the transport settings of :class:`OpenAIBackend`.

    Passed down explicitly (``probe(server_options=)``, ``judge(server_options=)``, the CLI's
    ``--concurrency`` / ``--timeout``) to every served model's backend; local models ignore them. A
    field left None takes the backend's default: ``$SELFBIAS_CONCURRENCY`` / ``$SELFBIAS_TIMEOUT``
    when the user set them, else 8 requests in flight, 60 s per request, 5 retries. They change how
    fast a run goes, not what it computes, so they are recorded per model (``transport`` in the
    manifest's ``models_loaded``) but are not part of the run request: a run resumes under others.

    Parameters
    ----------
    concurrency : int or None
        Requests in flight at once (at least 1).
    timeout : float or None
        Seconds one request may take before it is retried (positive).
    retries : int or None
        Further tries after a 408/429/5xx or a connection error (0 or more), with backoff
        0.5, 1, 2, 4, 8 s.
    """

    concurrency: int | None = None
    timeout: float | None = None
    retries: int | None = None

    def __post_init__(self) -> None:
        from ..errors import InputError

        checks = (("concurrency", int, 1, "--concurrency"), ("timeout", (int, float), 0, "--timeout"),
                  ("retries", int, 0, "retries"))
        for field, kind, low, flag in checks:
            value = getattr(self, field)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, kind) or value != value or \
                    (value <= low if field == "timeout" else value < low):
                need = {"concurrency": "an integer of at least 1", "timeout": "a positive number of seconds",
                        "retries": "an integer of 0 or more"}[field]
                raise InputError(f"{field} ({flag}) must be {need}, got {value!r}")

    @classmethod
    def coerce(cls, value: ServerOptions | dict | None) -> ServerOptions:
        """``value`` as ServerOptions (a mapping of its fields, or None for the defaults); an unknown
        field is an ``InputError`` naming it."""
        from ..errors import InputError

        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            raise InputError(f"server_options must be a ServerOptions or a dict, got {type(value).__name__}")
        unknown = sorted(set(value) - {"concurrency", "timeout", "retries"})
        if unknown:
            raise InputError(f"server_options: unknown setting {unknown[0]!r}; use concurrency, timeout, retries")
        return cls(**value)

    def backend_kwargs(self) -> dict[str, Any]:
        """The settings that are set, as :class:`OpenAIBackend` keyword arguments."""
        return {k: v for k, v in (("concurrency", self.concurrency), ("timeout", self.timeout),
                                  ("retries", self.retries)) if v is not None}


def _regroup(reads: list, requests) -> list[list]:
    """Flat per-prompt reads back into one list per ``(prefix, suffixes)`` request, in order."""
    out, i = [], 0
    for _, suffixes in requests:
        out.append(reads[i: i + len(suffixes)])
        i += len(suffixes)
    return out


def parse_spec(spec: str, base_url: str | None = None) -> tuple[str, str]:
    """``openai:NAME@URL`` (or ``openai:NAME`` with ``base_url``) -> (NAME, URL without trailing /)."""
    if not spec.startswith("openai:"):
        raise ServerError(f"model {_redact(spec)!r}: a server model is written openai:NAME@http://HOST:PORT/v1")
    rest = spec[len("openai:"):]
    name, _, url = rest.partition("@")
    url = url or base_url or os.environ.get("SELFBIAS_BASE_URL") or ""
    if not name or not url:
        raise ServerError(f"model {_redact(spec)!r}: give the server as openai:NAME@http://HOST:PORT/v1 "
                          "or --base-url URL")
    return name, check_url(url, f"model {_redact(spec)!r}")


def check_url(url: str, where: str = "server") -> str:
    """A server URL as selfbias uses it (no trailing /), or a one-line :class:`ServerError` naming
    ``where``: http(s) only, a host, a numeric port, balanced IPv6 brackets, and no user name or
    password (a credential in a URL would be written into logs, errors and the run; the key belongs
    in ``$SELFBIAS_API_KEY``). A refused credential is never echoed."""
    from urllib.parse import urlsplit

    if not isinstance(url, str) or not url.strip():
        raise ServerError(f"{where}: the server URL is empty")
    text = url.strip()
    try:
        parts = urlsplit(text)
        has_credentials = parts.username is not None or parts.password is not None
    except ValueError:
        has_credentials = "@" in text.split("//", 1)[-1].split("/", 1)[0]
        parts = None
    if has_credentials:
        raise ServerError(f"{where}: the server URL holds a user name or password; give the URL without "
                          "them and the key in $SELFBIAS_API_KEY (or $OPENAI_API_KEY)")
    shown = _printable(text)
    if not text.startswith(("http://", "https://")):
        raise ServerError(f"{where}: the server URL {shown} must start with http:// or https://")
    if parts is None:
        raise ServerError(f"{where}: the server URL {shown} is not a valid URL (unbalanced [ ] around an IPv6 address?)")
    try:
        parts.port
    except ValueError:
        raise ServerError(f"{where}: the server URL {shown} has a port that is not a number from 0 to 65535") from None
    if not parts.hostname:
        raise ServerError(f"{where}: the server URL {shown} names no host")
    if any(c.isspace() or not c.isprintable() for c in text):
        raise ServerError(f"{where}: the server URL {shown} holds spaces or control characters")
    return text.rstrip("/")


def _printable(text: str, limit: int = 120) -> str:
    """``repr`` of a value from the input with control characters escaped, cut to ``limit``."""
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in repr(text))
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _redact(spec: str) -> str:
    """A model spec with any user name or password in its URL replaced by ``***``."""
    if not isinstance(spec, str) or "@" not in spec:
        return spec
    head, _, url = spec.partition("@")
    if "@" in url:  # openai:NAME@http://user:pass@host/...
        scheme, sep, rest = url.partition("//")
        url = scheme + sep + "***@" + rest.rsplit("@", 1)[-1] if sep else "***@" + url.rsplit("@", 1)[-1]
    return f"{head}@{url}"


def _request_key(path: str, body: dict) -> str:
    """Cache key of a request: its path and body, not the host (a restarted server on another port
    serving the same model reuses the answers)."""
    return hashlib.sha256(json.dumps([path, body], sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class _Encoded:
    context: tuple[int, ...]
    continuation: tuple[int, ...]
    join_overlap: int


class OpenAIBackend:
    """A model behind an OpenAI-compatible ``/v1/completions`` endpoint (see the module doc).

    Parameters
    ----------
    base_url : str
        The API root, e.g. ``http://127.0.0.1:8000/v1``.
    model : str
        The served model name (vLLM's ``--served-model-name``); also the model's name in the run.
    api_key : str, optional
        Sent as ``Authorization: Bearer``; default ``$SELFBIAS_API_KEY`` or ``$OPENAI_API_KEY``.
    tokenizer : str or tokenizer, optional
        A local Hugging Face tokenizer (or its folder / hub id) for chat templates and the judge's option
        ids; default the server's model folder when it exists on this machine (vLLM reports it as ``root``).
    concurrency : int, optional
        Requests in flight at once (default ``$SELFBIAS_CONCURRENCY``, else 8; ``--concurrency``).
    timeout : float, optional
        Seconds per request (default ``$SELFBIAS_TIMEOUT``, else 60; ``--timeout``).
    retries : int
        Further tries after a 429/5xx/connection error, with backoff 0.5, 1, 2, ... seconds (at most 8).
        (These three are :class:`ServerOptions`; ``load_backend(spec, server_options=...)`` passes them.)
    cache_dir : path, optional
        Where every response is kept (see :meth:`use_cache_dir`); None keeps nothing.
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, tokenizer: Any = None,
                 concurrency: int | None = None, timeout: float | None = None, retries: int = DEFAULT_RETRIES, cache_dir: str | os.PathLike | None = None,
                 prompt_format: str = "auto", chat_template_kwargs: dict | None = None, name: str | None = None):
        concurrency = _env_number("SELFBIAS_CONCURRENCY", int, DEFAULT_CONCURRENCY) if concurrency is None else concurrency
        timeout = _env_number("SELFBIAS_TIMEOUT", float, DEFAULT_TIMEOUT) if timeout is None else timeout
        if concurrency < 1:
            raise ServerError(f"concurrency must be at least 1, got {concurrency}")
        if not timeout > 0:
            raise ServerError(f"timeout must be a positive number of seconds, got {timeout}")
        self.base_url = check_url(base_url)
        self.served_model = model
        self.name = name or model
        self.api_key = api_key if api_key is not None else next(
            (os.environ[e] for e in API_KEY_ENVS if os.environ.get(e)), None)
        self.concurrency, self.timeout, self.retries = concurrency, float(timeout), retries
        self.cache_dir: Path | None = None
        self.sent = 0  # requests actually sent through the cache path (not the checks at connect)
        self.cache_hits = 0
        self._count_lock = threading.Lock()  # the counters are bumped from the worker threads
        self._pool = ThreadPoolExecutor(concurrency)
        self._tokenize_memo: dict[str, list[int]] = {}
        self._down: ServerUnavailable | None = None  # set by the first request that exhausts its retries
        self.bos_id: int | None = None
        try:
            self._connect(tokenizer)
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            if isinstance(exc, SelfbiasError):
                raise
            self._pool.shutdown(wait=False)
            raise ServerError(f"server {self.base_url} answered the capability checks in an unexpected shape "
                              f"({type(exc).__name__}: {_printable(str(exc), 80)}); is it OpenAI-compatible?") from None
        has_template = bool(self.tokenizer is not None and getattr(self.tokenizer, "chat_template", None))
        self.has_chat_template = has_template
        from ..models import pick_prompt_format

        self.prompt_format = pick_prompt_format(prompt_format, has_template, model, self.detail.get("root"))
        if self.api == "chat_completions":
            if prompt_format == "plain":
                self._pool.shutdown(wait=False)
                raise ServerError(f"{self.name} is reached through chat completions only: it takes chat prompts, "
                                  "not prompt_format 'plain'")
            self.prompt_format = "chat"
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        if cache_dir is not None:  # after connect: the folder checks the server's identity
            try:
                self.use_cache_dir(cache_dir)
            except BaseException:
                self._pool.shutdown(wait=False)
                raise

    # ------------------------------------------------------------------------ construction

    @classmethod
    def from_spec(cls, spec: str, *, base_url: str | None = None, server_options: ServerOptions | dict | None = None,
                  **options) -> OpenAIBackend:
        """Build from ``openai:NAME@http://HOST:PORT/v1`` (or ``openai:NAME`` and ``base_url``); the
        backend's ``name`` (the model's name in the run) is the spec itself. ``server_options``
        (:class:`ServerOptions`) sets ``concurrency``, ``timeout`` and ``retries``."""
        name, url = parse_spec(spec, base_url)
        options = {**ServerOptions.coerce(server_options).backend_kwargs(), **options}
        # The run knows a model by the spec it was given (as for a local model), so judge and a
        # resumed probe load it again from the run's records.
        options.setdefault("name", spec)
        return cls(url, name, **options)

    def use_cache_dir(self, folder: str | os.PathLike) -> None:
        """Keep every response under ``folder`` (probe/judge pass ``RUN/cache/openai``).

        Responses are keyed by the request, not the host, so a server back on another address serves
        the run's cached answers; that is right only for the same model. The folder therefore keeps
        each served model's identity (:meth:`identity`: served name, tokens and log-probs of a fixed
        probe text) the first time, and a server whose identity differs from the recorded one is
        refused (:class:`ServerError`, naming both addresses) before any cached response is used.
        """
        folder = Path(folder)
        if self.check_cache_dir(folder):
            self.cache_dir = folder
            return
        record = folder / IDENTITY_FILE.format(hashlib.sha256(self.served_model.encode()).hexdigest()[:16])
        folder.mkdir(parents=True, exist_ok=True)
        tmp = record.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({**self.identity(), "location": self.base_url}))
        os.replace(tmp, record)
        self.cache_dir = folder

    def check_cache_dir(self, folder: str | os.PathLike) -> bool:
        """Whether ``folder`` records this served model's identity (True) or none (False); a
        :class:`ServerError` when it records another model under the same served name. Reads only:
        probe calls it before the run is opened, so a refused server changes no file."""
        folder = Path(folder)
        record = folder / IDENTITY_FILE.format(hashlib.sha256(self.served_model.encode()).hexdigest()[:16])
        try:
            known = json.loads(record.read_text())
        except (OSError, ValueError):
            return False  # none yet, or damaged (writes are atomic, so not by a kill): recorded again
        problem = identity_mismatch(known, self.identity()) if isinstance(known, dict) else None
        if problem:
            raise ServerError(
                f"server {self.base_url} serves {self.served_model!r}, but not the model whose responses "
                f"{folder} holds (recorded from {known.get('location')}): {problem}; use a new run "
                "folder, or the server that served this run")
        return isinstance(known, dict)

    def identity(self) -> dict[str, Any]:
        """What identifies the served model apart from its address (recorded in the run as
        ``identity``): the served name, and a fingerprint read at connect from the alignment text
        (:data:`ALIGNMENT_TEXT`): its token ids and, where the server scores, the log-prob of every
        token (else the top next-token log-probs after it). A server moved to another port passes
        :func:`identity_mismatch` against the recorded identity; another model, or the same one
        quantised, does not."""
        return {"served_model": self.served_model, "fingerprint": dict(self._fingerprint)}

    def _load_tokenizer(self, tokenizer):
        if tokenizer is not None and not isinstance(tokenizer, (str, os.PathLike)):
            return tokenizer
        from transformers import AutoTokenizer

        candidates = [str(tokenizer)] if tokenizer is not None else [
            c for c in (self.detail.get("root"), self.served_model) if c]
        for candidate in candidates:
            try:
                return AutoTokenizer.from_pretrained(candidate, local_files_only=True)
            except Exception as exc:  # noqa: BLE001 - any failure means "no local tokenizer"
                if tokenizer is not None:
                    raise ServerError(f"tokenizer {tokenizer!r} could not be loaded: {exc}") from exc
        return None

    # -------------------------------------------------------------------------------- HTTP

    def _http(self, method: str, path: str, body: dict | None = None, root: str | None = None) -> tuple[int, dict]:
        """One request, no retry: (status, JSON body); connection errors raise OSError."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request((root or self.base_url) + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.api_key:
            req.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                payload = json.loads(raw or b"{}")
            except (ValueError, RecursionError):
                payload = {"error": {"message": raw.decode(errors="replace")[:200]}}
            return exc.code, payload if isinstance(payload, dict) else {"error": {"message": str(payload)[:200]}}
        where = f"server {(root or self.base_url) + path}"
        try:
            payload = json.loads(raw or b"{}")
        except (ValueError, RecursionError):
            start = _printable(raw[:60].decode(errors="replace"))
            raise ServerError(f"{where} answered HTTP {status} with something that is not JSON (it starts "
                              f"{start}); is the URL the server's API root, e.g. http://HOST:PORT/v1?") from None
        if not isinstance(payload, dict):
            raise ServerError(f"{where} answered HTTP {status} with a JSON {type(payload).__name__}, not an object; "
                              "is the URL the API root of an OpenAI-compatible server?")
        return status, payload

    def _call(self, method: str, path: str, body: dict | None = None, root: str | None = None) -> dict:
        """A request with retries and backoff on 429/5xx/connection errors."""
        last = ""
        for attempt in range(self.retries + 1):
            if self._down is not None:  # another request found the server gone: do not wait for it again
                raise self._down
            if attempt:
                time.sleep(min(0.5 * 2 ** (attempt - 1), 8.0))
            try:
                status, payload = self._http(method, path, body, root)
            except (OSError, urllib.error.URLError) as exc:  # refused, reset, timed out
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
                continue
            if status == 200:
                return payload
            message = _error_message(payload)
            if status not in RETRY_STATUS:
                hint = _key_hint(self.api_key) if status in (401, 403) else ""
                raise ServerError(f"{self.base_url}{path} refused the request (HTTP {status}): {message}{hint}")
            last = f"HTTP {status}: {message}"
        if self._down is not None:
            raise self._down
        where = f"; the {self._cached_count()} responses received so far are cached in {self.cache_dir}" \
            if self.cache_dir else ""
        self._down = ServerUnavailable(
            f"server {self.base_url} did not answer {path} after {self.retries + 1} tries ({last}){where}: "
            "the run is resumable, run the same command again once the server is back")
        raise self._down

    def _cached_count(self) -> int:
        return sum(1 for _ in self.cache_dir.glob("*/*.json")) if self.cache_dir else 0

    def _post_cached(self, path: str, body: dict) -> dict:
        """POST through the on-disk cache: a response seen before is never asked for again."""
        body = {"model": self.served_model, **body}
        target = None
        if self.cache_dir is not None:
            key = _request_key(path, body)
            target = self.cache_dir / key[:2] / f"{key}.json"
            if target.exists():
                try:
                    payload = json.loads(target.read_text())
                    with self._count_lock:
                        self.cache_hits += 1
                    return payload
                except ValueError:
                    pass  # a damaged entry (should not happen: writes are atomic) is asked again
        payload = self._call("POST", path, body)
        with self._count_lock:
            self.sent += 1
        if target is not None:
            target.parent.mkdir(exist_ok=True)
            tmp = target.with_suffix(f".tmp{os.getpid()}-{id(body)}")
            tmp.write_text(json.dumps(payload))
            os.replace(tmp, target)  # atomic: a kill leaves the whole response or none
        return payload

    def _map(self, fn: Callable, items: Sequence) -> list:
        """``fn`` over ``items`` with ``concurrency`` requests in flight; results in input order.

        Every request is let finish (and cached) before the first error is raised, so a resumed run
        repeats as little as possible.
        """
        self._down = None  # a new batch of work tries the server again
        futures = [self._pool.submit(fn, item) for item in items]
        results, error = [], None
        for f in futures:
            try:
                results.append(f.result())
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after the others finish
                error = error or exc
                results.append(None)
        if error is not None:
            raise error
        return results

    # ------------------------------------------------------------------------------ connect

    def _connect(self, tokenizer) -> None:
        """Detect what the server offers and check its alignment (see the module doc)."""
        models = self._call("GET", "/models")
        served = {m.get("id"): m for m in models.get("data", [])}
        if self.served_model not in served:
            raise ServerError(f"server {self.base_url} does not serve {self.served_model!r} "
                              f"(it serves: {', '.join(map(str, served)) or 'nothing'})")
        info = served[self.served_model]
        self.context_length = int(info.get("max_model_len") or 0) or None
        detail: dict[str, Any] = {"root": info.get("root"), "max_model_len": self.context_length}
        self.detail = detail
        self.api = "completions"
        if not self._offers_completions():
            return self._connect_chat()
        detail["api"] = self.api
        self.tokenizer = self._load_tokenizer(tokenizer)
        self.has_tokenize = self._probe_tokenize()
        detail["tokenize_endpoint"] = self.has_tokenize
        sample = self._server_ids("Question: what is the capital of France?")
        detail["max_top_k"] = self.max_top_k = self._probe_top_k(sample)
        detail["echo_logprobs"] = self._try(dict(prompt=sample, max_tokens=1, echo=True, logprobs=1, temperature=0),
                                            lambda r: len(r["choices"][0]["logprobs"]["token_logprobs"]) >= len(sample))
        detail["prompt_logprobs"] = self._try(dict(prompt=sample, max_tokens=1, prompt_logprobs=0, temperature=0),
                                              lambda r: len(r["choices"][0]["prompt_logprobs"]) == len(sample))
        detail["token_ids_in_logprobs"] = self._try(
            dict(prompt=sample, max_tokens=1, logprobs=1, temperature=0, return_tokens_as_token_ids=True),
            lambda r: str(r["choices"][0]["logprobs"]["tokens"][0]).startswith("token_id:"))
        detail["alignment"] = {}
        methods = [m for m in ("prompt_logprobs", "echo_logprobs") if detail[m]]
        problems = {}
        for method in methods:
            problem, record = self._alignment(method)
            detail["alignment"][method] = record
            if problem:
                problems[method] = problem
        usable = [m for m in methods if m not in problems]
        if methods and not usable:
            raise ServerMisaligned(
                f"server {self.base_url} ({self.served_model}) fails the alignment check: "
                + "; ".join(f"{m}: {p}" for m, p in problems.items())
                + " - its prompt log-probs are not the model's predictions of each token; refusing it")
        detail["alignment_problems"] = problems  # a route that failed while another passed is not used
        self.score_method = usable[0] if usable else None
        detail["score_method"] = self.score_method
        detail["generation_logprobs"] = self._probe_raw_logprobs(sample) if self.score_method else "unknown"
        detail["seeded_sampling"] = self._probe_seed(sample)
        self._fingerprint = self._read_fingerprint()
        self.capabilities = Capabilities(
            score=self.score_method is not None,
            generate=True,
            next_token="top_k" if self.max_top_k else "none",
            max_top_k=self.max_top_k,
            detail=detail,
        )

    def _offers_completions(self) -> bool:
        """Whether ``/v1/completions`` exists (an API-only model offers ``/v1/chat/completions`` alone)."""
        status, payload = self._http("POST", "/completions", {"model": self.served_model, "prompt": "a",
                                                              "max_tokens": 1, "temperature": 0})
        if status in (401, 403):
            self._call("POST", "/completions", {"model": self.served_model, "prompt": "a", "max_tokens": 1})
        return status not in (404, 405, 501)

    def _connect_chat(self) -> None:
        """A chat-completions-only model (:mod:`selfbias.backends._chat`): judge reads only, from the
        top log-probs of the first generated token; no scores, no generation, recorded as such."""
        from ._chat import ChatTokenizer, top_logprobs

        self.api = "chat_completions"
        self.tokenizer, self.has_tokenize, self.score_method, self.bos_id = ChatTokenizer(), False, None, None
        self.context_length = None  # its tokens are the server's: the judge's context check is the server's
        detail = self.detail
        probe = [{"role": "user", "content": ALIGNMENT_TEXT.strip()}]
        self.max_top_k = None
        for k in (20, 10, 5, 1):
            status, payload = self._http_chat({"messages": probe, "max_tokens": 1, "temperature": 0, "logprobs": True,
                                               "top_logprobs": k})
            try:
                top = top_logprobs(payload) if status == 200 else None
            except (KeyError, IndexError, TypeError, ValueError):
                top = None
            if top:
                self.max_top_k = k
                break
        if not self.max_top_k:
            raise ServerError(f"server {self.base_url} has no /v1/completions and its /v1/chat/completions returns "
                              "no top_logprobs: selfbias can neither score nor judge with it")
        detail |= {"api": self.api, "judge_only": True, "max_top_k": self.max_top_k, "echo_logprobs": False,
                   "prompt_logprobs": False, "tokenize_endpoint": False, "score_method": None,
                   "generation_logprobs": "unknown", "seeded_sampling": "not used (no generation)",
                   "options_matched_by": "the exact text of the server's top tokens"}
        self._fingerprint = {"text": ALIGNMENT_TEXT, "token_ids": None, "kind": "top_logprobs",
                             "top": {t: round(v, 6) for t, v in top[:5]}}
        self.capabilities = Capabilities(score=False, generate=False, next_token="top_k", max_top_k=self.max_top_k,
                                         detail=detail)
        import warnings

        warnings.warn(f"{self.name} is reached through chat completions only: it judges from its top-{self.max_top_k} "
                      "next-token log-probs (an option word outside them is an upper bound); it cannot score or "
                      "generate, so it is a judge only, with no likelihood statistics", stacklevel=3)

    def _http_chat(self, body: dict) -> tuple[int, dict]:
        try:
            return 200, self._call("POST", "/chat/completions", {"model": self.served_model, **body})
        except ServerUnavailable:
            raise
        except ServerError as exc:
            return 400, {"error": {"message": str(exc)}}

    def _judge_only(self, what: str) -> ServerError:
        return ServerError(f"{self.name} is reached through chat completions only (server {self.base_url} has no "
                           f"/v1/completions): it cannot {what}, which needs the prompt's log-probs or the drawn "
                           "tokens; it can judge a run made with other models (selfbias judge RUN --judge "
                           f"{self.name})")

    def _probe_seed(self, sample: list[int]) -> str:
        """Whether the server honours a per-request ``seed`` (vLLM does; OpenAI's own API calls it best
        effort): "honoured" when two draws at temperature 1.5 with one seed are the same tokens and a
        draw with another seed differs, "ignored" when the two same-seed draws differ (sampled answers
        then differ between runs: recorded, and :meth:`generate` warns), "unknown" when all three agree
        (a model too sure of the next tokens to tell)."""
        body = {"model": self.served_model, "prompt": sample, "max_tokens": SEED_PROBE_TOKENS, "temperature": 1.5,
                "logprobs": 0, "return_token_ids": True}
        try:
            a, b, c = (self._call("POST", "/completions", {**body, "seed": seed}) for seed in (11, 11, 12))
            draws = [(ch.get("token_ids") or ch.get("text")) for ch in (r["choices"][0] for r in (a, b, c))]
        except ServerUnavailable:
            raise
        except (ServerError, KeyError, IndexError, TypeError):
            return "unknown"
        if draws[0] != draws[1]:
            return "ignored"
        return "honoured" if draws[0] != draws[2] else "unknown"

    def _read_fingerprint(self) -> dict[str, Any]:
        """The identity fingerprint (see :meth:`identity`), read once at connect."""
        ids = self._server_ids(ALIGNMENT_TEXT)
        out: dict[str, Any] = {"text": ALIGNMENT_TEXT, "token_ids": list(ids)}
        if self.score_method is not None:
            values = self._prompt_logprobs(self.score_method, ids)
            out |= {"kind": "prompt_logprobs", "logprobs": [None if v is None else round(v[0], 6) for v in values]}
        elif self.max_top_k:
            payload = self._call("POST", "/completions", {"model": self.served_model, "prompt": ids, "max_tokens": 1,
                                                          "temperature": 0, "logprobs": min(5, self.max_top_k)})
            top = payload["choices"][0]["logprobs"]["top_logprobs"][0]
            out |= {"kind": "top_logprobs", "top": {str(k): round(float(v), 6) for k, v in sorted(top.items())}}
        else:
            out["kind"] = "tokens"
        return out

    def _try(self, body: dict, accept: Callable[[dict], bool]) -> bool:
        status, payload = self._http_retrying({"model": self.served_model, **body})
        if status != 200:
            return False
        try:
            return bool(accept(payload))
        except (KeyError, IndexError, TypeError):
            return False

    def _http_retrying(self, body: dict) -> tuple[int, dict]:
        """A completion for the capability checks: a 4xx is an answer ("not offered"), not an error."""
        try:
            return 200, self._call("POST", "/completions", body)
        except ServerUnavailable:
            raise
        except ServerError as exc:
            return 400, {"error": {"message": str(exc)}}

    def _probe_tokenize(self) -> bool:
        try:
            status, payload = self._http_root("POST", "/tokenize", {"model": self.served_model, "prompt": "a",
                                                                    "add_special_tokens": False})
        except (OSError, ServerError):  # nothing there, or not an API (a page): no /tokenize
            return False
        if status != 200 or not isinstance(payload.get("tokens"), list):
            return False
        _, with_special = self._http_root("POST", "/tokenize", {"model": self.served_model, "prompt": "a",
                                                                 "add_special_tokens": True})
        extra = with_special.get("tokens", [])[: len(with_special.get("tokens", [])) - len(payload["tokens"])]
        self.bos_id = extra[0] if extra else None
        return True

    def _http_root(self, method: str, path: str, body: dict) -> tuple[int, dict]:
        """vLLM serves /tokenize and /detokenize beside /v1, at the server's root."""
        return self._http(method, path, body, self._root)

    @property
    def _root(self) -> str:
        return self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url

    def _probe_top_k(self, sample: list[int]) -> int | None:
        """The most top log-probs the server returns (vLLM says it in the refusal of a larger ask)."""
        status, payload = self._http_retrying(dict(prompt=sample, max_tokens=1, logprobs=1000, temperature=0,
                                                   model=self.served_model))
        if status == 200:
            return 1000
        message = _error_message(payload)
        digits = message.split("max allowed:")[-1].split()[0].strip(" ,.()") if "max allowed:" in message else ""
        if digits.isdigit():
            return int(digits)
        for k in (20, 10, 5, 1):
            if self._try(dict(prompt=sample, max_tokens=1, logprobs=k, temperature=0),
                         lambda r: r["choices"][0]["logprobs"]["top_logprobs"] is not None):
                return k
        return None

    def _alignment(self, method: str) -> tuple[str | None, dict]:
        """(problem or None, measurements) for one scoring method; see the module doc.

        Three checks on a text repeated three times: (1) the first entry is null (nothing precedes
        it); (2) at a few positions j, the best token's log-prob that the prompt read reports at j
        equals the best log-prob of the server's own next-token read after ``ids[:j]`` (the generation
        path), so position j holds the prediction made from the tokens before j, not j's own or j+1's;
        (3) the second half of the last copy is near-certain (copying), the first copy is not.
        """
        once = self._server_ids(ALIGNMENT_TEXT)
        bos = [self.bos_id] if self.adds_bos else []
        ids = bos + once * ALIGNMENT_REPEATS
        body = {"model": self.served_model, "prompt": ids, "max_tokens": 1, "temperature": 0}
        body |= {"prompt_logprobs": 1} if method == "prompt_logprobs" else {"echo": True, "logprobs": 1}
        payload = self._call("POST", "/completions", body)
        values = self._parse_prompt_logprobs(method, payload, len(ids))
        best = _best_per_position(method, payload, len(ids))
        first_entry = values[0]
        values = [v[0] if v else None for v in values]
        first_copy = [v for v in values[len(bos) + 1: len(bos) + len(once)]]
        last_half = values[len(ids) - len(once) // 2:]
        mean1 = sum(first_copy) / len(first_copy)
        mean_last = sum(last_half) / len(last_half)
        positions = sorted({1 + len(bos), len(bos) + len(once) // 2, len(bos) + len(once) + 1})
        reads = {}
        for j in positions:
            top = self._call("POST", "/completions", {"model": self.served_model, "prompt": ids[:j], "max_tokens": 1,
                                                       "temperature": 0, "logprobs": 1})
            reads[j] = max(top["choices"][0]["logprobs"]["top_logprobs"][0].values())
        record = {"first_entry_null": first_entry is None, "first_copy_mean": round(mean1, 4),
                  "last_copy_second_half_mean": round(mean_last, 4),
                  "best_at_position": {j: [round(best[j], 4), round(reads[j], 4)] for j in positions}}
        if first_entry is not None:
            return "the first prompt token has a log-prob (nothing precedes it: it must be null)", record
        for j in positions:
            if abs(best[j] - reads[j]) > ALIGNMENT_POSITION_TOL:
                return (f"at prompt position {j} the best token's log-prob is {best[j]:.3f} but the server's "
                        f"next-token read after the first {j} tokens says {reads[j]:.3f} (log-probs are read at "
                        "the wrong position, off by one, or depend on batching)"), record
        if mean_last < ALIGNMENT_COPY_MIN or mean_last < mean1 + ALIGNMENT_COPY_GAIN:
            return (f"a text repeated {ALIGNMENT_REPEATS} times scores {mean_last:.2f} nats/token late in its last "
                    f"copy (first copy {mean1:.2f}); a correctly aligned model finds the copy near-certain"), record
        return None, record

    def _probe_raw_logprobs(self, sample: list[int]) -> str:
        """"raw" when a drawn token's log-prob is the model's (before temperature), as the local backend
        records it (vLLM's default ``logprobs_mode``), "processed" otherwise."""
        drawn = self._call("POST", "/completions", {"model": self.served_model, "prompt": sample, "max_tokens": 1,
                                                     "temperature": 2.0, "seed": 0, "logprobs": 0,
                                                     "return_token_ids": True})
        choice = drawn["choices"][0]
        token = (choice.get("token_ids") or [None])[0]
        value = choice["logprobs"]["token_logprobs"][0]
        if token is None:
            return "unknown"
        scored = self._prompt_logprobs(self.score_method, sample + [token])[-1][0]
        return "raw" if abs(scored - value) < ALIGNMENT_POSITION_TOL else "processed"

    # ---------------------------------------------------------------------------- tokens

    @property
    def adds_bos(self) -> bool:
        if self.has_tokenize:
            return self.bos_id is not None
        tok = getattr(self, "tokenizer", None)
        if tok is None:
            return False
        return len(tok("a")["input_ids"]) > len(tok("a", add_special_tokens=False)["input_ids"])

    def _raw_ids(self, text: str) -> list[int]:
        """The server's tokens of ``text`` without special tokens (local tokenizer without /tokenize)."""
        if text in self._tokenize_memo:
            return self._tokenize_memo[text]
        if self.has_tokenize:
            payload = self._call("POST", "/tokenize", {"model": self.served_model, "prompt": text,
                                                       "add_special_tokens": False}, self._root)
            ids = list(payload["tokens"])
        elif getattr(self, "tokenizer", None) is not None:
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        else:
            raise ServerError(f"server {self.base_url} has no /tokenize and no local tokenizer was given "
                              "(tokenizer=FOLDER): its tokens cannot be read")
        self._tokenize_memo[text] = ids
        return ids

    def _server_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` with BOS exactly when the tokenizer adds one and the text lacks it
        (the rule of :func:`selfbias._batching.token_ids`)."""
        ids = self._raw_ids(text)
        if self.adds_bos:
            bos = self.bos_id if self.has_tokenize else self.tokenizer.bos_token_id
            if not ids or ids[0] != bos:
                ids = [bos, *ids]
        return ids

    def _tokenize_all(self, texts: Sequence[str]) -> None:
        todo = sorted({t for t in texts if t not in self._tokenize_memo})
        self._map(self._raw_ids, todo)

    def _encode(self, prompt: str, continuation: str) -> _Encoded:
        """Context and continuation ids joined as the local scorer joins them (:func:`selfbias.scoring.split_join`),
        with the server's tokenization."""
        context_text, whole_text = join_texts(prompt, continuation)
        return _Encoded(*split_join(self._server_ids(context_text), self._server_ids(whole_text), continuation))

    def _token_strings(self, ids: Sequence[int], decoded: Sequence[str]) -> tuple[str, ...]:
        if self.tokenizer is not None:
            return tuple(self.tokenizer.convert_ids_to_tokens(list(ids)))
        return tuple(decoded)

    # ---------------------------------------------------------------------------- scoring

    def _prompt_logprobs(self, method: str, ids: list[int], cached: bool = False) -> list:
        """Per position: None for position 0, else (log-prob of the token, is it the argmax, decoded)."""
        body = {"prompt": list(ids), "max_tokens": 1, "temperature": 0}
        body |= {"prompt_logprobs": 0} if method == "prompt_logprobs" else {"echo": True, "logprobs": 1}
        if cached:
            payload = self._post_cached("/completions", body)
        else:
            payload = self._call("POST", "/completions", {"model": self.served_model, **body})
        return self._parse_prompt_logprobs(method, payload, len(ids))

    def _last_logprobs(self, method: str, ids: list[int], tokens: Sequence[int]) -> dict[int, float]:
        """``log p(token | ids)`` for each token, read exactly in one request: a batch of the prompts
        ``ids + [token]``, each scored by the server (one request however many ids the judge needs)."""
        body = {"prompt": [[*ids, t] for t in tokens], "max_tokens": 1, "temperature": 0}
        body |= {"prompt_logprobs": 0} if method == "prompt_logprobs" else {"echo": True, "logprobs": 1}
        payload = self._post_cached("/completions", body)
        choices = sorted(payload["choices"], key=lambda c: c.get("index", 0))
        if len(choices) != len(tokens):
            raise ServerError(f"server returned {len(choices)} choices for {len(tokens)} prompts")
        return {t: self._parse_prompt_logprobs(method, {"choices": [c]}, len(ids) + 1)[-1][0]
                for t, c in zip(tokens, choices)}

    def _parse_prompt_logprobs(self, method: str, payload: dict, n: int) -> list:
        choice = payload["choices"][0]
        out: list = []
        if method == "prompt_logprobs":
            entries = choice["prompt_logprobs"]
            if len(entries) != n:
                raise ServerError(f"server returned {len(entries)} prompt log-probs for {n} prompt tokens")
            for entry in entries:
                if entry is None:
                    out.append(None)
                    continue
                # the prompt token's own entry; with prompt_logprobs=0 it is the only one
                (value,) = [v for v in entry.values()][:1]
                out.append((float(value["logprob"]), int(value.get("rank", 0)) == 1, value.get("decoded_token", "")))
        else:
            lp = choice["logprobs"]
            values, tokens, tops = lp["token_logprobs"][:n], lp["tokens"][:n], (lp.get("top_logprobs") or [None] * n)[:n]
            if len(values) != n:
                raise ServerError(f"server echoed {len(values)} log-probs for {n} prompt tokens")
            for value, token, top in zip(values, tokens, tops):
                if value is None:
                    out.append(None)
                    continue
                best = max(top.values()) if top else value
                out.append((float(value), float(value) >= best - 1e-6, token))
        return out

    def score_requests(self, requests: Sequence[tuple[str, Sequence[str]]], *, truncate: bool = False
                       ) -> list[list[Score]]:
        """Per-token log-probs of each continuation after its prompt, as the server computes them.

        Same contract as :func:`selfbias.scoring.score_requests`; tokens are the server's.
        """
        if self.api == "chat_completions":
            raise self._judge_only("score answers")
        if self.score_method is None:
            raise ServerError(
                f"server {self.base_url} offers neither echo+logprobs nor prompt_logprobs on /v1/completions: "
                "it cannot score answers, which the scores table and every likelihood statistic "
                "(likelihood-vs-judgment, rank, discrimination by log-prob) need; generation and judging still work")
        if any(isinstance(conts, str) for _, conts in requests):
            raise TypeError("each request's continuations must be a sequence of strings, not one string")
        if self.has_tokenize:
            self._tokenize_all([t for prompt, conts in requests for c in conts for t in join_texts(prompt, c)])
        encoded = [[self._encode(prompt, c) for c in conts] for prompt, conts in requests]
        flat = [(e, *self._fit(e, truncate)) for row in encoded for e in row]
        scored = self._map(lambda job: self._score_one(*job), flat)
        out, i = [], 0
        for row in encoded:
            out.append(scored[i: i + len(row)])
            i += len(row)
        return out

    def _fit(self, enc: _Encoded, truncate: bool) -> tuple[tuple[int, ...], int]:
        """The context to send (cut on the left when ``truncate``) and how many tokens were cut."""
        room = (self.context_length or 10**9) - 1  # one generated token is required by the API
        excess = len(enc.context) + len(enc.continuation) - room
        if excess <= 0:
            return enc.context, 0
        if not truncate or excess >= len(enc.context):
            raise ContextTooLong(
                f"{len(enc.context)} prompt + {len(enc.continuation)} continuation tokens exceed {self.name}'s "
                f"served context of {self.context_length}; pass truncate=True to drop prompt tokens on the left")
        return enc.context[excess:], excess

    def _score_one(self, enc: _Encoded, context: tuple[int, ...], cut: int) -> Score:
        values = self._prompt_logprobs(self.score_method, [*context, *enc.continuation], cached=True)[len(context):]
        return Score(
            token_ids=enc.continuation,
            tokens=self._token_strings(enc.continuation, [v[2] for v in values]),
            logprobs=tuple(v[0] for v in values),
            is_argmax=tuple(v[1] for v in values),
            truncated_tokens=cut,
            join_overlap=enc.join_overlap,
        )

    # ------------------------------------------------------------------------- generation

    def generate(self, prompts: Sequence[str], *, n: int = 1, temperature: float = 0.0, top_p: float = 1.0,
                 max_new_tokens: int = 48, stop: Sequence[str] = (), seed: int = 0) -> list[list[Generation]]:
        """``n`` answers per prompt with the drawn tokens' log-probs (raw model log-probs on vLLM, whose
        default ``logprobs_mode`` is ``raw_logprobs``; what the server does is in ``capabilities.detail``).

        Each sample is its own request (``n=1``) whose server-side seed is derived from (seed, prompt,
        sample index) as the local backend seeds its per-sample streams, so a sample does not depend on
        which other samples were asked with it, and a resumed run re-asks only missing samples. (One
        request with ``n`` > 1 and a seed is not reproducible on vLLM 0.32: its samples share a
        generator whose order depends on scheduling.) The draws differ from the local backend's; greedy
        answers match it up to the server's arithmetic. At temperature 0 one request serves all ``n``.
        """
        from .._inputs import check_generation

        if isinstance(prompts, str):
            raise TypeError("prompts must be a sequence of strings")
        if self.api == "chat_completions":
            raise self._judge_only("generate answers with their log-probs")
        check_generation(temperature=temperature, top_p=top_p, n=n, max_new_tokens=max_new_tokens)
        if self.has_tokenize:
            self._tokenize_all(prompts)

        if temperature > 0 and self.detail.get("seeded_sampling") == "ignored":
            import warnings

            warnings.warn(f"server {self.base_url} ignores per-request seeds: {self.name}'s sampled answers will "
                          "differ between runs (recorded in the run as seeded_sampling: ignored)", stacklevel=2)
        bodies = []
        draws = n if temperature > 0 else 1
        for p in prompts:
            ids = self._server_ids(p)
            if not ids:
                raise ValueError("empty prompt: nothing to condition on")
            for j in range(draws):
                body = {"prompt": ids, "n": 1, "temperature": temperature, "top_p": top_p,
                        "max_tokens": max_new_tokens, "logprobs": 0, "return_token_ids": True}
                if temperature > 0:
                    body["seed"] = row_seed(seed, p, j) & (2**31 - 1)
                if stop:
                    body["stop"] = list(stop)
                bodies.append(body)
        payloads = self._map(lambda b: self._post_cached("/completions", b), bodies)
        gens = [self._generations(payload)[0] for payload in payloads]
        return [gens[i * draws:(i + 1) * draws] * (n // draws) for i in range(len(prompts))]

    def _generations(self, payload: dict) -> list[Generation]:
        choices = sorted(payload["choices"], key=lambda c: c["index"])
        if not choices:
            raise ServerError("server returned no completion")
        out = []
        for choice in choices:
            ids = list(choice.get("token_ids") or [])
            logps = [float(v) for v in choice["logprobs"]["token_logprobs"]]
            if not ids and logps:
                raise ServerError("server returned no token ids (return_token_ids); cannot record the drawn tokens")
            reason, stop_reason = choice.get("finish_reason"), choice.get("stop_reason")
            if reason == "length":
                finish = "length"
            elif isinstance(stop_reason, str):
                finish = "stop"
                keep = len(ids)  # drop tokens whose text reaches into the stop string (as the local backend)
                while keep > 0 and len(self._decode(ids[:keep])) > len(choice["text"]):
                    keep -= 1
                ids, logps = ids[:keep], logps[:keep]
            else:
                finish = "eos"  # the server includes the end-of-sequence token; the local backend does not
                if ids:
                    ids, logps = ids[:-1], logps[:-1]
            out.append(Generation(self._decode(ids), tuple(ids), tuple(logps), finish))
        return out

    def _decode(self, ids: Sequence[int]) -> str:
        if not ids:
            return ""
        if self.tokenizer is not None:
            return self.tokenizer.decode(list(ids))
        status, payload = self._http_root("POST", "/detokenize", {"model": self.served_model, "tokens": list(ids)})
        if status != 200:
            raise ServerError(f"{self.base_url} /detokenize failed (HTTP {status}) and no local tokenizer was given")
        return payload["prompt"]

    # ------------------------------------------------------------------------- next token

    def next_token_logprobs(self, requests: Sequence[tuple[str, Sequence[str]]], *, select: Sequence[int] = (),
                            top_k: int = 10) -> list[list[NextToken]]:
        """The next-token distribution after ``prefix + suffix`` (same contract as
        :func:`selfbias.scoring.next_token_logprobs`), read from the server's top log-probs.

        ``covered_mass`` is the probability the returned top-k cover. A ``select`` id outside the top-k
        is read exactly by scoring ``prompt + [id]`` when the server scores; otherwise its value is the
        bound ``log min(p_k, 1 - covered_mass)`` and it is listed in ``bounded``.
        """
        if not self.max_top_k:
            raise ServerError(f"server {self.base_url} returns no top log-probs: next-token reads (the judge) "
                              "need logprobs on /v1/completions")
        k = min(top_k, self.max_top_k)
        if self.api == "chat_completions":
            texts = [prefix + suffix for prefix, suffixes in requests for suffix in suffixes]
            reads = self._map(lambda text: self._chat_next_one(text, k, tuple(select)), texts)
            return _regroup(reads, requests)
        if self.has_tokenize:
            self._tokenize_all([t for p, suffixes in requests for s in suffixes
                                for t in (join_texts(p, s) if s else (p,))])
        prompts = []
        for prefix, suffixes in requests:
            for suffix in suffixes:
                if suffix:
                    enc = self._encode(prefix, suffix)
                    ids = [*enc.context, *enc.continuation]
                else:
                    ids = self._server_ids(prefix)
                if len(ids) < 2 and not self.adds_bos:
                    raise ScoringError("prompt too short for a next-token read")
                if self.context_length and len(ids) + 1 > self.context_length:
                    raise ContextTooLong(f"a judge prompt of {len(ids)} tokens exceeds {self.name}'s served context "
                                         f"of {self.context_length}")
                prompts.append(ids)
        reads = self._map(lambda ids: self._next_one(ids, k, tuple(select)), prompts)
        return _regroup(reads, requests)

    def _next_one(self, ids: list[int], k: int, select: tuple[int, ...]) -> NextToken:
        body = {"prompt": ids, "max_tokens": 1, "temperature": 0, "logprobs": k, "return_tokens_as_token_ids": True}
        payload = self._post_cached("/completions", body)
        top = payload["choices"][0]["logprobs"]["top_logprobs"][0]
        pairs = sorted(((self._token_id(t), float(v)) for t, v in top.items()), key=lambda p: -p[1])[:k]
        pairs = [p for p in pairs if p[0] is not None]
        return self._next_from_top(pairs, select, ids)

    def _next_from_top(self, pairs: list[tuple[int, float]], select: tuple[int, ...], ids: list[int]) -> NextToken:
        """A :class:`NextToken` from the top-k (id, log-prob) pairs, likeliest first; selected ids outside
        them are read by scoring ``ids + [id]`` where the server scores, else bounded."""
        top_ids = tuple(i for i, _ in pairs)
        top_lp = tuple(v for _, v in pairs)
        covered = float(sum(math.exp(v) for v in top_lp))
        selected, bounded = {}, set()
        found = dict(pairs)
        missing = [t for t in dict.fromkeys(select) if t not in found]
        if missing and self.score_method is not None:
            found |= self._last_logprobs(self.score_method, ids, missing)
        for token in select:
            if token in found:
                selected[token] = found[token]
            else:
                floor = min(math.exp(top_lp[-1]) if top_lp else 1.0, max(1.0 - covered, 1e-300))
                selected[token] = math.log(floor)
                bounded.add(token)
        return NextToken(selected=selected, top_ids=top_ids, top_logprobs=top_lp, covered_mass=min(covered, 1.0),
                         bounded=frozenset(bounded))

    def _chat_next_one(self, text: str, k: int, select: tuple[int, ...]) -> NextToken:
        """One next-token read through chat completions: the top-k token texts become the stand-in
        tokenizer's ids; a selected id outside them is only bounded (no prompt log-probs to read it)."""
        from ._chat import request_body, top_logprobs

        try:
            body = request_body(text, k)
        except ValueError as exc:
            raise ServerError(f"{self.name}: {exc}") from None
        mass: dict[int, float] = {}  # two server tokens with one text are one answer: their mass adds
        for text_, value in top_logprobs(self._post_cached("/chat/completions", body))[:k]:
            i = self.tokenizer.token_id(text_)
            mass[i] = math.log(math.exp(mass[i]) + math.exp(value)) if i in mass else value
        return self._next_from_top(sorted(mass.items(), key=lambda p: -p[1]), select, [])

    def _token_id(self, key: str) -> int | None:
        if key.startswith("token_id:"):
            return int(key.split(":", 1)[1])
        if self.tokenizer is not None:  # a server that names tokens by their text
            ids = self.tokenizer(key, add_special_tokens=False)["input_ids"]
            return ids[0] if len(ids) == 1 else None
        return None

    # ------------------------------------------------------------------------------ record

    def to_manifest(self) -> dict:
        """Identity, backend kind and what the server offered (recorded in the run)."""
        caps = self.capabilities
        return {
            "name": self.name,
            "source": "openai",
            "backend": "openai",
            "location": self.base_url,
            "served_model": self.served_model,
            "root": self.detail.get("root"),
            "context_length": self.context_length,
            "prompt_format": self.prompt_format,
            "chat_template_kwargs": dict(self.chat_template_kwargs),
            "adds_bos": self.adds_bos,
            "tokenizer": ("none: option words matched to the server's token texts" if self.api == "chat_completions"
                          else "server /tokenize" if self.has_tokenize
                          else ("local" if self.tokenizer is not None else None)),
            "capabilities": caps.to_dict(),
            "transport": {"concurrency": self.concurrency, "timeout": self.timeout, "retries": self.retries},
            "identity": self.identity(),
            "seeded_sampling": self.detail.get("seeded_sampling"),
            "api": self.api,
            "judge_only": self.api == "chat_completions",
        }

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.name!r}, {self.base_url}, score={self.score_method})"


def identity_mismatch(known: dict, found: dict, tol: float = IDENTITY_TOL) -> str | None:
    """Why the served model ``found`` is not the recorded ``known`` (both :meth:`OpenAIBackend.identity`),
    or None when it is the same: same served name, same tokens of the probe text, and log-probs within
    ``tol`` nats (:data:`IDENTITY_TOL`) where both were read the same way."""
    if known.get("served_model") != found.get("served_model"):
        return f"served name {found.get('served_model')!r}, recorded {known.get('served_model')!r}"
    a, b = known.get("fingerprint") or {}, found.get("fingerprint") or {}
    if a.get("text") != b.get("text"):
        return None  # a fingerprint taken on another probe text (another selfbias version): nothing to compare
    if a.get("token_ids") != b.get("token_ids"):
        return "its tokenizer splits the probe text differently"
    if a.get("kind") != b.get("kind"):
        return None  # read another way (the server gained or lost prompt log-probs): only the tokens compare
    if a.get("kind") == "prompt_logprobs":
        pairs = [(x, y) for x, y in zip(a["logprobs"], b["logprobs"]) if x is not None and y is not None]
    elif a.get("kind") == "top_logprobs":
        if set(a["top"]) != set(b["top"]):
            return "its top next tokens after the probe text differ"
        pairs = [(a["top"][k], b["top"][k]) for k in a["top"]]
    else:
        return None
    worst = max((abs(x - y) for x, y in pairs), default=0.0)
    if worst > tol:
        return f"its log-probs of a fixed probe text differ by up to {worst:.3g} nats (same model: < {tol:g})"
    return None


def _best_per_position(method: str, payload: dict, n: int) -> list[float | None]:
    """The best token's log-prob at each prompt position of a prompt read with one top log-prob."""
    choice = payload["choices"][0]
    if method == "prompt_logprobs":
        entries = choice["prompt_logprobs"][:n]
        return [None if e is None else max(float(v["logprob"]) for v in e.values()) for e in entries]
    tops = (choice["logprobs"].get("top_logprobs") or [None] * n)[:n]
    return [None if t is None else max(float(v) for v in t.values()) for t in tops]


def _env_number(name: str, kind: type, default):
    """A number from the environment (the CLI's --concurrency / --timeout set it), else ``default``."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return kind(text)
    except ValueError:
        raise ServerError(f"${name} must be a number, got {text!r}") from None


def _key_hint(api_key: str | None) -> str:
    """What to do about a 401/403: which variable to set (never the key itself)."""
    if not api_key:
        return ("; no API key was sent: set SELFBIAS_API_KEY (or OPENAI_API_KEY) to the server's key, "
                "e.g. the value of vLLM's --api-key")
    source = next((e for e in API_KEY_ENVS if os.environ.get(e) == api_key), None)
    where = f"${source}" if source else "the api_key argument"
    return f"; the API key sent (from {where}) was refused: set SELFBIAS_API_KEY to the key the server expects"


def _error_message(payload: dict) -> str:
    err = payload.get("error", payload) if isinstance(payload, dict) else payload
    if isinstance(err, dict):
        return str(err.get("message") or err.get("detail") or err)[:300]
    return str(err)[:300]
