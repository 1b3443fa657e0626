"""Attention over packed trie rows (selfbias._packed) against attention computed from its definition.

The reference below is written from the rule, not from the code: a node attends to every prefix
position, to itself and to its ancestors in its row; the prefix attends causally to itself. Scores
are computed in float64 with an explicit softmax over exactly those keys.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from selfbias._packed import TrieLayout, row_spans, trie_attention

H, HKV, D = 4, 2, 8  # grouped-query attention: two query heads per key/value head
DEVICE = os.environ.get("SELFBIAS_TEST_DEVICE", "cpu")  # benchmarks/gpu_check.sh sets cuda
TOL = 1e-5 if DEVICE == "cpu" else 1e-4  # GPU kernels reduce in another order


class _Module(torch.nn.Module):  # what transformers passes as ``module``
    num_key_value_groups = H // HKV
    is_causal = True


def _layout(rows: list[list[int]], prefix: int) -> tuple[TrieLayout, list[list[int]]]:
    """Rows given as parent lists (-1: the prefix's last node, or none); returns the layout and, per
    packed position, the packed positions it may attend to."""
    spans = row_spans([len(r) for r in rows], prefix)
    masks, sees = [], [list(range(i + 1)) for i in range(prefix)]
    for parents, (start, end) in zip(rows, spans):
        allowed = torch.zeros((end - start, prefix + end - start), dtype=torch.bool)
        for i, parent in enumerate(parents):
            keys = set(range(prefix)) | {start + i}
            node = parent
            while node >= 0:  # ancestors, walking up the parent links
                keys.add(start + node)
                node = parents[node]
            sees.append(sorted(keys))
            for k in keys:
                allowed[i, k if k < prefix else prefix + k - start] = True
        masks.append(torch.zeros(allowed.shape).masked_fill_(~allowed, torch.finfo(torch.float32).min)[None, None]
                     .to(DEVICE))
    return TrieLayout(prefix, spans, tuple(masks)), sees


def _reference(q, k, v, sees, scale):
    """Attention of each position over exactly the positions it sees, float64, explicit softmax."""
    q, k, v = q[0].cpu().double(), k[0].cpu().double().repeat_interleave(H // HKV, 0), v[0].cpu().double().repeat_interleave(H // HKV, 0)
    out = torch.zeros((q.shape[1], H, D), dtype=torch.float64)
    for i, keys in enumerate(sees):
        scores = torch.einsum("hd,hkd->hk", q[:, i], k[:, keys]) * scale
        out[i] = torch.einsum("hk,hkd->hd", scores.softmax(-1), v[:, keys])
    return out[None]


@pytest.mark.parametrize("prefix", [0, 3])
def test_trie_attention_matches_definition(prefix):
    # row 0: a chain with two branches; row 1: one node; row 2: a chain of three and a sibling
    rows = [[-1, 0, 1, 1, 3], [-1], [-1, 0, 1, 0]]
    layout, sees = _layout(rows, prefix)
    n = prefix + sum(len(r) for r in rows)
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn((1, h, n, D), generator=gen).to(DEVICE) for h in (H, HKV, HKV))
    scale = 1 / math.sqrt(D)
    out, weights = trie_attention(_Module(), q, k, v, None, scaling=scale, trie=layout)
    assert weights is None and out.shape == (1, n, H, D)
    torch.testing.assert_close(out.cpu().double(), _reference(q, k, v, sees, scale), rtol=0, atol=TOL)


def test_without_a_layout_it_is_transformers_sdpa():
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn((2, h, 5, D), generator=gen) for h in (H, HKV, HKV))
    mask = torch.zeros((2, 1, 5, 5)).masked_fill_(~torch.ones(5, 5, dtype=torch.bool).tril(), -1e9)
    out, _ = trie_attention(_Module(), q, k, v, mask, scaling=0.3)
    expected, _ = sdpa_attention_forward(_Module(), q, k, v, mask, scaling=0.3)
    assert torch.equal(out, expected)


def test_soft_capping_is_refused():
    """Soft-capped scores (Gemma 2) are not what this attention computes: it refuses, and the scorer's
    check (selfbias.scoring.packed_rows) keeps such a model on padded rows."""
    layout, _ = _layout([[-1, 0]], 0)
    q, k, v = torch.zeros((1, H, 2, D)), torch.zeros((1, HKV, 2, D)), torch.zeros((1, HKV, 2, D))
    with pytest.raises(NotImplementedError, match="softcap"):
        trie_attention(_Module(), q, k, v, None, trie=layout, softcap=50.0)
