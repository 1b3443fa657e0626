"""Progress on stderr: counted in items (not chunks) with an ETA, a status line while a model loads
or a server is checked, plain lines off a terminal, and no third-party bar in a run's output."""

from __future__ import annotations

import io
import re

from rich.console import Console
from typer.testing import CliRunner

from selfbias import _progress, cli


def test_bar_counts_items_with_an_eta_in_a_terminal(monkeypatch):
    buffer = io.StringIO()
    monkeypatch.setattr(_progress, "_console", lambda: Console(file=buffer, force_terminal=True, width=120,
                                                               color_system=None))
    with _progress.stage("generating answers", 10) as advance:
        advance(8)  # one chunk of 8 items
        advance(2)
    text = buffer.getvalue()
    assert "10/10 items" in text and "ETA" in text and "generating answers" in text
    with _progress.status("loading tiny"):
        pass
    assert "loading tiny: done in" in buffer.getvalue()


def test_plain_lines_off_a_terminal(capsys):
    with _progress.stage("scoring candidates", 12) as advance:
        advance(8)
        advance(4)
    with _progress.stage("nothing left", 0) as advance:  # no work: nothing printed
        advance(3)
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout keeps the results
    assert re.fullmatch(r"scoring candidates: 12 items\nscoring candidates: 12/12 items in \d+\.\d s\n",
                        captured.err), captured.err


def test_status_line_names_what_is_loading_without_credentials():
    assert _progress.load_message("smollm2-135m") == "loading smollm2-135m"
    message = _progress.load_message("openai:Qwen/Qwen2.5-7B@http://gpu-host:8000/v1")
    assert message == "connecting to http://gpu-host:8000/v1 for Qwen/Qwen2.5-7B (capability and alignment checks)"
    assert "secret" not in _progress.load_message("openai:m@http://user:secret@host:1/v1")
    assert "--base-url" in _progress.load_message("openai:m")


def test_a_tiny_run_shows_items_and_loading_on_stderr_only(tiny_folder, tmp_path):
    """The command's own progress lines, in items, on stderr; no tqdm bar (transformers', datasets')."""
    result = CliRunner().invoke(cli.app, ["probe", "-m", str(tiny_folder), "--task", "capitals", "--n", "3", "-k", "1",
                                          "--few-shot", "0", "--device", "cpu", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    err, out = result.stderr, result.stdout
    assert f"loading {tiny_folder} ..." in err and f"loading {tiny_folder}: done in" in err
    for line in ("generating answers: 3 items", "generating answers: 3/3 items in",
                 "scoring candidates: 3/3 items in", f"judge {tiny_folder}, 2 modes: 6/6 items in"):
        assert line in err, err
    assert "chunk" not in err and "%|" not in err and "it/s" not in err  # no tqdm-style bar
    assert "generating answers" not in out and "probe summary" in out
