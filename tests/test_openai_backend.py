"""The OpenAI-compatible server backend against a real vLLM server serving the bundled SmolLM2.

One server process is started for the whole module (plus one restart in the restart test) from the
vLLM environment that ``make vllm-env`` creates (``.venv-vllm``; ``$SELFBIAS_VLLM_PYTHON`` overrides
it). Nothing is mocked at the HTTP level on the main path; only the misaligned/limited-server tests put a
small proxy in front of the real server that corrupts what it forwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from _fake_server import send_json

from selfbias.backends._local_server import LocalVLLMServer, bundled_folder, free_port, vllm_python
from selfbias.backends.openai import OpenAIBackend, ServerError, ServerMisaligned, ServerUnavailable, parse_spec

# Agreement with the Hugging Face backend on the same float32 weights: vLLM's CPU kernels and
# transformers' differ only in float32 summation order. Measured on 20 capital-question answers:
# max |diff| 6.5e-05 nats per token and 6.7e-05 per answer sum (vLLM 0.32.0, transformers 5.24).
TOKEN_TOL = 1e-3
SUM_TOL = 1e-3


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not vllm_python().exists():
        pytest.skip(f"no vLLM environment at {vllm_python()}: run `make vllm-env` (make test does)")
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    srv = LocalVLLMServer(bundled_folder(), "smollm2", log=log)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def backend(server):
    b = OpenAIBackend(server.url, "smollm2")
    yield b
    b.close()


@pytest.fixture(scope="module")
def requests_20(smollm2):
    """20 (prompt, answers) pairs: the chat prompts of 10 capital questions, reference and a wrong city."""
    from selfbias.prompts import default_template, render
    from selfbias.tasks import capitals_task

    items = capitals_task(n=10, seed=0).items
    wrong = [it.references[0] for it in items[1:]] + [items[0].references[0]]  # another item's capital
    return [(render(default_template(smollm2), smollm2, it.question), [" " + it.references[0], " " + w])
            for it, w in zip(items, wrong)]


def test_spec_parsing(monkeypatch):
    monkeypatch.setenv("SELFBIAS_BASE_URL", "http://env:2/v1")  # what `--base-url` sets
    assert parse_spec("openai:m") == ("m", "http://env:2/v1")
    monkeypatch.delenv("SELFBIAS_BASE_URL")
    assert parse_spec("openai:smollm2@http://127.0.0.1:8000/v1/") == ("smollm2", "http://127.0.0.1:8000/v1")
    assert parse_spec("openai:m", base_url="http://h:1/v1") == ("m", "http://h:1/v1")
    with pytest.raises(ServerError, match="openai:NAME@"):
        parse_spec("openai:m")
    with pytest.raises(ServerError, match="http://"):
        parse_spec("openai:m@127.0.0.1:8000/v1")


def test_capabilities_detected_and_recorded(backend):
    manifest = backend.to_manifest()
    caps = {**manifest["capabilities"], **manifest["capabilities"]["detail"]}
    assert manifest["backend"] == "openai" and manifest["served_model"] == "smollm2"
    assert caps["next_token"] == "top_k" and backend.context_length == 2048 and not backend.adds_bos
    assert caps["score"] and caps["echo_logprobs"] and caps["prompt_logprobs"] and caps["tokenize_endpoint"]
    assert caps["score_method"] == "prompt_logprobs" and caps["max_top_k"] == 20  # vLLM's default max_logprobs
    assert caps["generation_logprobs"] == "raw"  # vLLM's default logprobs_mode
    assert caps["seeded_sampling"] == manifest["seeded_sampling"] == "honoured"  # vLLM takes a per-request seed
    fingerprint = manifest["identity"]["fingerprint"]  # the model's identity, apart from the URL
    assert manifest["identity"]["served_model"] == "smollm2" and fingerprint["kind"] == "prompt_logprobs"
    assert len(fingerprint["logprobs"]) == len(fingerprint["token_ids"]) and fingerprint["logprobs"][0] is None
    for record in caps["alignment"].values():
        assert record["first_entry_null"] and record["last_copy_second_half_mean"] > -1.5
    json.dumps(manifest)  # recorded in the run's manifest: must be JSON


def test_scores_agree_with_hf(backend, smollm2, requests_20):
    from selfbias.scoring import score_requests

    local = score_requests(smollm2, requests_20)
    served = backend.score_requests(requests_20)
    per_token, per_sum = [], []
    for row_l, row_s in zip(local, served):
        for a, b in zip(row_l, row_s):
            assert a.token_ids == b.token_ids and a.tokens == b.tokens  # same join, same tokens
            assert a.is_argmax == b.is_argmax
            per_token += [abs(x - y) for x, y in zip(a.logprobs, b.logprobs)]
            per_sum.append(abs(a.sum_logprob - b.sum_logprob))
    assert len(per_sum) == 20
    assert max(per_token) < TOKEN_TOL and max(per_sum) < SUM_TOL
    # the check can fail: the two answers of a request differ by far more than the tolerance
    assert max(abs(r[0].sum_logprob - r[1].sum_logprob) for r in served) > 100 * SUM_TOL


def test_join_matches_local_scorer(backend, smollm2):
    """Trailing spaces move to the continuation and a straddling token is re-scored, as locally."""
    from selfbias.scoring import score_requests

    reqs = [("Answer: ", ["42", " 42"]), ("The word is un", ["believable"])]
    local, served = score_requests(smollm2, reqs), backend.score_requests(reqs)
    for row_l, row_s in zip(local, served):
        for a, b in zip(row_l, row_s):
            assert (a.token_ids, a.join_overlap) == (b.token_ids, b.join_overlap)
            assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < TOKEN_TOL


def test_greedy_generation_equals_hf(backend, smollm2, requests_20):
    from selfbias.generation import generate

    prompts = [p for p, _ in requests_20[:3]] + ["The capital of France is Paris. The capital of Italy is"]
    local = generate(smollm2, prompts, max_new_tokens=16, stop=["\n"])
    served = backend.generate(prompts, max_new_tokens=16, stop=["\n"])
    for (a,), (b,) in zip(local, served):
        assert (a.text, a.token_ids, a.finish_reason) == (b.text, b.token_ids, b.finish_reason)
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < TOKEN_TOL


def test_sampling_is_seeded(backend):
    one = backend.generate(["Once upon a time"], n=2, temperature=1.0, max_new_tokens=6, seed=3)
    again = backend.generate(["Once upon a time"], n=2, temperature=1.0, max_new_tokens=6, seed=3)
    assert len(one[0]) == len(again[0]) == 2
    for a, b in zip(one[0], again[0]):  # same draws; floats up to vLLM's batch-dependent arithmetic
        assert (a.text, a.token_ids, a.finish_reason) == (b.text, b.token_ids, b.finish_reason)
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < TOKEN_TOL
    assert one[0][0].token_ids != one[0][1].token_ids  # two draws, not one repeated


def test_next_token_p_yes_agrees_with_hf(backend, smollm2, requests_20):
    from selfbias.scoring import next_token_logprobs

    tok = smollm2.tokenizer
    select = [tok(s, add_special_tokens=False)["input_ids"][0] for s in (" Yes", " No", "Yes", "No")]
    reqs = [(p + " " + answers[0] + "\nIs this answer correct? Answer Yes or No.\nAnswer:", [""])
            for p, answers in requests_20[:4]]
    local = next_token_logprobs(smollm2, reqs, select=select, top_k=5)
    served = backend.next_token_logprobs(reqs, select=select, top_k=5)
    for (a,), (b,) in zip(local, served):
        assert a.top_ids == b.top_ids
        assert max(abs(a.selected[i] - b.selected[i]) for i in select) < TOKEN_TOL  # exact, even outside top-5
        assert not b.bounded and 0 < b.covered_mass < 1
        assert abs(b.covered_mass - sum(pow(2.718281828459045, v) for v in a.top_logprobs)) < 1e-3


# ------------------------------------------------------------------- a corrupting proxy (negative tests)


class _Proxy:
    """Forwards to the real server; ``mode`` says how it corrupts the answer.

    "shift": every prompt log-prob moves one position to the left (position i reports i+1's value,
    the last position reports the first); "no_prompt_logprobs": echo and prompt_logprobs are refused.
    """

    def __init__(self, target: str, mode: str):
        self.target, self.mode = target.removesuffix("/v1"), mode
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _forward(self, body: bytes | None):
                path = self.path
                if body is not None and path.endswith("/completions"):
                    request = json.loads(body)
                    if proxy.mode == "no_prompt_logprobs" and (request.get("echo") or "prompt_logprobs" in request):
                        return self._send(400, {"error": {"message": "echo/prompt_logprobs not supported"}})
                req = urllib.request.Request(proxy.target + path, data=body, method=self.command,
                                             headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(req, timeout=60) as resp:
                        status, payload = resp.status, json.loads(resp.read())
                except urllib.error.HTTPError as exc:
                    status, payload = exc.code, json.loads(exc.read())
                if proxy.mode == "shift" and status == 200 and path.endswith("/completions"):
                    for choice in payload.get("choices", []):
                        entries = choice.get("prompt_logprobs")
                        if entries:
                            choice["prompt_logprobs"] = [None, *entries[2:], entries[1]]
                        lp = choice.get("logprobs")
                        if lp and request.get("echo"):
                            for key in ("token_logprobs", "top_logprobs"):
                                v = lp[key]
                                lp[key] = [None, *v[2:], v[1]]
                self._send(status, payload)

            def _send(self, status, payload):
                send_json(self, status, payload)

            def do_GET(self):
                self._forward(None)

            def do_POST(self):
                self._forward(self.rfile.read(int(self.headers.get("Content-Length", 0))))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_misaligned_server_is_refused(server):
    with _Proxy(server.url, "shift") as proxy:
        with pytest.raises(ServerMisaligned, match="fails the alignment check.*position") as info:
            OpenAIBackend(proxy.url, "smollm2")
    assert "\n" not in str(info.value)


def test_server_without_prompt_logprobs_generates_but_does_not_score(server):
    with _Proxy(server.url, "no_prompt_logprobs") as proxy:
        with OpenAIBackend(proxy.url, "smollm2") as b:
            caps = b.capabilities
            assert not caps.score and not caps.detail["echo_logprobs"] and not caps.detail["prompt_logprobs"]
            assert b.generate(["The capital of Italy is"], max_new_tokens=3)[0][0].token_ids
            with pytest.raises(ServerError, match="cannot score.*likelihood"):
                b.score_requests([("Question: 2+2?\nAnswer:", [" 4"])])
            # next-token reads still work; ids outside the top-k are only bounded (recorded)
            (nt,), = b.next_token_logprobs([("Is Paris in France? Answer:", [""])], select=[12345], top_k=3)
            assert nt.bounded == {12345} and nt.selected[12345] <= min(nt.top_logprobs)


# ------------------------------------------------------------------------------- resumption

_SCORER = textwrap.dedent("""
    import json, sys
    from selfbias.backends.openai import OpenAIBackend
    url, cache, reqs = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
    b = OpenAIBackend(url, "smollm2", cache_dir=cache, concurrency=1)
    for r in reqs:  # one request at a time, so a kill lands between cached responses
        b.score_requests([r])
        print("scored", flush=True)
""")


def _assert_same(scores, other):
    """Same tokens and flags; log-probs equal up to the server's batch-dependent float32 arithmetic."""
    assert [[(s.token_ids, s.is_argmax) for s in row] for row in scores] == \
        [[(s.token_ids, s.is_argmax) for s in row] for row in other]
    assert max(abs(x - y) for ra, rb in zip(scores, other) for a, b in zip(ra, rb)
               for x, y in zip(a.logprobs, b.logprobs)) < TOKEN_TOL


def test_killed_run_resumes_without_asking_again(server, backend, requests_20, tmp_path):
    reqs = [(p, list(a)) for p, a in requests_20]
    (tmp_path / "reqs.json").write_text(json.dumps(reqs))
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-c", _SCORER, server.url, str(cache), str(tmp_path / "reqs.json")],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    done = 0
    for line in proc.stdout:  # kill it once 5 of the 10 prompts are scored
        done += line.startswith("scored")
        if done == 5:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    cached = len(list(cache.glob("*/*.json")))
    assert 10 <= cached < 20  # the 2 answers of each of 5 prompts (maybe 1 more); not all 20
    with OpenAIBackend(server.url, "smollm2", cache_dir=cache) as resumed:
        again = resumed.score_requests(reqs)
        assert resumed.cache_hits == cached  # every cached response reused
        assert resumed.sent == 20 - cached  # and only the missing ones asked
    _assert_same(again, backend.score_requests(reqs))  # the table of an uninterrupted run


def test_server_restart_mid_run_resumes(server, requests_20, tmp_path):
    """Stop the server mid-run: one-line resumable error; restart it: the run finishes, same table."""
    reqs = [(p, list(a)) for p, a in requests_20[:6]]
    cache = tmp_path / "cache"
    b = OpenAIBackend(server.url, "smollm2", cache_dir=cache, retries=1, timeout=10)
    first = b.score_requests(reqs[:3])
    server.stop()
    with pytest.raises(ServerUnavailable, match="resumable") as info:
        b.score_requests(reqs)
    assert "\n" not in str(info.value) and str(cache) in str(info.value)
    b.close()
    server.start()
    with OpenAIBackend(server.url, "smollm2", cache_dir=cache) as resumed:
        whole = resumed.score_requests(reqs)
        assert (resumed.cache_hits, resumed.sent) == (6, 6)  # the first three prompts' answers not asked again
    assert whole[:3] == first  # read back from the cache: identical
    with OpenAIBackend(server.url, "smollm2") as fresh:  # no cache: what a run without restart gives
        _assert_same(whole, fresh.score_requests(reqs))


# ------------------------------------------------------------------------- end to end (after merge)


def _cli_knows_openai() -> bool:
    try:
        from selfbias.backends import load_backend  # noqa: F401 - added by the backend interface (issue 12)
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _cli_knows_openai(), reason="selfbias.backends.load_backend (probe/judge through the "
                    "backend interface) is not in this tree yet")
def test_cli_probe_judge_analyze_figures_against_the_server(server, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    spec = f"openai:smollm2@{server.url}"
    for args in (["probe", "-m", spec, "-t", "capitals", "--n", "4", "-k", "2", "-o", str(run),
                  "--judge-modes", "isolated", "--few-shot", "0"],  # zero-shot: the commands are the point
                 ["judge", str(run), "--mode", "alternatives", "--trust-run-servers"],  # the server probe named
                 ["analyze", str(run)],
                 ["figures", str(run), "--out", str(tmp_path / "figures")]):
        done = subprocess.run([sys.executable, "-m", "selfbias.cli", *args], env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, f"selfbias {args[0]}: {(done.stdout + done.stderr)[-2000:]}"
    manifest = json.loads((run / "manifest.json").read_text())
    assert "openai" in json.dumps(manifest)
    assert list((run / "cache" / "openai").glob("*/*.json"))  # responses kept in the run (use_cache_dir)
    assert list((tmp_path / "figures").glob("*.png"))


@pytest.mark.skipif(not _cli_knows_openai(), reason="selfbias.backends.load_backend (probe/judge through the "
                    "backend interface) is not in this tree yet")
def test_cli_probe_killed_mid_run_resumes_to_the_same_tables(server, tmp_path):
    """kill -9 the probe once some responses are cached; the same command again finishes the run without
    re-asking any cached request (their files are never rewritten) and gives a straight run's tables.

    Kept small (3 items, 1 sample, zero-shot, one judge mode: about 60 requests a run) since resumption
    is the point; the straight run is made in this process (same code below the command line)."""
    import pandas as pd

    import selfbias

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    spec = f"openai:smollm2@{server.url}"
    settings = dict(n=3, samples=1, judge_modes=("isolated",), few_shot=0)

    def command(run):
        return [sys.executable, "-m", "selfbias.cli", "probe", "-m", spec, "-t", "capitals", "--n", "3", "-k", "1",
                "-o", str(run), "--judge-modes", "isolated", "--few-shot", "0"]

    killed, cache = tmp_path / "killed", tmp_path / "killed" / "cache" / "openai"
    proc = subprocess.Popen(command(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while len(list(cache.glob("*/*.json"))) < 10 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    before = {f: f.stat().st_mtime_ns for f in cache.glob("*/*.json")}
    assert len(before) >= 10
    assert not (killed / "judgments.parquet").exists()  # killed before it finished
    done = subprocess.run(command(killed), env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    assert all(f.stat().st_mtime_ns == t for f, t in before.items())  # no cached request asked again
    assert len(list(cache.glob("*/*.json"))) > len(before)
    straight = selfbias.probe(spec, "capitals", out=tmp_path / "straight", progress=False, **settings)
    a, b = selfbias.load_run(killed), straight
    assert sorted(a.tables()) == sorted(b.tables()) and "scores" in a.tables() and "judgments" in a.tables()
    # Same texts, tokens, ids and flags; floats up to vLLM's batch-dependent arithmetic: concurrent
    # requests share decode batches, and a long sample's log-probs moved by up to 2.2e-05 between two runs.
    for table in a.tables():
        pd.testing.assert_frame_equal(a.table(table), b.table(table), obj=table, check_exact=False,
                                      rtol=0, atol=TOKEN_TOL)


def test_server_helper_refuses_missing_environment(tmp_path):
    srv = LocalVLLMServer(tmp_path, python=tmp_path / "missing" / "python", port=free_port())
    with pytest.raises(FileNotFoundError, match="make vllm-env"):
        srv.start(timeout=1)
