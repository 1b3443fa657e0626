"""``--task hf:PATH[:split]``: Hugging Face ``datasets`` data on disk (saved with ``save_to_disk``, or
Parquet/Arrow/JSON data files) read through the ``datasets`` library into the same items as the
equivalent JSONL file, with the column mapping, and through ``probe`` end to end."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from selfbias.cli import app
from selfbias.tasks import TaskError, load_task

datasets = pytest.importorskip("datasets", reason="hf: tasks need the datasets library (pip install 'selfbias[hf]')")

GSM_ROWS = [
    {"question": "Tom has 3 apples and buys 4 more. How many apples does he have?",
     "answer": "He has 3 + 4 = <<3+4=7>>7 apples.\n#### 7"},
    {"question": "A box holds 12 eggs. How many eggs are in 3 boxes?",
     "answer": "3 boxes hold 3 * 12 = <<3*12=36>>36 eggs.\n#### 36"},
    {"question": "Sara had 1,200 dollars and spent 250. How much is left?",
     "answer": "1200 - 250 = <<1200-250=950>>950\n#### 950"},
]
MAPPED_ROWS = [
    {"q": "What is the capital of Peru?", "a": "Lima", "wrong": ["Cusco", "Arequipa"], "topic": "geo"},
    {"q": "What is the capital of Chile?", "a": "Santiago", "wrong": ["Valparaiso"], "topic": "geo"},
    {"q": "What colour is the sky on a clear day?", "a": "blue", "wrong": [], "topic": "misc"},
]


def _fields(task):
    """The items without their ids (which name the source), for comparing two loaders."""
    return [(it.question, it.references, it.distractors, it.choices, it.answer_type,
             {k: v for k, v in it.meta.items() if k != "line"}) for it in task.items]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_saved_dataset_dict_reads_as_the_jsonl_file_does(tmp_path):
    """A DatasetDict written with save_to_disk: detected as GSM8K like the same rows in a JSONL file."""
    folder = tmp_path / "gsm"
    datasets.DatasetDict(train=datasets.Dataset.from_list(GSM_ROWS[:2]),
                         test=datasets.Dataset.from_list(GSM_ROWS)).save_to_disk(str(folder))
    task = load_task(f"hf:{folder}:test")
    reference = load_task(_jsonl(tmp_path / "gsm.jsonl", GSM_ROWS))
    assert task.name == "gsm8k:gsm-test" and reference.name == "gsm8k:gsm"
    assert _fields(task) == _fields(reference)
    assert [it.references[0] for it in task.items] == ["7", "36", "950"]  # computed by hand from the rows
    assert [it.id for it in task.items] == ["gsm-test-1", "gsm-test-2", "gsm-test-3"]
    assert task.source == f"hf:{folder.resolve()}:test" and len(task.source_sha256) == 64
    assert len(load_task(f"hf:{folder}:train")) == 2
    # the hash is of the split's records: another split, another hash; the same split, the same
    assert load_task(f"hf:{folder}:train").source_sha256 != task.source_sha256
    assert load_task(f"hf:{folder}:test").source_sha256 == task.source_sha256


def test_mapping_applies_to_a_saved_dataset(tmp_path):
    folder = tmp_path / "caps"
    datasets.Dataset.from_list(MAPPED_ROWS).save_to_disk(str(folder))
    task = load_task(f"hf:{folder}", mapping="question=q,answer=a,distractors=wrong")
    reference = load_task(_jsonl(tmp_path / "caps.jsonl", MAPPED_ROWS), mapping="question=q,answer=a,distractors=wrong")
    assert _fields(task) == _fields(reference)
    assert task.items[0].references == ("Lima",) and task.items[0].distractors == ("Cusco", "Arequipa")
    assert task.items[0].meta["fields"] == {"topic": "geo"}
    with pytest.raises(TaskError, match=r"field 'question' is missing from every record"):
        load_task(f"hf:{folder}")  # without the mapping, the default column names are not there


@pytest.mark.parametrize("suffix,write", [
    (".parquet", lambda ds, p: ds.to_parquet(str(p))),
    (".jsonl", lambda ds, p: ds.to_json(str(p))),
    (".csv", lambda ds, p: ds.to_csv(str(p), index=False)),
])
def test_single_data_files(tmp_path, suffix, write):
    rows = [{"question": r["q"], "answer": r["a"]} for r in MAPPED_ROWS]
    path = tmp_path / f"caps{suffix}"
    write(datasets.Dataset.from_list(rows), path)
    task = load_task(f"hf:{path}")
    assert [it.question for it in task.items] == [r["question"] for r in rows]
    assert [it.references for it in task.items] == [(r["answer"],) for r in rows]
    assert task.name == "jsonl:caps-train"


def test_arrow_file_and_folder_of_split_files(tmp_path):
    """A hub-style folder (data/train-*.parquet, data/test-*.parquet): the splits are datasets' own."""
    ds = datasets.Dataset.from_list(GSM_ROWS)
    (tmp_path / "repo" / "data").mkdir(parents=True)
    ds.select([0, 1]).to_parquet(str(tmp_path / "repo" / "data" / "train-00000-of-00001.parquet"))
    ds.select([2]).to_parquet(str(tmp_path / "repo" / "data" / "test-00000-of-00001.parquet"))
    test = load_task(f"hf:{tmp_path / 'repo'}:test")
    assert [it.references[0] for it in test.items] == ["950"]
    with pytest.raises(TaskError, match=r"has splits .*name one"):
        load_task(f"hf:{tmp_path / 'repo'}")
    with pytest.raises(TaskError, match=r"no split 'validation'; the dataset has"):
        load_task(f"hf:{tmp_path / 'repo'}:validation")
    saved = tmp_path / "saved"
    ds.save_to_disk(str(saved))
    arrow = next(saved.glob("*.arrow"))
    assert _fields(load_task(f"hf:{arrow}")) == _fields(load_task(f"hf:{saved}"))


def test_bad_inputs_name_the_spec_and_record(tmp_path):
    with pytest.raises(TaskError, match=r"no such dataset folder or data file; selfbias reads .* from disk only"):
        load_task("hf:openai/gsm8k")  # a hub name: never fetched
    folder = tmp_path / "bad"
    rows = [dict(r) for r in GSM_ROWS]
    rows[1]["answer"] = "no final answer here"
    datasets.Dataset.from_list(rows).save_to_disk(str(folder))
    with pytest.raises(TaskError) as info:
        load_task(f"hf:{folder}", fmt="gsm8k")
    assert str(info.value) == f"hf:{folder}:train record 2: field 'answer' has no '#### ' final answer"
    kept = load_task(f"hf:{folder}", fmt="gsm8k", skip_invalid=True)
    assert len(kept) == 2 and [(s.line, s.field) for s in kept.skipped] == [(2, "answer")]
    with pytest.raises(TaskError, match="format 'truefalse' reads CSV text"):
        load_task(f"hf:{folder}", fmt="truefalse")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TaskError, match="holds no saved dataset"):
        load_task(f"hf:{tmp_path / 'empty'}")


def test_probe_runs_a_saved_dataset_from_the_command_line(tmp_path, tiny_folder):
    """`selfbias probe --task hf:PATH --mapping ...` end to end on the weightless tiny model."""
    from selfbias.runs import load_run

    folder = tmp_path / "caps"
    datasets.Dataset.from_list(MAPPED_ROWS).save_to_disk(str(folder))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["probe", "-m", str(tiny_folder), "--task", f"hf:{folder}",
                                      "--mapping", "question=q,answer=a,distractors=wrong", "--n", "3",
                                      "--samples", "1", "--max-new-tokens", "4", "--judge-modes", "isolated", "--few-shot", "0",
                                      "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    run = load_run(out)
    assert run.manifest["request"]["task"]["spec"] == f"hf:{folder}"
    assert run.manifest["task_source"] == f"hf:{folder.resolve()}:train"
    assert list(run.items["item_id"]) == ["caps-train-1", "caps-train-2", "caps-train-3"]
    cands = run.candidates
    assert {"Lima", "Cusco", "Arequipa"} <= set(cands.loc[cands["item_id"] == "caps-train-1", "text"])
    assert len(run.judgments) > 0


def test_default_run_folder_of_an_hf_spec_has_no_separators():
    from selfbias.probe import default_run_dir

    assert default_run_dir(["smollm2-135m"], "hf:data/sets/gsm8k:test", 5, 0).name == \
        "smollm2-135m_hf-gsm8k-test_n5_seed0"


def test_reading_leaves_the_datasets_progress_bars_as_they_were(tmp_path):
    folder = tmp_path / "caps"
    datasets.Dataset.from_list(MAPPED_ROWS).save_to_disk(str(folder))
    assert datasets.is_progress_bar_enabled()
    load_task(f"hf:{folder}", mapping="question=q,answer=a")
    assert datasets.is_progress_bar_enabled()
