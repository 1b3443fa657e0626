"""Batched generation that records the raw model's log-probabilities of what it wrote.

The log-prob of each generated token is read from the *raw* model distribution (before
temperature or nucleus filtering), as lm-polygraph records them, so it equals what
:func:`selfbias.scoring.score_token_ids` gives for the same tokens.

The n samples of a prompt share one prompt pass (its cache is repeated n times). Each sample
draws from its own random stream, seeded by (seed, prompt, sample index), so a sample does not
depend on which other prompts share its batch: a resumed run regenerates identical answers.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence

import torch

from .backends.types import Generation, row_seed  # Generation re-exported (defined there, torch-free)
from .errors import GenerationTimeout  # re-exported (defined in errors)
from ._batching import forward_contexts, memory_budgets, plan_batches, token_ids
from .models import LoadedModel

__all__ = ["Generation", "GenerationTimeout", "generate"]

BATCH_SECONDS_ENV = "SELFBIAS_BATCH_SECONDS"
DEFAULT_BATCH_SECONDS = 1800.0  # the bound on one generation batch: generous, yet no run hangs for hours


def _choose(logits: torch.Tensor, temperature: float, top_p: float, generators: list) -> list[int]:
    """Next token of each row [R, V]: argmax at temperature 0, else one draw per row from the
    tempered (nucleus) distribution, by inverting its CDF at a uniform number from the row's own
    generator (so a row's draws do not depend on the other rows)."""
    if temperature <= 0:
        return logits.argmax(-1).tolist()
    probs = torch.softmax(logits / temperature, dim=-1)
    sorted_p, order = probs.sort(dim=-1, descending=True)
    if top_p < 1.0:
        sorted_p[(sorted_p.cumsum(-1) - sorted_p) >= top_p] = 0.0  # keep the smallest set reaching top_p
    cdf = sorted_p.cumsum(-1)
    u = torch.tensor([float(torch.rand(1, generator=g)) for g in generators], dtype=cdf.dtype, device=cdf.device)
    picks = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None]).clamp(max=cdf.shape[-1] - 1)
    return order.gather(1, picks)[:, 0].tolist()


def _stop_cut(lm: LoadedModel, ids: list[int], stop: Sequence[str]) -> int | None:
    """Number of tokens to keep if a stop string occurs in the decoded text, else None.

    Kept tokens are those whose text ends before the stop string starts.
    """
    text = lm.tokenizer.decode(ids)
    cuts = [text.find(s) for s in stop if s and s in text]
    if not cuts:
        return None
    cut = min(cuts)
    keep = len(ids)
    while keep > 0 and len(lm.tokenizer.decode(ids[:keep])) > cut:
        keep -= 1
    return keep


def generate(
    lm: LoadedModel,
    prompts: Sequence[str],
    *,
    n: int = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    max_new_tokens: int = 48,
    stop: Sequence[str] = (),
    seed: int = 0,
    memory_mb: float = 4096,
    batch_size: int | None = None,
    batch_seconds: float | None = None,
) -> list[list[Generation]]:
    """Generate ``n`` answers per prompt and record the raw model log-probability of every token.

    ``temperature=0`` is greedy decoding. Generation ends at an EOS token (not included), at a
    stop string (cut before it) or after ``max_new_tokens``. The recorded log-probs are of the model's
    own distribution (before temperature and top-p), so they equal what :func:`selfbias.scoring.score`
    gives the same tokens. Sample j of a prompt is drawn with its own generator seeded by
    (``seed``, prompt, j), so the draws do not depend on batching or prompt order.

    Parameters
    ----------
    lm : LoadedModel
        The model.
    prompts : sequence of str
        Rendered prompts (e.g. :func:`selfbias.prompts.render`); a bare string is refused.
    n : int
        Answers per prompt.
    temperature : float
        0 for greedy decoding, else the sampling temperature.
    top_p : float
        Nucleus sampling: draw from the smallest set of tokens holding this probability (1: all).
    max_new_tokens : int
        Longest answer in tokens.
    stop : sequence of str
        Strings that end an answer (cut before the first one).
    seed : int
        Seed of the samples.
    memory_mb : float
        Memory budget in MB from which the batches are sized.
    batch_size : int or None
        Most prompts per batch (None: as many as the budget allows).
    batch_seconds : float or None
        Time bound of one batch (default ``$SELFBIAS_BATCH_SECONDS`` or 1800 s).

    Returns
    -------
    list of list of Generation
        ``out[i][j]``: sample j of prompt i (text, token ids, log-probs, finish reason ``eos`` |
        ``stop`` | ``length``).

    Raises
    ------
    InputError
        A bad setting (temperature, top_p, n or max_new_tokens), before anything runs.
    ValueError
        An empty prompt (no token to condition on).
    GenerationTimeout
        A batch ran longer than ``batch_seconds`` (raised between two tokens, so no run sits silently
        for hours).
    """
    from ._inputs import check_generation

    if isinstance(prompts, str):
        raise TypeError("prompts must be a sequence of strings")
    check_generation(temperature=temperature, top_p=top_p, n=n, max_new_tokens=max_new_tokens)
    contexts = [token_ids(lm, p) for p in prompts]
    if any(not c for c in contexts):
        raise ValueError("empty prompt: nothing to condition on")
    if batch_seconds is None:
        batch_seconds = float(os.environ.get(BATCH_SECONDS_ENV) or DEFAULT_BATCH_SECONDS)
    token_budget, _ = memory_budgets(lm, memory_mb)
    lengths = [(len(c), [max_new_tokens] * n) for c in contexts]
    out: list[list[Generation]] = [[] for _ in prompts]
    with torch.inference_mode():
        for batch in plan_batches(lengths, token_budget, 10**9, batch_size):
            results = _generate_batch(lm, [contexts[i] for i in batch], [prompts[i] for i in batch], n,
                                      temperature, top_p, max_new_tokens, tuple(stop), seed,
                                      time.monotonic() + batch_seconds)
            for i, gens in zip(batch, results):
                out[i] = gens
    return out


def _generate_batch(lm, contexts, prompts, n, temperature, top_p, max_new_tokens, stop, seed, deadline=math.inf):
    logits, cache, mask, lengths = forward_contexts(lm, contexts)
    # row r = sample (r % n) of prompt (r // n)
    rows = torch.arange(len(contexts), device=lm.device).repeat_interleave(n)
    cache.batch_select_indices(rows)
    logits, mask, lengths = logits[rows], mask[rows], lengths[rows]
    generators = [
        torch.Generator().manual_seed(row_seed(seed, prompts[r // n], r % n)) if temperature > 0 else None
        for r in range(len(rows))
    ]
    eos = set(lm.eos_token_ids)
    ids: list[list[int]] = [[] for _ in rows]
    logps: list[list[float]] = [[] for _ in rows]
    finish = ["length"] * len(rows)
    active = list(range(len(rows)))  # rows still generating, in cache order
    for step in range(max_new_tokens):
        if time.monotonic() > deadline:
            raise GenerationTimeout(
                f"generation of a batch of {len(contexts)} prompt(s) (longest {max(len(c) for c in contexts):,} "
                f"tokens) ran past its time bound at token {step} of {max_new_tokens}; raise batch_seconds "
                f"(env {BATCH_SECONDS_ENV}) or use fewer/shorter items")
        raw = torch.log_softmax(logits, dim=-1)
        chosen = _choose(logits, temperature, top_p, [generators[r] for r in active])
        still = []
        for k, (r, token) in enumerate(zip(active, chosen)):
            if token in eos:
                finish[r] = "eos"
                continue
            ids[r].append(token)
            logps[r].append(float(raw[k, token]))
            if stop:
                keep = _stop_cut(lm, ids[r], stop)
                if keep is not None:
                    del ids[r][keep:], logps[r][keep:]
                    finish[r] = "stop"
                    continue
            still.append(k)
        if not still or step == max_new_tokens - 1:
            break
        # drop finished rows from the cache, then feed each live row its last token
        if len(still) < len(active):
            keep_t = torch.tensor(still, device=lm.device)
            cache.batch_select_indices(keep_t)
            mask, lengths = mask[keep_t], lengths[keep_t]
            active = [active[k] for k in still]
        feed = torch.tensor([[ids[r][-1]] for r in active], device=lm.device)
        mask = torch.cat([mask, torch.ones_like(feed)], dim=1)
        out = lm.model(input_ids=feed, attention_mask=mask, position_ids=lengths[:, None] + step,
                       cache=cache, use_cache=True, logits_to_keep=1)
        cache, logits = out.cache, out.logits[:, -1, :].float()
    decode = lm.tokenizer.decode
    gens = [Generation(decode(ids[r]), tuple(ids[r]), tuple(logps[r]), finish[r]) for r in range(len(rows))]
    return [gens[i * n:(i + 1) * n] for i in range(len(contexts))]
