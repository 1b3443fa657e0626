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

Speed: contexts and their continuations are packed into prefix tries, one row of at most
``ROW_TOKENS`` distinct tokens holding several contexts (sorted, so that prompts sharing a chat
template's system turn meet), and every row of a batch runs in ONE forward pass: each trie node
attends to exactly its ancestors (a 4D mask) at position = its depth, so a token shared by several
sequences (a system turn, an answer's leading space) runs once and nothing needs a cache. This is the
tree attention of SpecInfer (Miao et al., 2024) and Medusa (Cai et al., 2024) applied to scoring.
A context whose continuations alone exceed a row (long answers), or any sequence that reaches a
sliding window, takes the two-pass path instead: every distinct context runs once (left-padded,
batched; leading tokens that every context of a batch shares run once for the batch); its key/value
cache is then gathered for each of its continuations, which run right-padded in a second pass.
``prefix_trie=False`` forces the two-pass path (the tests check both against a per-prefix reference).
Logits are computed only at scored positions (``logits_to_keep`` as a boolean mask), so a 262k
vocabulary costs one row per scored token. Log-softmax is always taken in float32.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch

from ._batching import (
    forward_contexts,
    memory_budgets,
    plan_batches,
    right_pad,
    token_ids,
)
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
    covered_mass: float = 1.0  # probability mass of the returned top-k; 1.0 where the full distribution was read
    bounded: frozenset[int] = frozenset()  # ids in `selected` whose value is only an upper bound (not returned)


# --------------------------------------------------------------------------------------- encoding


_ids = token_ids  # the model's tokenisation with its BOS rule (see selfbias._batching)


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
    ids, tail_mask = right_pad([c[shared:] for c in contexts], lm.tokenizer.pad_token_id, lm.device)
    lengths = tail_mask.sum(-1)
    last = torch.zeros_like(tail_mask, dtype=torch.bool)
    last[torch.arange(len(contexts)), lengths - 1] = True
    mask = torch.cat([torch.ones((len(contexts), shared), dtype=torch.long, device=lm.device), tail_mask], 1)
    positions = shared + torch.arange(ids.shape[1], device=lm.device)[None, :].expand_as(ids)
    out = lm.model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
                   logits_to_keep=last)
    return out.logits.float(), out.cache, mask, shared + lengths


def _run_branches(lm: LoadedModel, contexts: Sequence[Sequence[int]], branches: Sequence[_Branch], padding_side: str = "left") -> list[_Rows]:
    """Log-softmax rows for each branch: n_tokens rows for "continuation", 1 for "next"."""
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
        ids, mask = right_pad([fed[i] for i in live], lm.tokenizer.pad_token_id, lm.device)
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
    return [_Rows.own(torch.log_softmax(torch.stack(r), dim=-1)) for r in rows]


@dataclass(frozen=True)
class _Rows:
    """Log-softmax rows of one branch, ``table[index]``, without copying rows that branches share
    (a context's last token, a common leading space); ``argmax`` is each table row's, computed once."""

    table: torch.Tensor  # [K, V] float32
    index: torch.Tensor  # [n] rows of this branch, in order
    argmax: torch.Tensor  # [K]

    @classmethod
    def own(cls, rows: torch.Tensor) -> _Rows:
        return cls(rows, torch.arange(len(rows), device=rows.device), rows.argmax(-1))

    def pick(self, targets: Sequence[int]) -> tuple[list[float], list[bool]]:
        """Log-probs of ``targets`` (one per row) and whether each was its row's argmax."""
        target = torch.tensor(targets, device=self.table.device)
        return self.table[self.index, target].tolist(), (self.argmax[self.index] == target).tolist()

    def last(self) -> torch.Tensor:
        return self.table[self.index[-1]]


# ------------------------------------------------------------------------------ prefix-trie pass

ROW_TOKENS = 384  # most distinct tokens in one packed row of the prefix-trie pass (see _trie_batches)


@dataclass
class _Row:
    """One packed row: a prefix trie of contexts and their branches, nodes in insertion order.

    A node's parent comes before it, so the row is a valid causal sequence once each node attends
    to exactly its ancestors; its position id is its depth (its index in its own sequence).
    """

    tokens: list[int]
    parents: list[int]
    children: dict  # (parent node, token) -> node
    groups: list[int]


def _sequences(context: tuple[int, ...], branches: Sequence[_Branch]) -> list[tuple[tuple[int, ...], int, int]]:
    """(tokens to run, first kept index, last kept index + 1) for each branch of one context.

    A continuation x0..x(n-1) runs context + x0..x(n-2) and keeps the logits at the context's last
    token and at x0..x(n-2); a "next" branch runs context + its tokens and keeps the last position.
    """
    out = []
    for b in branches:
        if b.want == "continuation":
            seq = context + b.tokens[:-1]
            out.append((seq, len(context) - 1, len(seq)))
        else:
            seq = context + b.tokens
            out.append((seq, len(seq) - 1, len(seq)))
    return out


def _new_nodes(row: _Row, seqs) -> int:
    """How many nodes adding these sequences would create in ``row``."""
    pending: set = set()
    count = 0
    for seq, _, _ in seqs:
        node = -1
        for t in seq:
            key = (node, t)
            found = row.children.get(key)
            if found is None:
                if key not in pending:
                    pending.add(key)
                    count += 1
                node = key  # a pending node: later tokens of this path are new as well
            else:
                node = found
    return count


def _insert(row: _Row, seqs) -> list[list[int]]:
    """Add sequences to the row's trie; returns each sequence's node indices."""
    paths = []
    for seq, _, _ in seqs:
        node, path = -1, []
        for t in seq:
            nxt = row.children.get((node, t))
            if nxt is None:
                nxt = len(row.tokens)
                row.children[(node, t)] = nxt
                row.tokens.append(t)
                row.parents.append(node)
            path.append(nxt)
            node = nxt
        paths.append(path)
    return paths


def _trie_fits(lm: LoadedModel, context, branches, row_tokens: int) -> bool:
    """Whether one context and its branches run in the trie pass (alone they fill at most one row).

    Position ids are depths, so a sliding-window model is exact here only while every sequence is
    shorter than its window (then the window masks nothing).
    """
    seqs = _sequences(context, branches)
    if _new_nodes(_Row([], [], {}, []), seqs) > row_tokens:
        return False
    window = getattr(lm.model.config.get_text_config(), "sliding_window", None)
    return not (window and max(len(q) for q, _, _ in seqs) >= window)


def _tree_masks(lm: LoadedModel, rows: Sequence[_Row], width: int, offsets: Sequence[int]):
    """Additive attention masks [B, 1, W, W]: each node sees itself and its ancestors; pads see only
    themselves. A dict per layer type for models that take one (sliding-window layers need no
    other mask here, see :func:`_trie_fits`)."""
    allowed = torch.zeros((len(rows), width, width), dtype=torch.bool)
    for b, (row, off) in enumerate(zip(rows, offsets)):
        a = allowed[b]
        a[torch.arange(width), torch.arange(width)] = True
        for i, parent in enumerate(row.parents):
            if parent >= 0:
                a[off + i] |= a[off + parent]
    dtype = lm.model.dtype
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
    mask = mask[:, None].to(lm.device)
    # Models mixing layer types (Gemma 3: full and sliding) take one mask per type; others take one.
    types = set(getattr(lm.model.config.get_text_config(), "layer_types", None) or ())
    return {t: mask for t in types} if len(types) > 1 else mask


def _trie_batches(lm, contexts, branch_lists, groups, token_budget, logit_budget, max_batch, row_tokens):
    """Pack ``groups`` into rows (contexts sorted so that shared prefixes meet) and rows into batches.

    Yields lists of (row, {group: [(node path, first kept, last kept + 1) per branch]}).
    """
    order = sorted(groups, key=lambda g: contexts[g])
    rows: list[tuple[_Row, dict]] = []
    for g in order:
        seqs = _sequences(contexts[g], branch_lists[g])
        row = rows[-1][0] if rows else None
        if row is None or len(row.tokens) + _new_nodes(row, seqs) > row_tokens or \
                (max_batch and len(row.groups) >= max_batch):
            rows.append((_Row([], [], {}, []), {}))
            row = rows[-1][0]
        row.groups.append(g)
        rows[-1][1][g] = [(path, lo, hi) for path, (_, lo, hi) in zip(_insert(row, seqs), seqs)]
    batch: list = []
    width = n_groups = n_logits = 0
    for row, paths in rows:
        kept = len({n for ps in paths.values() for path, lo, hi in ps for n in path[lo:hi]})
        new_width = max(width, len(row.tokens))
        over = (len(batch) + 1) * new_width > token_budget or n_logits + kept > logit_budget or \
            (max_batch and n_groups + len(row.groups) > max_batch)
        if batch and over:
            yield batch
            batch, new_width, n_groups, n_logits = [], len(row.tokens), 0, 0
        batch.append((row, paths))
        width, n_groups, n_logits = new_width, n_groups + len(row.groups), n_logits + kept
    if batch:
        yield batch


def _run_trie(lm: LoadedModel, batch, padding_side: str) -> Iterator[tuple[int, list[_Rows]]]:
    """One forward over packed rows; yields (group, log-softmax rows of each of its branches)."""
    rows = [row for row, _ in batch]
    width = max(len(r.tokens) for r in rows)
    offsets = [width - len(r.tokens) if padding_side == "left" else 0 for r in rows]
    ids = torch.full((len(rows), width), lm.tokenizer.pad_token_id, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    keep = torch.zeros((len(rows), width), dtype=torch.bool)
    for b, ((row, paths), off) in enumerate(zip(batch, offsets)):
        n = len(row.tokens)
        ids[b, off:off + n] = torch.tensor(row.tokens)
        depth = [0] * n
        for i, parent in enumerate(row.parents):
            depth[i] = depth[parent] + 1 if parent >= 0 else 0
        positions[b, off:off + n] = torch.tensor(depth)
        for ps in paths.values():
            for path, lo, hi in ps:
                keep[b, [off + node for node in path[lo:hi]]] = True
    out = lm.model(input_ids=ids.to(lm.device), attention_mask=_tree_masks(lm, rows, width, offsets),
                   position_ids=positions.to(lm.device), use_cache=False, logits_to_keep=keep.to(lm.device))
    logprobs = torch.log_softmax(out.logits.float(), dim=-1)  # [kept, V], row-major over (row, node)
    argmax = logprobs.argmax(-1)
    where = (keep.flatten().cumsum(0) - 1).view(keep.shape).tolist()  # (row, column) -> logprobs row
    for b, ((row, paths), off) in enumerate(zip(batch, offsets)):
        index = where[b]
        for g in row.groups:
            yield g, [_Rows(logprobs, torch.tensor([index[off + node] for node in path[lo:hi]], device=lm.device),
                            argmax) for path, lo, hi in paths[g]]


def _batched_branches(lm, contexts, branch_lists, memory_mb, batch_size, padding_side="left",
                      prefix_trie=True) -> Iterator[tuple[int, list[_Rows]]]:
    """Yield (context index, log-softmax rows of each of its branches), batch by batch.

    With ``prefix_trie``, contexts whose tokens and branches fit in a row run in one pass of packed
    prefix tries (:func:`_run_trie`); the rest (long branches) run in two passes, context then branches
    on its gathered cache (:func:`_run_branches`). Both give the same numbers (tests check).
    """
    token_budget, logit_budget = memory_budgets(lm, memory_mb)
    trie = [g for g in range(len(contexts))
            if prefix_trie and _trie_fits(lm, contexts[g], branch_lists[g], ROW_TOKENS)]
    two_pass = sorted(set(range(len(contexts))) - set(trie))
    with torch.inference_mode():
        for batch in _trie_batches(lm, contexts, branch_lists, trie, token_budget, logit_budget, batch_size,
                                   ROW_TOKENS):
            yield from _run_trie(lm, batch, padding_side)
        lengths = [(len(contexts[g]), [len(b.tokens) for b in branch_lists[g]]) for g in two_pass]
        for batch in plan_batches(lengths, token_budget, logit_budget, batch_size):
            batch = [two_pass[i] for i in batch]
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
    prefix_trie: bool = True,
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
    for g, rows in _batched_branches(lm, contexts, branch_lists, memory_mb, batch_size, padding_side, prefix_trie):
        for branch, branch_rows in zip(branch_lists[g], rows):
            picked, is_argmax = branch_rows.pick(branch.tokens)
            results[g].append(Score(
                token_ids=branch.tokens,
                tokens=tuple(convert(list(branch.tokens))),
                logprobs=tuple(picked),
                is_argmax=tuple(is_argmax),
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
    prefix_trie: bool = True,
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
                             padding_side=padding_side, prefix_trie=prefix_trie)
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
    prefix_trie: bool = True,
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
    for g, rows in _batched_branches(lm, contexts, branch_lists, memory_mb, batch_size, prefix_trie=prefix_trie):
        for j, branch_rows in enumerate(rows):
            row = branch_rows.last()
            top = torch.topk(row, top_k)
            found[(g, j)] = NextToken(
                selected=dict(zip(select_t.tolist(), row[select_t.to(row.device)].tolist())),
                top_ids=tuple(top.indices.tolist()),
                top_logprobs=tuple(top.values.tolist()),
            )
    return [[found[p] for p in placed] for placed in shape]
