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


def test_judge_analyze_and_figures_print_one_health_table(small_judged_run, tmp_path):
    """The degenerate-judge lines of `selfbias judge`, `analyze`'s health.csv and `figures`'
    judge_health.csv are one result (one analysis, one bootstrap setting), on a real SmolLM2 run."""
    import shutil

    import pandas as pd

    from selfbias.stats import judge_health

    path = tmp_path / "run"
    shutil.copytree(small_judged_run.path, path)  # the shared run stays as it was
    judged = runner.invoke(app, ["judge", str(path)])  # every chunk exists: resumes, judges nothing
    assert judged.exit_code == 0, judged.output
    assert runner.invoke(app, ["analyze", str(path)]).exit_code == 0
    drawn = runner.invoke(app, ["figures", str(path), "--out", str(tmp_path / "figs"), "--format", "png"])
    assert drawn.exit_code == 0, drawn.output
    summary = pd.read_csv(path / "analysis" / "health.csv")
    figure = pd.read_csv(tmp_path / "figs" / "judge_health.csv")
    assert list(summary.columns) == list(figure.columns)

    def by_key(t):
        return t.sort_values(["judge", "mode"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(by_key(summary), by_key(figure), check_exact=True)
    printed = " ".join(judged.output.split())  # rich wraps long lines
    bad = summary[summary["degenerate"]]
    assert len(bad), "the bundled zero-shot judge is degenerate here: its reasons quote the AUROC interval"
    for row in bad.itertuples():
        assert f"degenerate judge {row.judge} ({row.mode}): {' '.join(row.reasons.split())};" in printed
    # the table is the statistic under the documented default setting (2000 resamples, seed 0)
    expected = judge_health(small_judged_run.analysis_frame(), n_boot=2000, seed=0)
    assert list(summary["reasons"]) == list(expected["reasons"])
    assert summary["auroc_ci_low"].round(12).tolist() == expected["auroc_ci_low"].round(12).tolist()


def test_version_matches_the_package_metadata():
    """`selfbias --version`, ``selfbias.__version__``, the installed metadata and the version setuptools
    reads from pyproject.toml (the attr of ``selfbias.__version__``) are one string."""
    import importlib.metadata
    from pathlib import Path

    from setuptools.config.pyprojecttoml import read_configuration

    import selfbias

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"selfbias {selfbias.__version__}"
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    assert read_configuration(pyproject)["project"]["version"] == selfbias.__version__
    assert importlib.metadata.version("selfbias") == selfbias.__version__


def test_probe_few_shot_option_is_listed_and_checked(tmp_path):
    helped = runner.invoke(app, ["probe", "--help"])
    assert helped.exit_code == 0 and "--few-shot" in helped.output
    bad = runner.invoke(app, ["probe", "--n", "2", "--few-shot", "-1", "--out", str(tmp_path / "run")])
    assert bad.exit_code == 2 and "few_shot" in bad.output and not (tmp_path / "run").exists()
