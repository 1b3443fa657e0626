"""The command line: commands listed, helper commands work, figures and analyze on a real run."""

from __future__ import annotations

from typer.testing import CliRunner

from selfbias.cli import app

runner = CliRunner()


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("probe", "judge", "analyze", "figures", "tasks", "models"):
        assert command in result.output


def test_tasks_and_models_commands():
    tasks = runner.invoke(app, ["tasks"])
    assert tasks.exit_code == 0 and "arithmetic" in tasks.output and "capitals" in tasks.output
    models = runner.invoke(app, ["models"])
    assert models.exit_code == 0 and "smollm2-135m" in models.output and "gemma3-270m" in models.output


def test_analyze_and_figures_on_a_real_run(small_judged_run, tmp_path):
    path = str(small_judged_run.path)
    analyzed = runner.invoke(app, ["analyze", path])
    assert analyzed.exit_code == 0, analyzed.output
    summary_md = small_judged_run.path / "analysis" / "summary.md"
    assert summary_md.exists() and "degenerate" in summary_md.read_text().lower()
    drawn = runner.invoke(app, ["figures", path, "--out", str(tmp_path / "figs"), "--format", "png"])
    assert drawn.exit_code == 0, drawn.output
    pngs = list((tmp_path / "figs").glob("*.png"))
    assert len(pngs) >= 5 and all(p.stat().st_size > 1000 for p in pngs)
    assert "skipped" in drawn.output  # e.g. no pairwise judgments in this run: said, not silent


def test_analyze_refuses_a_missing_run(tmp_path):
    result = runner.invoke(app, ["analyze", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "error" in result.output


def test_probe_takes_an_answer_template_file(tmp_path, smollm2):
    import json

    from selfbias.runs import load_run

    spec = {"name": "terse", "format": "chat", "system": "Reply with the answer only.",
            "user": "Q: {question}", "prefill": "A:", "stop": ["\n"]}
    (tmp_path / "t.json").write_text(json.dumps(spec))
    result = runner.invoke(app, ["probe", "--n", "2", "--samples", "0", "--judge-modes", "none",
                                 "--template", str(tmp_path / "t.json"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    recorded = load_run(tmp_path / "run").manifest["request"]["templates"]["smollm2-135m"]
    assert recorded["system"] == "Reply with the answer only." and recorded["prefill"] == "A:"
    (tmp_path / "bad.json").write_text(json.dumps({**spec, "user": "no question field"}))
    bad = runner.invoke(app, ["probe", "--n", "2", "--template", str(tmp_path / "bad.json"),
                              "--out", str(tmp_path / "run2")])
    assert bad.exit_code == 2 and "must contain {question}" in bad.output
