"""The judge mode registry (selfbias.judge_modes): the built-in modes are registered through it, and a
mode registered here, outside the package, runs end to end (probe, judge, frame, one statistic) on the
tiny random model without any change to selfbias."""

from __future__ import annotations

import importlib

import pandas as pd
import pytest
import torch

from selfbias import stats
from selfbias.errors import InputError
from selfbias.judge import MODES, JudgeJob, judge_prompts
from selfbias.judge_modes import JudgeMode, judge_mode, judge_mode_names, register_judge_mode, unregister_judge_mode
from selfbias.probe import probe

J = importlib.import_module("selfbias.judge")
NAME = "tiny-llama"
TOY = "own_or_reference"
TOY_PROMPT = "Question: {question}\nIs the following proposed answer correct? Answer Yes or No.\nProposed answer: {answer}"


def own_or_reference_jobs(ctx):
    """The toy mode's rule: only the judge's own answers and the reference, each on its own."""
    jobs = []
    for item_id in ctx.item_ids:
        for c in ctx.data.candidates[item_id]:
            if ctx.judge in c.authors or "reference" in c.sources:
                jobs.append(JudgeJob(item_id, c.candidate_id, 0, None, [],
                                     {"question": ctx.data.questions[item_id], "answer": c.text}, ("answer",)))
    return jobs


@pytest.fixture
def toy_mode():
    mode = register_judge_mode(JudgeMode(
        TOY, fields=("question", "answer"), build_jobs=own_or_reference_jobs,
        templates={"chat": {"system": "You are a careful grader.", "prefix": TOY_PROMPT},
                   "plain": {"prefix": TOY_PROMPT, "suffix": "\nAnswer:"}},
        settings=lambda ctx: {"toy_rule": "own answers and the reference"},
        description="a test mode: the judge's own answers and the reference"))
    yield mode
    unregister_judge_mode(TOY)


def test_builtin_modes_are_registered_in_order():
    assert judge_mode_names()[:len(MODES)] == MODES
    assert judge_mode("pairwise").frame == "pairwise" and judge_mode("pairwise").options == ("1", "2")
    assert judge_mode("critique").prepare is not None and judge_mode("isolated").prepare is None
    with pytest.raises(InputError, match="built in"):
        unregister_judge_mode("isolated")
    with pytest.raises(InputError, match="already registered"):
        register_judge_mode(JudgeMode("isolated", ("question", "answer"), own_or_reference_jobs))
    with pytest.raises(InputError, match="unknown judge mode 'nope'"):
        judge_mode("nope")


def test_a_registered_mode_needs_its_fields_and_a_new_name(toy_mode):
    with pytest.raises(InputError, match="already registered"):
        register_judge_mode(toy_mode)
    register_judge_mode(toy_mode, replace=True)
    bad = JudgeMode("toy_missing_answer", ("question", "answer"), own_or_reference_jobs,
                    templates={"chat": {"prefix": "Question: {question}"}})
    register_judge_mode(bad)
    try:
        with pytest.raises(ValueError, match=r"missing field \{answer\}"):  # checked when first resolved
            J.resolve_templates(None, ("toy_missing_answer",))
    finally:
        unregister_judge_mode("toy_missing_answer")


def test_toy_mode_end_to_end_on_the_tiny_model(toy_mode, tiny, tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # two shared cores: one OpenMP thread is faster here
    try:
        run = probe(NAME, "capitals", n=4, samples=1, max_new_tokens=6, out=tmp_path / "run", loaded={NAME: tiny},
                    judge_modes=("isolated", TOY), few_shot=0, progress=False)
    finally:
        torch.set_num_threads(before)

    # judge: one row per own answer or reference, exactly the rule of the toy builder
    rows = run.judgments[run.judgments["mode"] == TOY]
    cands = run.candidates
    wanted = cands[[NAME in list(a) or "reference" in list(s) for a, s in zip(cands["authors"], cands["sources"])]]
    assert sorted(rows["candidate_id"]) == sorted(wanted["candidate_id"]) and len(rows) > 0
    # the settings that identify the mode are recorded with the common ones
    stage = run.manifest["judge"]["stages"][f"{NAME}={TOY}"]
    assert stage["toy_rule"] == "own answers and the reference" and stage["mode"] == TOY
    assert stage["templates"]["chat"]["prefix"] == TOY_PROMPT

    # P(Yes) of one row against a direct read of the next-token distribution of its prompt
    prompts = judge_prompts(run, tiny, TOY, judge_name=NAME, few_shot=0)
    assert sorted(prompts["candidate_id"]) == sorted(rows["candidate_id"])
    first = prompts.iloc[0]
    yes, no = J.find_option_tokens(tiny.tokenizer, "Yes"), J.find_option_tokens(tiny.tokenizer, "No")
    ids = tiny.tokenizer(first["prompt"], add_special_tokens=False)["input_ids"]
    ids = ([tiny.tokenizer.bos_token_id] if tiny.adds_bos else []) + ids
    with torch.no_grad():
        logp = tiny.model(torch.tensor([ids])).logits[0, -1].float().log_softmax(-1)
    p_yes, p_no = float(logp[yes].exp().sum()), float(logp[no].exp().sum())
    recorded = rows.set_index("candidate_id").loc[first["candidate_id"], "p_yes"]
    assert recorded == pytest.approx(p_yes / (p_yes + p_no), abs=1e-4)

    # frame: the toy rows are per candidate, so they are in the analysis frame with their log-likelihoods
    frame = run.analysis_frame()
    toy = frame[frame["mode"] == TOY]
    assert len(toy) == len(rows) and toy["sum_logprob"].notna().all()
    assert set(toy["source"]) <= {"own_greedy", "own_sample", "reference"}

    # one statistic: discrimination (AUROC of P(Yes), correct vs wrong) per mode, computed by hand too
    table = stats.discrimination(frame, n_boot=0).set_index("mode")
    assert TOY in table.index and table.loc[TOY, "n"] == len(toy.dropna(subset=["correct"]))
    graded = toy.dropna(subset=["correct"])
    right, wrong = graded[graded["correct"].astype(bool)]["p_yes"], graded[~graded["correct"].astype(bool)]["p_yes"]
    if len(right) and len(wrong):
        pairs = [(r > w) + 0.5 * (r == w) for r in right for w in wrong]
        assert table.loc[TOY, "estimate"] == pytest.approx(sum(pairs) / len(pairs))
    else:
        assert pd.isna(table.loc[TOY, "estimate"])
