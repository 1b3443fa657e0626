"""`selfbias train`: every objective and error source on a tiny random Llama, the example rules, the
budget, resumption after a kill, and (slow) the bundled SmolLM2 end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from selfbias._training_data import critique_text, example_stream, split_items, trace_steps, trace_text
from selfbias.prompts import extract_answer
from selfbias.tasks import arithmetic_task, capitals_task, load_task
from selfbias.train import RECORD_FILE, heldout_task, read_record, train

REPO = Path(__file__).resolve().parents[1]
FAST = dict(n=16, steps=4, tokens_per_step=32, save_steps=2, progress=False)


@pytest.fixture(scope="module")
def tiny_dir(tiny, tmp_path_factory) -> Path:
    """The tiny random Llama as a Hugging Face folder (what a subprocess or `selfbias train` loads)."""
    folder = tmp_path_factory.mktemp("tiny") / "model"
    tiny.model.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    return folder


def _completion_tokens(out: Path, tokenizer) -> int:
    rows = [json.loads(line) for line in (out / "training_data.jsonl").read_text().splitlines()]
    return sum(len(tokenizer(r["completion"], add_special_tokens=False)["input_ids"]) + 1 for r in rows)


@pytest.mark.parametrize("objective,errors,rounds", [
    ("imitation", "static", 1), ("critique", "static", 1), ("critique", "own", 2),
    ("corrupted", "static", 1), ("imitation_trace", "static", 1),
])
def test_every_objective_trains_and_records(tiny, tmp_path, objective, errors, rounds):
    out = tmp_path / "m"
    result = train(tiny, objective, "arithmetic", out=out, errors=errors, rounds=rounds, **FAST)
    rec = read_record(out)
    assert rec == result.record and rec["objective"] == objective
    train_ids, eval_ids = rec["split"]["train_ids"], rec["split"]["eval_ids"]
    assert len(train_ids) == len(eval_ids) == 8 and not set(train_ids) & set(eval_ids)
    rows = [json.loads(line) for line in (out / "training_data.jsonl").read_text().splitlines()]
    assert {r["item_id"] for r in rows} <= set(train_ids)  # never trained on a held-out item
    budget = rec["budget"]
    assert budget["steps"] == 4 and len(rec["loss_curve"]) == 4
    assert [h["step"] for h in rec["loss_curve"]] == [1, 2, 3, 4]
    assert budget["examples"] == len(rows) == 4 * budget["batch_size"]
    # trained tokens counted a second way: the completions re-tokenised, plus one EOS each
    assert budget["trained_tokens"] == _completion_tokens(out, tiny.tokenizer)
    assert len(rec["rounds_info"]) == rounds and sum(r["steps"] for r in rec["rounds_info"]) == 4
    if errors == "own":
        assert all(r["own_answers"] >= 1 for r in rec["rounds_info"])
    assert not (out / "checkpoints").exists()
    assert set(rec["versions"]) >= {"torch", "transformers", "selfbias"}
    # the tiny model's weights moved
    from selfbias.models import load_model

    trained = load_model(str(out))
    before = dict(tiny.model.named_parameters())["model.layers.0.mlp.up_proj.weight"]
    after = dict(trained.model.named_parameters())["model.layers.0.mlp.up_proj.weight"]
    assert not before.detach().equal(after.detach())


def test_trained_folder_is_probed_on_heldout_items(tiny, tmp_path, monkeypatch):
    from selfbias.probe import probe

    out = tmp_path / "m"
    train(tiny, "critique", "arithmetic", out=out, **FAST)
    task = heldout_task(out)
    assert [it.id for it in task.items] == read_record(out)["split"]["eval_ids"]
    # `selfbias probe -m m` from the folder's parent (probe names its stages after the model spec,
    # so a spec with "/" is refused there: pass a loaded model under a plain name for such paths)
    monkeypatch.chdir(tmp_path)
    run = probe("m", task, samples=1, max_new_tokens=4, judge_modes=("isolated",), out=tmp_path / "run",
                few_shot=0, progress=False)  # the task is run whole: no items are left for examples
    assert set(run.items["item_id"]) == set(read_record(out)["split"]["eval_ids"])
    assert len(run.judgments) > 0


def test_same_questions_and_equalised_tokens(tiny, tmp_path):
    records = {obj: train(tiny, obj, "arithmetic", out=tmp_path / obj, n=16, steps=2, tokens_per_step=48,
                          progress=False).record for obj in ("imitation", "critique")}
    imit, crit = records["imitation"], records["critique"]
    assert imit["split"] == crit["split"]
    assert imit["budget"]["steps"] == crit["budget"]["steps"]
    # imitation completions are shorter, so it gets a larger batch for the same token budget
    assert imit["budget"]["batch_size"] > crit["budget"]["batch_size"]
    for rec in (imit, crit):
        assert abs(rec["budget"]["trained_tokens"] / (2 * 48) - 1) < 0.5


def test_critique_rule_follows_the_checker():
    task = arithmetic_task("mixed", n=12, seed=0)
    train_items, _ = split_items(task.items, 0.5, 0)
    stream = example_stream("critique", task, train_items, 40, 0, lambda q: q, lambda q, a: f"{q}|{a}")
    verdicts = []
    for ex in stream:
        item = next(it for it in task.items if it.id == ex.item_id)
        assert ex.candidate_correct == task.check(ex.candidate, item)
        a, b, op = item.meta["a"], item.meta["b"], item.meta["op"]
        assert ex.completion.startswith("Yes. " if ex.candidate_correct else "No. ")
        assert f"{a} {op} {b} = {a + b if op == '+' else a * b}" in ex.completion
        verdicts.append(ex.candidate_correct)
    assert 0 < sum(verdicts) < len(verdicts)  # right and wrong candidates mixed
    capitals = capitals_task(n=3)
    wrong = critique_text(capitals.items[0], "Nowhere", False)
    assert wrong == f"No. The correct answer is {capitals.items[0].references[0]}."


def _step_values(text: str) -> list[tuple[str, int]]:
    body = text.strip().rstrip(".").split("; so ")[0]
    return [(lhs.strip(), int(val)) for lhs, val in (part.split(" = ") for part in body.split("; "))]


@pytest.mark.parametrize("level", ["1d+1d", "2d+2d", "2dx1d", "3d+3d"])
def test_worked_steps_correct_and_corrupted(level):
    for item in arithmetic_task(level, n=25, seed=1).items:
        good, bad = trace_text(item), trace_text(item, corrupt_seed=0)
        # the probe's answer extraction reads the right final answer from both
        assert extract_answer(good, "number") == item.references[0] == extract_answer(bad, "number")
        assert ". " not in good.strip() and ". " not in bad.strip()  # the chat stop string
        for lhs, value in _step_values(good):
            assert eval(lhs) == value  # each written step is true
        for (lhs, value), (lhs_bad, value_bad) in zip(_step_values(good), _step_values(bad)):
            assert lhs == lhs_bad and value_bad != value and value_bad > 0
        a, b = item.meta["a"], item.meta["b"]
        if item.meta["op"] == "+":  # column addition: the last column's sum starts the answer
            assert len(trace_steps(item)) == max(len(str(a)), len(str(b)))
            assert str(item.references[0]).startswith(str(trace_steps(item)[-1][1]))


def test_bad_arguments_are_refused(tiny, tmp_path):
    with pytest.raises(ValueError, match="objective"):
        train(tiny, "distill", out=tmp_path / "x", **FAST)
    with pytest.raises(ValueError, match="critique objective only"):
        train(tiny, "imitation", out=tmp_path / "x", errors="own", **FAST)
    with pytest.raises(ValueError, match="only arithmetic"):
        train(tiny, "corrupted", "capitals", out=tmp_path / "x", **FAST)
    train(tiny, "imitation", out=tmp_path / "done", **FAST)
    with pytest.raises(ValueError, match="other settings"):
        train(tiny, "critique", out=tmp_path / "done", **FAST)


def test_lora_without_peft_names_the_extra(tiny, tmp_path):
    import importlib.util

    if importlib.util.find_spec("peft") is not None:
        pytest.skip("peft is installed")
    with pytest.raises(ImportError, match=re.escape("selfbias[lora]")):
        train(tiny, "imitation", out=tmp_path / "x", lora=True, **FAST)


_KILLER = """
import os, signal, sys
from transformers import TrainerCallback
from selfbias.train import train

class KillAfterFirstCheckpoint(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)  # no clean-up: as if the machine went away

train(sys.argv[1], "critique", "arithmetic", out=sys.argv[2], progress=False, callbacks=[KillAfterFirstCheckpoint()],
      **{k: int(v) if v.isdigit() else v for k, v in (a.split("=") for a in sys.argv[3:])})
"""


def test_killed_training_resumes_to_the_same_model(tiny_dir, tmp_path):
    """Kill (SIGKILL) a training subprocess right after its first checkpoint, in the first of two rounds of
    own answers; calling again resumes and ends with the weights, record and data of an uninterrupted run."""
    from safetensors.torch import load_file

    settings = dict(errors="own", rounds=2, n=16, steps=4, tokens_per_step=32, save_steps=1)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    killed = subprocess.run([sys.executable, "-c", _KILLER, str(tiny_dir), str(tmp_path / "resumed"),
                             *(f"{k}={v}" for k, v in settings.items())], env=env, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (tmp_path / "resumed" / "checkpoints" / "round-0" / "checkpoint-1").is_dir()
    assert not (tmp_path / "resumed" / RECORD_FILE).exists()
    # The killed process ran on one thread; so do the resumed and the straight runs here: bit-identical
    # weights are promised for the same arithmetic, and a different thread count changes float sums.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for out in (tmp_path / "resumed", tmp_path / "straight"):  # a fresh call reads only what is on disk
            train(str(tiny_dir), "critique", "arithmetic", out=out, progress=False, **settings)
    finally:
        torch.set_num_threads(threads)
    a = load_file(tmp_path / "resumed" / "model.safetensors")
    b = load_file(tmp_path / "straight" / "model.safetensors")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    ra, rb = read_record(tmp_path / "resumed"), read_record(tmp_path / "straight")
    assert ra == rb and len(ra["loss_curve"]) == 4 and len(ra["rounds_info"]) == 2
    assert (tmp_path / "resumed" / "training_data.jsonl").read_text() == \
        (tmp_path / "straight" / "training_data.jsonl").read_text()


def test_cli_train_writes_a_loadable_folder(tiny_dir, tmp_path):
    from typer.testing import CliRunner

    from selfbias.cli import app

    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["train", str(tiny_dir), "--objective", "imitation_trace", "--out", str(out),
                                      "--n", "12", "--steps", "2", "--tokens-per-step", "16"])
    assert result.exit_code == 0, result.output
    assert "trained imitation_trace: 2 steps" in result.output
    assert read_record(out)["budget"]["steps"] == 2 and (out / "config.json").exists()
    bad = CliRunner().invoke(app, ["train", str(tiny_dir), "--objective", "imitation", "--out", str(tmp_path / "b"),
                                   "--errors", "own"])
    assert bad.exit_code == 2 and "critique objective only" in bad.output


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("SELFBIAS_SLOW") != "1", reason="set SELFBIAS_SLOW=1 for SmolLM2 training")
@pytest.mark.parametrize("objective,errors", [("imitation", "static"), ("critique", "static"), ("critique", "own"),
                                              ("corrupted", "static"), ("imitation_trace", "static")])
def test_smollm2_end_to_end(smollm2, tmp_path, objective, errors):
    out = tmp_path / "m"
    rec = train(smollm2, objective, "arithmetic", out=out, n=12, steps=3, tokens_per_step=32, errors=errors,
                save_steps=100, progress=False).record
    assert len(rec["loss_curve"]) == 3 and all(h["loss"] == h["loss"] for h in rec["loss_curve"])
    import dataclasses

    from selfbias.models import load_model
    from selfbias.probe import probe

    lm = load_model(str(out))  # under a plain name: probe refuses a path with "/" as a stage name
    lm = dataclasses.replace(lm, name="trained", identity=dataclasses.replace(lm.identity, name="trained"))
    run = probe("trained", heldout_task(out), samples=1, max_new_tokens=40, judge_modes=("isolated",),
                out=tmp_path / "run", loaded={"trained": lm}, progress=False)
    assert run.generations["item_id"].isin(rec["split"]["eval_ids"]).all()
    assert run.judgments["yes_no_mass"].between(0, 1).all()


def test_load_task_split_is_reproducible():
    task = load_task("arithmetic", n=20)
    assert split_items(task.items, 0.25, 3) == split_items(task.items, 0.25, 3)
    assert split_items(task.items, 0.25, 3) != split_items(task.items, 0.25, 4)


# ------------------------------------------------------------------ analysis 05: its statistics checked


@pytest.fixture(scope="module")
def analysis05():
    import importlib.util

    sys.path.insert(0, str(REPO / "analyses"))
    spec = importlib.util.spec_from_file_location("analysis05", REPO / "analyses" / "05_critique_vs_imitation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["analysis05"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_weighted_auroc_equals_sklearn_on_repeated_rows(analysis05):
    import numpy as np
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.random(60) < 0.4
    s = np.round(rng.random(60) + 0.5 * y, 1)  # rounded: ties
    w = rng.integers(0, 4, 60).astype(float)
    expected = roc_auc_score(np.repeat(y, w.astype(int)), np.repeat(s, w.astype(int)))
    assert analysis05._wauc(y, s, w) == pytest.approx(expected, abs=1e-12)


def test_within_item_slope_equals_fixed_effects_ols(analysis05):
    import numpy as np
    import statsmodels.api as sm

    rng = np.random.default_rng(2)
    codes = np.repeat(np.arange(12), 5)
    x = rng.normal(size=60) + codes  # x correlates with the item: a pooled slope would be biased
    y = 0.7 * x + 3.0 * codes + rng.normal(scale=0.1, size=60)
    w = np.ones(12)[codes]
    dummies = np.eye(12)[codes]
    fit = sm.OLS(y, np.column_stack([x, dummies])).fit()
    assert analysis05._within_slope(x, y, codes, w) == pytest.approx(fit.params[0], abs=1e-10)
    assert abs(fit.params[0] - 0.7) < 0.05


def test_bootstrap_finds_a_planted_accuracy_difference(analysis05):
    import numpy as np

    n_items = 200
    rng = np.random.default_rng(3)

    def model(p_correct):
        return analysis05.ModelData(np.arange(n_items), rng.random(n_items) < p_correct, {})

    models = {"base": [model(0.3)], "better": [model(0.6), model(0.6), model(0.6)]}
    table = analysis05.bootstrap(models, n_items, [("better", "base")], n_boot=300)
    row = table[(table["comparison"] == "better - base") & (table["metric"] == "accuracy")].iloc[0]
    levels = {a: np.mean([d.greedy_correct.mean() for d in runs]) for a, runs in models.items()}
    assert row["estimate"] == pytest.approx(levels["better"] - levels["base"])
    assert row["ci_low"] < 0.3 < row["ci_high"] and row["ci_low"] > 0.1


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("SELFBIAS_SLOW") != "1", reason="set SELFBIAS_SLOW=1: trains SmolLM2 five times")
@pytest.mark.model
def test_reduced_analysis_05_runs(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg", "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, str(REPO / "analyses" / "05_critique_vs_imitation.py"), "--reduced",
                    "--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs")],
                   check=True, env=env, capture_output=True, cwd=REPO)
    import pandas as pd

    effects = pd.read_csv(tmp_path / "out" / "effects.csv")
    assert {"base", "imitation", "critique", "critique_own", "corrupted", "imitation_trace"} <= set(effects["comparison"])
    assert "critique - imitation" in set(effects["comparison"])
    levels = effects[effects["kind"] == "level"]
    acc = levels[levels["metric"] == "accuracy"]
    assert acc["estimate"].between(0, 1).all()
    assert (tmp_path / "out" / "differences.png").stat().st_size > 1000
    assert "## 5. Critique vs imitation" in (tmp_path / "out" / "SECTION.md").read_text()
