"""The scorer against an independent token-by-token computation.

Reference: for each continuation token, one full forward pass over (context + earlier continuation
tokens) with no cache, no padding and no batching, then float32 log-softmax of the last position.
Tolerance: 1e-4 nats (float32 on CPU; measured differences are about 2e-5).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import random

import pytest
import torch

from selfbias._logits import plain_head
from selfbias.scoring import (
    ContextTooLong,
    ScoringError,
    encode,
    next_token_logprobs,
    score,
    score_requests,
    score_token_ids,
)

# benchmarks/gpu_check.sh runs this file on CUDA in float32 and bfloat16: the models below then move to
# SELFBIAS_TEST_DEVICE / SELFBIAS_TEST_DTYPE, and SELFBIAS_TEST_TOL loosens the tolerance for bfloat16
# (8-bit mantissa: a different reduction order alone moves log-probs by up to ~0.3 nats, measured on CPU
# bfloat16 on every path, trie on and off). Unset: CPU float32, 1e-4.
TOL = float(os.environ.get("SELFBIAS_TEST_TOL", "1e-4"))
DEVICE = os.environ.get("SELFBIAS_TEST_DEVICE")
DTYPE = os.environ.get("SELFBIAS_TEST_DTYPE", "float32")

if DEVICE:
    def _moved(lm):
        # the same LoadedModel (prompt format, BOS rule, context length) around a moved copy
        model = copy.deepcopy(lm.model).to(device=DEVICE, dtype=getattr(torch, DTYPE))
        param = next(model.parameters())
        return dataclasses.replace(lm, model=model, device=param.device, dtype=param.dtype)

    @pytest.fixture(scope="session")
    def tiny(tiny):
        return _moved(tiny)

    @pytest.fixture(scope="session")
    def smollm2(smollm2):
        return _moved(smollm2)

    @pytest.fixture(scope="session")
    def gemma(gemma):
        return _moved(gemma)


_REFERENCE_CACHE: dict = {}


def reference_logprobs(lm, context: list[int], continuation: list[int]) -> list[float]:
    """One plain forward pass per prefix (no cache, padding or batching); memoised per model."""
    key = (id(lm.model), tuple(context), tuple(continuation))
    if key not in _REFERENCE_CACHE:
        out = []
        with torch.no_grad():
            for j in range(len(continuation)):
                ids = torch.tensor([context + continuation[:j]], device=lm.device)
                logits = lm.model(input_ids=ids).logits[0, -1].float()
                out.append(torch.log_softmax(logits, -1)[continuation[j]].item())
        _REFERENCE_CACHE[key] = out
    return _REFERENCE_CACHE[key]


WORDS = ["the", "cat", "Paris", "42", "1,234", "-7", "naïve", "über", "日本", "☃", "x", "answer", "is", "."]


def random_requests(rng: random.Random, n_prompts: int, max_conts: int):
    requests = []
    for _ in range(n_prompts):
        prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))
        if rng.random() < 0.3:
            prompt += " "  # trailing space: moves to the continuation
        conts = []
        for _ in range(rng.randint(1, max_conts)):
            text = "".join(rng.choice(["", " "]) + rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
            conts.append(text if text.strip() else " x")
        requests.append((prompt, conts))
    return requests


def assert_matches_reference(lm, requests, results):
    worst = 0.0
    for (prompt, conts), row in zip(requests, results):
        assert len(row) == len(conts)
        for cont, s in zip(conts, row):
            (enc,) = encode(lm, prompt, [cont])
            assert s.token_ids == enc.continuations[0]
            ref = reference_logprobs(lm, list(enc.context), list(enc.continuations[0]))
            worst = max(worst, max(abs(a - b) for a, b in zip(ref, s.logprobs)))
            assert s.sum_logprob == pytest.approx(sum(s.logprobs))
            assert s.n_tokens == len(s.token_ids) == len(s.tokens) == len(s.is_argmax)
    assert worst <= TOL, f"max |scorer - reference| = {worst:.2e} > {TOL}"


@pytest.mark.parametrize("batch_size,padding_side", [(1, "left"), (3, "right"), (8, "left"), (32, "right"), (None, "left")])
def test_tiny_model_matches_reference(tiny, batch_size, padding_side):
    requests = random_requests(random.Random(0), n_prompts=12, max_conts=4)
    results = score_requests(tiny, requests, batch_size=batch_size, padding_side=padding_side)
    assert_matches_reference(tiny, requests, results)


@pytest.mark.parametrize("batch_size,padding_side", [(1, "left"), (4, "right"), (32, "left")])
def test_smollm2_matches_reference(smollm2, batch_size, padding_side):
    requests = random_requests(random.Random(100), n_prompts=5, max_conts=3)
    chat = smollm2.tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 17 + 25?"}], tokenize=False, add_generation_prompt=True)
    requests.append((chat + "The answer is", [" 42", " 32", "42", " forty-two", " 42.\n"]))
    results = score_requests(smollm2, requests, batch_size=batch_size, padding_side=padding_side)
    assert_matches_reference(smollm2, requests, results)


def test_gemma_matches_reference(gemma):
    requests = [("Question: What is 30 + 38?\nAnswer:", [" 68", " 86", " sixty-eight"]),
                ("The capital of France is", [" Paris", " Lyon", "Paris"])]
    assert_matches_reference(gemma, requests, score_requests(gemma, requests, batch_size=2))


def test_results_identical_across_batching(smollm2):
    requests = random_requests(random.Random(7), n_prompts=10, max_conts=5)
    runs = [score_requests(smollm2, requests, batch_size=b, padding_side=side)
            for b, side in [(1, "left"), (5, "right"), (None, "left")]]
    for other in runs[1:]:
        for row_a, row_b in zip(runs[0], other):
            for a, b in zip(row_a, row_b):
                assert a.token_ids == b.token_ids
                assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) <= TOL


def test_token_boundary_smollm2(smollm2):
    # SmolLM2 writes " 42" as a lone space token then the digits (digits are split one by one).
    s = score(smollm2, "The answer is", [" 42"])[0]
    assert s.tokens == ("Ġ", "4", "2")
    # A trailing space on the prompt moves to the continuation: the same tokens as above.
    moved = score(smollm2, "The answer is ", ["42"])[0]
    assert moved.token_ids == s.token_ids
    assert moved.logprobs == pytest.approx(s.logprobs, abs=TOL)
    # No BOS for SmolLM2: the context is the prompt's own tokens.
    (enc,) = encode(smollm2, "Hi", [" there"])
    assert enc.context == tuple(smollm2.tokenizer("Hi", add_special_tokens=False)["input_ids"])


def test_token_boundary_gemma(gemma):
    # Gemma adds <bos>; " 68" is "▁", "6", "8": the lone space token belongs to the answer.
    (enc,) = encode(gemma, "Answer:", [" 68"])
    assert enc.context[0] == gemma.tokenizer.bos_token_id
    assert gemma.tokenizer.convert_ids_to_tokens(list(enc.continuations[0])) == ["▁", "6", "8"]
    # A prompt that already starts with the BOS text gets no second BOS.
    (enc2,) = encode(gemma, "<bos>Answer:", [" 68"])
    assert enc2.context == enc.context


def test_straddling_join_is_recorded(smollm2):
    # "Hel" + "lo" tokenises whole as "Hello": the prompt's last token is re-tokenised into the answer.
    s = score(smollm2, "Say Hel", ["lo world"])[0]
    assert s.join_overlap >= 1
    assert "".join(s.tokens).replace("Ġ", " ").startswith("Hel") or s.tokens[0].startswith("ĠHel")
    (enc,) = encode(smollm2, "Say Hel", ["lo world"])
    ref = reference_logprobs(smollm2, list(enc.context), list(enc.continuations[0]))
    assert s.logprobs == pytest.approx(ref, abs=TOL)


def test_argmax_flags(smollm2):
    (enc,) = encode(smollm2, "One, two, three,", [" four, five"])
    s = score_token_ids(smollm2, [(enc.context, enc.continuations)])[0][0]
    with torch.no_grad():
        ids = torch.tensor([list(enc.context) + list(enc.continuations[0])])
        logits = smollm2.model(input_ids=ids).logits[0]
    k = len(enc.context)
    expected = [int(logits[k - 1 + j].argmax()) == t for j, t in enumerate(enc.continuations[0])]
    # positions whose top two log-probs are closer than the tolerance may swap between paths (bfloat16)
    top2 = torch.log_softmax(logits[k - 1: k - 1 + len(expected)].float(), -1).topk(2).values
    clear = [j for j, (a, b) in enumerate(top2.tolist()) if a - b > TOL]
    assert len(clear) >= len(expected) // 2 and True in [expected[j] for j in clear]
    assert [s.is_argmax[j] for j in clear] == [expected[j] for j in clear]


def test_next_token_matches_reference(smollm2):
    prefix = "Question: Is Paris the capital of France?\nProposed answer:"
    suffixes = [" Yes\nIs the proposed answer correct?", " No\nIs the proposed answer correct?", ""]
    yes = smollm2.tokenizer.convert_tokens_to_ids("Yes")
    got = next_token_logprobs(smollm2, [(prefix, suffixes)], select=[yes], top_k=5)[0]
    for suffix, nt in zip(suffixes, got):
        (enc,) = encode(smollm2, prefix, [suffix]) if suffix else [None]
        ids = list(enc.context + enc.continuations[0]) if suffix else smollm2.tokenizer(prefix)["input_ids"]
        with torch.no_grad():
            ref = torch.log_softmax(smollm2.model(input_ids=torch.tensor([ids])).logits[0, -1].float(), -1)
        assert nt.selected[yes] == pytest.approx(ref[yes].item(), abs=TOL)
        if DTYPE == "float32":  # bfloat16 rounding reorders near-ties in the top-k
            assert list(nt.top_ids) == ref.topk(5).indices.tolist()


def test_empty_continuation_is_an_error(tiny):
    with pytest.raises(ScoringError, match="empty continuation"):
        score(tiny, "Hello", [" ok", ""])
    with pytest.raises(TypeError):
        score(tiny, "Hello", " ok")


def test_empty_prompt_without_bos_is_an_error(tiny):
    with pytest.raises(ScoringError, match="nothing to condition"):
        score(tiny, "", ["hello"])


def test_over_long_input_errors_or_truncates_recorded(tiny):
    short = dataclasses.replace(tiny, context_length=12)
    prompt = " ".join(["word"] * 20)
    with pytest.raises(ContextTooLong, match="context of 12"):
        score(short, prompt, [" end"])
    s = score(short, prompt, [" end"], truncate=True)[0]
    (enc,) = encode(tiny, prompt, [" end"])
    assert s.truncated_tokens == len(enc.context) + len(enc.continuations[0]) - 12
    ref = reference_logprobs(tiny, list(enc.context[s.truncated_tokens:]), list(enc.continuations[0]))
    assert s.logprobs == pytest.approx(ref, abs=TOL)


def test_duplicate_prompts_share_a_context_and_keep_order(tiny):
    requests = [("A b c", [" d", " e"]), ("Other", [" f"]), ("A b c", [" e", " d", " d e"])]
    results = score_requests(tiny, requests)
    assert [s.token_ids for s in results[2][:2]] == [s.token_ids for s in results[0][::-1]]
    assert results[2][0].logprobs == pytest.approx(results[0][1].logprobs, abs=TOL)
    assert_matches_reference(tiny, requests, results)


@pytest.mark.parametrize("share", [True, False])
def test_prompts_sharing_a_chat_prefix(smollm2, monkeypatch, share):
    """Two-pass path (trie off): chat prompts share the template's system turn, run once per batch
    (share) or per prompt."""
    from selfbias import scoring

    monkeypatch.setattr(scoring, "MIN_SHARED_PREFIX", 8 if share else 10**9)
    monkeypatch.setattr(scoring, "MIN_PREFIX_SAVING", 0)  # three prompts save too few tokens by default
    calls = []
    real = scoring.forward_contexts_shared
    monkeypatch.setattr(scoring, "forward_contexts_shared", lambda *a: calls.append(a[2]) or real(*a))
    chat = [smollm2.tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                                  add_generation_prompt=True) + "The answer is"
            for q in ("What is 2 + 2?", "What is the capital of Peru?", "Name a prime number.")]
    requests = [(chat[0], [" 4", " 5", " four."]), (chat[1], [" Lima", " Cusco"]), (chat[2], [" 7", " 9"])]
    assert_matches_reference(smollm2, requests, score_requests(smollm2, requests, prefix_trie=False))
    assert (len(calls) > 0 and min(calls) >= 8) if share else not calls


# ------------------------------------------------------------------- prefix-trie pass vs two-pass path


def mixed_requests(lm, rng: random.Random):
    """Chat prompts sharing a system turn, plain prompts, one prompt with 22 answers, long answers."""
    chat = [lm.tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                             add_generation_prompt=True) + "The answer is"
            for q in ("What is 2 + 2?", "Capital of Peru?", "Name a prime.")]
    requests = [(chat[0], [" 4", " 5", " four.", " 4"]), (chat[1], [" Lima", " Cusco", " The capital is Lima."]),
                (chat[2], [" 7"])]
    requests.append(("Question: What is the capital of Chile?\nAnswer:",
                     [f" The capital is {w}." for w in WORDS] + [" " + " ".join(WORDS[:k]) for k in range(1, 9)]))
    requests.append(("Explain:", [" " + " ".join(rng.choice(WORDS) for _ in range(40)) for _ in range(3)]))
    return requests + random_requests(rng, n_prompts=4, max_conts=3)


def use_padded_rows(monkeypatch):
    """Run the trie pass as a padded batch (:func:`selfbias.scoring._run_trie`), the path of models
    the packed attention does not serve."""
    from selfbias import scoring

    monkeypatch.setattr(scoring, "packed_rows", lambda lm: False)


@pytest.mark.parametrize("prefix_trie,row_tokens,batch_size,padding_side,rows", [
    (True, 384, None, "left", "packed"), (True, 384, 1, "right", "padded"), (True, 40, 3, "left", "packed"),
    (True, 40, 3, "left", "padded"), (True, 40, None, "right", "padded"), (True, 40, None, "right", "packed"),
    (False, 384, None, "right", "packed"), (False, 384, 2, "left", "packed"),
])
@pytest.mark.parametrize("tokenizer", ["tiny", pytest.param("tiny_smollm2", marks=pytest.mark.model)])
def test_trie_and_two_pass_match_reference(tokenizer, request, monkeypatch, prefix_trie, row_tokens, batch_size,
                                           padding_side, rows):
    """Every path (trie rows of several sizes, packed end to end or padded, the two-pass fallback for
    what does not fit a row) against the per-prefix reference; on the weightless tokenizer and on SmolLM2's."""
    from selfbias import scoring

    tiny = request.getfixturevalue(tokenizer)
    assert scoring.packed_rows(tiny)
    if rows == "padded":
        use_padded_rows(monkeypatch)
    monkeypatch.setattr(scoring, "ROW_TOKENS", row_tokens)
    monkeypatch.setattr(scoring, "GROUP_TOKENS", row_tokens + 40)  # packed: some groups alone in a wider row
    requests = mixed_requests(tiny, random.Random(1))
    results = score_requests(tiny, requests, prefix_trie=prefix_trie, batch_size=batch_size,
                             padding_side=padding_side)
    assert_matches_reference(tiny, requests, results)


@pytest.mark.parametrize("prefix_trie,batch_size,padding_side,rows", [
    (True, None, "left", "packed"), (True, 2, "right", "padded"), (False, None, "left", "packed")])
def test_smollm2_trie_matches_reference(smollm2, monkeypatch, prefix_trie, batch_size, padding_side, rows):
    if rows == "padded":
        use_padded_rows(monkeypatch)
    requests = mixed_requests(smollm2, random.Random(2))[:4]  # long answers: tiny model only (reference cost)
    results = score_requests(smollm2, requests, prefix_trie=prefix_trie, batch_size=batch_size,
                             padding_side=padding_side)
    assert_matches_reference(smollm2, requests, results)


def test_trie_rows_hold_each_distinct_prefix_once(tiny):
    """A packed row has one node per distinct prefix of its sequences (counted here with a set), and
    sequences that share a system turn share its nodes."""
    from selfbias import scoring

    requests = mixed_requests(tiny, random.Random(3))[:4]
    contexts, branch_lists = [], []
    for prompt, conts in requests:
        for enc in encode(tiny, prompt, conts):
            contexts.append(enc.context)
            branch_lists.append([scoring._Branch(0, c, "continuation") for c in enc.continuations])
    groups = list(range(len(contexts)))
    batches = list(scoring._trie_batches(tiny, contexts, branch_lists, groups, 10**6, 10**6, None, 10**6))
    ((row, paths),) = [item for batch in batches for item in batch]
    prefixes = {seq[:k] for g in groups for seq, _, _ in scoring._sequences(contexts[g], branch_lists[g])
                for k in range(1, len(seq) + 1)}
    fed = sum(len(seq) for g in groups for seq, _, _ in scoring._sequences(contexts[g], branch_lists[g]))
    assert len(row.tokens) == len(prefixes) < fed / 2
    for g in groups:  # every path spells its sequence
        for (path, _, _), (seq, _, _) in zip(paths[g], scoring._sequences(contexts[g], branch_lists[g])):
            assert tuple(row.tokens[n] for n in path) == seq


def test_one_prompt_with_short_answers_is_one_forward(smollm2, monkeypatch):
    assert plain_head(smollm2)  # the decoder runs alone and the head is applied block by block
    calls = []
    decoder = smollm2.model.base_model
    real = decoder.forward
    monkeypatch.setattr(decoder, "forward", lambda *a, **k: calls.append(k.get("use_cache")) or real(*a, **k))
    requests = [("Question: What is the capital of Peru?\nAnswer:", [" Lima", " The capital is Lima.", " Cusco"])]
    results = [score(smollm2, *requests[0])]
    assert calls == [False]  # one pass, no cache to gather
    assert_matches_reference(smollm2, requests, results)


def test_gemma_trie_and_window_fallback(gemma):
    """Gemma's sliding window (512): short sequences run in the trie pass; a prompt longer than the
    window falls back to the two-pass path. Both against the reference."""
    from selfbias import scoring

    short = ("The capital of France is", [" Paris", " Lyon", " Paris, of course."])
    long_prompt = " ".join(["word"] * 530) + ". The capital of France is"
    (enc,) = encode(gemma, long_prompt, [" Paris"])
    branches = [scoring._Branch(0, enc.continuations[0], "continuation")]
    assert not scoring._trie_fits(gemma, enc.context, branches, 10**6)
    (enc_short,) = encode(gemma, *short)
    assert scoring._trie_fits(gemma, enc_short.context,
                              [scoring._Branch(0, c, "continuation") for c in enc_short.continuations], 10**6)
    requests = [short, (long_prompt, [" Paris"])]
    assert_matches_reference(gemma, requests, score_requests(gemma, requests))


def test_next_token_same_with_trie_on_and_off(smollm2):
    prefix = "Question: Is Lima the capital of Peru?\nProposed answer:"
    requests = [(prefix, [" Yes\nCorrect?", " No\nCorrect?", ""]), ("Is 7 prime?", [" Answer:", ""])]
    yes = smollm2.tokenizer.convert_tokens_to_ids("Yes")
    on = next_token_logprobs(smollm2, requests, select=[yes], top_k=3)
    off = next_token_logprobs(smollm2, requests, select=[yes], top_k=3, prefix_trie=False)
    for row_on, row_off in zip(on, off):
        for a, b in zip(row_on, row_off):
            if DTYPE == "float32":  # bfloat16 rounding reorders near-ties in the top-k
                assert a.top_ids == b.top_ids
            assert a.selected[yes] == pytest.approx(b.selected[yes], abs=TOL)


# --------------------------------------------------- rows of one batch sharing a prefix; balanced rows


def chat_requests(lm, rng: random.Random, long_answers: bool):
    """Chat prompts sharing the template's system turn; short answers, or three of 18-24 words."""
    questions = ("What is 2 + 2?", "Capital of Peru?", "Name a prime.", "Spell cat.", "Is 9 odd?")
    requests = []
    for q in questions:
        prompt = lm.tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                                  add_generation_prompt=True) + "The answer is"
        if long_answers:
            answers = [" " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(18, 24))) for _ in range(3)]
        else:
            answers = [" 4", " four.", " The capital is Lima."]
        requests.append((prompt, answers))
    return requests


def spy_forwards(lm, monkeypatch) -> list[tuple[int, int, bool, bool]]:
    """Records (batch, new tokens, whether a cache came in, use_cache) for every forward of ``lm``
    (of its decoder, which the scorer runs alone where the head is plain)."""
    calls = []
    module = lm.model.base_model if plain_head(lm) else lm.model
    real = module.forward

    def spy(*a, **k):
        calls.append((k["input_ids"].shape[0], k["input_ids"].shape[1], k.get("cache") is not None,
                      bool(k.get("use_cache"))))
        return real(*a, **k)

    monkeypatch.setattr(module, "forward", spy)
    return calls


@pytest.mark.parametrize("long_answers,batch_size,padding_side", [
    (False, None, "left"), (False, 3, "right"), (True, None, "right"), (True, 2, "left"),
])
def test_batch_prefix_runs_once_and_matches_reference(tiny, monkeypatch, long_answers, batch_size, padding_side):
    """Padded rows: several trie rows in one batch, the system turn they share runs once (a one-row
    pass, its cache copied to every row) and the rows hold only the rest; long answers too. Against
    the reference."""
    from selfbias import scoring

    use_padded_rows(monkeypatch)

    requests = chat_requests(tiny, random.Random(4), long_answers)
    encoded = [enc for p, a in requests for enc in encode(tiny, p, a)]
    contexts = [enc.context for enc in encoded]
    system = min(next(i for i, (x, y) in enumerate(zip(c, contexts[0])) if x != y) for c in contexts[1:])
    assert system >= scoring.MIN_SHARED_PREFIX  # the template's system turn and user header
    # rows just large enough for the largest prompt with its answers: several rows per batch
    sizes = [scoring._new_nodes(scoring._Row([], [], {}, []), scoring._sequences(
        enc.context, [scoring._Branch(0, c, "continuation") for c in enc.continuations])) for enc in encoded]
    monkeypatch.setattr(scoring, "ROW_TOKENS", max(sizes))
    monkeypatch.setattr(scoring, "MIN_PREFIX_SAVING", 0)
    calls = spy_forwards(tiny, monkeypatch)
    results = score_requests(tiny, requests, batch_size=batch_size, padding_side=padding_side)
    prefix_passes = [n for b, n, cached, use_cache in calls if use_cache and not cached]
    assert prefix_passes and set(prefix_passes) == {system}, calls  # no two-pass path here
    assert sum(1 for call in calls if call[2]) == len(prefix_passes)  # each prefix's cache serves one batch
    assert_matches_reference(tiny, requests, results)


@pytest.mark.parametrize("long_answers,batch_size", [(False, None), (True, 2)])
def test_packed_rows_are_one_sequence_without_padding(tiny, monkeypatch, long_answers, batch_size):
    """Packed rows: one forward per batch over a single sequence holding the shared system turn once
    and every row's other nodes, no pad and no cache; the same numbers as the reference."""
    from selfbias import scoring

    requests = chat_requests(tiny, random.Random(4), long_answers)
    encoded = [enc for p, a in requests for enc in encode(tiny, p, a)]
    contexts = [enc.context for enc in encoded]
    branch_lists = [[scoring._Branch(0, c, "continuation") for c in enc.continuations] for enc in encoded]
    sizes = [scoring._group_size(c, b) for c, b in zip(contexts, branch_lists)]
    monkeypatch.setattr(scoring, "ROW_TOKENS", max(sizes))
    budget, logit_budget = scoring.memory_budgets(tiny, 512)
    batches = list(scoring._trie_batches(tiny, contexts, branch_lists, range(len(contexts)), budget, logit_budget,
                                         batch_size, max(sizes), True))
    expected = []
    for batch in batches:
        p = scoring._batch_prefix(contexts, batch, packed=True)
        expected.append(p + sum(len(row.tokens) - p for row, _ in batch))
    assert max(len(b) for b in batches) > 1 and max(  # several rows share the system turn
        scoring._batch_prefix(contexts, b, packed=True) for b in batches) >= scoring.MIN_SHARED_PREFIX
    calls = spy_forwards(tiny, monkeypatch)
    results = score_requests(tiny, requests, batch_size=batch_size)
    assert calls == [(1, n, False, False) for n in expected]
    assert_matches_reference(tiny, requests, results)


def test_batch_prefix_pass_only_where_it_saves_enough(tiny, monkeypatch):
    """A pass of its own for the shared system turn costs a read of every weight: with two rows it
    saves one copy of the turn (fewer than ``MIN_PREFIX_SAVING`` tokens), so each row runs it; with a
    saving threshold the turn clears, one prefix pass. Same numbers both ways. (Padded rows; packed
    rows hold the turn once at no cost.)"""
    from selfbias import scoring

    use_padded_rows(monkeypatch)

    requests = chat_requests(tiny, random.Random(4), False)
    encoded = [enc for p, a in requests for enc in encode(tiny, p, a)]
    sizes = [scoring._new_nodes(scoring._Row([], [], {}, []), scoring._sequences(
        enc.context, [scoring._Branch(0, c, "continuation") for c in enc.continuations])) for enc in encoded]
    total = sum(sizes)
    monkeypatch.setattr(scoring, "ROW_TOKENS", total // 2 + 1)  # two rows, one batch
    calls = spy_forwards(tiny, monkeypatch)
    default = score_requests(tiny, requests)
    assert [(b, cached) for b, _, cached, _ in calls] == [(2, False)]  # one pass, each row holds the turn
    calls.clear()
    monkeypatch.setattr(scoring, "MIN_PREFIX_SAVING", 1)
    shared = score_requests(tiny, requests)
    assert [(b, cached) for b, _, cached, _ in calls] == [(1, False), (2, True)]
    assert_matches_reference(tiny, requests, default)
    assert_matches_reference(tiny, requests, shared)


@pytest.mark.parametrize("rows", ["packed", "padded"])
def test_gemma_batch_prefix_matches_reference(gemma, monkeypatch, rows):
    """Gemma 3 (full and sliding-window layers, a mask per layer type): two rows sharing a prefix,
    packed end to end in one pass or padded with a prefix pass."""
    from selfbias import scoring

    assert scoring.packed_rows(gemma)
    if rows == "padded":
        use_padded_rows(monkeypatch)
    monkeypatch.setattr(scoring, "ROW_TOKENS", 30)
    monkeypatch.setattr(scoring, "MIN_PREFIX_SAVING", 0)
    calls = spy_forwards(gemma, monkeypatch)
    lead = "Answer with the name of a city and nothing else. Question: "
    requests = [(lead + "What is the capital of France?\nAnswer:", [" Paris", " Lyon"]),
                (lead + "What is the capital of Peru?\nAnswer:", [" Lima", " Cusco, Peru"])]
    results = score_requests(gemma, requests)
    if rows == "padded":
        assert [call[2] for call in calls] == [False, True]  # prefix pass, then both rows on its cache
    else:
        assert [call[:3] for call in calls] == [(1, calls[0][1], False)]  # one sequence, no cache
    assert_matches_reference(gemma, requests, results)


def _id_groups(sizes: list[int]):
    """Contexts of distinct token ids (nothing shared), one 2-token continuation each: a group's
    trie has ``size`` nodes (its context and the continuation's first token)."""
    from selfbias.scoring import _Branch

    ids = iter(range(1000, 10**6))
    contexts = [tuple(next(ids) for _ in range(n - 1)) for n in sizes]
    return contexts, [[_Branch(0, (next(ids), next(ids)), "continuation")] for _ in sizes]


def test_trie_rows_are_balanced_and_batches_even(tiny):
    """Next-fit alone would fill rows of 30 nodes as [3 groups, 1 group] and batches as [7 rows, 1 row];
    balanced: two rows of two groups, and batches of four rows."""
    from selfbias import scoring

    contexts, branches = _id_groups([10] * 4)
    batches = list(scoring._trie_batches(tiny, contexts, branches, range(4), 10**6, 10**6, None, 30))
    assert [[len(row.groups) for row, _ in b] for b in batches] == [[2, 2]]
    assert [len(row.tokens) for row, _ in batches[0]] == [20, 20]
    contexts, branches = _id_groups([10] * 8)
    # one group per row (cap 10); a token budget of 7 rows x 10 -> next-fit: 7 + 1, even: 4 + 4
    batches = list(scoring._trie_batches(tiny, contexts, branches, range(8), 70, 10**6, None, 10))
    assert [len(b) for b in batches] == [4, 4]
    batches = list(scoring._trie_batches(tiny, contexts, branches, range(8), 30, 10**6, None, 10))
    assert [len(b) for b in batches] == [2, 3, 3]  # budget 3 rows: next-fit 3 + 3 + 2, as many even ones
    assert sorted(g for b in batches for row, _ in b for g in row.groups) == list(range(8))


@pytest.fixture(scope="module")
def tiny_gemma2(tiny):
    """A random 2-layer Gemma 2 on the tiny tokenizer: soft-capped attention scores and logits."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    from selfbias.models import wrap_model

    torch.manual_seed(0)
    tok = tiny.tokenizer
    config = Gemma2Config(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, max_position_embeddings=256, sliding_window=128,
        attn_logit_softcapping=20.0, final_logit_softcapping=10.0, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    return wrap_model(Gemma2ForCausalLM(config).eval(), tok, name="tiny-gemma2", prompt_format="chat")


def test_soft_capped_attention_keeps_padded_rows(tiny_gemma2, monkeypatch):
    """Gemma 2 soft-caps its attention scores, which the packed attention does not compute: the
    once-per-model check keeps it on padded rows (and its soft-capped logits on the model's own head),
    and the numbers match the reference."""
    from selfbias import scoring

    assert not scoring.packed_rows(tiny_gemma2) and not plain_head(tiny_gemma2)
    requests = chat_requests(tiny_gemma2, random.Random(5), False)
    monkeypatch.setattr(scoring, "ROW_TOKENS", 60)  # several rows
    calls = spy_forwards(tiny_gemma2, monkeypatch)
    results = score_requests(tiny_gemma2, requests)
    assert max(batch for batch, *_ in calls) > 1  # padded rows
    assert_matches_reference(tiny_gemma2, requests, results)


def test_packed_rows_from_several_threads(tiny, monkeypatch):
    """Packed forwards switch the model's attention for their duration; threads scoring on one model
    take turns and each gets the numbers of a lone call."""
    from concurrent.futures import ThreadPoolExecutor

    from selfbias import scoring

    requests = chat_requests(tiny, random.Random(6), False)
    monkeypatch.setattr(scoring, "ROW_TOKENS", 60)  # several rows per batch
    alone = score_requests(tiny, requests)
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda _: score_requests(tiny, requests), range(8)))
    for result in together:
        assert [[s.logprobs for s in row] for row in result] == [[s.logprobs for s in row] for row in alone]
    assert tiny.model.config._attn_implementation != "selfbias_trie"  # switched back


@pytest.mark.parametrize("rows", ["packed", "padded"])
def test_group_wider_than_a_row(tiny, monkeypatch, rows):
    """A prompt whose answers make a larger trie than a row: packed, it takes a row of its own in the
    trie pass (one forward, no cache) up to ``GROUP_TOKENS`` nodes; padded, the two-pass path. Both
    against the reference."""
    from selfbias import scoring

    if rows == "padded":
        use_padded_rows(monkeypatch)
    rng = random.Random(7)
    requests = [("Explain:", [" " + " ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(4)]),
                ("Why?", [" 4", " four"])]
    (big,) = encode(tiny, *requests[0])
    size = scoring._group_size(big.context, [scoring._Branch(0, c, "continuation") for c in big.continuations])
    monkeypatch.setattr(scoring, "ROW_TOKENS", size - 10)
    monkeypatch.setattr(scoring, "GROUP_TOKENS", size)
    calls = spy_forwards(tiny, monkeypatch)
    results = score_requests(tiny, requests)
    if rows == "packed":
        assert [(b, cached) for b, _, cached, _ in calls] == [(1, False)]
    else:
        assert any(cached for _, _, cached, _ in calls)  # the branches' pass on the context's cache
    assert_matches_reference(tiny, requests, results)


def test_trie_node_count_of_long_prompts():
    """_new_nodes on 6000-token contexts (few-shot judge prompts of TruthfulQA with options run long; the
    earlier nested-tuple keys raised RecursionError from about 4000 tokens): the count equals the nodes
    _insert then adds (an independent count), into an empty row and into one sharing a prefix."""
    from selfbias import scoring

    rng = random.Random(0)
    context = [rng.randrange(50) for _ in range(6000)]
    branches = [scoring._Branch(0, [rng.randrange(50) for _ in range(n)], kind)
                for n, kind in ((3, "continuation"), (4, "next"), (1, "continuation"))]
    seqs = scoring._sequences(context, branches)
    empty = scoring._Row([], [], {}, [])
    n = scoring._new_nodes(empty, seqs)
    scoring._insert(empty, seqs)
    assert n == len(empty.tokens) > 6000
    other = scoring._sequences(context[:5000] + [7] * 5, branches)  # shares 5000 tokens with the row
    n_other = scoring._new_nodes(empty, other)
    before = len(empty.tokens)
    scoring._insert(empty, other)
    assert n_other == len(empty.tokens) - before < 20 + sum(len(b.tokens) for b in branches)
