"""`selfbias audit`: graded answers of evaluation logs scored under the grader, checked against the
reference, and summarised (false acceptance by relation to the grader and by likelihood, AUROC of
the grader's likelihood for accepted vs rejected); numbers checked against direct computations."""

from __future__ import annotations

import json

import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from selfbias.audit import audit, relation
from selfbias.cli import app

# (question, target, own answer, own grade, other answer, other grade); grades as a grader gave them
ROWS = [
    ("What is the capital of Peru?", "Lima", "Lima", "C", "Cusco", "C"),
    ("What is the capital of Chile?", "Santiago", "Valparaiso", "C", "Santiago", "C"),
    ("What is the capital of Kenya?", "Nairobi", "Mombasa", "I", "Nairobi", "C"),
    ("What is the capital of Ghana?", "Accra", "Accra", "C", "Kumasi", "I"),
    ("What is the capital of Nepal?", "Kathmandu", "Pokhara", "C", "Kathmandu", "I"),
    ("What is the capital of Laos?", "Vientiane", "Vientiane", "C", "Luang Prabang", "I"),
]


def _log(path, model, own: bool):
    samples = [{"id": i, "epoch": 1, "input": q, "target": t,
                "output": {"completion": a if own else b},
                "scores": {"model_graded_qa": {"value": ga if own else gb, "answer": a if own else b}}}
               for i, (q, t, a, ga, b, gb) in enumerate(ROWS, start=1)]
    path.write_text(json.dumps({"version": 2, "status": "success",
                                "eval": {"task": "capitals_qa", "model": model}, "samples": samples}))
    return path


@pytest.mark.parametrize("author,grader,expected", [
    ("openai/gpt-4o-mini", "openai:gpt-4o-mini@http://h:8000/v1", "own"),
    ("hf/Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen3-8B", "family"),
    ("smollm2-135m", "SmolLM2-135M", "own"),
    ("gemma3-270m", "smollm2-135m", "other"),
    (None, "smollm2-135m", "other"),
])
def test_relation(author, grader, expected):
    assert relation(author, grader) == expected


def test_audit_numbers_agree_with_direct_computations(tiny, tmp_path):
    from selfbias.prompts import default_template, render
    from selfbias.scoring import score

    logs = [_log(tmp_path / "own.json", "tiny-llama", True), _log(tmp_path / "other.json", "gpt-4o", False)]
    result = audit(logs, tiny, n_boot=200)
    a = result.answers
    assert len(a) == 12 and set(a["relation"]) == {"own", "other"}
    # checker verdicts: wrong exactly where the answer is not the target
    assert a["correct"].tolist() == [x == t for _, t, x, *_ in ROWS] + [y == t for _, t, _, _, y, _ in ROWS]
    # likelihoods: the answer after the grader's answer prompt, computed here one by one
    template = default_template(tiny)
    for row in a.itertuples():
        question = ROWS[int(row.item_id.split("-")[-1]) - 1][0]
        direct = score(tiny, render(template, tiny, question), [" " + row.answer])[0]
        assert row.sum_logprob == pytest.approx(direct.sum_logprob, abs=1e-4)
    # false acceptance by relation: accepted wrong answers / wrong answers, counted here
    fa = result.false_acceptance.set_index(["by", "group"])["estimate"]
    for rel in ("own", "other"):
        wrong = a[(a["relation"] == rel) & a["correct"].eq(False)]
        assert fa[("relation", rel)] == pytest.approx(wrong["accepted"].mean())
    assert fa[("relation", "own")] == pytest.approx(2 / 3)  # Valparaiso, Pokhara accepted; Mombasa not
    assert fa[("relation", "other")] == pytest.approx(1 / 3)  # Cusco accepted; Kumasi, Luang Prabang not
    # AUROC of the grader's likelihood for accepted vs rejected, as sklearn computes it
    auroc = result.likelihood_auroc.set_index("subset")["estimate"]
    assert auroc["all"] == pytest.approx(roc_auc_score(a["accepted"], a["mean_logprob"]))
    wrong = a[a["correct"].eq(False)]
    assert auroc["wrong"] == pytest.approx(roc_auc_score(wrong["accepted"], wrong["mean_logprob"]))
    written = result.write(tmp_path / "audit")
    assert {p.name for p in written.iterdir()} == {"answers.parquet", "false_acceptance.csv", "likelihood_auroc.csv"}


def test_audit_from_the_command_line(tiny_folder, tmp_path):
    logs = [_log(tmp_path / "own.json", "model", True), _log(tmp_path / "other.json", "gpt-4o", False)]
    result = CliRunner().invoke(app, ["audit", *map(str, logs), "--grader", str(tiny_folder), "--device", "cpu",
                                      "--out", str(tmp_path / "audit")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "audited 12 graded answers to 6 questions" in text and "the reference calls 6 wrong" in text
    assert "false acceptance" in text and (tmp_path / "audit" / "answers.parquet").exists()
    bad = CliRunner().invoke(app, ["audit", str(tmp_path / "missing.json"), "--grader", str(tiny_folder)])
    assert bad.exit_code == 2 and "no such log file" in bad.output
