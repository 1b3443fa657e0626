"""Judge reads that share what their prompts share (selfbias.scoring.next_token_logprobs, ``shared_prefix``).

The leading tokens that every prompt of a call shares (a judge's few-shot block) are read once and
every batch continues their key/value cache. Checked against two other computations of the same
numbers: the unshared read (``shared_prefix=False``: each batch reads them again) and the reference,
one plain forward over each whole prompt (no cache, padding or batching), float32 log-softmax of its
last position. Tolerances: log-probs 1e-4 nats, P(Yes) 1e-5 (float32 on CPU; measured: about 2e-5 and
4e-6 on SmolLM2, 4e-6 on the tiny model).
"""

from __future__ import annotations

import math
import random
import weakref

import pandas as pd
import pytest
import torch

from selfbias import scoring
from selfbias._batching import token_ids
from selfbias._packed import TrieLayout, row_spans, trie_attention
from selfbias.scoring import next_token_logprobs

TOL = 1e-4  # log-probs, nats
P_TOL = 1e-5  # P(Yes)

WORDS = ("Question:", "What", "is", "2", "+", "3?", "Answer:", "5.", "Yes,", "the", "proposed", "answer",
         "correct.", "No,", "it", "wrong.", "capital", "of", "France", "Paris.", "Peru", "Lima.")


def judge_like_requests(lm, seed: int = 0, n_items: int = 7, block_words: int = 60):
    """Chat prompts as the judge builds them: one few-shot block shared by every prompt, then per item
    a question (the request's prefix) and per candidate an answer and the assistant turn (its suffixes;
    an empty suffix reads after the prefix alone)."""
    rng = random.Random(seed)
    block = " ".join(rng.choice(WORDS) for _ in range(block_words))
    requests = []
    for _ in range(n_items):
        question = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 10)))
        prefix = lm.tokenizer.apply_chat_template(
            [{"role": "system", "content": "You grade answers."}, {"role": "user", "content": block},
             {"role": "assistant", "content": "Yes"}], tokenize=False) + \
            f"<|im_start|>user\n{question}\nProposed answer:"
        suffixes = [f" {rng.randint(0, 99)}<|im_end|>\n<|im_start|>assistant\n" for _ in range(rng.randint(1, 4))]
        requests.append((prefix, suffixes + ([""] if rng.random() < 0.5 else [])))
    return requests


def reference(lm, requests):
    """Log-softmax of the last position of one plain forward over each whole prompt."""
    out = []
    with torch.no_grad():
        for prefix, suffixes in requests:
            row = []
            for suffix in suffixes:
                ids = token_ids(lm, prefix + suffix)
                row.append(torch.log_softmax(lm.model(input_ids=torch.tensor([ids])).logits[0, -1].float(), -1))
            out.append(row)
    return out


def p_yes(nt, first, second) -> float:
    a = sum(math.exp(nt.selected[t]) for t in first)
    b = sum(math.exp(nt.selected[t]) for t in second)
    return a / (a + b)


def compare(shared, unshared, ref, first, second) -> tuple[float, float]:
    """(max |log-prob difference| to the reference over the selected and top ids of both reads, max
    |P(Yes) shared - unshared|); the same top ids in both reads."""
    worst = worst_p = 0.0
    for rows in zip(shared, unshared, ref):
        for a, b, r in zip(*rows):
            for nt in (a, b) if r is not None else ():
                worst = max(worst, *(abs(nt.selected[t] - r[t].item()) for t in first + second),
                            *(abs(v - r[t].item()) for t, v in zip(nt.top_ids, nt.top_logprobs)))
            assert a.top_ids == b.top_ids
            worst_p = max(worst_p, abs(p_yes(a, first, second) - p_yes(b, first, second)))
    return worst, worst_p


def spy_roots(monkeypatch) -> list[int]:
    """Records the length of every root read (scoring._read_root; negative: refused); no root kept
    from earlier tests."""
    monkeypatch.setattr(scoring, "_ROOTS", weakref.WeakKeyDictionary())
    roots = []
    real = scoring._read_root

    def spy(lm, tokens):
        root = real(lm, tokens)
        roots.append(len(tokens) if root is not None else -len(tokens))
        return root

    monkeypatch.setattr(scoring, "_read_root", spy)
    return roots


@pytest.mark.parametrize("path", ["packed", "padded", "two_pass"])
@pytest.mark.parametrize("batch_size,memory_mb", [(None, 1024), (1, 1024), (3, 1024), (None, 0.05)])
def test_shared_root_matches_unshared_and_reference(tiny, monkeypatch, path, batch_size, memory_mb):
    """Every path (packed trie rows, padded trie rows, the two-pass path), one batch or many (batch
    size 1 and 3; a memory budget of a few rows), against the unshared read and the reference."""
    monkeypatch.setitem(scoring._PACKED, tiny.model, path == "packed")
    requests = judge_like_requests(tiny)
    first, second = [5, 7], [11, 13]
    kwargs = dict(select=first + second, top_k=5, batch_size=batch_size, memory_mb=memory_mb,
                  prefix_trie=path != "two_pass")
    roots = spy_roots(monkeypatch)
    shared = next_token_logprobs(tiny, requests, shared_prefix=True, **kwargs)
    unshared = next_token_logprobs(tiny, requests, shared_prefix=False, **kwargs)
    contexts = [token_ids(tiny, prefix) for prefix, _ in requests]
    # read once, the whole block (and what the items share after it)
    assert roots == [scoring._common_prefix(contexts)] and roots[0] > 60
    worst, worst_p = compare(shared, unshared, reference(tiny, requests), first, second)
    assert worst <= TOL and worst_p <= P_TOL, (worst, worst_p)


def test_root_only_where_it_pays(tiny, monkeypatch):
    """Prompts that fit in one batch (whose rows share their leading tokens already) and share fewer
    than MIN_PREFIX_SAVING tokens: no root pass."""
    roots = spy_roots(monkeypatch)
    short = judge_like_requests(tiny, block_words=5)
    assert scoring._common_prefix([token_ids(tiny, p) for p, _ in short]) < scoring.MIN_PREFIX_SAVING
    next_token_logprobs(tiny, short, select=[5])
    chat = [(tiny.tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                                add_generation_prompt=True), [" Yes", ""])
            for q in ("Is 7 prime?", "Capital of Peru?", "What is 2 + 3?")]
    next_token_logprobs(tiny, chat, select=[5])
    assert roots == []


def test_root_kept_across_calls_until_the_weights_change(tiny, monkeypatch):
    """The judge reads a chunk of items per call: the next call with the same leading tokens reuses
    the root, a change of weights reads it again."""
    requests = judge_like_requests(tiny, seed=2)
    first, second = [5, 7], [11, 13]
    roots = spy_roots(monkeypatch)
    several = next_token_logprobs(tiny, requests, select=first + second, top_k=5, batch_size=2)
    assert len(roots) == 1 and roots[0] > 60
    one_batch = next_token_logprobs(tiny, requests[:2], select=first + second, top_k=5)
    unshared = next_token_logprobs(tiny, requests[:2], select=first + second, top_k=5, shared_prefix=False)
    assert len(roots) == 1  # kept
    worst, worst_p = compare(one_batch, unshared, reference(tiny, requests[:2]), first, second)
    assert worst <= TOL and worst_p <= P_TOL, (worst, worst_p)
    assert compare(several[:2], unshared, reference(tiny, requests[:2]), first, second)[0] <= TOL
    with torch.no_grad():
        tiny.model.model.norm.weight.mul_(1.0)  # written in place (the same values): read again
    next_token_logprobs(tiny, requests, select=first + second, top_k=5, batch_size=2)
    assert len(roots) == 2 and roots[1] == roots[0]


@pytest.fixture(scope="module")
def tiny_gemma3(tiny):
    """A random 2-layer Gemma 3 on the tiny tokenizer: a sliding-window layer and a full one."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from selfbias.models import wrap_model

    torch.manual_seed(0)
    tok = tiny.tokenizer
    config = Gemma3TextConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, max_position_embeddings=512, sliding_window=512,
        layer_types=["sliding_attention", "full_attention"], bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    return wrap_model(Gemma3ForCausalLM(config).eval(), tok, name="tiny-gemma3", prompt_format="chat")


def test_sliding_window_model_reads_unshared(tiny_gemma3, monkeypatch):
    """A model with sliding-window layers never shares a root (its cache keeps a window): by its
    config, and, where the config does not say so, because its cache is not a plain growing one
    (forced here); the numbers are the reference's either way."""
    requests = judge_like_requests(tiny_gemma3, seed=1, n_items=4)
    first, second = [5, 7], [11, 13]
    contexts = [token_ids(tiny_gemma3, prefix) for prefix, _ in requests]
    assert scoring._root_length(tiny_gemma3, contexts) == 0
    ref = reference(tiny_gemma3, requests)
    kwargs = dict(select=first + second, top_k=5, batch_size=1)  # several batches: a root would pay
    unshared = next_token_logprobs(tiny_gemma3, requests, shared_prefix=False, **kwargs)
    roots = spy_roots(monkeypatch)
    monkeypatch.setattr(scoring, "_full_attention", lambda lm: True)
    shared = next_token_logprobs(tiny_gemma3, requests, **kwargs)
    assert len(roots) == 1 and roots[0] < 0  # tried, refused: read unshared
    worst, worst_p = compare(shared, unshared, ref, first, second)
    assert worst <= TOL and worst_p <= P_TOL, (worst, worst_p)


@pytest.mark.parametrize("prefix", [0, 3])
def test_trie_attention_continues_a_cache(prefix):
    """Packed attention whose first ``c`` keys come from a cache equals the same attention computed
    over the whole sequence (tests/test_packed.py checks that one against the definition)."""
    gen = torch.Generator().manual_seed(0)
    c, rows = 4, [[-1, 0, 0], [-1, 0, 1, -1]]  # parent lists; -1: the prefix's last node
    n = c + prefix + sum(len(r) for r in rows)
    q, k, v = (torch.randn((1, h, n, 8), generator=gen) for h in (4, 2, 2))

    def layout(shared: int) -> TrieLayout:
        """Rows after ``shared`` positions of the query; every row sees the c + prefix leading keys."""
        masks = []
        for parents in rows:
            allowed = torch.zeros((len(parents), c + prefix + len(parents)), dtype=torch.bool)
            allowed[:, :c + prefix] = True
            for i in range(len(parents)):
                node = i
                while node >= 0:  # itself and its ancestors
                    allowed[i, c + prefix + node] = True
                    node = parents[node]
            masks.append(torch.zeros(allowed.shape).masked_fill_(~allowed, torch.finfo(torch.float32).min)[None, None])
        return TrieLayout(shared, row_spans([len(r) for r in rows], shared), tuple(masks))

    whole, _ = trie_attention(None, q, k, v, None, scaling=0.3, trie=layout(c + prefix))
    cached, _ = trie_attention(None, q[:, :, c:], k, v, None, scaling=0.3, trie=layout(prefix))
    assert torch.allclose(cached, whole[:, c:], atol=1e-6)


# --------------------------------------------------------------------------- the real model


def _few_shot_run(path) -> None:
    """A small finished run (3 arithmetic items, no model involved) for the judge's own prompts."""
    from selfbias.runs import RunStore

    store = RunStore.open(path, {"models": [{"name": "smollm2-135m"}], "task": {"name": "test"}})
    items, cands = [], []
    for i, (a, b) in enumerate([(2, 3), (7, 8), (6, 7)]):
        iid, ref = f"t-{i}", str(a + b)
        items.append({"item_id": iid, "task": "test", "question": f"What is {a} + {b}?", "references": [ref],
                      "distractors": [], "choices": [], "answer_type": "number", "meta": "{}"})
        for k, text in enumerate([ref, str(a + b + 1), str(a * b), str(a + b - 2)]):
            cands.append({"item_id": iid, "candidate_id": f"{iid}#{k}", "text": text,
                          "source": "reference" if k == 0 else "perturbation",
                          "sources": ["reference" if k == 0 else "perturbation"],
                          "authors": ["dataset" if k == 0 else "perturbation"], "correct": k == 0})
    store.write_chunk("items", "task", "0", pd.DataFrame(items))
    store.write_chunk("candidates", "probe", "0", pd.DataFrame(cands))
    store.finalize()
    store.close()


def test_smollm2_few_shot_judge_reads(smollm2, tmp_path, monkeypatch):
    """The judge's own 4-shot prompts (isolated mode) on SmolLM2: shared, unshared and reference agree."""
    from selfbias.judge import find_option_tokens, judge_prompts

    _few_shot_run(tmp_path / "run")
    prompts = judge_prompts(tmp_path / "run", smollm2, "isolated", few_shot=4)
    groups: dict[str, list[int]] = {}
    for i, prefix in enumerate(prompts.prompt_prefix):
        groups.setdefault(prefix, []).append(i)
    requests = [(prefix, [prompts.prompt_suffix[i] for i in idx]) for prefix, idx in groups.items()]
    first, second = find_option_tokens(smollm2.tokenizer, "Yes"), find_option_tokens(smollm2.tokenizer, "No")
    roots = spy_roots(monkeypatch)
    kwargs = dict(select=first + second, top_k=5, batch_size=2)  # two batches (a chunk of 16 items takes several)
    shared = next_token_logprobs(smollm2, requests, **kwargs)
    unshared = next_token_logprobs(smollm2, requests, shared_prefix=False, **kwargs)
    assert len(roots) == 1 and roots[0] > 150  # the four examples and more, read once
    _, worst_p = compare(shared, unshared, [[None] * len(s) for _, s in requests], first, second)
    # the reference (a forward over a whole 4-shot prompt) for one prompt per item: CI time
    worst, _ = compare([r[:1] for r in shared], [r[:1] for r in unshared],
                       reference(smollm2, [(prefix, suffixes[:1]) for prefix, suffixes in requests]), first, second)
    assert worst <= TOL and worst_p <= P_TOL, (worst, worst_p)


def test_weights_without_version_counters_keep_no_root():
    """Weights made under torch.inference_mode keep no version counter: nothing tells a change of them,
    so no root is kept across calls (it is still read within a call)."""
    with torch.inference_mode():
        frozen = torch.nn.Linear(2, 2)
    assert scoring._weights_state(frozen) is None
    assert scoring._weights_state(torch.nn.Linear(2, 2)) is not None
