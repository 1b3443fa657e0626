"""Bad inputs: each refused with exit code 2 and one line naming the place, before any work.

Every case runs the command line in-process (typer's CliRunner) and checks the exit code, that the
output is one ``error:`` line naming the argument, file, line or field at fault, that no traceback
is printed, and that the run folder (or the ``--out`` folder) is byte for byte as it was. Cases
that would need a model fail before it loads, so the file runs in seconds. Also here: the exit
code contract for unexpected errors (1, traceback file) and Ctrl-C (130), the same checks through
the Python API, the context-length check, the content-hashed model cache and the column
projection of the analysis frames.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from selfbias import _gguf_cache, _validate
from selfbias.cli import app
from selfbias.errors import InputError, SelfbiasError

runner = CliRunner()
BAD_FILES = sorted((Path(__file__).parent / "data" / "bad").iterdir())


def snapshot(folder: Path | None):
    """Every file under ``folder`` with its bytes' hash (None when the folder does not exist)."""
    if folder is None or not folder.exists():
        return None
    if folder.is_file():
        return hashlib.sha256(folder.read_bytes()).hexdigest()
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def refused(args: list[str], place: str, *, watch: Path | None = None, code: int = 2) -> str:
    """Run ``selfbias ARGS``: exit ``code``, one error line containing ``place``, ``watch`` untouched."""
    before = snapshot(watch)
    result = runner.invoke(app, [str(a) for a in args])
    # stdout: the error line (progress and status lines, "loading MODEL ...", go to stderr)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output, result.output
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert place in lines[0], result.output
    assert snapshot(watch) == before, "the folder changed"
    return lines[0]


@pytest.fixture(scope="module")
def base_run(tiny, tmp_path_factory):
    """A small judged run (2 capitals, isolated; the weightless tiny model under the default model's
    name): the folder that bad commands must not touch."""
    from selfbias.models import wrap_model
    from selfbias.probe import probe

    stand_in = wrap_model(tiny.model, tiny.tokenizer, name="smollm2-135m", prompt_format="chat")
    # zero-shot: the stand-in's 256-token context holds no few-shot examples
    return probe("smollm2-135m", "capitals", n=2, samples=1, max_new_tokens=4, judge_modes=("isolated",), few_shot=0,
                 out=tmp_path_factory.mktemp("base") / "run", loaded={"smollm2-135m": stand_in},
                 progress=False).path


@pytest.fixture
def run_copy(base_run, tmp_path):
    dest = tmp_path / "run"
    shutil.copytree(base_run, dest)
    return dest


@pytest.fixture
def read_only(monkeypatch):
    """A read-only file system as the validation step sees it (the tests may run as root, for whom
    permission bits do not stop a write, so the refusal is simulated where the write is tried)."""
    def refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(_validate, "_try_create", refuse)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------ probe: settings

PROBE_SETTINGS = [
    (["--temperature", "nan"], "--temperature"),
    (["--temperature", "inf"], "--temperature"),
    (["--temperature", "-1"], "--temperature"),
    (["--samples", "-1"], "--samples"),
    (["--max-new-tokens", "0"], "--max-new-tokens"),
    (["--max-new-tokens", "-5"], "--max-new-tokens"),
    (["--n", "0"], "--n"),
    (["--n", "-3"], "--n"),
    (["--seed", "-1"], "seed"),
    (["--judge-modes", "isolated,bogus"], "'bogus'"),
    (["--judge-modes", "isolated,isolated"], "twice"),
    (["--device", "tpu9"], "--device 'tpu9'"),
    (["--dtype", "float8"], "--dtype 'float8'"),
    (["-m", "nosuchmodel"], "'nosuchmodel'"),
    (["-m", "/nonexistent/model.gguf"], "/nonexistent/model.gguf"),
    (["-m", "./no/such/folder"], "./no/such/folder"),
    (["-m", "smollm2-135m", "-m", "smollm2-135m"], "listed twice"),
    (["--task", "nosuch"], "unknown task 'nosuch'"),
    (["--task", "arithmetic:9d"], "'9d'"),
    (["--task", "capitals", "--level", "1d+1d"], "capitals has no levels"),
    (["--task", "arithmetic", "--mapping", "question=q"], "arithmetic is built in"),
]


@pytest.mark.parametrize("args,place", PROBE_SETTINGS, ids=[" ".join(a) for a, _ in PROBE_SETTINGS])
def test_probe_refuses_a_bad_setting_before_loading(args, place, tmp_path, tiny_folder):
    out = tmp_path / "run"
    model = [] if "-m" in args else ["-m", tiny_folder]  # a weightless model: the setting is what is refused
    refused(["probe", *model, *args, "--out", out], place, watch=out)
    assert not out.exists()


@pytest.mark.parametrize("device", ["cuda", "cuda:7", "mps"])
def test_probe_refuses_a_device_that_is_not_here(device, tmp_path):
    import torch

    kind = device.split(":")[0]
    if (kind == "cuda" and torch.cuda.device_count() > 7) or (
            kind == "mps" and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        pytest.skip(f"{device} exists here")
    if device == "cuda:7" and not torch.cuda.is_available():
        pass  # still refused: no CUDA at all
    refused(["probe", "--device", device, "--out", tmp_path / "run"], f"--device '{device}'", watch=tmp_path / "run")


# ------------------------------------------------------------------------------------ probe: files


@pytest.mark.parametrize("bad", BAD_FILES, ids=[p.name for p in BAD_FILES])
def test_probe_names_the_file_and_line_of_a_bad_task_file(bad, tmp_path, tiny_folder):
    line = refused(["probe", "-m", tiny_folder, "--task", bad, "--out", tmp_path / "run"], bad.name, watch=tmp_path / "run")
    if "line" in line:  # where a line is named, it is the right kind of number
        assert any(tok.rstrip(":").isdigit() for tok in line.split("line", 1)[1].split()[:1])


def test_lone_surrogate_names_file_line_and_field(tmp_path, tiny_folder):
    bad = _write(tmp_path / "s.jsonl", '{"question": "ok?", "answer": "yes"}\n{"question": "a\\ud800b", "answer": "x"}\n')
    line = refused(["probe", "-m", tiny_folder, "--task", bad, "--out", tmp_path / "run"], "s.jsonl line 2", watch=tmp_path / "run")
    assert "'question'" in line and "surrogate" in line


def test_csv_format_forced_on_a_jsonl_file_says_so(tmp_path, tiny_folder):
    data = _write(tmp_path / "q.jsonl", '{"question": "What is 1+1?", "answer": "2"}\n')
    line = refused(["probe", "-m", tiny_folder, "--task", data, "--format", "truthfulqa", "--out", tmp_path / "run"], "q.jsonl",
                   watch=tmp_path / "run")
    assert "JSON lines" in line and "header" not in line


@pytest.mark.parametrize("options,place", [
    (["--format", "bogus"], "unknown format 'bogus'"),
    (["--mapping", "question"], "mapping"),
    (["--mapping", "question=q,answer=a,colour=c"], "colour"),
    (["--mapping", "question=nope,answer=answer"], "'nope'"),
])
def test_probe_refuses_bad_file_options(options, place, tmp_path, tiny_folder):
    data = _write(tmp_path / "q.jsonl", '{"question": "What is 1+1?", "answer": "2"}\n')
    refused(["probe", "-m", tiny_folder, "--task", data, *options, "--out", tmp_path / "run"], place, watch=tmp_path / "run")


def test_missing_task_file_is_named(tmp_path, tiny_folder):
    refused(["probe", "-m", tiny_folder, "--task", tmp_path / "absent.jsonl", "--out", tmp_path / "run"], "absent.jsonl")


# ------------------------------------------------------------------------------------ probe: models


def _real_gguf() -> Path:  # tests calling it are marked `model`
    from selfbias.models import BUNDLED_MODELS

    return BUNDLED_MODELS["smollm2-135m"].gguf_path()


@pytest.mark.model
def test_first_100_bytes_of_a_gguf(tmp_path):
    with open(_real_gguf(), "rb") as fh:
        head = fh.read(100)
    bad = tmp_path / "head.gguf"
    bad.write_bytes(head)
    line = refused(["probe", "-m", bad, "--out", tmp_path / "run"], "head.gguf", watch=tmp_path / "run")
    assert "truncated or damaged" in line


@pytest.mark.model
def test_half_a_gguf(tmp_path):
    real = _real_gguf()
    bad = tmp_path / "half.gguf"
    with open(real, "rb") as fh:
        bad.write_bytes(fh.read(real.stat().st_size // 2))
    line = refused(["probe", "-m", bad, "--out", tmp_path / "run"], "half.gguf", watch=tmp_path / "run")
    assert "truncated or damaged" in line


def test_a_gguf_that_is_not_one(tmp_path):
    bad = _write(tmp_path / "text.gguf", "hello")
    refused(["probe", "-m", bad, "--out", tmp_path / "run"], "not a GGUF file", watch=tmp_path / "run")


def test_a_model_folder_without_config(tmp_path):
    (tmp_path / "m").mkdir()
    refused(["probe", "-m", tmp_path / "m", "--out", tmp_path / "run"], "config.json", watch=tmp_path / "run")


# ------------------------------------------------------------------------------------ probe: templates

TEMPLATES = [
    ({"name": "t", "format": "chat", "user": "{question} {other}"}, "{other}"),
    ({"name": "t", "format": "chat", "user": "no question here"}, "must contain {question}"),
    ({"name": "t", "format": "chat", "colour": "red"}, "unknown field 'colour'"),
    ({"name": "t", "format": "html"}, "'html'"),
    ({"name": "t", "format": "chat", "stop": "\n"}, "'stop'"),
    ({"name": "t", "format": "plain", "few_shot": [["q only"]]}, "'few_shot'"),
    ({"format": "chat"}, "'name' is missing"),
    ({"name": "t", "format": "chat", "user": "{question"}, "not a valid format string"),
    (["not", "an", "object"], "JSON object"),
]


@pytest.mark.parametrize("spec,place", TEMPLATES, ids=[p for _, p in TEMPLATES])
def test_answer_template_errors_name_the_file_and_field(spec, place, tmp_path):
    path = _write(tmp_path / "tmpl.json", json.dumps(spec))
    line = refused(["probe", "--template", path, "--out", tmp_path / "run"], place, watch=tmp_path / "run")
    assert "tmpl.json" in line


def test_template_file_missing_or_not_json(tmp_path):
    refused(["probe", "--template", tmp_path / "none.json", "--out", tmp_path / "run"], "none.json")
    bad = _write(tmp_path / "bad.json", '{"name": "t",\n "format": }')
    refused(["probe", "--template", bad, "--out", tmp_path / "run"], "bad.json line 2")


# ------------------------------------------------------------------------------------ probe: --out


def test_out_that_is_a_file(tmp_path, tiny_folder):
    out = _write(tmp_path / "file.txt", "mine")
    refused(["probe", "-m", tiny_folder, "--out", out], "not a folder", watch=out)


def test_out_that_is_a_foreign_folder_is_refused_before_the_model_loads(tmp_path, monkeypatch, tiny_folder):
    import selfbias.models

    def no_load(*a, **k):
        raise AssertionError("the model loaded before the folder was checked")

    monkeypatch.setattr(selfbias.models, "load_model", no_load)
    out = tmp_path / "mine"
    out.mkdir()
    _write(out / "notes.txt", "precious")
    refused(["probe", "-m", tiny_folder, "--out", out], "not a selfbias run", watch=out)


def test_read_only_out(tmp_path, read_only, tiny_folder):
    line = refused(["probe", "-m", tiny_folder, "--out", tmp_path / "run"], "--out", watch=tmp_path)
    assert "Read-only file system" in line


# ------------------------------------------------------------------------------------ judge


JUDGE_ARGS = [
    (["--mode", "bogus"], "'bogus'"),
    (["--mode", "isolated", "--mode", "isolated"], "twice"),
    (["--k", "0"], "k must be"),
    (["--few-shot", "-1"], "few_shot"),
    (["--few-shot", "99"], "few_shot=99"),
    (["--seed", "-2"], "seed"),
    (["--judge", "nosuchmodel"], "'nosuchmodel'"),
    (["--judge", "/no/such/judge.gguf"], "/no/such/judge.gguf"),
]


@pytest.mark.parametrize("args,place", JUDGE_ARGS, ids=[" ".join(a) for a, _ in JUDGE_ARGS])
def test_judge_refuses_bad_arguments_and_leaves_the_run(args, place, base_run):
    refused(["judge", base_run, *args], place, watch=base_run)


JUDGE_TEMPLATES = [
    ('{"bogus": {"prefix": "Q: {question}"}}', "unknown mode 'bogus'"),
    ('{"isolated": {"prefix": "Q: {question}", "colour": 1}}', "colour"),
    ('{"isolated": 5}', "isolated"),
    ('["isolated"]', "JSON object"),
    ('{"isolated": ', "line 1"),
]


@pytest.mark.parametrize("text,place", JUDGE_TEMPLATES, ids=[p for _, p in JUDGE_TEMPLATES])
def test_judge_templates_file_errors_name_the_file(text, place, base_run, tmp_path):
    path = _write(tmp_path / "jt.json", text)
    line = refused(["judge", base_run, "--templates", path], place, watch=base_run)
    assert "jt.json" in line


def test_judge_templates_in_the_help_shape_are_accepted(tmp_path):
    """`--help` shows {mode: {prefix, suffix, ...}}: that shape is read as the same override for
    both formats (it was refused with "needs 'mode' and 'format'")."""
    from selfbias._judge_templates import DEFAULT_TEMPLATES, resolve_templates

    default = DEFAULT_TEMPLATES["isolated"]["plain"]
    path = _write(tmp_path / "jt.json", json.dumps({"isolated": {"prefix": default.prefix, "suffix": default.suffix,
                                                                 "options": ["Yes", "No"]}}))
    resolved = resolve_templates(_validate.load_judge_templates(path), ("isolated",))
    assert {fmt: t.prefix for fmt, t in resolved["isolated"].items()} == {"chat": default.prefix,
                                                                          "plain": default.prefix}


def test_judge_on_folders_that_are_not_runs(tmp_path):
    refused(["judge", tmp_path / "absent"], "no such run folder")
    (tmp_path / "empty").mkdir()
    refused(["judge", tmp_path / "empty"], "not a selfbias run folder", watch=tmp_path / "empty")
    _write(tmp_path / "f", "x")
    refused(["judge", tmp_path / "f"], "not a folder", watch=tmp_path / "f")


def test_judge_on_a_read_only_run(base_run, read_only):
    line = refused(["judge", base_run], "run folder", watch=base_run)
    assert "Read-only" in line


# ------------------------------------------------------------------------------------ analyze, figures


def test_analyze_and_figures_on_a_truncated_table(run_copy):
    table = run_copy / "judgments.parquet"
    table.write_bytes(table.read_bytes()[: table.stat().st_size // 2])
    refused(["analyze", run_copy], "judgments.parquet", watch=run_copy)
    refused(["figures", run_copy], "judgments.parquet", watch=run_copy)


def test_analyze_on_a_damaged_manifest(run_copy):
    _write(run_copy / "manifest.json", "{not json")
    refused(["analyze", run_copy], "manifest.json", watch=run_copy)


def test_analyze_a_run_without_judgments(run_copy):
    (run_copy / "judgments.parquet").unlink()
    shutil.rmtree(run_copy / "chunks" / "judgments")
    refused(["analyze", run_copy], "no judgments yet", watch=run_copy)


@pytest.mark.parametrize("fmt", ["bmp", "", "png,jpeg"])
def test_figures_unknown_format_creates_nothing(fmt, base_run):
    refused(["figures", base_run, "--format", fmt], "--format", watch=base_run)
    assert not (base_run / "figures").exists()


@pytest.mark.parametrize("command", ["analyze", "figures"])
def test_analyze_and_figures_on_folders_that_are_not_runs(command, tmp_path):
    refused([command, tmp_path / "absent"], "no such run folder")
    (tmp_path / "empty").mkdir()
    refused([command, tmp_path / "empty"], "not a selfbias run folder", watch=tmp_path / "empty")


def test_analyze_on_a_read_only_run(base_run, read_only):
    refused(["analyze", base_run], "analysis folder", watch=base_run)


def test_figures_into_a_read_only_or_file_out(base_run, tmp_path, read_only):
    refused(["figures", base_run, "--out", tmp_path / "figs"], "figures folder", watch=base_run)


def test_figures_out_is_a_file(base_run, tmp_path):
    out = _write(tmp_path / "figs", "x")
    refused(["figures", base_run, "--out", out, "--format", "png"], "is a file", watch=out)


# ------------------------------------------------------------------------------------ exit codes


def _probe_raising(monkeypatch, exc):
    def boom(*args, **kwargs):
        raise exc

    monkeypatch.setattr(sys.modules["selfbias.probe"], "probe", boom)


def test_an_unexpected_error_is_one_line_naming_the_traceback_file(monkeypatch, tmp_path):
    _probe_raising(monkeypatch, RuntimeError("boom\nsecond line"))
    result = runner.invoke(app, ["probe", "--out", str(tmp_path / "run")])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith("internal error: RuntimeError: boom second line")
    path = Path(lines[0].split("full traceback: ")[1].split(";")[0])
    try:
        text = path.read_text()
        assert "Traceback (most recent call last)" in text and "RuntimeError: boom" in text
    finally:
        path.unlink(missing_ok=True)


@pytest.mark.parametrize("exc", [ValueError("plain"), TypeError("plain")])
def test_a_plain_value_error_is_internal_not_guessed(monkeypatch, tmp_path, exc):
    """Bad input is an InputError (exit 2); a plain ValueError or TypeError, wherever it was raised,
    is an internal error (exit 1): the command line does not guess from the traceback who raised it."""
    _probe_raising(monkeypatch, exc)
    result = runner.invoke(app, ["probe", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and result.output.startswith("internal error:"), result.output
    Path(result.output.split("full traceback: ")[1].split(";")[0]).unlink(missing_ok=True)
    _probe_raising(monkeypatch, InputError("bad --thing"))
    refused(["probe", "--out", tmp_path / "run"], "bad --thing")


def test_ctrl_c_exits_130(monkeypatch, tmp_path):
    _probe_raising(monkeypatch, KeyboardInterrupt())
    result = runner.invoke(app, ["probe", "--out", str(tmp_path / "run")])
    assert result.exit_code == 130 and "interrupted" in result.output and "Traceback" not in result.output


def test_an_os_error_names_the_file(monkeypatch, tmp_path):
    _probe_raising(monkeypatch, PermissionError(errno.EACCES, "Permission denied", "/data/x.parquet"))
    refused(["probe", "--out", tmp_path / "run"], "/data/x.parquet")


def test_every_package_error_has_one_base():
    from selfbias.generation import GenerationTimeout
    from selfbias.models import ModelError
    from selfbias.runs import RunError
    from selfbias.scoring import ContextTooLong, ScoringError
    from selfbias.tasks import TaskError

    for cls in (ModelError, RunError, ScoringError, ContextTooLong, TaskError, InputError, GenerationTimeout):
        assert issubclass(cls, SelfbiasError), cls
    assert issubclass(InputError, ValueError) and issubclass(TaskError, ValueError)  # old excepts still work
    import selfbias.cli

    assert not hasattr(selfbias.cli, "KNOWN_ERRORS")


def test_help_documents_the_exit_codes():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for code in ("0 success", "1 internal error", "2 bad input", "130 interrupted"):
        assert code in text


# ------------------------------------------------------------------------------------ Python API


def test_python_probe_checks_the_same_way(tmp_path):
    from selfbias.probe import probe

    for kwargs, place in ((dict(temperature=math.nan), "temperature"), (dict(samples=-1), "samples"),
                          (dict(judge_modes=("isolated", "bogus")), "bogus"), (dict(device="tpu9"), "tpu9"),
                          (dict(max_new_tokens=0), "max_new_tokens")):
        with pytest.raises(InputError, match=place):
            probe("smollm2-135m", "capitals", n=2, out=tmp_path / "run", progress=False, **kwargs)
    assert not (tmp_path / "run").exists()


def test_python_judge_checks_before_opening_the_run(base_run):
    from selfbias.judge import judge

    before = snapshot(base_run)
    for kwargs, place in ((dict(modes=("bogus",)), "bogus"), (dict(k=0), "k must"),
                          (dict(judges=["nosuchmodel"]), "nosuchmodel")):
        with pytest.raises(InputError, match=place):
            judge(base_run, progress=False, **kwargs)
    assert snapshot(base_run) == before


def test_generate_checks_its_settings(smollm2):
    from selfbias.generation import generate

    for kwargs, place in ((dict(temperature=-1.0), "temperature"), (dict(temperature=math.inf), "temperature"),
                          (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p"), (dict(n=0), "n must"),
                          (dict(max_new_tokens=0), "max_new_tokens")):
        with pytest.raises(InputError, match=place):
            generate(smollm2, ["What is 2+2?"], **kwargs)


def test_a_generation_batch_has_a_time_bound(smollm2):
    from selfbias.generation import GenerationTimeout, generate

    with pytest.raises(GenerationTimeout, match="time bound"):
        generate(smollm2, ["What is 2+2?"], max_new_tokens=8, batch_seconds=-1.0)


# ------------------------------------------------------------------------------------ context length

LONG = "Consider " + "the very long question " * 2600 + "what is it?"  # ~10,400 tokens, over 8,192


@pytest.mark.model  # SmolLM2's context of 8,192 tokens
def test_an_item_longer_than_the_context_is_refused_with_its_id(tmp_path):
    data = _write(tmp_path / "long.jsonl", json.dumps({"id": "huge", "question": LONG, "answer": "x"}) + "\n"
                  + json.dumps({"id": "small", "question": "What is 1+1?", "answer": "2"}) + "\n")
    line = refused(["probe", "--task", data, "--n", "2", "--samples", "0", "--judge-modes", "none",
                    "--out", tmp_path / "run"],
                   "item 'huge'", watch=tmp_path / "run")
    assert "context of 8,192 tokens" in line and "--skip-invalid" in line


@pytest.mark.model  # a real run on the default model
def test_skip_invalid_leaves_long_items_out_and_records_them_and_n_is_said(tmp_path):
    from selfbias.runs import load_run

    data = _write(tmp_path / "long.jsonl", json.dumps({"id": "huge", "question": LONG, "answer": "x"}) + "\n"
                  + json.dumps({"id": "small", "question": "What is 1+1?", "answer": "2"}) + "\n")
    result = runner.invoke(app, ["probe", "--task", str(data), "--n", "5", "--samples", "0", "--max-new-tokens", "2",
                                 "--judge-modes", "none", "--skip-invalid", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "has only 2 items: running 2, not n=5" in " ".join(result.output.split())
    run = load_run(tmp_path / "run")
    assert run.items["item_id"].tolist() == ["small"]
    assert [r["item_id"] for r in run.manifest["skipped_too_long"]] == ["huge"]


# ------------------------------------------------------------------------------------ model cache


@pytest.fixture
def fake_conversion(monkeypatch):
    """Stands in for the GGUF conversion: writes a config, a tokenizer and a 'weights' file large
    enough to be checked by blocks (the limits are shrunk so the files stay small)."""
    calls = []
    monkeypatch.setattr(_gguf_cache, "FULL_HASH_LIMIT", 4096)
    monkeypatch.setattr(_gguf_cache, "BLOCK", 512)

    def convert(gguf, out, sha):
        calls.append(out)
        out.mkdir(parents=True)
        _write(out / "config.json", '{"rms_norm_eps": 1e-05}')
        _write(out / "tokenizer.json", '{"vocab": {"a": 0}}')
        (out / "model.safetensors").write_bytes(bytes(range(256)) * 64)  # 16 KiB
        _gguf_cache.write_marker(out, gguf, sha)

    monkeypatch.setattr(_gguf_cache, "_convert", convert)
    return calls


def test_same_size_edit_of_config_is_detected_and_rebuilt(fake_conversion, tmp_path):
    gguf = _write(tmp_path / "m.gguf", "GGUF fake")
    entry, _ = _gguf_cache.converted_folder(gguf, tmp_path)
    again, _ = _gguf_cache.converted_folder(gguf, tmp_path)
    assert again == entry and len(fake_conversion) == 1 and _gguf_cache.verify_entry(entry) == "ok"
    config = entry / "config.json"
    edited = config.read_text().replace("1e-05", "0.999")  # same size, different model
    assert len(edited) == config.stat().st_size
    config.write_text(edited)
    assert _gguf_cache.verify_entry(entry) == "damaged"
    _gguf_cache.converted_folder(gguf, tmp_path)
    assert len(fake_conversion) == 2 and "1e-05" in config.read_text()


@pytest.mark.parametrize("offset", [0, 8192 - 256, 16384 - 1])  # start, middle, end blocks of the weights
def test_same_size_edit_of_weights_in_a_checked_block_is_detected(fake_conversion, tmp_path, offset):
    gguf = _write(tmp_path / "m.gguf", "GGUF fake")
    entry, _ = _gguf_cache.converted_folder(gguf, tmp_path)
    weights = entry / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[offset] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert _gguf_cache.verify_entry(entry) == "damaged"
    assert _gguf_cache.verify_entry(entry, full=False) == "damaged"


def test_an_entry_from_before_hashes_gets_them_without_a_rebuild(fake_conversion, tmp_path):
    gguf = _write(tmp_path / "m.gguf", "GGUF fake")
    entry, _ = _gguf_cache.converted_folder(gguf, tmp_path)
    marker = json.loads((entry / _gguf_cache.MARKER).read_text())
    del marker["hashes"]
    _write(entry / _gguf_cache.MARKER, json.dumps(marker))
    assert _gguf_cache.verify_entry(entry) == "unhashed"
    _gguf_cache.converted_folder(gguf, tmp_path)
    assert len(fake_conversion) == 1 and _gguf_cache.verify_entry(entry) == "ok"


# ------------------------------------------------------------------------------------ column projection


def test_frames_read_no_per_token_columns_and_equal_the_full_join(base_run):
    from selfbias.runs import Run, make_analysis_frame, make_pairwise_frame

    lazy = Run(base_run)
    frame, pairwise = lazy.analysis_frame(), lazy.pairwise_frame()
    assert "scores" not in lazy._cache and "judgments" not in lazy._cache  # the full tables were never read
    assert "logprobs" not in lazy._cache["scores:frame"].columns
    full = Run(base_run)
    expected = make_analysis_frame(full.judgments, full.candidates, full.scores)
    assert len(frame) > 0
    import pandas as pd

    pd.testing.assert_frame_equal(frame, expected)
    pd.testing.assert_frame_equal(pairwise, make_pairwise_frame(full.judgments, full.candidates, full.scores))


# ------------------------------------------------------------------------------------ corpus (issue 26)
#
# More bad inputs as a new user would try them, table-driven: each case builds its files under tmp_path
# and returns the command line and the place its one error line must name. Every case: exit code 2, one
# `error:` line, no traceback, the run folder (or --out) byte for byte as it was, the model cache
# untouched, and no control character from the input on the terminal. All are refused before a model
# loads (or load only the weightless tiny model), so the corpus runs in seconds.

DEEP = "[" * 100_000 + "]" * 100_000
HUGE = "9" * 5000


def _jsonl(tmp: Path, name: str, *rows: str) -> Path:
    return _write(tmp / name, "\n".join(rows) + "\n")


def _few_shot(tmp: Path, text: str | bytes) -> Path:
    path = tmp / "shots.jsonl"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _edit_manifest(run: Path, change) -> None:
    manifest = json.loads((run / "manifest.json").read_text())
    change(manifest)
    (run / "manifest.json").write_text(json.dumps(manifest))


GOOD_SHOT = '{"question": "What is 2+2?", "answer": "4", "correct": true}'

# (id, kind, build) with kind "probe" (args after `probe -m TINY`, --out added), "judge" (args after
# `judge RUN`), "run" (a command on a damaged copy of the run: build(tmp, run) -> args), "train".
CORPUS = [
    # probe: options checked in the validation step, before the task or any model loads
    ("alt-sources typo", "probe", lambda t: (["--alt-sources", "other_modle"], "'other_modle'")),
    ("pair-sources typo", "probe", lambda t: (["--pair-sources", "refrence"], "'refrence'")),
    ("template-set bogus", "probe", lambda t: (["--template-set", "bogus"], "'bogus'")),
    ("alt-sources empty", "probe", lambda t: (["--alt-sources", ","], "alt_sources is empty")),
    ("alt-sources one bad of three", "probe", lambda t: (["--alt-sources", "reference,distractor,gold"], "'gold'")),
    ("pair-sources correct (not a pair source)", "probe", lambda t: (["--pair-sources", "correct"], "'correct'")),
    ("chat-template-kwargs without =", "probe", lambda t: (["--chat-template-kwargs", "enable_thinking"],
                                                         "--chat-template-kwargs")),
    # probe: task files
    ("task answer NaN", "probe", lambda t: (["--task", _jsonl(t, "nan.jsonl", '{"question": "q?", "answer": NaN}')],
                                            "nan.jsonl")),
    ("task answer 1e999", "probe", lambda t: (["--task", _jsonl(t, "inf.jsonl", '{"question": "q?", "answer": 1e999}')],
                                              "inf.jsonl")),
    ("task answer -Infinity", "probe", lambda t: (["--task", _jsonl(t, "ninf.jsonl",
                                                                     '{"question": "q?", "answer": -Infinity}')],
                                                  "ninf.jsonl")),
    ("task answers list with NaN", "probe", lambda t: (["--task", _jsonl(t, "lnan.jsonl",
                                                                          '{"question": "q?", "answer": [1, NaN]}')],
                                                       "lnan.jsonl")),
    ("task number of 5000 digits", "probe", lambda t: (["--task", _jsonl(t, "huge.jsonl",
                                                                          '{"question": "q?", "answer": %s}' % HUGE)],
                                                       "too long to read")),
    ("task nested 100000 deep", "probe", lambda t: (["--task", _jsonl(t, "deep.jsonl",
                                                                       '{"question": "q?", "answer": %s}' % DEEP)],
                                                    "nested too deeply")),
    ("task second row nested deep", "probe", lambda t: (["--task", _jsonl(
        t, "deep2.jsonl", '{"question": "q?", "answer": "a"}', '{"question": %s, "answer": "b"}' % DEEP)],
        "deep2.jsonl line 2")),
    ("task JSON array nested deep", "probe", lambda t: (["--task", _write(t / "deep.json", "[" + DEEP + "]")],
                                                        "deep.json")),
    ("task JSON array with a huge number", "probe", lambda t: (
        ["--task", _write(t / "arr.json", '[{"question": "q?", "answer": %s}]' % HUGE)], "arr.json")),
    ("task without extension", "probe", lambda t: (["--task", _write(t / "questions", "not a task\n")], "questions")),
    ("task name with an escape sequence", "probe", lambda t: (["--task", "capitals\x1b[31m"], "unknown task")),
    # probe: template files
    ("template number of 5000 digits", "probe", lambda t: (
        ["--template", _write(t / "tmpl.json", '{"name": "t", "format": "chat", "x": %s}' % HUGE)], "tmpl.json")),
    ("template nested 100000 deep", "probe", lambda t: (["--template", _write(t / "tmpl.json", DEEP)], "tmpl.json")),
    ("template format with an escape sequence", "probe", lambda t: (
        ["--template", _write(t / "tmpl.json", json.dumps({"name": "t", "format": "chat\x1b[2J"}))],
        "tmpl.json")),
    # probe: served models and URLs (refused before any request)
    ("server port not a number", "probe", lambda t: (["-m", "openai:m@http://127.0.0.1:abc/v1"], "port")),
    ("server port too large", "probe", lambda t: (["-m", "openai:m@http://127.0.0.1:70000/v1"], "port")),
    ("server IPv6 bracket unbalanced", "probe", lambda t: (["-m", "openai:m@http://[::1/v1"], "IPv6")),
    ("server URL ftp", "probe", lambda t: (["-m", "openai:m@ftp://127.0.0.1/v1"], "http://")),
    ("server URL without host", "probe", lambda t: (["-m", "openai:m@http:///v1"], "no host")),
    ("server URL with a space", "probe", lambda t: (["-m", "openai:m@http://127.0.0.1:9/v 1"], "spaces")),
    ("server model without name", "probe", lambda t: (["-m", "openai:@http://127.0.0.1:9/v1"], "openai:NAME")),
    ("server without URL nor --base-url", "probe", lambda t: (["-m", "openai:m"], "--base-url")),
    ("--base-url bad port", "probe", lambda t: (["-m", "openai:m", "--base-url", "http://h:port/v1"], "--base-url")),
    ("--base-url not a URL", "probe", lambda t: (["-m", "openai:m", "--base-url", "localhost:8000"], "http://")),
    ("--base-url with a password", "probe", lambda t: (["-m", "openai:m", "--base-url", "http://a:b@h/v1"],
                                                       "user name or password")),
    # judge: options checked before the run is opened
    ("judge alt-sources typo", "judge", lambda t: (["--alt-sources", "distracter"], "'distracter'")),
    ("judge pair-sources typo", "judge", lambda t: (["--pair-sources", "refrence"], "'refrence'")),
    ("judge template-set bogus", "judge", lambda t: (["--template-set", "ptru"], "'ptru'")),
    ("judge min-k 0", "judge", lambda t: (["--min-k", "0"], "min_k")),
    ("judge k negative", "judge", lambda t: (["--k", "-1"], "k must")),
    ("judge min-k above k: every item skipped", "judge", lambda t: (["--mode", "alternatives", "--k", "2",
                                                                     "--min-k", "3"], "min_k=3")),
    ("judge few-shot file bad row", "judge", lambda t: (
        ["--few-shot-file", _few_shot(t, GOOD_SHOT + "\n{not json}\n")], "shots.jsonl:2")),
    ("judge few-shot file UTF-16", "judge", lambda t: (
        ["--few-shot-file", _few_shot(t, GOOD_SHOT.encode("utf-16"))], "shots.jsonl")),
    ("judge few-shot file missing 'correct'", "judge", lambda t: (
        ["--few-shot-file", _few_shot(t, '{"question": "q?", "answer": "a"}')], "'correct'")),
    ("judge few-shot file correct as a string", "judge", lambda t: (
        ["--few-shot-file", _few_shot(t, '{"question": "q?", "answer": "a", "correct": "yes"}')], "'correct'")),
    ("judge few-shot file unknown field", "judge", lambda t: (
        ["--few-shot-file", _few_shot(t, GOOD_SHOT[:-1] + ', "colour": 1}')], "'colour'")),
    ("judge few-shot file empty", "judge", lambda t: (["--few-shot-file", _few_shot(t, "\n\n")], "no examples")),
    ("judge few-shot file absent", "judge", lambda t: (["--few-shot-file", t / "absent.jsonl"], "absent.jsonl")),
    ("judge few-shot file nested deep", "judge", lambda t: (["--few-shot-file", _few_shot(t, DEEP)], "shots.jsonl")),
    ("judge few-shot file a list per line", "judge", lambda t: (["--few-shot-file", _few_shot(t, "[1, 2]")],
                                                                "JSON object")),
    ("judge few-shot empty answer", "judge", lambda t: (
        ["--few-shot-file", _few_shot(t, '{"question": "q?", "answer": " ", "correct": true}')], "'answer'")),
    ("judge templates number of 5000 digits", "judge", lambda t: (
        ["--templates", _write(t / "jt.json", '{"isolated": {"prefix": "x", "n": %s}}' % HUGE)], "jt.json")),
    ("judge templates nested deep", "judge", lambda t: (["--templates", _write(t / "jt.json", DEEP)], "jt.json")),
    ("judge templates options one word", "judge", lambda t: (
        ["--templates", _write(t / "jt.json", '{"isolated": {"prefix": "Q: {question} A: {answer}", '
                                              '"options": ["Yes"]}}')], "jt.json")),
    ("judge server bad port", "judge", lambda t: (["--judge", "openai:m@http://127.0.0.1:x/v1"], "port")),
    ("judge server with password", "judge", lambda t: (["--judge", "openai:m@http://u:pw@127.0.0.1/v1"],
                                                       "user name or password")),
    ("judge --base-url with password", "judge", lambda t: (["--base-url", "http://u:pw@127.0.0.1/v1"],
                                                           "user name or password")),
    # commands on damaged run folders
    ("judge on a run of a newer format", "run", lambda t, r: (
        _edit_manifest(r, lambda m: m.update(format="selfbias-run/9")), ["judge", r], "newer selfbias")[1:]),
    ("analyze on a run of a newer format", "run", lambda t, r: (
        _edit_manifest(r, lambda m: m.update(format="selfbias-run/9")), ["analyze", r], "newer selfbias")[1:]),
    ("figures on a run of another format", "run", lambda t, r: (
        _edit_manifest(r, lambda m: m.update(format="other/1")), ["figures", r], 'format is "other/1"')[1:]),
    ("manifest models not a list", "run", lambda t, r: (
        _edit_manifest(r, lambda m: m["request"].update(models=5)), ["judge", r], "request.models")[1:]),
    ("manifest model without name", "run", lambda t, r: (
        _edit_manifest(r, lambda m: m["request"].update(models=[{"nom": "x"}])), ["judge", r],
        "request.models[0]")[1:]),
    ("manifest timing a list", "run", lambda t, r: (
        _edit_manifest(r, lambda m: m.update(timing=[])), ["analyze", r], "'timing'")[1:]),
    ("manifest judge settings a string", "run", lambda t, r: (
        _edit_manifest(r, lambda m: m.update(judge="x")), ["judge", r], "'judge'")[1:]),
    ("manifest request a string", "run", lambda t, r: (
        _edit_manifest(r, lambda m: m.update(request="x")), ["analyze", r], "'request'")[1:]),
    ("manifest task a number", "run", lambda t, r: (
        _edit_manifest(r, lambda m: m["request"].update(task=3)), ["figures", r], "request.task")[1:]),
    ("manifest nested deep", "run", lambda t, r: (
        _write(r / "manifest.json", '{"request": %s}' % DEEP), ["analyze", r], "manifest.json")[1:]),
    ("manifest with a huge number", "run", lambda t, r: (
        _write(r / "manifest.json", '{"request": {}, "n": %s}' % HUGE), ["judge", r], "manifest.json")[1:]),
    ("judgments table of another table", "run", lambda t, r: (
        shutil.copy(r / "items.parquet", r / "judgments.parquet"), ["analyze", r], "judgments.parquet")[1:]),
    ("judgments chunk of another table", "run", lambda t, r: (
        (r / "judgments.parquet").unlink(),
        [shutil.copy(r / "items.parquet", p) for p in (r / "chunks" / "judgments").rglob("*.parquet")],
        ["figures", r], "damaged 'judgments' table")[2:]),
    ("judgments table empty file", "run", lambda t, r: (
        (r / "judgments.parquet").write_bytes(b""), ["analyze", r], "judgments.parquet")[1:]),
    ("judgments table a folder", "run", lambda t, r: (
        (r / "judgments.parquet").unlink(), (r / "judgments.parquet").mkdir(), ["analyze", r],
        "judgments.parquet")[2:]),
    # train: checked before the model loads
    ("train objective typo", "train", lambda t: (["--objective", "imitaton"], "'imitaton'")),
    ("train rounds without own errors", "train", lambda t: (["--objective", "critique", "--rounds", "2"], "--rounds")),
    ("train learning rate -1", "train", lambda t: (["--objective", "imitation", "--learning-rate", "-1"],
                                                   "learning_rate")),
    ("train out is a file", "train", lambda t: (["--objective", "imitation", "--out", _write(t / "f.txt", "x")],
                                                "not a folder")),
]


@pytest.fixture(scope="module")
def cache_listing():
    """The model cache's files with size and modification time (a refused input must not touch it)."""
    root = _gguf_cache.cache_root()

    def listing():
        if not root.exists():
            return None
        return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
                for p in root.rglob("*") if p.is_file()}

    return listing


@pytest.mark.parametrize("case", CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus_of_bad_inputs(case, tmp_path, run_copy, tiny_folder, cache_listing, monkeypatch):
    _id, kind, build = case
    monkeypatch.setenv("SELFBIAS_BASE_URL", "")  # --base-url sets it in-process; restored after the test
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    out = tmp_path / "out"
    if kind == "probe":
        extra, place = build(inputs)
        model = [] if "-m" in extra else ["-m", tiny_folder]
        args, watch = ["probe", *model, *extra, "--out", out], out
    elif kind == "judge":
        extra, place = build(inputs)
        args, watch = ["judge", run_copy, *extra], run_copy
    elif kind == "train":
        extra, place = build(inputs)
        args = ["train", "smollm2-135m", *extra] + ([] if "--out" in extra else ["--out", out])
        watch = out
    else:
        args, place = build(inputs, run_copy)
        watch = run_copy
    before_cache = cache_listing()
    line = refused(args, place, watch=watch)
    if os.environ.get("SHOW_LINES"):
        print("\nCASE", _id, "::", line)
    assert all(c.isprintable() for c in line), repr(line)
    assert cache_listing() == before_cache
    if kind in ("probe", "train"):
        assert not out.exists()
