"""The served backend against a small in-process OpenAI-compatible server (tests/_fake_server.py):
fast checks, no vLLM, of what does not need a real model: seeded sampling detected and recorded, the
served model's identity apart from its address (a server moved to another port is the same model; a
different model behind the same name is refused before a cached answer is used), and the transport
settings in the manifest. The agreement with the local backend is tests/test_openai_backend.py's.
"""

from __future__ import annotations

import json
import math
import warnings

import pytest
from typer.testing import CliRunner

from selfbias import cli
from selfbias.backends.openai import IDENTITY_TOL, OpenAIBackend, ServerError, identity_mismatch

from _fake_server import FakeModel, FakeServer
from conftest import tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def test_seeded_sampling_is_detected_and_recorded(tok):
    with FakeServer(tok, "m") as server, OpenAIBackend(server.url, "m") as b:
        assert b.to_manifest()["seeded_sampling"] == "honoured"
        one = b.generate(["Question: what is the capital of Peru?"], n=3, temperature=1.0, max_new_tokens=6, seed=4)
        again = b.generate(["Question: what is the capital of Peru?"], n=3, temperature=1.0, max_new_tokens=6, seed=4)
        assert [g.token_ids for g in one[0]] == [g.token_ids for g in again[0]]
        assert len({g.token_ids for g in one[0]}) == 3  # three draws, not one repeated
        seeds = [body["seed"] for path, body in server.requests if path == "/v1/completions" and body.get("max_tokens") == 6]
        assert len(set(seeds)) == 3 and sorted(seeds[:3]) == sorted(seeds[3:])  # one seed per (prompt, sample), each time
    with FakeServer(tok, "m", honour_seed=False) as server, OpenAIBackend(server.url, "m") as b:
        assert b.to_manifest()["seeded_sampling"] == "ignored"
        assert b.capabilities.detail["seeded_sampling"] == "ignored"
        with pytest.warns(UserWarning, match="ignores per-request seeds"):
            b.generate(["Question: what is 2 + 3?"], n=2, temperature=1.0, max_new_tokens=4)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            b.generate(["Question: what is 2 + 3?"], max_new_tokens=4)  # greedy: nothing to seed, no warning


def test_identity_fingerprint_is_the_models_log_probs(tok):
    """The fingerprint is the served log-probs of the probe text, checked against the fake model's
    closed form computed here token by token."""
    with FakeServer(tok, "m", copy=0.9) as server, OpenAIBackend(server.url, "m") as b:
        identity = b.to_manifest()["identity"]
        assert identity["served_model"] == "m" and "127.0.0.1" not in json.dumps(identity)  # not the address
        fp = identity["fingerprint"]
        ids = fp["token_ids"]
        assert ids == list(tok(fp["text"], add_special_tokens=False)["input_ids"]) and fp["kind"] == "prompt_logprobs"
        model = FakeModel(tok, 0.9)
        expected = [None] + [model.logprob(ids[:i], ids[i]) for i in range(1, len(ids))]
        assert fp["logprobs"][0] is None
        assert max(abs(a - b) for a, b in zip(fp["logprobs"][1:], expected[1:])) < 1e-6
        assert min(fp["logprobs"][1:]) == pytest.approx(math.log(0.1 / (len(tok) - 1)), abs=1e-6)  # a miss, not uniform
    same = {"served_model": "m", "fingerprint": dict(fp, logprobs=[None] + [v + IDENTITY_TOL / 2 for v in fp["logprobs"][1:]])}
    assert identity_mismatch(identity, same) is None  # float32 wobble of one model
    moved = {"served_model": "m", "fingerprint": dict(fp, logprobs=[None] + [v + 3 * IDENTITY_TOL for v in fp["logprobs"][1:]])}
    assert "differ by up to" in identity_mismatch(identity, moved)
    assert "tokenizer" in identity_mismatch(identity, {"served_model": "m", "fingerprint": dict(fp, token_ids=ids[1:])})
    assert "served name" in identity_mismatch(identity, {"served_model": "n", "fingerprint": fp})


def test_a_moved_server_reuses_the_cache_and_another_model_is_refused(tok, tmp_path):
    cache = tmp_path / "cache"
    requests = [("Question: what is the capital of Peru?\nAnswer:", [" Lima", " Paris"]),
                ("Question: what is 2 + 3?\nAnswer:", [" 5", " 6"])]
    with FakeServer(tok, "m") as server, OpenAIBackend(server.url, "m", cache_dir=cache) as b:
        first = b.score_requests(requests)
        assert b.sent == 4
    with FakeServer(tok, "m") as moved, OpenAIBackend(moved.url, "m", cache_dir=cache) as b:  # another port
        assert moved.url != server.url
        assert b.score_requests(requests) == first
        assert (b.cache_hits, b.sent) == (4, 0)  # the same model: every answer from the run's cache
    with FakeServer(tok, "m", copy=0.8) as other:  # same served name, another model
        with pytest.raises(ServerError, match=r"not the model whose responses.*differ by up to") as info:
            OpenAIBackend(other.url, "m", cache_dir=cache)
        assert "\n" not in str(info.value) and server.url in str(info.value) and other.url in str(info.value)
        scored = [body for path, body in other.requests if path == "/v1/completions" and body.get("prompt_logprobs") == 0
                  and len(body["prompt"]) > 20 and "Peru" in tok.decode(body["prompt"])]
        assert not scored  # refused before any of the run's requests reached it


def test_cli_run_resumes_on_a_moved_server_and_refuses_another_model(tok, tiny_folder, tmp_path):
    """`-m openai:NAME --base-url URL`: the model's name in the run carries no address, so the same
    command with the server on another port resumes the run (the identity check passes); another model
    served under the same name is refused with one line, and the run is left as it was."""
    run = tmp_path / "run"

    def probe(url, n):
        return CliRunner().invoke(cli.app, ["probe", "-m", "openai:m", "--base-url", url, "--task", "capitals",
                                            "--n", str(n), "-k", "1", "--judge-modes", "isolated", "--few-shot", "0",
                                            "--max-new-tokens", "6", "--concurrency", "2", "--out", str(run)])

    with FakeServer(tok, "m", root=str(tiny_folder)) as server:
        first = probe(server.url, 2)
        assert first.exit_code == 0, first.output
    manifest = json.loads((run / "manifest.json").read_text())
    loaded = manifest["models_loaded"]["openai:m"]
    assert loaded["location"] == server.url and loaded["identity"]["served_model"] == "m"
    assert loaded["seeded_sampling"] == "honoured" and loaded["transport"]["concurrency"] == 2
    with FakeServer(tok, "m", root=str(tiny_folder)) as moved:
        again = probe(moved.url, 2)
        assert again.exit_code == 0, again.output
        asked = [body for path, body in moved.requests if path == "/v1/completions" and "seed" not in body]
    assert json.loads((run / "manifest.json").read_text())["models_loaded"]["openai:m"]["location"] == moved.url
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    with FakeServer(tok, "m", copy=0.8, root=str(tiny_folder)) as other:
        refused = probe(other.url, 2)
    assert refused.exit_code == 2
    lines = [line for line in refused.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "not the model" in lines[0], refused.output
    after = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    assert {p for p in after if p not in before} == set() and all(after[p] == t for p, t in before.items()
                                                                   if p.name != "run.lock"), "the run changed"
    assert asked  # the moved server was connected to (its checks), the run itself came from the cache


# ------------------------------------------------------------------ API-only models: chat completions


def test_chat_only_model_reads_the_next_token_from_top_logprobs(tok):
    """The verdict read through /v1/chat/completions equals the fake model's top-k computed here from
    the chat template and the closed form; scoring and generation are refused, naming why."""
    with FakeServer(tok, "m", completions=False) as server:
        with pytest.warns(UserWarning, match="chat completions only"):
            b = OpenAIBackend(server.url, "m")
        with b:
            manifest = b.to_manifest()
            assert manifest["api"] == "chat_completions" and manifest["judge_only"]
            assert not b.capabilities.score and not b.capabilities.generate and b.capabilities.next_token == "top_k"
            assert b.prompt_format == "chat"
            messages = [{"role": "user", "content": "The capital of Peru is Lima. The capital of Peru is"}]
            text = b.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            lima = b.tokenizer(" Lima", add_special_tokens=False)["input_ids"][0]
            (nt,), = b.next_token_logprobs([(text, [""])], select=[lima], top_k=5)
            ids = list(tok(tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True),
                           add_special_tokens=False)["input_ids"])
            expected: dict[str, float] = {}
            for t, v in FakeModel(tok, 0.9).top(ids, 5):
                word = tok.decode([t])
                expected[word] = math.log(math.exp(expected[word]) + math.exp(v)) if word in expected else v
            got = dict(zip(b.tokenizer.convert_ids_to_tokens(list(nt.top_ids)), nt.top_logprobs))
            assert got.keys() == expected.keys() and max(abs(got[w] - expected[w]) for w in got) < 1e-9
            assert nt.covered_mass == pytest.approx(sum(math.exp(v) for v in expected.values()))
            if " Lima" not in expected:
                assert lima in nt.bounded  # outside the top-k: only an upper bound
            with pytest.raises(ServerError, match="chat completions only.*cannot score"):
                b.score_requests([("Question: 2+2?\nAnswer:", [" 4"])])
            with pytest.raises(ServerError, match="chat completions only.*cannot generate"):
                b.generate(["Question: 2+2?\nAnswer:"])


def test_chat_only_judge_on_a_run_and_probe_refused(tok, tiny, tmp_path):
    """An API-only model judges a run made with another model (isolated: P(Yes) from its top
    log-probs, reported as a judge only in the output and the manifest); probe refuses it with one line
    before any file is written."""
    import warnings

    import selfbias

    run = selfbias.probe("tiny-llama", "capitals", n=2, samples=1, max_new_tokens=4, judge_modes=(), few_shot=0,
                         out=tmp_path / "run", loaded={"tiny-llama": tiny}, progress=False).path
    with FakeServer(tok, "m", completions=False) as server:
        spec = f"openai:m@{server.url}"
        with warnings.catch_warnings():
            warnings.simplefilter("always")  # the command prints each warning as a note: line
            result = CliRunner().invoke(cli.app, ["judge", str(run), "--judge", spec, "--mode", "isolated"])
        assert result.exit_code == 0, result.output
        assert "reached through chat completions only" in " ".join(result.stdout.split())
        recorded = json.loads((run / "manifest.json").read_text())["judge"]["backends"][spec]
        assert recorded["judge_only"] and recorded["api"] == "chat_completions"
        judgments = selfbias.load_run(run).table("judgments")
        mine = judgments[judgments["judge"] == spec]
        assert len(mine) > 0 and mine["p_yes"].between(0, 1).all() and (mine["top_k_mass"] < 1).all()
        refused = CliRunner().invoke(cli.app, ["probe", "-m", spec, "--task", "capitals", "--n", "2",
                                               "--out", str(tmp_path / "probed")])
    assert refused.exit_code == 2
    lines = [line for line in refused.stdout.splitlines() if line.strip() and not line.startswith("note:")]
    assert len(lines) == 1 and "chat completions only" in lines[0] and "selfbias judge RUN --judge" in lines[0]
    assert not (tmp_path / "probed").exists()
