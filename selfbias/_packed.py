"""Attention over packed prefix-trie rows, without padding (private).

The scorer's trie pass (:mod:`selfbias.scoring`) runs many rows at once; each row is a prefix trie of
contexts and their continuations, and every row starts with the same system turn. Run as a padded
batch ``[B, W]`` that costs three things besides the useful work: the pads of every row shorter than
the widest (about 6 % of the tokens on long answers), a pass of its own for the shared system turn
(a read of every weight for a few tokens) and copying its key/value cache into every row.

Here the rows are laid end to end in one sequence ``[1, N]``: the shared prefix once, then each row's
own nodes. The linear layers see every token exactly once and no pad. Only attention needs the rows
apart, and :func:`trie_attention` does it row by row::

    packed    [ s0 .. s(p-1) | row 0's nodes | row 1's nodes | ... ]
    attention   prefix: causal    row r's nodes: the prefix and their ancestors in row r (its mask)

Each row's attention is the same computation as the padded batch's row (the same keys, the same
mask), so the numbers agree to float rounding (tests check against the token-by-token reference).

The model's attention modules pick their function by name from transformers' ``AttentionInterface``
registry; :func:`packed_attention` switches a model to :data:`NAME` for a ``with`` block, and a
forward finds the rows in its ``trie`` keyword argument (:class:`TrieLayout`), which transformers
passes through to the attention function. Anything else (no ``trie``) goes to ``sdpa``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

__all__ = ["NAME", "TrieLayout", "packed_attention", "trie_attention"]

NAME = "selfbias_trie"

# Keyword arguments of attention functions that change the arithmetic beyond a mask and a scale:
# a model passing any of them keeps the padded path.
_UNSUPPORTED = ("softcap", "position_bias", "s_aux", "sinks")


@dataclass(frozen=True)
class TrieLayout:
    """Where the rows lie in a packed sequence.

    Attributes
    ----------
    prefix : int
        Leading positions shared by every row (attended causally, and by every row's nodes).
    spans : tuple of (start, end)
        Each row's positions ``[start, end)`` in the packed sequence, after the prefix.
    masks : tuple of torch.Tensor
        Each row's additive mask ``[1, 1, end - start, c + prefix + end - start]`` over (cached, prefix,
        row) keys, ``c`` the positions held in a key/value cache before the sequence (0 without one):
        0 where a node sees the key (the cached positions, the prefix, itself and its ancestors), the
        dtype's minimum elsewhere.
    """

    prefix: int
    spans: tuple[tuple[int, int], ...]
    masks: tuple[torch.Tensor, ...]


def trie_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                   attention_mask, dropout: float = 0.0, scaling: float | None = None,
                   trie: TrieLayout | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    """Attention over packed trie rows (module doc), in transformers' attention-function signature.

    Parameters
    ----------
    query : torch.Tensor
        ``[1, H, N, d]`` after the rotary embedding.
    key, value : torch.Tensor
        ``[1, Hkv, c + N, d]`` (grouped-query attention: H a multiple of Hkv): ``c`` positions from a
        key/value cache (seen by every query), then the sequence's own.
    attention_mask
        Ignored with a ``trie`` (the rows' masks are in it).
    trie : TrieLayout or None
        The rows; None hands everything to transformers' ``sdpa`` function.

    Returns
    -------
    (torch.Tensor, None)
        The output ``[1, N, H, d]`` (transformers' layout) and no attention weights.
    """
    if trie is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    unsupported = [name for name in _UNSUPPORTED if kwargs.get(name) is not None]
    if unsupported or dropout:
        raise NotImplementedError(f"trie attention does not take {unsupported or 'dropout'}")
    gqa = query.shape[1] != key.shape[1]
    # Keys before the first query come from a key/value cache (a shared root read in an earlier pass,
    # see selfbias.scoring): every position sees them, and query i is key c + i.
    c = key.shape[2] - query.shape[2]
    p = trie.prefix
    out = query.new_empty((1, query.shape[2], query.shape[1], query.shape[3]))
    if p:
        seen = torch.ones((p, c + p), dtype=torch.bool, device=query.device).tril(c) if c else None
        o = F.scaled_dot_product_attention(query[:, :, :p], key[:, :, :c + p], value[:, :, :c + p], attn_mask=seen,
                                           is_causal=not c, scale=scaling, enable_gqa=gqa)
        out[:, :p] = o.transpose(1, 2)
    for (start, end), mask in zip(trie.spans, trie.masks):
        k, v = key[:, :, c + start:c + end], value[:, :, c + start:c + end]
        if c + p:  # the row's keys: the cached root and the shared prefix, then its own nodes
            k, v = torch.cat([key[:, :, :c + p], k], 2), torch.cat([value[:, :, :c + p], v], 2)
        o = F.scaled_dot_product_attention(query[:, :, start:end], k, v, attn_mask=mask, scale=scaling,
                                           enable_gqa=gqa)
        out[:, start:end] = o.transpose(1, 2)
    return out, None


AttentionInterface.register(NAME, trie_attention)


# The switch is a model-wide setting: packed forwards from several threads take turns, so that none
# ends another's switch mid-forward (its rows would then run through ``sdpa`` with the placeholder mask).
_SWITCH = threading.RLock()


@contextlib.contextmanager
def packed_attention(model: torch.nn.Module) -> Iterator[None]:
    """Switch ``model``'s attention to :func:`trie_attention` inside the block (its text config's
    implementation name; calls without a ``trie`` still run ``sdpa``), then back. One thread at a time."""
    config = model.config.get_text_config()
    with _SWITCH:
        before = config._attn_implementation_internal
        config._attn_implementation_internal = NAME
        try:
            yield
        finally:
            config._attn_implementation_internal = before


def mask_argument(model: torch.nn.Module):
    """A placeholder for the model's ``attention_mask`` argument: a prepared 4D mask (one per layer
    type for models mixing them), which transformers passes through untouched and
    :func:`trie_attention` ignores."""
    dummy = torch.zeros((1, 1, 1, 1), dtype=model.dtype, device=model.device)
    types = set(getattr(model.config.get_text_config(), "layer_types", None) or ())
    return {t: dummy for t in types} if len(types) > 1 else dummy


def row_spans(widths: Sequence[int], prefix: int) -> tuple[tuple[int, int], ...]:
    """``[start, end)`` of rows of these widths laid end to end after ``prefix`` positions."""
    spans, start = [], prefix
    for w in widths:
        spans.append((start, start + w))
        start += w
    return tuple(spans)
