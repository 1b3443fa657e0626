# Over 600 lines: one algorithm: the prefix-trie scorer, its packing and KV-reuse paths and next-token reads share their batching.
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
The rows of a batch are laid end to end in one sequence, without padding, and the leading tokens
that every context of the batch shares (a chat template's system turn) lie once at its start; only
attention tells the rows apart (:mod:`selfbias._packed`, for models whose attention it computes
exactly, checked once per model). Other models (attention soft-capping) run the rows as a padded
batch: rows are balanced (the smallest cap that needs no more rows) so that they have about the same
width, and the shared leading tokens run once in a one-row pass whose cache every row attends to,
where that saves enough.
A context whose continuations alone exceed a row (long answers; with packed rows, beyond
``GROUP_TOKENS`` trie nodes: up to that a context takes a row of its own), or any sequence that
reaches a sliding window, takes the two-pass path instead: every distinct context runs once (left-padded,
batched; leading tokens that every context of a batch shares run once for the batch); its key/value
cache is then gathered for each of its continuations, which run right-padded in a second pass.
``prefix_trie=False`` forces the two-pass path (the tests check both against a per-prefix reference).
Next-token reads (:func:`next_token_logprobs`, the judge) whose every prompt starts with the same
tokens (a few-shot block) and that take several batches read those tokens once for the call (a root)
and every batch, on any path, continues a copy of its key/value cache at the positions after it;
models with sliding-window layers read unshared (tests/test_shared_prefix.py).
Logits are computed only at scored positions: the decoder runs without its head and
:mod:`selfbias._logits` applies the output embedding to the kept positions a vocabulary block at a
time (an online log-sum-exp, no [positions, vocabulary] table), so a 262k vocabulary costs one row
per scored position and no more memory than one block. Log-softmax is always taken in float32.
While a batch runs, the decoder's gated MLPs run in place (:mod:`selfbias._fused`: bit-identical,
fewer fresh activation tensors).
"""

from __future__ import annotations

import copy
import weakref
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
from ._fused import inplace_mlp
from ._logits import Kept, forward_kept, plain_head, read_head
from ._packed import TrieLayout, mask_argument, packed_attention, row_spans
from .backends.types import NextToken, Score, join_texts, split_join  # re-exported (defined there, torch-free)
from .backends.types import common_prefix as _common_prefix
from .errors import ContextTooLong, ScoringError  # re-exported (defined in errors)
from .models import LoadedModel

__all__ = [
    "ContextTooLong",
    "EncodedRequest",
    "NextToken",
    "Score",
    "ScoringError",
    "encode",
    "join_texts",
    "next_token_logprobs",
    "score",
    "score_requests",
    "score_token_ids",
    "split_join",
]


@dataclass(frozen=True)
class EncodedRequest:
    """Token ids of a context and of the continuations that share it."""

    context: tuple[int, ...]
    continuations: tuple[tuple[int, ...], ...]
    join_overlaps: tuple[int, ...]


# --------------------------------------------------------------------------------------- encoding


_ids = token_ids  # the model's tokenisation with its BOS rule (see selfbias._batching)


def _encode_one(lm: LoadedModel, prompt: str, continuation: str, context_cache: dict) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """(context ids, continuation ids, join overlap) for one continuation; see the module doc."""
    context_text, whole_text = join_texts(prompt, continuation)
    if context_text not in context_cache:
        context_cache[context_text] = _ids(lm, context_text)
    return split_join(context_cache[context_text], _ids(lm, whole_text), continuation)


def encode(lm: LoadedModel, prompt: str, continuations: Sequence[str]) -> list[EncodedRequest]:
    """Tokenise a prompt and its continuations with an exact join (see the module doc's diagram).

    The split follows lm-evaluation-harness (Biderman et al., 2024): trailing spaces of the prompt move to
    the continuation, and a token straddling the join is scored with the continuation.

    Parameters
    ----------
    lm : LoadedModel
        The model whose tokenizer (and BOS rule) is used.
    prompt : str
        The text every continuation follows.
    continuations : sequence of str
        Non-empty texts to score after ``prompt`` (a single string is refused).

    Returns
    -------
    list of EncodedRequest
        One per distinct context: usually one, more only when a continuation straddles the join and
        needs a shorter context. ``join_overlaps[j]`` counts the prompt tokens moved into continuation j.
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


MIN_SHARED_PREFIX = 8  # contexts of a batch sharing at least this many leading tokens run them once ...
# ... in a pass of their own, when that saves at least this many tokens ((copies - 1) x length): the
# pass costs a read of every weight however few its tokens (SmolLM2, CPU: 60-80 ms for 24 tokens,
# the compute of about 100 tokens), so 2 rows sharing a 24-token system turn run it in each row.
MIN_PREFIX_SAVING = 128


def _prefix_pass_length(contexts: Sequence[Sequence[int]], copies: int) -> int:
    """Leading tokens of ``contexts`` worth a pass of their own, run once instead of ``copies``
    times: at least ``MIN_SHARED_PREFIX`` of them, saving at least ``MIN_PREFIX_SAVING`` tokens;
    else 0. Each context keeps at least its last token (its logits are read after the pass)."""
    k = min(_common_prefix(contexts), min(len(c) for c in contexts) - 1)
    return k if k >= MIN_SHARED_PREFIX and (copies - 1) * k >= MIN_PREFIX_SAVING else 0


def _shared_prefix_length(lm: LoadedModel, contexts: Sequence[Sequence[int]]) -> int:
    """Leading tokens common to every context of a batch (e.g. a chat template's system turn).

    Each context keeps at least one token of its own (its last logits come from the second pass).
    Sliding-window models are left alone when padding could push tokens out of the window.
    """
    if len(contexts) < 2:
        return 0
    window = getattr(lm.model.config.get_text_config(), "sliding_window", None)
    if window and 2 * max(len(c) for c in contexts) >= window:
        return 0
    return _prefix_pass_length(contexts, len(contexts))


@dataclass(frozen=True)
class _Root:
    """The leading tokens that every context of a call shares (a judge's few-shot block), read once
    (:func:`_read_root`): how many, and their key/value cache (batch 1), never written to: every pass
    that continues it works on a :func:`_fork`."""

    length: int
    cache: object


def _full_attention(lm: LoadedModel) -> bool:
    """Whether every layer attends to the whole sequence (no sliding window), so that a cache of
    leading tokens stands for them at any later position."""
    config = lm.model.config.get_text_config()
    types = getattr(config, "layer_types", None)
    if types:
        return all(t == "full_attention" for t in types)
    return not getattr(config, "sliding_window", None) or getattr(config, "use_sliding_window", True) is False


def _root_length(lm: LoadedModel, contexts: Sequence[Sequence[int]]) -> int:
    """Leading tokens common to every context of a call, worth reading once for the whole call
    (:func:`_prefix_pass_length`); 0 for a model with sliding-window layers (their cache keeps only a
    window and is not shared)."""
    if len(contexts) < 2 or not _full_attention(lm):
        return 0
    return _prefix_pass_length(contexts, len(contexts))


def _read_root(lm: LoadedModel, tokens: Sequence[int]) -> _Root | None:
    """One pass over ``tokens`` for its cache; None (read unshared) unless every layer's cache is a
    plain growing key/value cache, the one kind :func:`_fork` may copy by reference."""
    from transformers.cache_utils import DynamicLayer

    _, cache = forward_kept(lm, None, input_ids=torch.tensor([list(tokens)], device=lm.device), use_cache=True)
    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer) is not DynamicLayer for layer in layers):
        return None
    return _Root(len(tokens), cache)


_ROOTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> (tokens, weights' state, _Root)


def _weights_state(model) -> tuple | None:
    """Changes whenever a weight is replaced or written in place (a training step, a loaded state);
    None where the weights keep no version counter (made under ``torch.inference_mode``): then no
    root is kept across calls."""
    try:
        return tuple((p.data_ptr(), p._version) for p in model.parameters())
    except RuntimeError:
        return None


def _root(lm: LoadedModel, tokens: tuple[int, ...], read: bool) -> _Root | None:
    """A root over ``tokens`` or their first ones: the one kept from an earlier call of this model
    (the judge reads a chunk of items per call, each starting with the same few-shot block) while its
    weights are unchanged, where its tokens begin ``tokens`` and a new read would not save
    ``MIN_PREFIX_SAVING`` more; else read now when ``read`` (and kept, one root per model); else None."""
    state = _weights_state(lm.model)
    kept = _ROOTS.get(lm.model)
    if kept is not None and state is not None and kept[1] == state and tokens[:len(kept[0])] == kept[0] and (
            not read or len(tokens) - len(kept[0]) < MIN_PREFIX_SAVING):
        return kept[2]
    if not read:
        return None
    with torch.inference_mode(), inplace_mlp(lm):
        root = _read_root(lm, tokens)
    if root is not None and state is not None:
        _ROOTS[lm.model] = (tokens, state, root)
    return root


def _fork(root: _Root, rows: int = 1):
    """A cache holding ``root``'s keys and values for ``rows`` rows, that a pass may extend.

    A growing layer replaces its tensors when it is extended or its rows are selected (never writes
    into them), so copying the layer objects is enough: ``root`` stays as it is for the next fork."""
    cache = copy.copy(root.cache)
    cache.layers = [copy.copy(layer) for layer in root.cache.layers]
    if rows != 1:
        device = cache.layers[0].keys.device
        cache.batch_select_indices(torch.zeros(rows, dtype=torch.long, device=device))
    return cache


def forward_contexts_shared(lm: LoadedModel, contexts: Sequence[Sequence[int]], shared: int,
                            root: _Root | None = None):
    """Like :func:`forward_contexts` (with ``kept=True``), running the ``shared`` common leading tokens once::

        pass 1 (batch 1)   [s0 .. s(p-1)]                      cache copied to every row
        pass 2 (batch B)   [s0 .. s(p-1) | t0 t1 t2 pad pad]   each row's own tail, right-padded

    With a ``root`` (:class:`_Root`), the contexts are what follows it: every pass continues its
    cache at position ``root.length`` (``shared`` may then be 0: no pass 1).
    """
    r, n = (root.length if root else 0), len(contexts)
    cache = _fork(root) if root else None
    if shared:
        prefix = torch.tensor([list(contexts[0][:shared])], device=lm.device)
        positions = r + torch.arange(shared, device=lm.device)[None, :]
        _, cache = forward_kept(lm, None, input_ids=prefix, position_ids=positions, cache=cache, use_cache=True)
    cache.batch_select_indices(torch.zeros(n, dtype=torch.long, device=lm.device))
    ids, tail_mask = right_pad([c[shared:] for c in contexts], lm.tokenizer.pad_token_id, lm.device)
    lengths = tail_mask.sum(-1)
    last = torch.zeros_like(tail_mask, dtype=torch.bool)
    last[torch.arange(n), lengths - 1] = True
    mask = torch.cat([torch.ones((n, r + shared), dtype=torch.long, device=lm.device), tail_mask], 1)
    positions = r + shared + torch.arange(ids.shape[1], device=lm.device)[None, :].expand_as(ids)
    kept, cache = forward_kept(lm, last, input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache,
                               use_cache=True)
    return kept, cache, mask, r + shared + lengths


def _run_branches(lm: LoadedModel, contexts: Sequence[Sequence[int]], branches: Sequence[_Branch],
                  padding_side: str = "left", root: _Root | None = None) -> tuple[Kept, list[torch.Tensor]]:
    """Two passes: contexts, then branches on their gathered cache.

    Returns the kept positions of both passes and, per branch, the indices of its positions in
    them: n_tokens positions for "continuation" (the context's last, then x0..x(n-2)), the last one
    for "next". With a ``root``, the contexts are what follows it (:func:`forward_contexts_shared`).
    """
    shared = _shared_prefix_length(lm, contexts)
    if shared or root:
        last, cache, ctx_mask, ctx_len = forward_contexts_shared(lm, contexts, shared, root)
    else:
        last, cache, ctx_mask, ctx_len = forward_contexts(lm, contexts, padding_side, kept=True)
    # Tokens to feed after the context: a continuation needs predictions for x1..x(n-1) (x0 comes from
    # the context's last position); a "next" branch needs the prediction after its last token.
    fed = [b.tokens[:-1] if b.want == "continuation" else b.tokens for b in branches]
    index: list[list[int]] = [[b.group] if b.want == "continuation" else [] for b in branches]
    parts = [last]  # positions 0..B-1: each context's last token
    live = [i for i, f in enumerate(fed) if f]
    if live:
        group = torch.tensor([branches[i].group for i in live], device=lm.device)
        cache.batch_select_indices(group)
        ids, mask = right_pad([fed[i] for i in live], lm.tokenizer.pad_token_id, lm.device)
        positions = ctx_len[group, None] + torch.arange(ids.shape[1], device=lm.device)[None, :]
        keep = mask.bool()
        for row, i in enumerate(live):
            if branches[i].want == "next":  # only the last fed token of a "next" branch is needed
                keep[row, :] = False
                keep[row, len(fed[i]) - 1] = True
        kept, _ = forward_kept(lm, keep, input_ids=ids, attention_mask=torch.cat([ctx_mask[group], mask], dim=1),
                               position_ids=positions, cache=cache, use_cache=True)
        parts.append(kept)
        start = len(contexts)  # the branch pass's kept positions, row-major over (branch, position)
        for i, count in zip(live, keep.sum(-1).tolist()):
            index[i].extend(range(start, start + count))
            start += count
    return Kept.cat(parts), [torch.tensor(ix, dtype=torch.long) for ix in index]


@dataclass(frozen=True)
class _Read:
    """What one branch read: log p of each of its tokens and whether each was the argmax
    ("continuation"), or the whole next-token log-softmax after it ("next", ``last`` [V])."""

    logprobs: list[float]
    is_argmax: list[bool]
    last: torch.Tensor | None = None


def _read_branches(lm: LoadedModel, kept: Kept, items: Sequence[tuple[int, list[torch.Tensor]]],
                   branch_lists) -> Iterator[tuple[int, list[_Read]]]:
    """Read every branch of a batch from its kept positions in one pass over the head (see
    :mod:`selfbias._logits`); yields (group, reads per branch)."""
    rows, targets, full_rows = [], [], []
    for g, indices in items:
        for branch, index in zip(branch_lists[g], indices):
            if branch.want == "continuation":
                rows.append(index)
                targets.append(torch.tensor(branch.tokens, dtype=torch.long))
            else:
                full_rows.append(int(index[-1]))
    empty = torch.zeros(0, dtype=torch.long)
    reads = read_head(lm, kept, torch.cat(rows) if rows else empty, torch.cat(targets) if targets else empty,
                      torch.tensor(full_rows, dtype=torch.long))
    logprobs, is_argmax = reads.logprobs.tolist(), reads.is_argmax.tolist()
    start = n_full = 0
    for g, indices in items:
        out = []
        for branch, index in zip(branch_lists[g], indices):
            if branch.want == "continuation":
                n = len(index)
                out.append(_Read(logprobs[start:start + n], is_argmax[start:start + n]))
                start += n
            else:
                out.append(_Read([], [], reads.full[n_full]))
                n_full += 1
        yield g, out


# ------------------------------------------------------------------------------ prefix-trie pass

ROW_TOKENS = 384  # most distinct tokens in one packed row of the prefix-trie pass (see _trie_batches)
# A context whose branches make a larger trie than a row takes a row of its own in the trie pass when
# rows are packed (no padding to pay), up to this many nodes; beyond, the two-pass path is cheaper
# because attention grows with the square of a row (SmolLM2, CPU, 8 prompts x 5 answers against the
# two-pass path: 19 % faster at about 415 nodes, 13 % at 530, even at 770, 7 % slower at 1,010).
GROUP_TOKENS = 768


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
    pending: dict = {}
    count = 0
    for seq, _, _ in seqs:
        node = -1
        for t in seq:
            key = (node, t)
            found = row.children.get(key)
            if found is None:
                found = pending.get(key)
                if found is None:
                    count += 1
                    # a pending node gets a flat id below the root's -1 (not its key: keys nested one
                    # level per token overflowed the recursion limit when hashed, on 1000-token prompts)
                    found = pending[key] = -1 - count
            node = found  # a pending node's children are not in the row either: new as well
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


def _group_size(context, branches) -> int:
    """Trie nodes of one context and its branches alone in a row."""
    return _new_nodes(_Row([], [], {}, []), _sequences(context, branches))


def _trie_fits(lm: LoadedModel, context, branches, row_tokens: int, size: int | None = None, offset: int = 0) -> bool:
    """Whether one context and its branches run in the trie pass (alone they fill at most one row;
    ``size``: their :func:`_group_size`, when known; ``offset``: tokens before ``context``, held in a cache).

    Position ids are depths, so a sliding-window model is exact here only while every sequence is
    shorter than its window (then the window masks nothing).
    """
    seqs = _sequences(context, branches)
    if (_group_size(context, branches) if size is None else size) > row_tokens:
        return False
    window = getattr(lm.model.config.get_text_config(), "sliding_window", None)
    return not (window and offset + max(len(q) for q, _, _ in seqs) >= window)


def _allowed(parents: Sequence[Sequence[int]], width: int, offsets: Sequence[int], prefix: int = 0) -> torch.Tensor:
    """Which keys each position sees, ``[B, W, prefix + W]`` bool: every position the ``prefix``
    columns (shared by every row; none without), each node itself and its ancestors (``parents[b][i]``,
    -1 for none in the row), pads only themselves."""
    allowed = torch.zeros((len(parents), width, prefix + width), dtype=torch.bool)
    allowed[:, :, :prefix] = True
    cols = prefix + torch.arange(width)
    for b, (row_parents, off) in enumerate(zip(parents, offsets)):
        a = allowed[b]
        a[torch.arange(width), cols] = True
        for i, parent in enumerate(row_parents):
            if parent >= 0:
                a[off + i, prefix:] |= a[off + parent, prefix:]
    return allowed


def _additive(lm: LoadedModel, allowed: torch.Tensor) -> torch.Tensor:
    """``allowed`` [B, W, K] as the additive mask [B, 1, W, K] in the model's dtype, on its device."""
    dtype = lm.model.dtype
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None].to(lm.device)


def _tree_masks(lm: LoadedModel, parents: Sequence[Sequence[int]], width: int, offsets: Sequence[int],
                prefix: int = 0):
    """Additive attention masks [B, 1, W, prefix + W] of :func:`_allowed`; a dict per layer type for
    models that take one (sliding-window layers need no other mask here, see :func:`_trie_fits`)."""
    mask = _additive(lm, _allowed(parents, width, offsets, prefix))
    # Models mixing layer types (Gemma 3: full and sliding) take one mask per type; others take one.
    types = set(getattr(lm.model.config.get_text_config(), "layer_types", None) or ())
    return {t: mask for t in types} if len(types) > 1 else mask


def _pack_rows(contexts, branch_lists, order, cap: int, max_batch) -> list[tuple[_Row, dict]]:
    """Next-fit packing of groups (in ``order``) into rows of at most ``cap`` trie nodes (a group
    alone may exceed it) and at most ``max_batch`` groups.

    Returns (row, {group: [(node path, first kept, last kept + 1) per branch]}) per row."""
    rows: list[tuple[_Row, dict]] = []
    for g in order:
        seqs = _sequences(contexts[g], branch_lists[g])
        row = rows[-1][0] if rows else None
        if row is None or len(row.tokens) + _new_nodes(row, seqs) > cap or \
                (max_batch and len(row.groups) >= max_batch):
            rows.append((_Row([], [], {}, []), {}))
            row = rows[-1][0]
        row.groups.append(g)
        rows[-1][1][g] = [(path, lo, hi) for path, (_, lo, hi) in zip(_insert(row, seqs), seqs)]
    return rows


def _count_rows(sizes: Sequence[int], shared: Sequence[int], cap: int, max_batch) -> int:
    """Rows next-fit packing needs at ``cap``: group i adds ``sizes[i]`` nodes to a row, less the
    ``shared[i]`` leading tokens it shares with group i - 1 when that one is in the same row."""
    rows = width = in_row = 0
    for size, common in zip(sizes, shared):
        add = size - common if in_row else size
        if not in_row or width + add > cap or (max_batch and in_row >= max_batch):
            rows, width, in_row = rows + 1, size, 1
        else:
            width, in_row = width + add, in_row + 1
    return rows


def _trie_batches(lm, contexts, branch_lists, groups, token_budget, logit_budget, max_batch, row_tokens,
                  full_only: bool = False, sizes: dict | None = None, extra: int = 0):
    """Pack ``groups`` into rows (contexts sorted so that shared prefixes meet) and rows into batches.

    Rows are balanced: the smallest node cap that needs no more rows than ``row_tokens`` does, so
    that the rows of a batch have about the same width and padding them costs little (next-fit
    never needs more rows for a larger cap, so a bisection finds it).
    ``sizes``: each group's :func:`_group_size`, when known; ``extra``: cached tokens every row
    holds besides its nodes (a root copied to padded rows), counted in its width.
    Yields lists of (row, {group: [(node path, first kept, last kept + 1) per branch]}).
    """
    order = sorted(groups, key=lambda g: contexts[g])
    if not order:
        return
    # The bisection counts rows from each group's size alone and the leading tokens it shares with
    # the group before it (sorted contexts: its nearest neighbour), without building tries; the
    # rows are then packed once, exactly, with the cap it found.
    nodes = [sizes[g] if sizes else _group_size(contexts[g], branch_lists[g]) for g in order]
    shared = [0] + [_common_prefix((contexts[a], contexts[b])) for a, b in zip(order, order[1:])]
    target = _count_rows(nodes, shared, row_tokens, max_batch)
    cap = row_tokens
    if target > 1:
        lo, hi = 1, max(row_tokens, max(nodes))
        while lo < hi:
            mid = (lo + hi) // 2
            if _count_rows(nodes, shared, mid, max_batch) <= target:
                hi = mid
            else:
                lo = mid + 1
        cap = lo
    rows = _pack_rows(contexts, branch_lists, order, cap, max_batch)
    # vocabulary-sized rows per packed row: every kept node, or only "next" branches' (``full_only``)
    kept = [len({n for g, ps in paths.items() for (path, lo, hi), branch in zip(ps, branch_lists[g])
                 if not full_only or branch.want == "next" for n in path[lo:hi]}) for _, paths in rows]

    def fits(first: int, end: int) -> bool:  # rows[first:end] as one batch
        return end - first == 1 or (
            (end - first) * (extra + max(len(row.tokens) for row, _ in rows[first:end])) <= token_budget
            and sum(kept[first:end]) <= logit_budget
            and not (max_batch and sum(len(row.groups) for row, _ in rows[first:end]) > max_batch))

    cuts = [0]  # next-fit batches, then as many batches of even size when those fit (no lone last row)
    for end in range(1, len(rows) + 1):
        if not fits(cuts[-1], end):
            cuts.append(end - 1)
    cuts.append(len(rows))
    k = len(cuts) - 1
    even = [i * len(rows) // k for i in range(k + 1)]
    if all(fits(a, b) for a, b in zip(even, even[1:])):
        cuts = even
    for a, b in zip(cuts, cuts[1:]):
        yield rows[a:b]


def _batch_prefix(contexts, batch, packed: bool = False) -> int:
    """Leading tokens that every context of a batch of several rows shares (a chat template's system
    turn), to run once for the batch instead of once per row; 0 for one row. Each context keeps its
    last token in the rows (its logits are kept there). Padded rows (:func:`_run_trie`) share it only
    where a pass of its own pays (:func:`_prefix_pass_length`); packed rows (:func:`_run_packed`)
    share any length, at no cost.

    Every row's trie then starts with these tokens as a chain: nodes 0..p-1 (the first sequence
    inserted creates them and every other one passes through them)."""
    if len(batch) < 2:
        return 0
    batch_contexts = [contexts[g] for row, _ in batch for g in row.groups]
    if packed:
        return min(_common_prefix(batch_contexts), min(len(c) for c in batch_contexts) - 1)
    return _prefix_pass_length(batch_contexts, len(batch))


def _after_prefix(row: _Row, p: int) -> tuple[list[int], list[int], list[int]]:
    """A row's nodes after the batch's ``p`` prefix nodes: (tokens, position ids, parents), parents
    counted from the first of them (-1: the prefix's last node, which every one descends from)."""
    depth = [0] * len(row.parents)
    for i, parent in enumerate(row.parents):
        depth[i] = depth[parent] + 1 if parent >= 0 else 0  # position id: index in its own sequence
    return row.tokens[p:], depth[p:], [q - p if q >= p else -1 for q in row.parents[p:]]


def _kept_columns(batch, bases: Sequence[int], p: int, n_columns: int
                  ) -> tuple[torch.Tensor, list[tuple[int, list[torch.Tensor]]]]:
    """Which of a pass's ``n_columns`` flat columns are kept, and per group the indices of each of
    its branches' positions among the kept ones (row-major), for rows whose node n (n >= p) lies
    at column ``bases[b] + n - p``::

        padded rows   bases[b] = b * W + offset of row b        packed rows   bases[b] = start of row b
    """
    keep = torch.zeros(n_columns, dtype=torch.bool)
    for (row, paths), base in zip(batch, bases):
        for ps in paths.values():
            for path, lo, hi in ps:
                keep[[base + node - p for node in path[lo:hi]]] = True
    where = (keep.cumsum(0) - 1).tolist()  # column -> kept position
    items = [(g, [torch.tensor([where[base + node - p] for node in path[lo:hi]], dtype=torch.long)
                  for path, lo, hi in paths[g]])
             for (row, paths), base in zip(batch, bases) for g in row.groups]
    return keep, items


def _run_trie(lm: LoadedModel, batch, padding_side: str, prefix: Sequence[int] = (), root: _Root | None = None
              ) -> tuple[Kept, list[tuple[int, list[torch.Tensor]]]]:
    """One forward over packed rows; returns the kept positions and, per group, the indices of each
    of its branches' positions in them.

    With a ``prefix`` shared by every row (:func:`_batch_prefix`), it runs once first and its
    key/value cache, copied to every row, stands for the rows' first ``len(prefix)`` nodes::

        pass 1 (batch 1)   [s0 .. s(p-1)]
        pass 2 (batch B)   [s0 .. s(p-1) | row 0's other nodes     ]   every node sees the prefix,
                           [s0 .. s(p-1) | pad pad row 1's nodes   ]   then its ancestors in its row

    With a ``root`` (:class:`_Root`), the rows' contexts are what follows it: the passes continue
    its cache, every position ``root.length`` further on.
    """
    p, r = len(prefix), (root.length if root else 0)
    rows = [row for row, _ in batch]
    width = max(len(r.tokens) for r in rows) - p
    offsets = [width - (len(r.tokens) - p) if padding_side == "left" else 0 for r in rows]
    ids = torch.full((len(rows), width), lm.tokenizer.pad_token_id, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    parents = []
    for b, (row, off) in enumerate(zip(rows, offsets)):
        tokens, depths, row_parents = _after_prefix(row, p)
        ids[b, off:off + len(tokens)] = torch.tensor(tokens)
        positions[b, off:off + len(tokens)] = r + torch.tensor(depths)
        parents.append(row_parents)
    keep, items = _kept_columns(batch, [b * width + off for b, off in enumerate(offsets)], p, len(rows) * width)
    cache = _fork(root) if root else None
    if p:
        _, cache = forward_kept(lm, None, input_ids=torch.tensor([list(prefix)], device=lm.device),
                                position_ids=r + torch.arange(p, device=lm.device)[None, :], cache=cache,
                                use_cache=True)
    if cache is not None:
        cache.batch_select_indices(torch.zeros(len(rows), dtype=torch.long, device=lm.device))
    kept, _ = forward_kept(lm, keep.view(len(rows), width).to(lm.device), input_ids=ids.to(lm.device),
                           attention_mask=_tree_masks(lm, parents, width, offsets, r + p),
                           position_ids=positions.to(lm.device), cache=cache, use_cache=cache is not None)
    return kept, items


def _run_packed(lm: LoadedModel, batch, prefix: Sequence[int] = (), root: _Root | None = None
                ) -> tuple[Kept, list[tuple[int, list[torch.Tensor]]]]:
    """:func:`_run_trie` without padding: the rows laid end to end in one sequence, the shared
    ``prefix`` once at its start, each row attending to the prefix and its own trie
    (:mod:`selfbias._packed`)::

        packed (batch 1)   [s0 .. s(p-1) | row 0's other nodes | row 1's other nodes | ...]

    With a ``root`` (:class:`_Root`), the rows' contexts are what follows it: the pass continues its
    cache (every node sees it), every position ``root.length`` further on.

    Returns what :func:`_run_trie` returns.
    """
    p, r = len(prefix), (root.length if root else 0)
    tokens, positions, widths, masks = list(prefix), list(range(r, r + p)), [], []
    for row, _ in batch:
        row_tokens, depths, parents = _after_prefix(row, p)
        tokens += row_tokens
        positions += [r + d for d in depths]
        widths.append(len(row_tokens))
        masks.append(_additive(lm, _allowed([parents], widths[-1], [0], r + p)))
    spans = row_spans(widths, p)
    keep, items = _kept_columns(batch, [start for start, _ in spans], p, len(tokens))
    cache = _fork(root) if root else None
    with packed_attention(lm.model):
        kept, _ = forward_kept(lm, keep[None].to(lm.device), input_ids=torch.tensor([tokens], device=lm.device),
                               position_ids=torch.tensor([positions], device=lm.device),
                               attention_mask=mask_argument(lm.model), trie=TrieLayout(p, spans, tuple(masks)),
                               cache=cache, use_cache=cache is not None)
    return kept, items


_PACKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> whether _run_packed is exact


def packed_rows(lm: LoadedModel) -> bool:
    """Whether the trie pass may run packed (:func:`_run_packed`) on this model.

    Checked once per model: a small batch of two rows sharing a prefix runs both ways and the kept
    states must agree to rounding (relative difference 1e-3 in float32, 3e-2 in 16-bit types; a
    wrong attention differs by order 1). A model whose attention takes what the packed attention
    does not (soft-capping, position biases, sinks) or whose modules do not read the attention
    function by name keeps the padded path.
    """
    model = lm.model
    if model not in _PACKED:
        vocab = model.get_input_embeddings().weight.shape[0]
        gen = torch.Generator().manual_seed(0)

        def ids(n: int) -> tuple[int, ...]:
            return tuple(torch.randint(1, vocab, (n,), generator=gen).tolist())

        system = ids(5)
        contexts = [system + ids(3), system + ids(4)]
        branches = [[_Branch(g, ids(3), "continuation"), _Branch(g, ids(2), "continuation"),
                     _Branch(g, ids(2), "next")] for g in range(2)]
        rows = _pack_rows(contexts, branches, [0, 1], cap=10, max_batch=None)  # one row per context
        try:
            with torch.inference_mode():
                states = []
                for kept, items in (_run_trie(lm, rows, "left", system), _run_packed(lm, rows, system)):
                    states.append(torch.cat([kept.states[ix] for _, per_branch in sorted(items, key=lambda i: i[0])
                                             for ix in per_branch]).float())
            padded, packed = states
            tol = 1e-3 if model.dtype == torch.float32 else 3e-2
            _PACKED[model] = bool((packed - padded).norm() <= tol * padded.norm())
        except Exception:  # e.g. NotImplementedError from selfbias._packed (soft-capping): padded rows
            _PACKED[model] = False
    return _PACKED[model]


def _plan(lm, contexts, branch_lists, token_budget, logit_budget, batch_size, prefix_trie, offset=0):
    """The batches of :func:`_batched_branches`: (trie batches, two-pass batches as context indices,
    whether trie rows are packed). ``offset``: tokens before every context, held in a shared cache."""
    # Where the head is applied block by block, a continuation's position costs one hidden state;
    # only whole distributions returned ("next" branches) take vocabulary-sized rows.
    full_only = plain_head(lm)
    sizes = {g: _group_size(contexts[g], branch_lists[g]) for g in range(len(contexts))} if prefix_trie else {}
    packed = prefix_trie and packed_rows(lm)
    limit = max(ROW_TOKENS, GROUP_TOKENS) if packed else ROW_TOKENS
    trie = [g for g in sizes if _trie_fits(lm, contexts[g], branch_lists[g], limit, sizes[g], offset)]
    two_pass = sorted(set(range(len(contexts))) - set(trie))
    trie_batches = list(_trie_batches(lm, contexts, branch_lists, trie, token_budget, logit_budget, batch_size,
                                      ROW_TOKENS, full_only, sizes, 0 if packed else offset))
    lengths = [(offset + len(contexts[g]), [len(b.tokens) for b in branch_lists[g]]) for g in two_pass]
    logit_rows = [sum(b.want == "next" for b in branch_lists[g]) for g in two_pass] if full_only else None
    two_pass_batches = [[two_pass[i] for i in batch]
                        for batch in plan_batches(lengths, token_budget, logit_budget, batch_size, logit_rows)]
    return trie_batches, two_pass_batches, packed


def _batched_branches(lm, contexts, branch_lists, memory_mb, batch_size, padding_side="left",
                      prefix_trie=True, share_root=False) -> Iterator[tuple[int, list[_Read]]]:
    """Yield (context index, what each of its branches read), batch by batch.

    With ``prefix_trie``, contexts whose tokens and branches fit in a row (packed rows: up to
    ``GROUP_TOKENS``, alone in a row) run in one pass of packed prefix tries: the rows laid end to
    end without padding (:func:`_run_packed`) where the model's attention allows it
    (:func:`packed_rows`), else as a padded batch (:func:`_run_trie`); the rest (long branches) run
    in two passes, context then branches on its gathered cache (:func:`_run_branches`). All give
    the same numbers (tests check).
    Each batch's positions are then read in one pass over the head (:func:`_read_branches`).

    With ``share_root``, the leading tokens that every context shares (:func:`_root_length`: a
    judge's few-shot block and whatever its items' prompts share after it) are read once for the
    whole call where the batches would read them again (at least ``MIN_PREFIX_SAVING`` tokens more:
    within a batch the rows share them already) or they are that long (kept for the model's next
    call: the judge's next chunk of items, :func:`_root`), or an earlier call read them, and every batch continues their cache (:class:`_Root`): the contexts are planned and
    run as what follows the root. Batches whose rows are padded count the root's tokens in their
    width (each row holds a copy of its cache); packed rows hold none.
    """
    token_budget, logit_budget = memory_budgets(lm, memory_mb)
    plan = _plan(lm, contexts, branch_lists, token_budget, logit_budget, batch_size, prefix_trie)
    root = None
    r = _root_length(lm, contexts) if share_root else 0
    if r:  # kept from an earlier call, or read now where the batches would read it again or it is long
        worth = max(r, (len(plan[0]) + len(plan[1]) - 1) * r) >= MIN_PREFIX_SAVING
        root = _root(lm, tuple(contexts[0][:r]), worth)
    if root is not None:
        r = root.length
        contexts = [c[r:] for c in contexts]
        plan = _plan(lm, contexts, branch_lists, token_budget, logit_budget, batch_size, prefix_trie, r)
    trie_batches, two_pass_batches, packed = plan
    with torch.inference_mode(), inplace_mlp(lm):
        for batch in trie_batches:
            prefix = contexts[batch[0][0].groups[0]][:_batch_prefix(contexts, batch, packed)]
            kept, items = (_run_packed(lm, batch, prefix, root) if packed
                           else _run_trie(lm, batch, padding_side, prefix, root))
            yield from _read_branches(lm, kept, items, branch_lists)
        for batch in two_pass_batches:
            flat = [_Branch(j, b.tokens, b.want) for j, g in enumerate(batch) for b in branch_lists[g]]
            kept, indices = _run_branches(lm, [contexts[g] for g in batch], flat, padding_side, root)
            items, start = [], 0
            for g in batch:
                n = len(branch_lists[g])
                items.append((g, indices[start:start + n]))
                start += n
            yield from _read_branches(lm, kept, items, branch_lists)


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
    """Exact log-probabilities of given continuation token ids after given context ids.

    ``log p(x_j | context, x_<j)`` for every token of every continuation, from one forward pass per
    batch of packed prefix tries (or the two-pass path, see the module doc); equal to one plain forward
    per prefix within float rounding (tests: 1e-4 nats in float32).

    Parameters
    ----------
    lm : LoadedModel
        The model to score under.
    requests : sequence of (context ids, sequence of continuation ids)
        ``requests[i] = (context, [continuation, ...])``; no context or continuation may be empty.
    truncate : bool, default False
        Drop context tokens on the left when context + longest continuation exceed the context window
        (recorded in ``Score.truncated_tokens``); otherwise that raises :class:`ContextTooLong`.
    memory_mb : float, default 1024
        Rough memory for one batch (activations, cache and vocabulary-sized logit rows).
    batch_size : int, optional
        At most this many contexts per batch (and per packed row); default: as ``memory_mb`` allows.
    padding_side : {"left", "right"}, default "left"
        Where padding goes; the numbers are the same either way (tests check both).
    prefix_trie : bool, default True
        Pack contexts and continuations into prefix tries (one pass); False forces the two-pass path.

    Returns
    -------
    list of list of Score
        ``scores[i][j]`` for continuation j of request i, in input order.
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
        for branch, read in zip(branch_lists[g], rows):
            results[g].append(Score(
                token_ids=branch.tokens,
                tokens=tuple(convert(list(branch.tokens))),
                logprobs=tuple(read.logprobs),
                is_argmax=tuple(read.is_argmax),
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
    """Log-probabilities of continuations after prompts, many prompts in one call.

    What is measured is ``log p(continuation | prompt)`` token by token, with the prompt/continuation
    split of :func:`encode` (as lm-evaluation-harness's loglikelihood, Biderman et al., 2024). Identical
    contexts across requests run once, and prompts sharing leading tokens (a chat template's system
    turn) share their computation. This is the fast way to score many prompts (a notebook's loop of
    :func:`score` calls is slower): ``score_requests(lm, [(prompt, answers), ...])``.

    Parameters
    ----------
    lm : LoadedModel
        The model to score under.
    requests : sequence of (str, sequence of str)
        ``requests[i] = (prompt, [continuation, ...])``; continuations must be non-empty.
    truncate : bool, default False
        Drop prompt tokens on the left when prompt + continuation exceed the context window
        (recorded in ``Score.truncated_tokens``); otherwise that raises :class:`ContextTooLong`.
    memory_mb : float, default 1024
        Rough memory for one batch (activations, cache and vocabulary-sized logit rows).
    batch_size : int, optional
        At most this many contexts per batch; default: as ``memory_mb`` allows.
    padding_side : {"left", "right"}, default "left"
        Where padding goes; the numbers are the same either way.
    prefix_trie : bool, default True
        Pack prompts and continuations into prefix tries (one pass); False forces the two-pass path.

    Returns
    -------
    list of list of Score
        ``scores[i][j]`` for continuation j of request i, in input order; ``Score.join_overlap`` is
        set where a token straddled the join.
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
    """Log-probabilities of each continuation after one ``prompt`` (one shared pass).

    Same measure as :func:`score_requests` for a single prompt; to score many prompts, pass them all
    to :func:`score_requests` at once (they then share batches and common prefixes).

    Parameters
    ----------
    lm : LoadedModel
        The model to score under.
    prompt : str
        The text every continuation follows.
    continuations : sequence of str
        Non-empty texts to score after ``prompt``.
    **kwargs
        Passed to :func:`score_requests` (``truncate``, ``memory_mb``, ``batch_size``,
        ``padding_side``, ``prefix_trie``).

    Returns
    -------
    list of Score
        One per continuation, in order.
    """
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
    shared_prefix: bool = True,
) -> list[list[NextToken]]:
    """The next-token distribution after ``prefix + suffix`` for each suffix of each request.

    Used by the judge to read a verdict token's log-probability (as in the self-recognition setup of
    Panickssery et al., 2024). The prefix runs once and the suffixes share it (the judge's prompts of
    one item share everything up to the answer); the leading tokens that every prompt of the call
    shares (a few-shot block) run once for the whole call, and every batch continues their key/value
    cache (``shared_prefix``); only the last position's logits are computed, and log-softmax is taken
    in float32. The prompts are tokenised whole (prefix + suffix) and what they share is their
    longest common token prefix, so sharing never changes a token.

    Parameters
    ----------
    lm : LoadedModel
        The model to read.
    requests : sequence of (str, sequence of str)
        ``requests[i] = (prefix, [suffix, ...])``; an empty suffix reads the distribution after the
        prefix alone.
    select : sequence of int, default ()
        Token ids whose log-probs to return for every prompt.
    top_k : int, default 10
        How many most likely tokens to return.
    memory_mb : float, default 1024
        Rough memory for one batch.
    batch_size : int, optional
        At most this many distinct prefixes per batch; default: as ``memory_mb`` allows.
    prefix_trie : bool, default True
        Pack prefixes and suffixes into prefix tries (one pass); False forces the two-pass path.
    shared_prefix : bool, default True
        Read the leading tokens common to every prompt once for the call (where they are at least
        ``MIN_SHARED_PREFIX`` tokens and save ``MIN_PREFIX_SAVING``, on models whose every layer
        attends to the whole sequence; sliding-window models read unshared). Their key/value cache
        is kept, one per model, for the next call starting with them (the judge's next chunk of
        items) while the model's weights are unchanged. The numbers are those of the unshared read
        to float rounding (tests: ``p_yes`` within 1e-5, log-probs within 1e-4 in float32).

    Returns
    -------
    list of list of NextToken
        ``out[i][j]`` for suffix j of request i: ``selected`` (id -> log-prob for ``select``) and the
        top-k ids and log-probs, most likely first.
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
    for g, rows in _batched_branches(lm, contexts, branch_lists, memory_mb, batch_size, prefix_trie=prefix_trie,
                                     share_root=shared_prefix):
        for j, read in enumerate(rows):
            row = read.last
            top = torch.topk(row, top_k)
            found[(g, j)] = NextToken(
                selected=dict(zip(select_t.tolist(), row[select_t.to(row.device)].tolist())),
                top_ids=tuple(top.indices.tolist()),
                top_logprobs=tuple(top.values.tolist()),
            )
    return [[found[p] for p in placed] for placed in shape]
