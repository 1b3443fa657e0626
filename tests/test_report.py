"""`selfbias report`: one self-contained HTML file (nothing fetched when opened, every figure the run
supports embedded as a data URI, the summary's tables and the manifest) and the summary as JSON;
rendered in headless Chromium where a chromium binary is installed."""

from __future__ import annotations

import base64
import html
import json
import math
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

from selfbias.cli import app

runner = CliRunner()
_EXTERNAL_TAGS = {"script", "link", "iframe", "object", "embed", "base", "frame", "audio", "video", "source"}


class _Parts(HTMLParser):
    """Tags with their attributes, text, and the style sheet of an HTML file."""

    def __init__(self):
        super().__init__()
        self.tags, self.text, self.style, self._in_style, self.pre = [], [], [], False, []
        self._in_pre = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"
        self._in_pre = tag == "pre"

    def handle_endtag(self, tag):
        self._in_style = self._in_style and tag != "style"
        self._in_pre = self._in_pre and tag != "pre"

    def handle_data(self, data):
        (self.style if self._in_style else self.text).append(data)
        if self._in_pre:
            self.pre.append(data)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])  # IHDR width, height


@pytest.fixture(scope="module")
def reported(small_judged_run, tmp_path_factory):
    """A copy of the shared SmolLM2 run with its report written by the command line."""
    path = tmp_path_factory.mktemp("report") / "run"
    shutil.copytree(small_judged_run.path, path)
    result = runner.invoke(app, ["report", str(path)])
    assert result.exit_code == 0, result.output
    return path, result.output


def test_report_is_self_contained_and_embeds_every_drawn_figure(reported, tmp_path):
    from selfbias.plots import FIGURES, draw_all
    from selfbias.runs import load_run

    path, output = reported
    text = (path / "analysis" / "report.html").read_text(encoding="utf-8")
    assert "report.html" in " ".join(output.split()) and "summary.json" in output
    parts = _Parts()
    parts.feed(text)
    # nothing fetched when opened: no external-resource tags, no attribute or style pointing elsewhere
    assert not [t for t, _ in parts.tags if t in _EXTERNAL_TAGS]
    for tag, attrs in parts.tags:
        for name, value in attrs.items():
            assert not re.match(r"\s*(https?:|//|ftp:|file:)", value or "", re.I), (tag, name, value)
    assert "url(" not in "".join(parts.style) and "@import" not in "".join(parts.style)
    assert text.count("http") == "".join(parts.text).count("http")  # any address is text, never a link
    # every figure the run supports is an <img> with a PNG data URI the size draw_all draws it
    run = load_run(path)
    drawn = draw_all(run, tmp_path / "figs", formats=("png",), analysis=run.analysis())
    expected = {r.figure: next(f for f in r.files if f.endswith(".png")) for r in drawn.itertuples()
                if r.status == "drawn"}
    assert len(expected) >= 5 and set(expected) <= set(FIGURES)
    images = {a["alt"]: a["src"] for t, a in parts.tags if t == "img"}
    assert set(images) == set(expected)
    for name, src in images.items():
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert _png_size(data) == _png_size(open(expected[name], "rb").read())
    skipped = drawn[drawn["status"] != "drawn"]
    for row in skipped.itertuples():  # the figures it cannot support are named, with the reason
        assert html.escape(row.figure) in text and html.escape(str(row.reason)) in text
    # the summary: findings, health rows, the manifest
    summary = run.analysis().summary
    for finding in summary.findings:
        assert html.escape(finding) in text
    assert "degenerate judge smollm2-135m" in text  # the bundled zero-shot judge fails its checks
    assert text.count("<table") >= len(summary.tables())
    assert json.loads("".join(parts.pre)) == json.loads(json.dumps(run.manifest))


def test_summary_json_is_the_summary(reported):
    from selfbias.runs import load_run

    path, _ = reported
    raw = (path / "analysis" / "summary.json").read_text()
    data = json.loads(raw, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    summary = load_run(path).analysis().summary
    assert data["findings"] == list(summary.findings) and data["notes"] == list(summary.notes)
    assert set(data["tables"]) == set(summary.tables())
    for name, table in summary.tables().items():
        records = data["tables"][name]
        assert len(records) == len(table) and (not records or list(records[0]) == list(table.columns))
        for record, row in zip(records, table.to_dict("records")):
            for column, value in row.items():
                got = record[column]
                if isinstance(value, float) and math.isnan(value):
                    assert got is None
                elif isinstance(value, float):
                    assert got == pytest.approx(value, rel=1e-12)
    assert data["probe"][0]["model"] == "smollm2-135m" and data["probe"][0]["items"] == 6
    printed = runner.invoke(app, ["report", str(path), "--json"])
    assert printed.exit_code == 0 and json.loads(printed.output) == data


def test_report_refuses_a_missing_run(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "error" in result.output and "no such run folder" in result.output


_CHROMIUM = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)

# Injected into a copy only: after load, counts the images the browser decoded and the tables it laid out.
_PROBE = """<script>window.addEventListener('load', function () {
  var imgs = Array.from(document.images), tables = Array.from(document.querySelectorAll('table'));
  var shown = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0; });
  var laid = tables.filter(function (t) { return t.getBoundingClientRect().height > 0; });
  document.body.setAttribute('data-rendered', shown.length + '/' + imgs.length + ' ' + laid.length + '/' + tables.length);
});</script></body>"""


@pytest.mark.skipif(_CHROMIUM is None, reason="no chromium binary (Debian package `chromium`) to render the report")
def test_report_renders_in_headless_chromium(reported, tmp_path):
    path, _ = reported
    page = tmp_path / "probe.html"
    page.write_text((path / "analysis" / "report.html").read_text(encoding="utf-8").replace("</body>", _PROBE))
    flags = [_CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--virtual-time-budget=10000"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    match = re.search(r'data-rendered="(\d+)/(\d+) (\d+)/(\d+)"', dom.stdout)
    assert match, dom.stderr[-2000:]
    shown, imgs, laid, tables = map(int, match.groups())
    assert imgs >= 5 and shown == imgs and tables >= 3 and laid == tables
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,2000", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.exists() and _png_size(shot.read_bytes()) == (1200, 2000)
