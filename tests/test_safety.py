"""Nothing lost, nothing leaked (issue 26): refused input never deletes data, a secret never goes to
a server the user did not name, and a run ends cleanly on SIGTERM or an unreachable Ray address.

Every refusal is checked as in :mod:`tests.test_bad_inputs`: exit code 2, one ``error:`` line naming
the place, no traceback, and the folders byte for byte as they were.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from selfbias.cli import app

from test_bad_inputs import refused, snapshot

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_run(tiny_folder, tmp_path_factory):
    """A judged run (2 capitals, isolated) whose model is the weightless tiny model's folder, so the
    command line loads it by name in a second."""
    from selfbias.probe import probe

    return probe([str(tiny_folder)], "capitals", n=2, samples=1, max_new_tokens=4, judge_modes=("isolated",),
                 few_shot=0,  # the tiny model's 256-token context holds no examples
                 out=tmp_path_factory.mktemp("tiny_run") / "run", progress=False).path


@pytest.fixture
def tiny_run_copy(tiny_run, tmp_path):
    dest = tmp_path / "run"
    shutil.copytree(tiny_run, dest)
    return dest


# ------------------------------------------------------------------------------------ destructive options


def test_overwrite_with_a_template_the_judge_refuses_deletes_nothing(tiny_run_copy, tmp_path):
    """--overwrite redoes a judged mode only once the new template is known to work for the judge:
    option words with no single-token spelling in its tokenizer are refused before any chunk, table or
    manifest field is touched (they were deleted first, then the template refused)."""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"isolated": {"prefix": "Q: {question} A: {answer} Right?",
                                            "options": ["Xylophonically", "Quokkaesque"]}}))
    line = refused(["judge", tiny_run_copy, "--mode", "isolated", "--templates", bad, "--overwrite"],
                   "single-token spelling", watch=tiny_run_copy)
    assert "Xylophonically" in line
    from selfbias.runs import load_run

    assert len(load_run(tiny_run_copy).judgments) > 0


def test_overwrite_with_a_good_template_still_redoes_the_mode(tiny_run_copy, tmp_path):
    from selfbias.runs import load_run

    before = load_run(tiny_run_copy).judgments
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"isolated": {"prefix": "Question: {question}\nProposed answer: {answer}\n"
                                                       "Is the proposed answer correct? Yes or No.",
                                             "options": ["Yes", "No"]}}))
    result = runner.invoke(app, ["judge", str(tiny_run_copy), "--mode", "isolated", "--templates", str(good)])
    assert result.exit_code == 2 and "--overwrite" in result.output  # refused without the flag
    result = runner.invoke(app, ["judge", str(tiny_run_copy), "--mode", "isolated", "--templates", str(good),
                                 "--overwrite"])
    assert result.exit_code == 0, result.output
    run = load_run(tiny_run_copy)
    after = run.judgments
    assert len(after) == len(before) and set(after["prompt_hash"]) != set(before["prompt_hash"])
    stage = next(iter(run.manifest["judge"]["stages"].values()))
    assert "Proposed answer" in json.dumps(stage["templates"])


@pytest.mark.parametrize("content", [{"notes.txt": "precious"}, {"sub/data.csv": "a,b\n1,2\n"}])
def test_train_refuses_a_folder_that_is_not_its_own(tiny_folder, tmp_path, content):
    out = tmp_path / "mine"
    for name, text in content.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    refused(["train", tiny_folder, "--objective", "imitation", "--out", out, "--n", "8", "--steps", "1"],
            "not a selfbias training output", watch=out)


def test_train_accepts_an_empty_folder_and_its_own_output(tiny_folder, tmp_path):
    out = tmp_path / "empty"
    (out / "checkpoints").mkdir(parents=True)  # as a run killed before it wrote its request leaves it
    args = ["train", str(tiny_folder), "--objective", "imitation", "--out", str(out), "--n", "8", "--steps", "1",
            "--tokens-per-step", "16"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, args)  # finished with the same settings: its own output, returned as it is
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize("args,place", [
    (["--learning-rate", "nan"], "learning_rate"),
    (["--learning-rate", "inf"], "learning_rate"),
    (["--learning-rate", "0"], "learning_rate"),
    (["--eval-fraction", "1.5"], "eval_fraction"),
    (["--eval-fraction", "0"], "eval_fraction"),
    (["--steps", "0"], "steps"),
    (["--save-steps", "0"], "save_steps"),
    (["--tokens-per-step", "0"], "tokens_per_step"),
    (["--n", "1"], "n must"),
    (["--objective", "distill"], "'distill'"),
    (["--errors", "mine"], "'mine'"),
    (["--seed", "-1"], "seed"),
])
def test_train_refuses_bad_numbers_before_loading(tmp_path, args, place, monkeypatch):
    import selfbias.models

    def no_load(*a, **k):
        raise AssertionError("the model loaded before the arguments were checked")

    monkeypatch.setattr(selfbias.models, "load_model", no_load)
    argv = ["train", "smollm2-135m", "--out", tmp_path / "out", "--n", "8"]
    argv += [] if "--objective" in args else ["--objective", "imitation"]
    refused([*argv, *args], place, watch=tmp_path)


# ------------------------------------------------------------------------------------ secrets

KEY = "sk-test-SECRET-0123456789abcdef"
PASSWORD = "hunter2-PASSWORD"


class _Listener:
    """A tiny HTTP server on 127.0.0.1 that records every request's path and headers and answers
    with a fixed body (an HTML page by default: no real server)."""

    def __init__(self, body: bytes = b"<html>not an API</html>", status: int = 200):
        import http.server
        import threading

        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                seen.append((self.command, self.path, dict(self.headers)))
                self.send_response(status)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args):  # quiet
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def keys_received(self) -> list[str]:
        return [h.get("Authorization", "") for _, _, h in self.seen if "Authorization" in h]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener():
    srv = _Listener()
    yield srv
    srv.close()


@pytest.fixture
def key_in_env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("SELFBIAS_API_KEY", raising=False)
    monkeypatch.setenv("SELFBIAS_BASE_URL", "")  # restored after the test (--base-url sets it in-process)


def _name_a_server(run: Path, url: str) -> None:
    """Make the run's manifest name a served model at ``url`` (as a run folder from someone else)."""
    manifest = json.loads((run / "manifest.json").read_text())
    for m in manifest["request"]["models"]:
        m["name"] = f"openai:m@{url}"
    (run / "manifest.json").write_text(json.dumps(manifest))


def _no_secret_anywhere(*texts: str, folders: tuple[Path, ...] = ()) -> None:
    for text in texts:
        assert KEY not in text and PASSWORD not in text
    for folder in folders:
        for p in folder.rglob("*"):
            assert KEY not in p.name and PASSWORD not in p.name
            if p.is_file():
                data = p.read_bytes()
                assert KEY.encode() not in data and PASSWORD.encode() not in data, p


def test_a_server_named_by_the_run_gets_no_key_unless_the_user_names_it(tiny_run_copy, listener, key_in_env):
    _name_a_server(tiny_run_copy, listener.url)
    line = refused(["judge", tiny_run_copy, "--mode", "isolated"], "--trust-run-servers", watch=tiny_run_copy)
    assert listener.url in line and listener.seen == []  # refused before contacting it
    _no_secret_anywhere(line, folders=(tiny_run_copy,))
    # the user names that URL again: now it is contacted with the key (and refused: it answers HTML)
    line = refused(["judge", tiny_run_copy, "--mode", "isolated", "--base-url", listener.url], "not JSON",
                   watch=tiny_run_copy)
    assert listener.keys_received() and all(k == f"Bearer {KEY}" for k in listener.keys_received())
    _no_secret_anywhere(line, folders=(tiny_run_copy,))


def test_trust_run_servers_is_the_explicit_consent(tiny_run_copy, listener, key_in_env):
    _name_a_server(tiny_run_copy, listener.url)
    refused(["judge", tiny_run_copy, "--mode", "isolated", "--trust-run-servers"], "not JSON", watch=tiny_run_copy)
    assert listener.keys_received() == [f"Bearer {KEY}"]


def test_python_judge_needs_the_same_consent(tiny_run_copy, listener, key_in_env):
    from selfbias.errors import InputError
    from selfbias.judge import judge

    _name_a_server(tiny_run_copy, listener.url)
    before = snapshot(tiny_run_copy)
    with pytest.raises(InputError, match="did not name"):
        judge(tiny_run_copy, modes=("isolated",), progress=False)
    assert listener.seen == [] and snapshot(tiny_run_copy) == before
    from selfbias.backends.openai import ServerError

    with pytest.raises(ServerError, match="not JSON"):
        judge(tiny_run_copy, modes=("isolated",), progress=False, base_url=listener.url)
    assert listener.keys_received() and snapshot(tiny_run_copy) == before


def test_without_a_key_nothing_secret_can_leak_and_the_run_server_is_used(tiny_run_copy, listener, monkeypatch):
    for env in ("OPENAI_API_KEY", "SELFBIAS_API_KEY"):
        monkeypatch.delenv(env, raising=False)
    _name_a_server(tiny_run_copy, listener.url)
    refused(["judge", tiny_run_copy, "--mode", "isolated"], "not JSON", watch=tiny_run_copy)
    assert listener.seen and listener.keys_received() == []


@pytest.mark.parametrize("url", [f"http://user:{PASSWORD}@127.0.0.1:9/v1", f"http://:{PASSWORD}@127.0.0.1:9/v1",
                                 f"https://admin:{PASSWORD}@[::1]:9/v1"])
def test_credentials_in_a_url_are_refused_at_once_and_not_echoed(url, tmp_path, key_in_env):
    import time

    out = tmp_path / "run"
    for args in (["probe", "-m", f"openai:m@{url}", "--out", out], ["probe", "-m", "openai:m", "--base-url", url,
                                                                   "--out", out]):
        started = time.perf_counter()
        line = refused(args, "user name or password", watch=tmp_path)
        assert time.perf_counter() - started < 5  # no retries: refused before any request
        _no_secret_anywhere(line)
    assert not out.exists() and not (Path("runs").exists() and any(PASSWORD in p.name for p in Path("runs").iterdir()))


def test_credentials_in_a_run_manifest_are_not_echoed(tiny_run_copy, key_in_env):
    _name_a_server(tiny_run_copy, f"http://user:{PASSWORD}@127.0.0.1:9/v1")
    line = refused(["judge", tiny_run_copy, "--mode", "isolated"], "user name or password", watch=tiny_run_copy)
    _no_secret_anywhere(line)


def test_the_default_run_folder_holds_no_url():
    from selfbias.probe import default_run_dir

    for spec in ("openai:m@http://127.0.0.1:8000/v1", f"openai:m@http://u:{PASSWORD}@h/v1"):
        folder = default_run_dir([spec], "capitals", 5, 0)
        assert folder.parent == Path("runs") and "http" not in folder.name and PASSWORD not in folder.name
    for task in ("../../outside", "/abs/path/questions", "a/b/c"):
        folder = default_run_dir(["smollm2-135m"], task, 5, 0)
        assert folder.parent == Path("runs") and ".." not in folder.parts, folder


# ------------------------------------------------------------------------------------ operations

REPO = Path(__file__).resolve().parents[1]


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


_SLOW_PROBE = """
import sys, time
import selfbias.probe

def slow(*args, **kwargs):
    print("working", flush=True)
    time.sleep(60)

sys.modules["selfbias.probe"].probe = slow  # (the package's `probe` attribute is the function)
from selfbias.cli import app
app(["probe", "--out", sys.argv[1]])
"""


def test_sigterm_ends_a_command_like_ctrl_c(tmp_path):
    """SIGTERM mid-command prints the "interrupted ... resume" line and exits 130, no traceback."""
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", _SLOW_PROBE, str(tmp_path / "run")], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout.readline().strip() == "working"
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "interrupted" in output and "resume" in output and "Traceback" not in output, output


@pytest.mark.skipif(os.environ.get("SELFBIAS_SLOW") != "1",
                    reason="two CLI processes (about 40 s on a shared CPU): set SELFBIAS_SLOW=1; "
                           "test_sigterm_ends_a_command_like_ctrl_c is its short twin")
def test_sigterm_mid_probe_leaves_a_resumable_run(tiny_folder, tmp_path):
    """A real probe on the tiny model, ended by SIGTERM once its first chunk is written, says it is
    resumable; the same command then finishes it."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "selfbias.cli", "probe", "-m", str(tiny_folder), "--task", "arithmetic",
           "--n", "24", "--samples", "1", "--max-new-tokens", "4", "--judge-modes", "none", "--out", str(out)]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not list((out / "chunks").rglob("*.parquet")):
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.skip("the probe finished before it could be signalled")
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output[-2000:]
    assert "interrupted" in output and "Traceback" not in output, output[-2000:]
    again = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, (again.stdout + again.stderr)[-2000:]


def test_an_unreachable_ray_address_is_one_line_and_writes_nothing(tmp_path):
    """--ray 127.0.0.1:1 (nothing listens there) ends within seconds with one line naming the
    address, before the run folder is made."""
    import subprocess
    import sys
    import time

    pytest.importorskip("ray", reason="ray is not installed (pip install 'selfbias[ray]')")
    out = tmp_path / "run"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "selfbias.cli", "probe", "--ray", "127.0.0.1:1", "--n", "2",
                           "--out", str(out)], env=_env(), capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - started
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error:") and "127.0.0.1:1" in lines[0]
    assert seconds < 30 and not out.exists()


@pytest.mark.parametrize("value,place", [("127.0.0.1", "HOST:PORT"), ("127.0.0.1:port", "HOST:PORT"),
                                         ("ray://:10001", "HOST:PORT")])
def test_a_malformed_ray_address_is_refused(value, place, tmp_path):
    pytest.importorskip("ray", reason="ray is not installed (pip install 'selfbias[ray]')")
    refused(["probe", "--ray", value, "--out", tmp_path / "run"], place, watch=tmp_path / "run")


def test_ray_timeout_must_be_positive(tmp_path):
    pytest.importorskip("ray", reason="ray is not installed (pip install 'selfbias[ray]')")
    refused(["probe", "--ray", "127.0.0.1:1", "--ray-timeout", "0", "--out", tmp_path / "run"], "connect_timeout")


# ------------------------------------------------------------------------------------ servers answering nonsense


@pytest.mark.parametrize("body,place", [
    (b"<!doctype html><html><body>Welcome to nginx</body></html>", "not JSON"),
    (b"[]", "JSON list"),
    (b"null", "JSON NoneType"),
    (b"42", "JSON int"),
    (b'"ok"', "JSON str"),
    (b"", "does not serve 'm'"),  # an empty body reads as {}: no models
    (b'{"data": 5}', "unexpected shape"),
    (b'{"data": [{"id": "m", "max_model_len": "lots"}]}', "unexpected shape"),
    (b'{"data": [' + b"[" * 50_000 + b"]" * 50_000 + b"]}", "not JSON"),
], ids=["html", "list", "null", "number", "string", "empty", "data-not-list", "bad-length", "deep"])
def test_a_server_answering_nonsense_with_200_is_one_line_naming_it(body, place, tmp_path, monkeypatch):
    for env in ("OPENAI_API_KEY", "SELFBIAS_API_KEY"):
        monkeypatch.delenv(env, raising=False)
    srv = _Listener(body)
    try:
        line = refused(["probe", "-m", f"openai:m@{srv.url}", "--task", "capitals", "--n", "2",
                        "--out", tmp_path / "run"], place, watch=tmp_path / "run")
    finally:
        srv.close()
    assert "127.0.0.1" in line and not (tmp_path / "run").exists()


class _RunsCode:
    def __reduce__(self):
        return (exec, ("open(__import__('sys').argv[0] + '.pwned', 'w').write('x')",))


def test_a_weights_pickle_is_refused_not_run(tiny_folder, tmp_path):
    """A model folder whose weights are a pickle that runs code: torch's safe loader refuses it, and
    that is one line naming the model (it was an internal error), before anything is written."""
    import pickle

    folder = tmp_path / "model"
    shutil.copytree(tiny_folder, folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_RunsCode()))
    line = refused(["probe", "-m", folder, "--task", "capitals", "--n", "2", "--out", tmp_path / "run"],
                   "refuses to load safely", watch=tmp_path / "run")
    assert str(folder) in line and not (tmp_path / "run").exists()
    assert not list(tmp_path.rglob("*.pwned")) and not list(Path.cwd().glob("*.pwned"))


@pytest.mark.parametrize("template,place", [
    ("{{ ''.__class__.__mro__ }}{% for m in messages %}{{ m['content'] }}{% endfor %}", "SecurityError"),
    ("{% for m in messages %}{{ m['content'] }", "TemplateSyntaxError"),
    ("{{ raise_exception('no system role') }}", "no system role"),
])
def test_a_chat_template_that_cannot_render_is_one_line(tiny_folder, tmp_path, template, place):
    folder = tmp_path / "model"
    shutil.copytree(tiny_folder, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] = template
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    line = refused(["probe", "-m", folder, "--task", "capitals", "--n", "2", "--prompt-format", "chat",
                    "--out", tmp_path / "run"], place, watch=tmp_path / "run")
    assert "chat template" in line and not (tmp_path / "run").exists()


def test_probe_judges_its_own_served_model_without_asking_again(tiny, tmp_path, key_in_env):
    """probe's judge step reuses the backends the user named (-m openai:NAME@URL): no consent needed,
    nothing refused; only a later `judge RUN` would reload them from the run's record."""
    from selfbias.models import wrap_model
    from selfbias.probe import probe

    spec = "openai:m@http://127.0.0.1:9/v1"
    stand_in = wrap_model(tiny.model, tiny.tokenizer, name=spec, prompt_format="chat")
    run = probe(spec, "capitals", n=2, samples=1, max_new_tokens=4, judge_modes=("isolated",), few_shot=0,
                out=tmp_path / "run", loaded={spec: stand_in}, progress=False)
    assert len(run.judgments) > 0
    refused(["judge", run.path, "--mode", "alternatives"], "--trust-run-servers", watch=run.path)
