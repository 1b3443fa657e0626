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

__all__ = ["OpenAIBackend", "ServerError", "ServerUnavailable", "ServerMisaligned", "API_KEY_ENVS", "parse_spec",
           "check_url"]

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
    cache_dir : path, optional
        Where every response is kept (see :meth:`use_cache_dir`); None keeps nothing.
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, tokenizer: Any = None,
                 concurrency: int | None = None, timeout: float | None = None, retries: int = 5, cache_dir: str | os.PathLike | None = None,
                 prompt_format: str = "auto", chat_template_kwargs: dict | None = None, name: str | None = None):
        concurrency = _env_number("SELFBIAS_CONCURRENCY", int, 8) if concurrency is None else concurrency
        timeout = _env_number("SELFBIAS_TIMEOUT", float, 60.0) if timeout is None else timeout
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
        if cache_dir is not None:
            self.use_cache_dir(cache_dir)
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
        self.chat_template_kwargs = dict(chat_template_kwargs or {})

    # ------------------------------------------------------------------------ construction

    @classmethod
    def from_spec(cls, spec: str, *, base_url: str | None = None, **options) -> OpenAIBackend:
        """Build from ``openai:NAME@http://HOST:PORT/v1`` (or ``openai:NAME`` and ``base_url``); the
        backend's ``name`` (the model's name in the run) is the spec itself."""
        name, url = parse_spec(spec, base_url)
        # The run knows a model by the spec it was given (as for a local model), so judge and a
        # resumed probe load it again from the run's records.
        options.setdefault("name", spec)
        return cls(url, name, **options)

    def use_cache_dir(self, folder: str | os.PathLike) -> None:
        """Keep every response under ``folder`` (probe/judge pass ``RUN/cache/openai``)."""
        self.cache_dir = Path(folder)
        self.cache_dir.mkdir(parents=True, exist_ok=True)

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
        self.capabilities = Capabilities(
            score=self.score_method is not None,
            generate=True,
            next_token="top_k" if self.max_top_k else "none",
            max_top_k=self.max_top_k,
            detail=detail,
        )

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
        check_generation(temperature=temperature, top_p=top_p, n=n, max_new_tokens=max_new_tokens)
        if self.has_tokenize:
            self._tokenize_all(prompts)

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
        out, i = [], 0
        for _, suffixes in requests:
            out.append(reads[i: i + len(suffixes)])
            i += len(suffixes)
        return out

    def _next_one(self, ids: list[int], k: int, select: tuple[int, ...]) -> NextToken:
        body = {"prompt": ids, "max_tokens": 1, "temperature": 0, "logprobs": k, "return_tokens_as_token_ids": True}
        payload = self._post_cached("/completions", body)
        top = payload["choices"][0]["logprobs"]["top_logprobs"][0]
        pairs = sorted(((self._token_id(t), float(v)) for t, v in top.items()), key=lambda p: -p[1])[:k]
        pairs = [p for p in pairs if p[0] is not None]
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
            "tokenizer": "server /tokenize" if self.has_tokenize else ("local" if self.tokenizer is not None else None),
            "capabilities": caps.to_dict(),
        }

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.name!r}, {self.base_url}, score={self.score_method})"


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
