"""Batching helpers shared by :mod:`selfbias.scoring` and :mod:`selfbias.generation` (private module).

Tokenisation with the model's BOS rule, padding, memory budgets and the grouping of contexts into
batches. Nothing here knows about continuations or sampling.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._logits import forward_kept
from .models import LoadedModel

__all__ = ["forward_contexts", "left_pad", "memory_budgets", "plan_batches", "right_pad", "token_ids"]


def token_ids(lm: LoadedModel, text: str) -> list[int]:
    """Token ids of ``text``, with BOS prepended exactly when the tokenizer adds one to plain text
    and the text does not already start with it (a rendered chat template may)."""
    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = lm.tokenizer.bos_token
    if lm.adds_bos and not (bos and text.startswith(bos)):
        ids = [lm.bos_token_id, *ids]
    return list(ids)


def left_pad(rows: Sequence[Sequence[int]], pad: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) [B, max length], rows aligned to the right."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r):] = torch.tensor(r)
            mask[i, width - len(r):] = 1
    return ids.to(device), mask.to(device)


def right_pad(rows: Sequence[Sequence[int]], pad: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) [B, max length], rows aligned to the left."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids.to(device), mask.to(device)


def forward_contexts(lm: LoadedModel, contexts: Sequence[Sequence[int]], padding_side: str = "left",
                     kept: bool = False):
    """One padded pass over contexts.

    Returns (last-position logits [B, V] float32, cache, mask [B, Lp], lengths [B]); with ``kept``,
    a :class:`selfbias._logits.Kept` of the last positions in place of the logits (the scorer reads
    them block by block). Left padding puts every context's end in the last column; right padding
    gives the same numbers (the tests check both) and leaves pads between context and what follows,
    masked out.
    """
    pad = left_pad if padding_side == "left" else right_pad
    ids, mask = pad(contexts, lm.tokenizer.pad_token_id, lm.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    lengths = mask.sum(-1)
    last_col = torch.full_like(lengths, mask.shape[1] - 1) if padding_side == "left" else lengths - 1
    last = torch.zeros_like(mask, dtype=torch.bool)
    last[torch.arange(len(contexts)), last_col] = True  # the last real token of each row
    if kept:
        states, cache = forward_kept(lm, last, input_ids=ids, attention_mask=mask, position_ids=positions,
                                     use_cache=True)
        return states, cache, mask, lengths
    out = lm.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=last)
    return out.logits.float(), out.cache, mask, lengths


def plan_batches(lengths: Sequence[tuple[int, list[int]]], token_budget: int, logit_budget: int,
                 max_batch: int | None, logit_rows: Sequence[int] | None = None) -> list[list[int]]:
    """Group contexts into batches, longest first, within a memory budget.

    lengths[g] = (context length, [branch lengths]). A batch's cost is the padded tokens of both
    passes (activations) and its vocabulary-sized float32 rows: ``logit_rows[g]`` for context g,
    by default one per branch token and one per branch (every kept logit).
    """
    order = sorted(range(len(lengths)), key=lambda g: -(lengths[g][0] + max(lengths[g][1], default=0)))
    batches: list[list[int]] = []
    current: list[int] = []
    width = branch_width = n_branch = n_logits = 0
    for g in order:
        ctx, br = lengths[g]
        new_width, new_bw = max(width, ctx), max(branch_width, max(br, default=0))
        rows = sum(br) + len(br) if logit_rows is None else logit_rows[g]
        new_n, new_logits = n_branch + len(br), n_logits + rows
        cost = (len(current) + 1) * new_width + new_n * (new_width + new_bw)
        over = cost > token_budget or new_logits > logit_budget or (max_batch and len(current) >= max_batch)
        if current and over:
            batches.append(current)
            current, new_width, new_bw, new_n, new_logits = [], ctx, max(br, default=0), len(br), rows
        current.append(g)
        width, branch_width, n_branch, n_logits = new_width, new_bw, new_n, new_logits
    if current:
        batches.append(current)
    return batches


def memory_budgets(lm: LoadedModel, memory_mb: float) -> tuple[int, int]:
    """(padded tokens, vocabulary-sized logit rows) that fit in ``memory_mb``, half for each."""
    vocab = lm.model.get_output_embeddings().weight.shape[0]
    hidden = lm.model.config.get_text_config().hidden_size
    layers = lm.model.config.get_text_config().num_hidden_layers
    # Rough bytes per padded token alive during a pass: cache (k and v) plus a few activations.
    per_token = 4 * hidden * (2 * layers + 16)
    budget = memory_mb * 2**20
    return max(256, int(budget / 2 / per_token)), max(64, int(budget / 2 / (8 * vocab)))
