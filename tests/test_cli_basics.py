"""Command-line basics: names and install commands never cut in 80 columns, --concurrency / --timeout
reach a served model's backend (passed down, not through the environment), a 401 names the variable to set, no third-party bar while a GGUF
file converts."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from selfbias import cli
from selfbias.backends.openai import OpenAIBackend, ServerError

runner = CliRunner()


def test_models_prints_every_install_command_whole_in_80_columns(monkeypatch):
    from selfbias.models import bundled_status

    monkeypatch.setattr(cli.console, "_width", 80)
    result = runner.invoke(cli.app, ["models"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for row in bundled_status():
        assert any(line.strip().startswith(row["install"]) for line in lines), row["install"]
        assert any(row["alias"] in line for line in lines)
    assert "…" not in result.output


def test_tables_fold_long_names_instead_of_cutting_them():
    from rich.console import Console

    name = "openai:Qwen/Qwen2.5-7B-Instruct@http://gpu-host:8000/v1"
    console = Console(width=80, record=True, file=open("/dev/null", "w"))
    console.print(cli._rows_table("t", ["model", "items", "accuracy", "own wrong > ref", "n wrong", "agreement"],
                                  [(name, 40, 0.5, 0.25, 12, 0.75)]))
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    first_cells = "".join(line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│"))
    assert first_cells == name  # every character of the name, folded over lines


def test_concurrency_and_timeout_reach_the_served_backend(monkeypatch, tmp_path):
    """The flags are handed down as ServerOptions (probe -> load_backend -> the backend), not through
    the environment: after the command the process environment is as it was."""
    import os

    from selfbias.backends import load_backend
    from selfbias.backends.openai import ServerOptions

    seen = {}

    def connect(self, tokenizer):
        seen.update(concurrency=self.concurrency, timeout=self.timeout, retries=self.retries,
                    workers=self._pool._max_workers)
        raise ServerError("stopped by the test after the backend was made")

    monkeypatch.setattr(OpenAIBackend, "_connect", connect)
    for name in ("SELFBIAS_CONCURRENCY", "SELFBIAS_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    before = dict(os.environ)
    result = runner.invoke(cli.app, ["probe", "-m", "openai:m@http://127.0.0.1:9/v1", "--concurrency", "3",
                                     "--timeout", "2.5", "--retries", "1", "--judge-modes", "none", "--n", "2",
                                     "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "stopped by the test" in result.output
    assert seen == {"concurrency": 3, "timeout": 2.5, "retries": 1, "workers": 3}
    assert dict(os.environ) == before  # nothing process-global was set
    with pytest.raises(ServerError, match="stopped"):
        OpenAIBackend("http://127.0.0.1:9/v1", "m")
    assert seen == {"concurrency": 8, "timeout": 60.0, "retries": 5, "workers": 8}  # the documented defaults
    monkeypatch.setenv("SELFBIAS_CONCURRENCY", "5")  # a user's own setting is still the default
    with pytest.raises(ServerError, match="stopped"):
        load_backend("openai:m@http://127.0.0.1:9/v1", server_options=ServerOptions(timeout=4, retries=0))
    assert seen == {"concurrency": 5, "timeout": 4.0, "retries": 0, "workers": 5}
    with pytest.raises(ServerError, match="stopped"):  # explicit settings win over the environment
        load_backend("openai:m@http://127.0.0.1:9/v1", server_options={"concurrency": 2})
    assert seen["concurrency"] == 2
    bad = runner.invoke(cli.app, ["probe", "-m", "openai:m@http://127.0.0.1:9/v1", "--concurrency", "0"])
    assert bad.exit_code == 2


def test_server_options_refuse_bad_settings():
    from selfbias.backends.openai import ServerOptions
    from selfbias.errors import InputError

    assert ServerOptions(concurrency=4, timeout=1.5).backend_kwargs() == {"concurrency": 4, "timeout": 1.5}
    assert ServerOptions.coerce(None) == ServerOptions() and ServerOptions().backend_kwargs() == {}
    for bad, field in (({"concurrency": 0}, "concurrency"), ({"timeout": 0}, "timeout"),
                       ({"timeout": float("nan")}, "timeout"), ({"retries": -1}, "retries"),
                       ({"concurrency": True}, "concurrency"), ({"workers": 2}, "workers")):
        with pytest.raises(InputError, match=field):
            ServerOptions.coerce(bad)
    import selfbias

    with pytest.raises(InputError, match="concurrency"):  # probe checks them before any model loads
        selfbias.probe("openai:m@http://127.0.0.1:9/v1", "capitals", n=2, server_options={"concurrency": 0})


class _Refuses(BaseHTTPRequestHandler):
    def _refuse(self):
        body = json.dumps({"error": {"message": "Unauthorized"}}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _refuse

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture()
def refusing_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refuses)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_401_says_which_variable_to_set(refusing_server, monkeypatch):
    for name in ("SELFBIAS_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ServerError, match=r"HTTP 401.*no API key was sent: set SELFBIAS_API_KEY"):
        OpenAIBackend(refusing_server, "m", retries=0)
    monkeypatch.setenv("SELFBIAS_API_KEY", "sk-secret-123")
    with pytest.raises(ServerError) as info:
        OpenAIBackend(refusing_server, "m", retries=0)
    assert "from $SELFBIAS_API_KEY) was refused" in str(info.value) and "sk-secret-123" not in str(info.value)
    monkeypatch.delenv("SELFBIAS_API_KEY")
    result = runner.invoke(cli.app, ["probe", "-m", f"openai:m@{refusing_server}", "--judge-modes", "none"])
    assert result.exit_code == 2 and "SELFBIAS_API_KEY" in " ".join(result.output.split())


def test_no_conversion_bar_while_a_gguf_file_converts(capfd):
    """transformers' GGUF reader draws a plain tqdm bar (not governed by its logging switches): the
    converter silences exactly the name that reader calls."""
    import inspect

    from transformers import modeling_gguf_pytorch_utils as reader

    from selfbias._gguf_cache import _no_conversion_bar

    assert "tqdm(reader.tensors" in inspect.getsource(reader.load_gguf_checkpoint)  # the bar it draws
    original = reader.tqdm
    with _no_conversion_bar():
        assert list(reader.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors...")) == [0, 1, 2]
    assert reader.tqdm is original
    assert "Converting" not in capfd.readouterr().err
    list(reader.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors..."))
    assert "Converting" in capfd.readouterr().err  # outside it, the bar is drawn: the check above can fail
