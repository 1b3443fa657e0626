"""selfbias._logits: log-probabilities read from hidden states a vocabulary block at a time.

Reference: ``torch.log_softmax`` over the whole logits row (the computation the block-by-block read
replaces), at 1e-5 nats in float32; argmax flags against ``torch.argmax`` (first index among ties)."""

from __future__ import annotations

import copy
import dataclasses
import random
from types import SimpleNamespace

import pytest
import torch

from selfbias import _logits
from selfbias._batching import token_ids
from selfbias._logits import Kept, plain_head, read_head
from selfbias.scoring import next_token_logprobs, score_requests


@pytest.fixture
def small_blocks(monkeypatch):
    """Row and vocabulary blocks that do not divide the sizes: every partial-block path runs."""
    monkeypatch.setattr(_logits, "ROW_BLOCK", 8)
    monkeypatch.setattr(_logits, "VOCAB_BLOCK", {"cpu": 7})
    monkeypatch.setattr(_logits, "_DEFAULT_VOCAB_BLOCK", 7)


def _reads(n_rows: int, vocab: int, n_pairs: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, n_rows, (n_pairs,), generator=g)
    targets = torch.randint(0, vocab, (n_pairs,), generator=g)
    return rows, targets, torch.tensor([0, n_rows - 1, n_rows // 2, 0])


def _expected(logits, rows, targets, full_rows):
    logprobs = torch.log_softmax(logits.float(), -1)
    return logprobs[rows, targets], logits.argmax(-1)[rows] == targets, logprobs[full_rows]


def test_read_head_matches_log_softmax_of_the_head(tiny, small_blocks):
    head = tiny.model.get_output_embeddings()
    states = torch.randn(37, head.weight.shape[1], generator=torch.Generator().manual_seed(1))
    rows, targets, full_rows = _reads(37, head.weight.shape[0], 120)
    targets[:37] = (states @ head.weight.T).argmax(-1)  # some targets are their row's argmax
    rows[:37] = torch.arange(37)
    with torch.inference_mode():
        got = read_head(tiny, Kept(states, is_logits=False), rows, targets, full_rows)
        want = _expected(head(states), rows, targets, full_rows)
    assert torch.allclose(got.logprobs, want[0], atol=1e-5)
    assert torch.equal(got.is_argmax, want[1]) and got.is_argmax[:37].all()
    assert torch.allclose(got.full, want[2], atol=1e-5)


def test_read_head_from_logits_leaves_them_and_breaks_ties_like_argmax(small_blocks):
    """The model's own logits (a head that is not plain): read, never overwritten; a maximum shared
    by two blocks goes to the first index, as torch.argmax does."""
    logits = torch.randn(10, 30, generator=torch.Generator().manual_seed(2))
    logits[3, 2] = logits[3, 20] = 9.0  # tie across blocks (7 ids per block)
    logits[4, 8] = logits[4, 9] = 9.0  # tie inside a block
    before = logits.clone()
    rows = torch.tensor([3, 3, 4, 4, 0, 9])
    targets = torch.tensor([2, 20, 8, 9, 5, 29])
    lm = SimpleNamespace(model=SimpleNamespace(get_output_embeddings=lambda: None))
    got = read_head(lm, Kept(logits, is_logits=True), rows, targets, torch.tensor([3]))
    want = _expected(logits, rows, targets, torch.tensor([3]))
    assert torch.equal(logits, before)
    assert got.is_argmax.tolist() == want[1].tolist() == [True, False, True, False, *want[1][4:].tolist()]
    assert torch.allclose(got.logprobs, want[0], atol=1e-5)
    assert torch.allclose(got.full, want[2], atol=1e-5)


def test_read_head_with_a_biased_head(small_blocks):
    head = torch.nn.Linear(16, 23, bias=True)
    torch.nn.init.normal_(head.bias, std=3.0)
    lm = SimpleNamespace(model=SimpleNamespace(get_output_embeddings=lambda: head))
    states = torch.randn(11, 16)
    rows, targets, full_rows = _reads(11, 23, 40, seed=3)
    with torch.inference_mode():
        got = read_head(lm, Kept(states, is_logits=False), rows, targets, full_rows)
        want = _expected(head(states), rows, targets, full_rows)
    assert torch.allclose(got.logprobs, want[0], atol=1e-5)
    assert torch.equal(got.is_argmax, want[1])
    assert torch.allclose(got.full, want[2], atol=1e-5)


def test_plain_head_detects_logits_changed_after_the_head(tiny):
    """A model whose forward rescales the head's logits (as soft-capping does) is not plain: the scorer
    then reads the model's own logits and still matches a plain forward per prefix."""
    from test_scoring import assert_matches_reference, random_requests

    assert plain_head(tiny)
    model = copy.deepcopy(tiny.model)
    real = model.forward

    def capped(*args, **kwargs):
        out = real(*args, **kwargs)
        out.logits = 4.0 * torch.tanh(out.logits / 4.0)
        return out

    model.forward = capped
    lm = dataclasses.replace(tiny, model=model)
    assert not plain_head(lm)
    requests = random_requests(random.Random(5), 6, 3)
    assert_matches_reference(lm, requests, score_requests(lm, requests))
    (read,), = next_token_logprobs(lm, [(requests[0][0], [""])], select=[5], top_k=3)
    with torch.inference_mode():
        ids = torch.tensor([token_ids(lm, requests[0][0])])
        want = torch.log_softmax(model(input_ids=ids).logits[0, -1].float(), -1)
    assert read.selected[5] == pytest.approx(want[5].item(), abs=1e-4)
    assert list(read.top_ids) == want.topk(3).indices.tolist()

