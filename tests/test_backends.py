"""The backend interface (selfbias.backends): the HF backend gives exactly what the functions give,
and probe/judge reach a model through the interface only (a pure-Python backend proves it)."""

from __future__ import annotations

import dataclasses
import sys
import types

import pandas as pd
import pytest

from selfbias.backends import Backend, Capabilities, HFBackend, as_backend, load_backend
from selfbias.generation import generate
from selfbias.scoring import next_token_logprobs, score_requests

PROMPTS = ["Question: What is the capital of France?\nAnswer:", "Question: What is 2 + 3?\nAnswer:"]
REQUESTS = [(PROMPTS[0], [" Paris", " Lyon", " paris."]), (PROMPTS[1], [" 5", " 6"])]
SUFFIXES = [(PROMPTS[0], [" Paris\nCorrect?", " Lyon\nCorrect?"]), (PROMPTS[1], [""])]


def _yes_no_ids(tokenizer) -> list[int]:
    return [tokenizer.convert_tokens_to_ids(t) for t in ("Yes", "No", "ĠYes", "ĠNo")]


@pytest.mark.parametrize("which", ["tiny", "smollm2"])
def test_hf_backend_equals_the_functions(which, request):
    lm = request.getfixturevalue(which)
    backend = HFBackend(lm)
    assert isinstance(backend, Backend)
    assert backend.score_requests(REQUESTS, truncate=True) == score_requests(lm, REQUESTS, truncate=True)
    kw = dict(n=2, temperature=0.7, max_new_tokens=6, stop=("\n",), seed=3)
    assert backend.generate(PROMPTS, **kw) == generate(lm, PROMPTS, **kw)
    select = _yes_no_ids(lm.tokenizer)
    got = backend.next_token_logprobs(SUFFIXES, select=select, top_k=4)
    assert got == next_token_logprobs(lm, SUFFIXES, select=select, top_k=4)
    # the whole distribution is read: nothing bounded, the top-k mass is recorded as 1
    assert all(nt.covered_mass == 1.0 and not nt.bounded for row in got for nt in row)
    assert set(got[0][0].selected) == set(select)


def test_hf_backend_options_reach_the_functions(tiny):
    """batch_size / prefix_trie go through to the HF functions (same numbers, another batching)."""
    backend = HFBackend(tiny, batch_size=1)
    plain = score_requests(tiny, REQUESTS)
    assert backend.score_requests(REQUESTS) == score_requests(tiny, REQUESTS, batch_size=1)
    assert backend.score_requests(REQUESTS, prefix_trie=False) == score_requests(tiny, REQUESTS, batch_size=1,
                                                                                 prefix_trie=False)
    assert _close(backend.score_requests(REQUESTS, prefix_trie=False), plain)  # another path, same numbers
    assert backend.replace(batch_size=4).batch_size == 4 and backend.replace(batch_size=4).lm is tiny
    with pytest.raises(TypeError, match="unknown option"):
        backend.replace(nonsense=1)


def _close(a, b, tol=1e-4) -> bool:
    return all(x.token_ids == y.token_ids and max(abs(p - q) for p, q in zip(x.logprobs, y.logprobs)) < tol
               for ra, rb in zip(a, b) for x, y in zip(ra, rb))


def test_manifest_records_kind_and_capabilities(tiny):
    m = HFBackend(tiny).to_manifest()
    assert m["backend"] == "hf"
    assert m["capabilities"] == {"score": True, "generate": True, "next_token": "exact", "max_top_k": None,
                                 "detail": {}}
    assert m["device_map"] == {"": "cpu"}
    assert {k: v for k, v in m.items() if k not in ("backend", "capabilities", "device_map")} == tiny.to_manifest()


def test_as_backend_and_capabilities_refuse_bad_input(tiny):
    b = as_backend(tiny)
    assert isinstance(b, HFBackend) and as_backend(b) is b
    assert as_backend(b, batch_size=2).batch_size == 2
    with pytest.raises(TypeError, match="LoadedModel or a selfbias Backend"):
        as_backend(object())
    with pytest.raises(ValueError, match="next_token must be one of"):
        Capabilities(next_token="partial")


def test_load_backend_routes_specs(smollm2, monkeypatch):
    assert isinstance(load_backend("smollm2-135m"), HFBackend)
    seen = {}

    class Served:
        @classmethod
        def from_spec(cls, spec, **options):
            seen.update(spec=spec, **options)
            return "served"

    # a stand-in module where selfbias.backends.openai would be (not an HTTP mock: nothing is called)
    monkeypatch.setitem(sys.modules, "selfbias.backends.openai", types.SimpleNamespace(OpenAIBackend=Served))
    out = load_backend("openai:m@http://127.0.0.1:1/v1", device="cpu", dtype="auto", prompt_format="chat")
    assert out == "served"
    assert seen == {"spec": "openai:m@http://127.0.0.1:1/v1", "prompt_format": "chat"}  # HF loading options dropped


# ---------------------------------------------------------------- probe and judge use only the interface


class RecordingBackend:
    """A backend that is not a LoadedModel: no ``model``, ``lm``, ``device`` or ``context_length``; its
    tokenizer is the real one. It delegates the three operations to a hidden HF backend and records
    every call; its next-token reads claim a top-k covering half the mass, as a server's would."""

    def __init__(self, lm, name: str):
        self._inner = HFBackend(lm)
        self.name = name
        self.prompt_format = lm.prompt_format
        self.chat_template_kwargs = dict(lm.chat_template_kwargs)
        self.tokenizer = lm.tokenizer
        self.capabilities = Capabilities(next_token="top_k", max_top_k=20)
        self.calls: list[str] = []

    def to_manifest(self):
        return {"name": self.name, "backend": "recording", "capabilities": self.capabilities.to_dict(),
                "prompt_format": self.prompt_format, "chat_template_kwargs": self.chat_template_kwargs}

    def score_requests(self, requests, *, truncate=False):
        self.calls.append("score_requests")
        return self._inner.score_requests(requests, truncate=truncate)

    def generate(self, prompts, *, n=1, temperature=0.0, top_p=1.0, max_new_tokens=48, stop=(), seed=0):
        self.calls.append("generate")
        return self._inner.generate(prompts, n=n, temperature=temperature, top_p=top_p,
                                    max_new_tokens=max_new_tokens, stop=stop, seed=seed)

    def next_token_logprobs(self, requests, *, select=(), top_k=10):
        self.calls.append("next_token_logprobs")
        out = self._inner.next_token_logprobs(requests, select=select, top_k=top_k)
        return [[dataclasses.replace(nt, covered_mass=0.5) for nt in row] for row in out]

    def close(self):
        self.calls.append("close")


def _probe(tmp_path, name, model, modes=("isolated",), n=3, few_shot=4):
    from selfbias.probe import probe

    return probe(name, "capitals", n=n, samples=1, max_new_tokens=6, out=tmp_path / name, loaded={name: model},
                 judge_modes=modes, few_shot=few_shot, progress=False)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def test_probe_with_a_backend_equals_probe_with_the_loaded_model(tiny, tmp_path):
    # zero-shot: the tiny model's 256-token context holds no few-shot examples
    direct = _probe(tmp_path / "a", "tiny-llama", tiny, few_shot=0)
    wrapped = _probe(tmp_path / "b", "tiny-llama", HFBackend(tiny), few_shot=0)
    for table in ("generations", "candidates", "scores", "agreement", "judgments"):
        _same(getattr(direct, table), getattr(wrapped, table))
    assert (direct.judgments["top_k_mass"] == 1.0).all()
    assert direct.manifest["models_loaded"] == wrapped.manifest["models_loaded"]
    assert direct.manifest["models_loaded"]["tiny-llama"]["backend"] == "hf"
    assert "backend" not in direct.manifest["request"]["models"][0]  # the default kind: old runs still resume


def test_probe_and_judge_call_only_the_interface(smollm2, tmp_path):
    """The real model (its context fits the critique prompts), judged isolated and after a critique."""
    name, modes = "smollm2-135m", ("isolated", "critique")
    reference = _probe(tmp_path / "hf", name, smollm2, modes, n=2)
    backend = RecordingBackend(smollm2, name)
    assert isinstance(backend, Backend) and not hasattr(backend, "model") and not hasattr(backend, "lm")
    run = _probe(tmp_path / "rec", name, backend, modes, n=2)
    # probe: generate (greedy, samples) and score; judge: generate the critiques, read the verdicts
    assert backend.calls.count("generate") >= 3 and "score_requests" in backend.calls
    assert "next_token_logprobs" in backend.calls
    assert "close" not in backend.calls  # a backend the caller passed in is the caller's to close
    for table in ("generations", "scores"):
        _same(getattr(reference, table), getattr(run, table))
    ref_j, got_j = reference.judgments, run.judgments
    _same(ref_j.drop(columns="top_k_mass"), got_j.drop(columns="top_k_mass"))
    assert (got_j["top_k_mass"] == 0.5).all()  # the backend's covered mass reaches the table
    assert set(got_j["mode"]) == set(modes) and got_j["critique"].notna().any()
    assert run.manifest["models_loaded"][name]["backend"] == "recording"
    assert run.manifest["request"]["models"][0]["backend"] == "recording"


def test_judge_prompts_reads_through_a_backend(tiny, tmp_path):
    from selfbias.judge import judge_prompts

    run = _probe(tmp_path, "tiny-llama", tiny, modes=())
    backend = RecordingBackend(tiny, "tiny-llama")
    got = judge_prompts(run, backend, "isolated", read=True)
    ref = judge_prompts(run, tiny, "isolated", read=True)
    assert backend.calls == ["next_token_logprobs"]
    _same(got.drop(columns="top_k_mass"), ref.drop(columns="top_k_mass"))


def test_a_backend_without_tokenizer_is_refused_by_the_judge_in_one_line(tiny, tmp_path):
    from selfbias.judge import judge

    run = _probe(tmp_path, "tiny-llama", tiny, modes=())
    backend = RecordingBackend(tiny, "tiny-llama")
    backend.tokenizer = None
    with pytest.raises(ValueError, match="has no tokenizer"):
        judge(run, modes=("isolated",), models={"tiny-llama": backend}, progress=False)


def test_log_softmax_is_float32_for_bfloat16_weights(tiny):
    """Scores of a bfloat16 model equal log_softmax of its logits taken in float32, not in bfloat16."""
    import copy

    import torch

    from selfbias.models import wrap_model

    model = copy.deepcopy(tiny.model).to(torch.bfloat16)
    lm = wrap_model(model, tiny.tokenizer, name="tiny-bf16", prompt_format="plain")
    assert lm.dtype == torch.bfloat16
    prompt, cont = PROMPTS[1], " 5 apples"
    (s,) = HFBackend(lm).score_requests([(prompt, [cont])])[0]
    ids = lm.tokenizer(prompt + cont, add_special_tokens=False)["input_ids"]
    k = len(ids) - len(s.token_ids)
    assert tuple(ids[k:]) == s.token_ids
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids])).logits[0, k - 1:-1]
    rows = torch.arange(len(s.token_ids))
    want = torch.log_softmax(logits.float(), -1)[rows, list(s.token_ids)]
    # The scorer's batched forward and this plain one round the bfloat16 logits differently (about
    # 2e-3 here), so the values agree to that; what shows the arithmetic is float32 is that no
    # log-prob is a bfloat16 number (at |x| ~ 16, bfloat16 steps by 0.125), as a bfloat16
    # log-softmax's would all be.
    assert s.logprobs == pytest.approx(want.tolist(), abs=0.02)
    as_bf16 = torch.tensor(s.logprobs).to(torch.bfloat16).float().tolist()
    assert all(v != b for v, b in zip(s.logprobs, as_bf16))
    coarse = torch.log_softmax(logits, -1).float()[rows, list(s.token_ids)].tolist()
    assert coarse == torch.tensor(coarse).to(torch.bfloat16).float().tolist()  # the check can fail
