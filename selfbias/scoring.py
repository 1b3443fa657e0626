"""Exact per-token log-probabilities of continuations, sharing each prompt's forward pass.

How a continuation is cut from its prompt (as lm-evaluation-harness does, with the join checked)::

    text       [ prompt ......................... ][ continuation ]
               "...<|im_start|>assistant\\nThe answer is"  " 42"
    whole      tok(prompt + continuation)  = [c0 c1 ... c(k-1) | x0 x1]
    context    tok(prompt)                 = [c0 c1 ... c(k-1)]          (a prefix of `whole`)
    scored     whole[k:]                   =                  [x0 x1]

    positions       c(k-1)  x0   x1
    predicts          x0    x1   --      log p(x_j | c, x_<j) = log_softmax(logits[pos of x_(j-1)])[x_j]

* Trailing spaces (not newlines) of the prompt move to the continuation, so " 42" is scored as the
  tokenizer writes it after the prompt ("is" + " 42"), not as "is " + "42".
* If a token straddles the join (tok(prompt) is not a prefix of `whole`), the context is cut at the
  longest common prefix and the re-tokenised tail of the prompt is scored with the continuation;
  ``Score.join_overlap`` counts those tokens (0 in the usual case).
* BOS is prepended exactly when the tokenizer does so for plain text (``LoadedModel.adds_bos``) and
  the prompt does not already start with it (a rendered chat template may).

Speed: every distinct context runs once (left-padded, batched; leading tokens that every context
of a batch shares, such as a chat template's system turn, run once for the batch); its key/value
cache is then gathered for each of its continuations, which run right-padded in a second pass. Logits are computed
only at scored positions (``logits_to_keep`` as a boolean mask), so a 262k vocabulary costs one row
per scored token. Log-softmax is always taken in float32.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch

from .errors import SelfbiasError
from .models import LoadedModel

__all__ = [
    "ContextTooLong",
    "EncodedRequest",
    "NextToken",
    "Score",
    "ScoringError",
    "encode",
    "next_token_logprobs",
    "score",
    "score_requests",
    "score_token_ids",
]


class ScoringError(SelfbiasError, ValueError):
    """Bad scoring input (empty continuation, nothing to condition on)."""


class ContextTooLong(ScoringError):
    """Prompt + continuation exceed the model's context window and truncation was not asked for."""


@dataclass(frozen=True)
class Score:
    """Log-probability of one continuation under one model, token by token (natural log)."""

    token_ids: tuple[int, ...]
    tokens: tuple[str, ...]
    logprobs: tuple[float, ...]
    is_argmax: tuple[bool, ...]  # was each token the model's most likely next token?
    truncated_tokens: int = 0  # prompt tokens dropped on the left to fit the context window
    join_overlap: int = 0  # prompt tokens re-tokenised into the continuation (see module doc)

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
class EncodedRequest:
    """Token ids of a context and of the continuations that share it."""

    context: tuple[int, ...]
    continuations: tuple[tuple[int, ...], ...]
    join_overlaps: tuple[int, ...]


@dataclass(frozen=True)
class NextToken:
    """The next-token distribution after one prompt: chosen ids' log-probs and the top-k."""

    selected: dict[int, float]  # token id -> log-prob, for the ids asked for
    top_ids: tuple[int, ...]
    top_logprobs: tuple[float, ...]


# --------------------------------------------------------------------------------------- encoding


def _ids(lm: LoadedModel, text: str) -> list[int]:
    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = lm.tokenizer.bos_token
    if lm.adds_bos and not (bos and text.startswith(bos)):
        ids = [lm.bos_token_id, *ids]
    return list(ids)


def _split_trailing_spaces(prompt: str, continuation: str) -> tuple[str, str]:
    stripped = prompt.rstrip(" \t")
    return stripped, prompt[len(stripped):] + continuation


def _encode_one(lm: LoadedModel, prompt: str, continuation: str, context_cache: dict) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """(context ids, continuation ids, join overlap) for one continuation; see the module doc."""
    if not continuation:
        raise ScoringError(f"empty continuation for prompt {prompt[-60:]!r}: nothing to score")
    context_text, cont_text = _split_trailing_spaces(prompt, continuation)
    if context_text not in context_cache:
        context_cache[context_text] = _ids(lm, context_text)
    context = context_cache[context_text]
    whole = _ids(lm, context_text + cont_text)
    k = 0
    while k < min(len(context), len(whole)) and context[k] == whole[k]:
        k += 1
    if k == len(whole):
        raise ScoringError(f"continuation {continuation!r} adds no token to its prompt")
    if k == 0:
        raise ScoringError("nothing to condition the first token on: the prompt is empty and the model adds no BOS")
    return tuple(whole[:k]), tuple(whole[k:]), len(context) - k


def encode(lm: LoadedModel, prompt: str, continuations: Sequence[str]) -> list[EncodedRequest]:
    """Tokenise a prompt and its continuations with an exact join (see module doc).

    Returns one EncodedRequest per distinct context: usually one, more only when a continuation
    straddles the join and needs a shorter context.
    """
    if isinstance(continuations, str):
        raise TypeError("continuations must be a sequence of strings, not one string")
    cache: dict = {}
    by_context: dict[tuple[int, ...], list[tuple[tuple[int, ...], int]]] = {}
    for continuation in continuations:
        ctx, cont, overlap = _encode_one(lm, prompt, continuation, cache)
        by_context.setdefault(ctx, []).append((cont, overlap))
    return [
        EncodedRequest(ctx, tuple(c for c, _ in items), tuple(o for _, o in items))
        for ctx, items in by_context.items()
    ]


# --------------------------------------------------------------------------------- forward passes


@dataclass(frozen=True)
class _Branch:
    """One continuation (or judge suffix) to run after context ``group``; ``want``: which logits."""

    group: int
    tokens: tuple[int, ...]
    want: Literal["continuation", "next"]


def _left_pad(rows: Sequence[Sequence[int]], pad: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r):] = torch.tensor(r)
            mask[i, width - len(r):] = 1
    return ids.to(device), mask.to(device)


def _right_pad(rows: Sequence[Sequence[int]], pad: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids.to(device), mask.to(device)


def forward_contexts(lm: LoadedModel, contexts: Sequence[Sequence[int]], padding_side: str = "left"):
    """One padded pass over contexts.

    Returns (last-position logits [B, V] float32, cache, mask [B, Lp], lengths [B]). The scorer
    uses left padding (every context ends in the last column); right padding gives the same
    numbers (the tests check both) and leaves pads between context and continuation, masked out.
    """
    pad = _left_pad if padding_side == "left" else _right_pad
    ids, mask = pad(contexts, lm.tokenizer.pad_token_id, lm.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    lengths = mask.sum(-1)
    last_col = torch.full_like(lengths, mask.shape[1] - 1) if padding_side == "left" else lengths - 1
    last = torch.zeros_like(mask, dtype=torch.bool)
    last[torch.arange(len(contexts)), last_col] = True  # the last real token of each row
    out = lm.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=last)
    return out.logits.float(), out.cache, mask, lengths


MIN_SHARED_PREFIX = 8  # contexts of a batch sharing at least this many leading tokens run them once


def _shared_prefix_length(lm: LoadedModel, contexts: Sequence[Sequence[int]]) -> int:
    """Leading tokens common to every context of a batch (e.g. a chat template's system turn).

    Each context keeps at least one token of its own (its last logits come from the second pass).
    Sliding-window models are left alone when padding could push tokens out of the window.
    """
    if len(contexts) < 2:
        return 0
    first, n = contexts[0], min(len(c) for c in contexts) - 1
    k = 0
    while k < n and all(c[k] == first[k] for c in contexts):
        k += 1
    window = getattr(lm.model.config.get_text_config(), "sliding_window", None)
    if window and 2 * max(len(c) for c in contexts) >= window:
        return 0
    return k if k >= MIN_SHARED_PREFIX else 0


def forward_contexts_shared(lm: LoadedModel, contexts: Sequence[Sequence[int]], shared: int):
    """Like :func:`forward_contexts`, running the ``shared`` common leading tokens once::

        pass 1 (batch 1)   [s0 .. s(p-1)]                      cache copied to every row
        pass 2 (batch B)   [s0 .. s(p-1) | t0 t1 t2 pad pad]   each row's own tail, right-padded
    """
    prefix = torch.tensor([list(contexts[0][:shared])], device=lm.device)
    cache = lm.model(input_ids=prefix, use_cache=True, logits_to_keep=1).cache
    cache.batch_select_indices(torch.zeros(len(contexts), dtype=torch.long, device=lm.device))
    ids, tail_mask = _right_pad([c[shared:] for c in contexts], lm.tokenizer.pad_token_id, lm.device)
    lengths = tail_mask.sum(-1)
    last = torch.zeros_like(tail_mask, dtype=torch.bool)
    last[torch.arange(len(contexts)), lengths - 1] = True
    mask = torch.cat([torch.ones((len(contexts), shared), dtype=torch.long, device=lm.device), tail_mask], 1)
    positions = shared + torch.arange(ids.shape[1], device=lm.device)[None, :].expand_as(ids)
    out = lm.model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
                   logits_to_keep=last)
    return out.logits.float(), out.cache, mask, shared + lengths


def _run_branches(lm: LoadedModel, contexts: Sequence[Sequence[int]], branches: Sequence[_Branch], padding_side: str = "left") -> list[torch.Tensor]:
    """Log-softmax rows for each branch: [n_tokens, V] for "continuation", [1, V] for "next"."""
    shared = _shared_prefix_length(lm, contexts)
    if shared:
        last_logits, cache, ctx_mask, ctx_len = forward_contexts_shared(lm, contexts, shared)
    else:
        last_logits, cache, ctx_mask, ctx_len = forward_contexts(lm, contexts, padding_side)
    # Tokens to feed after the context: a continuation needs predictions for x1..x(n-1) (x0 comes from
    # the context's last logits); a "next" branch needs the prediction after its last token.
    fed = [b.tokens[:-1] if b.want == "continuation" else b.tokens for b in branches]
    rows: list[list[torch.Tensor]] = [[] for _ in branches]
    for i, b in enumerate(branches):
        if b.want == "continuation":
            rows[i].append(last_logits[b.group])
    live = [i for i, f in enumerate(fed) if f]
    if live:
        group = torch.tensor([branches[i].group for i in live], device=lm.device)
        cache.batch_select_indices(group)
        ids, mask = _right_pad([fed[i] for i in live], lm.tokenizer.pad_token_id, lm.device)
        positions = ctx_len[group, None] + torch.arange(ids.shape[1], device=lm.device)[None, :]
        keep = mask.bool()
        if any(branches[i].want == "next" for i in live):
            # only the last fed token of a "next" branch is needed
            for row, i in enumerate(live):
                if branches[i].want == "next":
                    keep[row, :] = False
                    keep[row, len(fed[i]) - 1] = True
        out = lm.model(
            input_ids=ids,
            attention_mask=torch.cat([ctx_mask[group], mask], dim=1),
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=keep,
        )
        flat = out.logits.float()  # [sum(keep), V], row-major over (branch, position)
        counts = keep.sum(-1).tolist()
        for row, chunk in zip(live, torch.split(flat, counts)):
            rows[row].extend(chunk)
    return [torch.log_softmax(torch.stack(r), dim=-1) for r in rows]


def _plan(lengths: Sequence[tuple[int, list[int]]], token_budget: int, logit_budget: int, max_batch: int | None) -> list[list[int]]:
    """Group contexts into batches, longest first, within a memory budget.

    lengths[g] = (context length, [branch lengths]). A batch's cost is the padded tokens of both
    passes (activations) and its kept logit rows (each a vocabulary-sized float32 row).
    """
    order = sorted(range(len(lengths)), key=lambda g: -(lengths[g][0] + max(lengths[g][1], default=0)))
    batches: list[list[int]] = []
    current: list[int] = []
    width = branch_width = n_branch = n_logits = 0
    for g in order:
        ctx, br = lengths[g]
        new_width, new_bw = max(width, ctx), max(branch_width, max(br, default=0))
        new_n, new_logits = n_branch + len(br), n_logits + sum(br) + len(br)
        cost = (len(current) + 1) * new_width + new_n * (new_width + new_bw)
        over = cost > token_budget or new_logits > logit_budget or (max_batch and len(current) >= max_batch)
        if current and over:
            batches.append(current)
            current, new_width, new_bw, new_n, new_logits = [], ctx, max(br, default=0), len(br), sum(br) + len(br)
        current.append(g)
        width, branch_width, n_branch, n_logits = new_width, new_bw, new_n, new_logits
    if current:
        batches.append(current)
    return batches


def _budgets(lm: LoadedModel, memory_mb: float) -> tuple[int, int]:
    vocab = lm.model.get_output_embeddings().weight.shape[0]
    hidden = lm.model.config.get_text_config().hidden_size
    layers = lm.model.config.get_text_config().num_hidden_layers
    # Rough bytes per padded token alive during a pass: cache (k and v) plus a few activations.
    per_token = 4 * hidden * (2 * layers + 16)
    budget = memory_mb * 2**20
    return max(256, int(budget / 2 / per_token)), max(64, int(budget / 2 / (8 * vocab)))


def _batched_branches(lm, contexts, branch_lists, memory_mb, batch_size, padding_side="left") -> Iterator[tuple[int, list[torch.Tensor]]]:
    """Yield (context index, log-softmax rows of each of its branches), batch by batch."""
    token_budget, logit_budget = _budgets(lm, memory_mb)
    lengths = [(len(c), [len(b.tokens) for b in bl]) for c, bl in zip(contexts, branch_lists)]
    with torch.inference_mode():
        for batch in _plan(lengths, token_budget, logit_budget, batch_size):
            flat = [_Branch(j, b.tokens, b.want) for j, g in enumerate(batch) for b in branch_lists[g]]
            rows = _run_branches(lm, [contexts[g] for g in batch], flat, padding_side)
            start = 0
            for g in batch:
                n = len(branch_lists[g])
                yield g, rows[start:start + n]
                start += n


def _fit_context(lm: LoadedModel, context: tuple[int, ...], longest: int, truncate: bool) -> tuple[tuple[int, ...], int]:
    excess = len(context) + longest - lm.context_length
    if excess <= 0:
        return context, 0
    if not truncate or excess >= len(context):
        raise ContextTooLong(
            f"{len(context)} prompt + {longest} continuation tokens exceed {lm.name}'s context of "
            f"{lm.context_length}; pass truncate=True to drop prompt tokens on the left (recorded)"
        )
    return context[excess:], excess


# ------------------------------------------------------------------------------------ public API


def score_token_ids(
    lm: LoadedModel,
    requests: Sequence[tuple[Sequence[int], Sequence[Sequence[int]]]],
    *,
    truncate: bool = False,
    memory_mb: float = 1024,
    batch_size: int | None = None,
    padding_side: str = "left",
) -> list[list[Score]]:
    """Score given token ids: ``requests[i] = (context ids, [continuation ids, ...])``.

    Returns ``scores[i][j]`` for continuation j of request i, in input order.
    """
    contexts, truncated, branch_lists = [], [], []
    for context, conts in requests:
        if not context:
            raise ScoringError("empty context: nothing to condition the first token on")
        if any(len(c) == 0 for c in conts):
            raise ScoringError("empty continuation: nothing to score")
        ctx, cut = _fit_context(lm, tuple(context), max((len(c) for c in conts), default=0), truncate)
        contexts.append(ctx)
        truncated.append(cut)
        branch_lists.append([_Branch(0, tuple(c), "continuation") for c in conts])
    results: list[list[Score]] = [[] for _ in requests]
    convert = lm.tokenizer.convert_ids_to_tokens
    for g, rows in _batched_branches(lm, contexts, branch_lists, memory_mb, batch_size, padding_side):
        for branch, logprobs in zip(branch_lists[g], rows):
            target = torch.tensor(branch.tokens, device=logprobs.device)
            picked = logprobs.gather(1, target[:, None])[:, 0]
            results[g].append(Score(
                token_ids=branch.tokens,
                tokens=tuple(convert(list(branch.tokens))),
                logprobs=tuple(picked.tolist()),
                is_argmax=tuple((logprobs.argmax(-1) == target).tolist()),
                truncated_tokens=truncated[g],
            ))
    return results


def score_requests(
    lm: LoadedModel,
    requests: Sequence[tuple[str, Sequence[str]]],
    *,
    truncate: bool = False,
    memory_mb: float = 1024,
    batch_size: int | None = None,
    padding_side: str = "left",
) -> list[list[Score]]:
    """Score many prompts, each with one or more continuations; ``scores[i][j]`` in input order.

    Identical contexts across requests run once. ``truncate=True`` drops prompt tokens on the left
    when prompt + continuation exceed the context window (recorded in ``Score.truncated_tokens``);
    otherwise that raises :class:`ContextTooLong`. ``batch_size`` caps contexts per batch; the
    default adapts batches to ``memory_mb``.
    """
    if any(isinstance(conts, str) for _, conts in requests):
        raise TypeError("each request's continuations must be a sequence of strings, not one string")
    # One scoring request per distinct context (identical prompts across requests run once).
    index: dict[tuple[int, ...], int] = {}
    grouped: list[tuple[tuple[int, ...], list[tuple[int, ...]]]] = []
    where: list[list[tuple[int, int, int]]] = []  # per request: (group, position, join overlap)
    cache: dict = {}
    for prompt, conts in requests:
        placed = []
        for cont in conts:
            ctx, ids, overlap = _encode_one(lm, prompt, cont, cache)
            g = index.setdefault(ctx, len(grouped))
            if g == len(grouped):
                grouped.append((ctx, []))
            placed.append((g, len(grouped[g][1]), overlap))
            grouped[g][1].append(ids)
        where.append(placed)
    scored = score_token_ids(lm, grouped, truncate=truncate, memory_mb=memory_mb, batch_size=batch_size,
                             padding_side=padding_side)
    return [
        [scored[g][j] if overlap == 0 else replace(scored[g][j], join_overlap=overlap) for g, j, overlap in placed]
        for placed in where
    ]


def score(lm: LoadedModel, prompt: str, continuations: Sequence[str], **kwargs) -> list[Score]:
    """Log-probabilities of each continuation after ``prompt`` (one shared prompt pass)."""
    return score_requests(lm, [(prompt, continuations)], **kwargs)[0]


def next_token_logprobs(
    lm: LoadedModel,
    requests: Sequence[tuple[str, Sequence[str]]],
    *,
    select: Sequence[int] = (),
    top_k: int = 10,
    memory_mb: float = 1024,
    batch_size: int | None = None,
) -> list[list[NextToken]]:
    """The next-token distribution after ``prefix + suffix`` for each suffix of each request.

    ``requests[i] = (prefix, [suffix, ...])``: the prefix runs once and its cache is shared by the
    suffixes (the judge's prompts of one item share everything up to the answer). Only the last
    position's logits are computed. Returns the log-probs of the ``select`` ids and the top-k.
    """
    contexts, branch_lists, shape = [], [], []
    index: dict[tuple[int, ...], int] = {}
    cache: dict = {}
    for prefix, suffixes in requests:
        placed = []
        for suffix in suffixes:
            if suffix:
                ctx, tokens, _ = _encode_one(lm, prefix, suffix, cache)
            else:  # the prompt is the prefix alone: run it as context + its last token
                ids = tuple(_ids(lm, prefix))
                ctx, tokens = ids[:-1], ids[-1:]
                if not ctx:
                    raise ScoringError("prompt too short for a next-token read")
            g = index.setdefault(ctx, len(contexts))
            if g == len(contexts):
                contexts.append(ctx)
                branch_lists.append([])
            placed.append((g, len(branch_lists[g])))
            branch_lists[g].append(_Branch(0, tokens, "next"))
        shape.append(placed)
    for ctx, bl in zip(contexts, branch_lists):
        _fit_context(lm, ctx, max(len(b.tokens) for b in bl), False)
    select_t = torch.tensor(list(select), dtype=torch.long)
    found: dict[tuple[int, int], NextToken] = {}
    for g, rows in _batched_branches(lm, contexts, branch_lists, memory_mb, batch_size):
        for j, logprobs in enumerate(rows):
            row = logprobs[-1]
            top = torch.topk(row, top_k)
            found[(g, j)] = NextToken(
                selected=dict(zip(select_t.tolist(), row[select_t.to(row.device)].tolist())),
                top_ids=tuple(top.indices.tolist()),
                top_logprobs=tuple(top.values.tolist()),
            )
    return [[found[p] for p in placed] for placed in shape]
