"""Log-probabilities read from a forward pass's final hidden states, a vocabulary block at a time (private).

The scorer needs, at each kept position, log p of given tokens and whether each was the model's argmax,
and, for a judge's read, the whole next-token distribution at a few positions. Materialising the logits
of every kept position ([K, V] float32), then their log-softmax and argmax, makes three passes over
K x V floats held in fresh memory (a 262k-vocabulary row is 1 MB). Instead the decoder runs without its
head, and the output embedding is applied here one block of the vocabulary at a time into one reused
buffer that stays in cache, keeping a running max and sum of exponentials per row (the online
log-sum-exp of Milakov & Gimelshein, 2018, that flash attention also uses)::

    block j of the vocabulary     x[:, j:j+b] = h @ W[j:j+b].T  (+ bias)        [rows, b]
    running max                   m' = max(m, max_j x)         (argmax kept where m' > m)
    running sum                   s' = s * exp(m - m') + sum exp(x - m')
    after the last block          logsumexp(x) = m + log s
                                  log p(t) = x_t - logsumexp(x),   argmax = first index of the max

This is exact up to float32 rounding (tests hold it to the token-by-token reference at 1e-4 nats).
It applies only where the model's logits are exactly its output embedding of the last hidden state
(:func:`plain_head`, checked numerically once per model); otherwise the model's own logits are read
block by block the same way.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch

from .models import LoadedModel

__all__ = ["HeadReads", "Kept", "forward_kept", "plain_head", "read_head"]

ROW_BLOCK = 1024  # kept positions whose logits are computed together (buffer: ROW_BLOCK x VOCAB_BLOCK)
VOCAB_BLOCK = {"cpu": 4096}  # per device type; others: 32768 (larger blocks suit a GPU's matmuls)
_DEFAULT_VOCAB_BLOCK = 32768

_PLAIN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def plain_head(lm: LoadedModel) -> bool:
    """Whether the model's logits are its output embedding applied to the decoder's last hidden state.

    True for most causal LMs; False where something follows the head (Gemma 2's logit soft-capping,
    a logit scale) or the decoder cannot be called alone. Checked once per model by comparing the
    model's own logits on eight tokens with ``head(decoder(ids))``.

    Parameters
    ----------
    lm : LoadedModel
        The model to check.

    Returns
    -------
    bool
        Whether :func:`forward_kept` may run the decoder alone and :func:`read_head` apply the head.
    """
    model = lm.model
    if model in _PLAIN:
        return _PLAIN[model]
    head = model.get_output_embeddings()
    ok = isinstance(head, torch.nn.Linear) and model.base_model is not model
    if ok:
        ids = (torch.arange(1, 9, device=lm.device) % head.weight.shape[0])[None]
        try:
            with torch.inference_mode():
                full = model(input_ids=ids).logits.float()
                mine = head(model.base_model(input_ids=ids).last_hidden_state).float()
            ok = full.shape == mine.shape and torch.allclose(full, mine, rtol=1e-4, atol=1e-4)
        except Exception:  # a decoder that cannot run alone: the model's own logits are read instead
            ok = False
    _PLAIN[model] = ok
    return ok


@dataclass(frozen=True)
class Kept:
    """What one forward pass left at its kept positions, row-major over (batch row, position).

    ``states`` is ``[K, H]`` final hidden states when ``is_logits`` is False (the head is applied by
    :func:`read_head`), else the model's own logits ``[K, V]``.
    """

    states: torch.Tensor
    is_logits: bool

    @staticmethod
    def cat(parts: list[Kept]) -> Kept:
        """The kept positions of several passes, in order (one table for :func:`read_head`)."""
        return Kept(torch.cat([p.states for p in parts]), parts[0].is_logits)


def forward_kept(lm: LoadedModel, keep: torch.Tensor | None, **inputs) -> tuple[Kept | None, object]:
    """One forward pass keeping the final states at ``keep``; returns (kept, cache).

    Parameters
    ----------
    lm : LoadedModel
        The model.
    keep : torch.Tensor or None
        Boolean ``[B, W]``: the positions whose next-token distribution is read; None keeps none
        (a pass run for its cache, e.g. a shared system turn).
    **inputs
        ``input_ids``, ``attention_mask``, ``position_ids``, ``cache``, ``use_cache``, as the model takes them.

    Returns
    -------
    (Kept or None, Cache or None)
        The kept positions (None when ``keep`` is None) and the key/value cache.
    """
    if plain_head(lm):
        out = lm.model.base_model(**inputs)
        kept = None if keep is None else Kept(out.last_hidden_state[keep], is_logits=False)
        return kept, out.cache
    out = lm.model(**inputs, logits_to_keep=1 if keep is None else keep)
    return (None if keep is None else Kept(out.logits, is_logits=True)), out.cache


@dataclass(frozen=True)
class HeadReads:
    """What :func:`read_head` read: ``logprobs[i]`` = log p(``targets[i]`` | position ``rows[i]``) and
    whether the target was that position's argmax; ``full[f]`` the whole log-softmax of ``full_rows[f]``."""

    logprobs: torch.Tensor  # [P] float32
    is_argmax: torch.Tensor  # [P] bool
    full: torch.Tensor  # [F, V] float32


def read_head(lm: LoadedModel, kept: Kept, rows: torch.Tensor, targets: torch.Tensor,
              full_rows: torch.Tensor) -> HeadReads:
    """Log-probabilities of ``targets`` at ``rows`` and whole distributions at ``full_rows`` (module doc).

    Parameters
    ----------
    lm : LoadedModel
        The model whose output embedding makes the logits (unless ``kept`` holds logits).
    kept : Kept
        ``[K, H]`` final hidden states (or ``[K, V]`` logits) of the kept positions.
    rows, targets : torch.Tensor
        ``[P]`` long: read log p(``targets[i]``) at position ``rows[i]`` (a position may be read for
        several targets: the trie shares a context's last position among its continuations).
    full_rows : torch.Tensor
        ``[F]`` long: positions whose whole log-softmax is returned (a judge's verdict read).

    Returns
    -------
    HeadReads
        ``logprobs`` [P] and ``is_argmax`` [P], ``full`` [F, V]; all computed in float32.
    """
    head = lm.model.get_output_embeddings()
    weight = None if kept.is_logits else head.weight
    bias = None if kept.is_logits else head.bias
    states = kept.states
    device = states.device
    n_rows = states.shape[0]
    vocab = states.shape[1] if kept.is_logits else weight.shape[0]
    block = VOCAB_BLOCK.get(device.type, _DEFAULT_VOCAB_BLOCK)
    rows, targets, full_rows = rows.to(device), targets.to(device), full_rows.to(device)
    lse = torch.empty(n_rows, device=device)
    best = torch.empty(n_rows, dtype=torch.long, device=device)
    picked = torch.empty(len(rows), device=device)
    full = torch.empty((len(full_rows), vocab), device=device)
    by_target = torch.argsort(targets)
    sorted_targets = targets[by_target]
    buffer = None
    for a in range(0, n_rows, ROW_BLOCK):
        b = min(n_rows, a + ROW_BLOCK)
        h = states[a:b]
        in_block = (rows >= a) & (rows < b)  # reads of this row block
        mine_full = torch.nonzero((full_rows >= a) & (full_rows < b))[:, 0]
        run_max = torch.full((b - a,), -torch.inf, device=device)
        run_sum = torch.zeros(b - a, device=device)
        run_arg = torch.zeros(b - a, dtype=torch.long, device=device)
        for j in range(0, vocab, block):
            e = min(vocab, j + block)
            if kept.is_logits:
                x = h[:, j:e].to(torch.float32, copy=True)  # the model's logits: never overwrite them
            else:
                if buffer is None:  # one flat buffer, viewed contiguous for every block's shape
                    buffer = torch.empty(min(n_rows, ROW_BLOCK) * block, dtype=states.dtype, device=device)
                x = torch.mm(h, weight[j:e].t(), out=buffer[: (b - a) * (e - j)].view(b - a, e - j))
                if bias is not None:
                    x += bias[j:e]
                x = x.float()  # float32 models: the buffer itself (overwritten below, reused next block)
            lo, hi = torch.searchsorted(sorted_targets, torch.tensor([j, e], device=device)).tolist()
            sel = by_target[lo:hi]
            sel = sel[in_block[sel]]
            picked[sel] = x[rows[sel] - a, targets[sel] - j]
            full[mine_full, j:e] = x[full_rows[mine_full] - a]
            block_max = x.amax(-1)
            # The argmax only where this block beats the running max (strictly: the first maximum
            # wins, as torch.argmax): every row in the first block, then a few records per row
            # (a max with indices over every block costs 8x a plain max on a CPU).
            beats = torch.nonzero(block_max > run_max)[:, 0]
            if len(beats) == len(block_max):
                run_arg = x.argmax(-1) + j
            elif len(beats):
                run_arg[beats] = x[beats].argmax(-1) + j
            new_max = torch.maximum(run_max, block_max)
            run_sum = run_sum * torch.exp(run_max - new_max) + x.sub_(new_max[:, None]).exp_().sum(-1)
            run_max = new_max
        lse[a:b] = run_max + run_sum.log()
        best[a:b] = run_arg
    full -= lse[full_rows, None]
    return HeadReads(picked - lse[rows], best[rows] == targets, full)
