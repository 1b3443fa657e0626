"""A small OpenAI-compatible server in this process for fast tests of the HTTP backend.

Its "model" is a closed-form copying model over a real tokenizer (the tests' tiny BPE): after token
``t``, if ``t`` occurred earlier followed by ``u``, the next token is ``u`` with probability ``copy``,
every other token sharing the rest; otherwise the next token is uniform. Log-probs are therefore known
exactly (``log copy``, ``log((1 - copy) / (V - 1))``, ``-log V``), the model copies (it passes the
backend's alignment check), and two servers with different ``copy`` are two different models.

It speaks what :mod:`selfbias.backends.openai` uses: ``/v1/models``, ``/tokenize``, ``/detokenize``,
``/v1/completions`` (``prompt_logprobs``, ``echo`` + ``logprobs`` up to 20, ``seed``,
``return_token_ids``, ``return_tokens_as_token_ids``) and ``/v1/chat/completions`` with ``logprobs`` /
``top_logprobs``. Options turn parts off: ``completions=False`` (an API-only chat model),
``honour_seed=False`` (a server that ignores per-request seeds).
"""

from __future__ import annotations

import json
import math
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_LOGPROBS = 20


class FakeModel:
    """The copying model (module doc) over ``tokenizer``."""

    def __init__(self, tokenizer, copy: float = 0.9):
        self.tokenizer, self.copy = tokenizer, copy
        self.vocab = len(tokenizer)
        self._memo: dict[tuple[int, ...], int | None] = {}  # prompts share prefixes across requests

    def predicted(self, ids: list[int]) -> int | None:
        """The token copied after ``ids`` (None: nothing to copy): the one that followed the latest
        earlier occurrence of the longest suffix of ``ids`` (up to 8 tokens), as an induction head."""
        key = tuple(ids)
        if key not in self._memo:
            self._memo[key] = self._predict(ids)
        return self._memo[key]

    def _predict(self, ids: list[int]) -> int | None:
        for length in range(min(8, len(ids) - 1), 0, -1):
            suffix = ids[-length:]
            for j in range(len(ids) - length - 1, -1, -1):
                if ids[j:j + length] == suffix:
                    return ids[j + length]
        return None

    def logprob(self, ids: list[int], token: int) -> float:
        """log p(token | ids)."""
        guess = self.predicted(ids)
        if guess is None:
            return -math.log(self.vocab)
        return math.log(self.copy) if token == guess else math.log((1 - self.copy) / (self.vocab - 1))

    def top(self, ids: list[int], k: int) -> list[tuple[int, float]]:
        """The ``k`` likeliest next tokens (ties by id) with their log-probs."""
        guess = self.predicted(ids)
        order = ([guess] if guess is not None else []) + [t for t in range(self.vocab) if t != guess][: k]
        return [(t, self.logprob(ids, t)) for t in order[:k]]

    def draw(self, ids: list[int], temperature: float, rng: random.Random) -> int:
        guess = self.predicted(ids)
        if temperature == 0:
            return guess if guess is not None else 0
        if guess is None:
            return rng.randrange(self.vocab)
        # p ** (1 / T), renormalised: the copied token against the other V - 1 equal ones
        a = self.copy ** (1 / temperature)
        b = ((1 - self.copy) / (self.vocab - 1)) ** (1 / temperature)
        if rng.random() < a / (a + b * (self.vocab - 1)):
            return guess
        return rng.choice([t for t in range(self.vocab) if t != guess])


def send_json(handler: BaseHTTPRequestHandler, status: int, payload: dict) -> None:
    """Answer ``handler``'s request with ``payload`` as JSON (the fake server's and the tests' proxy's)."""
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class FakeServer:
    """``with FakeServer(tokenizer, name="m") as server:`` serves on ``server.url`` (``http://127.0.0.1:PORT/v1``)."""

    def __init__(self, tokenizer, name: str = "fake", *, copy: float = 0.9, completions: bool = True,
                 honour_seed: bool = True, context: int = 2048, root: str | None = None):
        self.model = FakeModel(tokenizer, copy)
        self.tokenizer, self.name, self.completions, self.honour_seed = tokenizer, name, completions, honour_seed
        self.context, self.root = context, root  # root: the model folder vLLM reports (a local tokenizer)
        self.requests: list[tuple[str, dict]] = []  # (path, body) of every request, for the tests
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, payload: dict) -> None:
                send_json(self, status, payload)

            def do_GET(self):
                server.requests.append((self.path, {}))
                if self.path == "/v1/models":
                    return self._send(200, {"object": "list", "data": [
                        {"id": server.name, "object": "model", "max_model_len": server.context, "root": server.root}]})
                self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                server.requests.append((self.path, body))
                route = {"/tokenize": server._tokenize, "/detokenize": server._detokenize,
                         "/v1/completions": server._completions if server.completions else None,
                         "/v1/chat/completions": server._chat}.get(self.path)
                if route is None:
                    return self._send(404, {"error": {"message": f"{self.path} not found"}})
                if body.get("model") != server.name:
                    return self._send(404, {"error": {"message": f"model {body.get('model')!r} does not exist"}})
                status, payload = route(body)
                self._send(status, payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ------------------------------------------------------------------------------ routes

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _tokenize(self, body):
        return 200, {"tokens": self._ids(body["prompt"])}

    def _detokenize(self, body):
        return 200, {"prompt": self.tokenizer.decode(body["tokens"])}

    def _name(self, token: int, as_ids: bool) -> str:
        return f"token_id:{token}" if as_ids else self.tokenizer.decode([token])

    def _rng(self, body) -> random.Random:
        seed = body.get("seed")
        return random.Random(seed) if seed is not None and self.honour_seed else random.Random()

    def _completions(self, body):
        k = body.get("logprobs")
        if k is not None and k > MAX_LOGPROBS:
            return 400, {"error": {"message": f"Requested sample logprobs of {k}, which is greater than max "
                                              f"allowed: {MAX_LOGPROBS}"}}
        prompts = body["prompt"]
        if isinstance(prompts, str):
            prompts = [self._ids(prompts)]
        elif prompts and isinstance(prompts[0], int):
            prompts = [prompts]
        as_ids = bool(body.get("return_tokens_as_token_ids"))
        choices = []
        for index, ids in enumerate(prompts):
            ids = list(ids)
            drawn, stop_reason, finish = self._generate(ids, body)
            choice = {"index": index, "text": self.tokenizer.decode(drawn), "finish_reason": finish,
                      "stop_reason": stop_reason}
            if body.get("return_token_ids"):
                choice["token_ids"] = drawn
            if k is not None:
                tokens, values, tops = [], [], []
                seq = (list(range(len(ids))) if body.get("echo") else []) + [len(ids) + i for i in range(len(drawn))]
                full = ids + drawn
                for pos in seq:
                    tokens.append(self._name(full[pos], as_ids))
                    if pos == 0:
                        values.append(None)
                        tops.append(None)
                        continue
                    values.append(self.model.logprob(full[:pos], full[pos]))
                    top = {self._name(t, as_ids): v for t, v in self.model.top(full[:pos], max(k, 1))} if k else {}
                    top[self._name(full[pos], as_ids)] = values[-1]
                    tops.append(top)
                choice["logprobs"] = {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops}
            if body.get("prompt_logprobs") is not None:
                entries, n_top = [None], int(body["prompt_logprobs"])
                for pos in range(1, len(ids)):
                    value = self.model.logprob(ids[:pos], ids[pos])
                    best = self.model.top(ids[:pos], max(n_top, 1))
                    rank = 1 if value >= best[0][1] - 1e-12 else 2  # the copied token, or one of the equal rest
                    entry = {str(ids[pos]): {"logprob": value, "rank": rank,  # the prompt token first, as vLLM
                                             "decoded_token": self.tokenizer.decode([ids[pos]])}}
                    for t, v in best[:n_top]:
                        entry.setdefault(str(t), {"logprob": v, "rank": 1, "decoded_token": self.tokenizer.decode([t])})
                    entries.append(entry)
                choice["prompt_logprobs"] = entries
            choices.append(choice)
        return 200, {"object": "text_completion", "model": self.name, "choices": choices}

    def _generate(self, ids: list[int], body) -> tuple[list[int], str | None, str]:
        rng = self._rng(body)
        drawn: list[int] = []
        stops = body.get("stop") or []
        for _ in range(int(body.get("max_tokens") or 16)):
            drawn.append(self.model.draw(ids + drawn, float(body.get("temperature", 1.0)), rng))
            text = self.tokenizer.decode(drawn)
            for stop in stops:
                if stop in text:
                    return drawn, stop, "stop"
        return drawn, None, "length"

    def _chat(self, body):
        """Chat completions with ``logprobs``/``top_logprobs`` (what API-only models offer): the
        messages are rendered with the tokenizer's chat template and a generation prompt."""
        k = int(body.get("top_logprobs") or 0)
        if k > MAX_LOGPROBS:
            return 400, {"error": {"message": f"top_logprobs must be at most {MAX_LOGPROBS}"}}
        text = self.tokenizer.apply_chat_template(body["messages"], tokenize=False, add_generation_prompt=True)
        ids = self._ids(text)
        drawn, stop_reason, finish = self._generate(ids, body)
        choice = {"index": 0, "finish_reason": finish,
                  "message": {"role": "assistant", "content": self.tokenizer.decode(drawn)}}
        if body.get("logprobs"):
            content, full = [], ids + drawn
            for pos in range(len(ids), len(full)):
                def entry(token: int, value: float) -> dict:
                    word = self.tokenizer.decode([token])
                    return {"token": word, "logprob": value, "bytes": list(word.encode())}

                item = entry(full[pos], self.model.logprob(full[:pos], full[pos]))
                item["top_logprobs"] = [entry(t, v) for t, v in self.model.top(full[:pos], k)]
                content.append(item)
            choice["logprobs"] = {"content": content}
        return 200, {"object": "chat.completion", "model": self.name, "choices": [choice]}
