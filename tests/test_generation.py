"""Generation: raw-model log-probs equal the scorer's, greedy equals a naive argmax loop, seeded samples."""

from __future__ import annotations

import pytest
import torch

from selfbias._batching import token_ids as _ids
from selfbias.generation import generate
from selfbias.scoring import score, score_token_ids

TOL = 1e-4
BOTH = ["tiny", pytest.param("smollm2", marks=pytest.mark.model)]  # the weightless tier and the real model


def chat(lm, question):
    text = lm.tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                            add_generation_prompt=True)
    return text + "The answer is"


def naive_greedy(lm, prompt, steps):
    ids = _ids(lm, prompt)
    out, logps = [], []
    with torch.no_grad():
        for _ in range(steps):
            logits = lm.model(input_ids=torch.tensor([ids + out])).logits[0, -1].float()
            token = int(logits.argmax())
            if token in lm.eos_token_ids:
                break
            logps.append(torch.log_softmax(logits, -1)[token].item())
            out.append(token)
    return out, logps


@pytest.mark.parametrize("which", BOTH)
def test_greedy_matches_a_naive_argmax_loop(which, request):
    lm = request.getfixturevalue(which)
    prompts = [chat(lm, "What is 7 + 8?"), chat(lm, "Name a colour."), "Once upon a time"]
    got = generate(lm, prompts, max_new_tokens=8)
    for prompt, (g,) in zip(prompts, got):
        ids, logps = naive_greedy(lm, prompt, 8)
        assert list(g.token_ids) == ids
        assert list(g.logprobs) == pytest.approx(logps, abs=TOL)


@pytest.mark.parametrize("which", BOTH)
def test_sampled_logprobs_are_raw_model_logprobs(which, request):
    lm = request.getfixturevalue(which)
    prompts = [chat(lm, f"What is {a} + {b}?") for a, b in [(2, 3), (17, 25), (9, 9)]]
    gens = generate(lm, prompts, n=3, temperature=1.3, max_new_tokens=12, seed=3)
    requests = [(_ids(lm, p), [g.token_ids for g in row if g.token_ids]) for p, row in zip(prompts, gens)]
    scored = score_token_ids(lm, requests)
    for row, srow in zip(gens, scored):
        for g, s in zip([g for g in row if g.token_ids], srow):
            # temperature changes what is drawn, not the recorded probability
            assert list(g.logprobs) == pytest.approx(list(s.logprobs), abs=TOL)


def test_generated_text_rescores_to_the_same_logprobs(smollm2):
    prompt = chat(smollm2, "What is the capital of France?")
    (g,) = generate(smollm2, [prompt], max_new_tokens=10)[0:1][0]
    s = score(smollm2, prompt, [g.text])[0]
    assert s.token_ids == g.token_ids  # greedy text re-tokenises to the same tokens here
    assert list(s.logprobs) == pytest.approx(list(g.logprobs), abs=TOL)


@pytest.mark.parametrize("which", BOTH)
def test_samples_are_seeded_and_independent_of_batching(which, request):
    lm = request.getfixturevalue(which)
    prompts = [chat(lm, q) for q in ("What is 5 + 6?", "Name a fruit.", "What is 12 + 30?")]
    kw = dict(n=3, temperature=1.0, max_new_tokens=10, seed=11)
    together = generate(lm, prompts, **kw)
    alone = [generate(lm, [p], **kw)[0] for p in prompts]
    reversed_order = generate(lm, prompts[::-1], **kw)[::-1]
    for a, b, c in zip(together, alone, reversed_order):
        assert [g.token_ids for g in a] == [g.token_ids for g in b] == [g.token_ids for g in c]
    other_seed = generate(lm, prompts, **{**kw, "seed": 12})
    assert [g.token_ids for row in other_seed for g in row] != [g.token_ids for row in together for g in row]
    assert len({g.token_ids for g in together[1]}) > 1  # the n samples of a prompt differ


def test_stop_strings_and_finish_reasons(smollm2):
    prompt = "Count: one, two, three, four, five,"
    (g,) = generate(smollm2, [prompt], max_new_tokens=12, stop=[" six"])[0]
    assert g.finish_reason == "stop" and " six" not in g.text
    assert smollm2.tokenizer.decode(list(g.token_ids)) == g.text
    (long,) = generate(smollm2, [prompt], max_new_tokens=3)[0]
    assert long.finish_reason == "length" and len(long.token_ids) == 3
    (eos,) = generate(smollm2, [chat(smollm2, "What is 2 + 3?")], max_new_tokens=40)[0]  # " 5." then <|im_end|>
    assert eos.finish_reason == "eos" and 2 not in eos.token_ids


def test_top_p_keeps_only_the_nucleus():
    from selfbias.generation import _choose

    logits = torch.tensor([[5.0, 4.0, 0.0, -1.0]]).repeat(400, 1)
    gens = [torch.Generator().manual_seed(i) for i in range(400)]
    assert set(_choose(logits, 1.0, 0.5, gens)) == {0}  # p(token 0) = 0.72 > 0.5: the nucleus is token 0 alone
    draws = _choose(logits, 1.0, 0.99, gens)
    assert {0, 1} <= set(draws) and 3 not in draws


def test_draws_follow_the_tempered_distribution():
    """Inverse-CDF draws, one generator per row: frequencies match softmax(logits / T) (chi-square)."""
    from scipy.stats import chisquare

    from selfbias.generation import _choose

    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0])
    n = 4000
    gens = [torch.Generator().manual_seed(i) for i in range(n)]
    draws = _choose(logits.repeat(n, 1), 0.7, 1.0, gens)
    expected = torch.softmax(logits / 0.7, -1) * n
    observed = torch.bincount(torch.tensor(draws), minlength=5)
    assert chisquare(observed.numpy(), expected.numpy()).pvalue > 0.001
