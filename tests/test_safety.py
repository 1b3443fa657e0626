"""Nothing lost, nothing leaked (issue 26): refused input never deletes data, a secret never goes to
a server the user did not name, and a run ends cleanly on SIGTERM or an unreachable Ray address.

Every refusal is checked as in :mod:`tests.test_bad_inputs`: exit code 2, one ``error:`` line naming
the place, no traceback, and the folders byte for byte as they were.
"""

from __future__ import annotations

import json
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
