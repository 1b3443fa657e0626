"""Judging through chat completions: models reached only by ``/v1/chat/completions`` with
``logprobs`` / ``top_logprobs`` (API-only models), no ``/v1/completions``.

Such a server never shows its tokens or its prompt log-probs, so it can judge (the verdict is the next
token's top-k, as on ``/v1/completions``) but cannot score answers or generate with raw log-probs. The
judge renders its prompts as text through a tokenizer's chat template; :class:`ChatTokenizer` stands in
for one: its "chat template" writes the messages as JSON between two markers, which
:func:`split_prompt` reads back, and its vocabulary is the strings the judge asks about (the option
words' spellings) and the strings the server returns as top tokens, each one token. An option word is
thus matched to a top token by its exact text, as the server spells it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

OPEN, CLOSE = "\x1eselfbias-chat:", "\x1e"  # around the JSON messages in a rendered prompt


class ChatTokenizer:
    """A stand-in tokenizer for a chat-completions-only model (module doc): every distinct string is
    one token, numbered in the order first seen; ``apply_chat_template`` encodes the messages."""

    chat_template = "(rendered by the server)"
    bos_token_id = eos_token_id = pad_token_id = None
    name_or_path = "chat-completions"

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._words: list[str] = []
        self._lock = threading.Lock()  # the backend reads responses on several threads

    def token_id(self, word: str) -> int:
        """The id of ``word`` (a new id when first seen)."""
        with self._lock:
            if word not in self._ids:
                self._ids[word] = len(self._words)
                self._words.append(word)
            return self._ids[word]

    def get_vocab(self) -> dict[str, int]:
        return dict(self._ids)

    def __len__(self) -> int:
        return len(self._words)

    def __call__(self, text: str, add_special_tokens: bool = True, **kwargs: Any) -> dict[str, list[int]]:
        return {"input_ids": [self.token_id(text)] if text else []}

    def convert_ids_to_tokens(self, ids):
        return self._words[ids] if isinstance(ids, int) else [self._words[i] for i in ids]

    def decode(self, ids: Sequence[int], **kwargs: Any) -> str:
        return "".join(self._words[i] for i in ids)

    def apply_chat_template(self, messages, tokenize: bool = False, add_generation_prompt: bool = True,
                            **kwargs: Any) -> str:
        if tokenize:
            raise ValueError("a chat-completions model's tokens are the server's: render to text only")
        return OPEN + json.dumps([{"role": m["role"], "content": m["content"]} for m in messages]) + CLOSE


def split_prompt(text: str) -> tuple[list[dict[str, str]], str]:
    """The messages of a prompt rendered by :class:`ChatTokenizer` and the text after them (the
    answer lead that opens the assistant's turn; empty for the default judge templates)."""
    if not text.startswith(OPEN) or CLOSE not in text[len(OPEN):]:
        raise ValueError("a chat-completions judge needs chat-format prompts (rendered by its ChatTokenizer)")
    body, _, lead = text[len(OPEN):].partition(CLOSE)
    return json.loads(body), lead


def request_body(text: str, k: int) -> dict[str, Any]:
    """The ``/v1/chat/completions`` request reading the next token's top ``k`` after ``text``: greedy,
    one token. A non-empty answer lead is sent as the start of the assistant's message
    (``continue_final_message``, vLLM's extension; other servers may refuse it)."""
    messages, lead = split_prompt(text)
    body: dict[str, Any] = {"messages": messages, "max_tokens": 1, "temperature": 0, "logprobs": True,
                            "top_logprobs": k}
    if lead.strip():
        body["messages"] = [*messages, {"role": "assistant", "content": lead}]
        body |= {"continue_final_message": True, "add_generation_prompt": False}
    return body


def top_logprobs(payload: dict) -> list[tuple[str, float]]:
    """(token text, log-prob) of the first generated token's top log-probs, likeliest first."""
    content = payload["choices"][0]["logprobs"]["content"]
    if not content:
        raise ValueError("the server returned no token log-probs")
    pairs = [(str(e["token"]), float(e["logprob"])) for e in content[0].get("top_logprobs") or []]
    return sorted(pairs, key=lambda p: -p[1])
