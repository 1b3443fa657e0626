"""Tests of selfbias.judge: P(Yes) against a hand computation, option spellings, prompts (no marker of
correctness, recorded order), pairwise orders, settings, kill and resume, templates."""

from __future__ import annotations

import dataclasses
import importlib
import json
import select
import shutil
import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch

from selfbias.judge import DEFAULT_TEMPLATES, JUDGMENT_COLUMNS, JudgeTemplate, find_option_tokens, judge, judge_prompts
from selfbias.runs import RunError, RunStore, load_run

J = importlib.import_module("selfbias.judge")  # the module (the package attribute `selfbias.judge` is the function)
SMOL = "smollm2-135m"
GEMMA = "gemma3-270m"
TOL = 1e-4

# (item_id, question, reference, perturbations, greedy answer, samples)
ITEMS = [
    ("t-0", "What is 2 + 3?", "5", ["6", "4", "7"], "5", ["5", "6", "3"]),
    ("t-1", "What is 7 + 8?", "15", ["14", "16", "17"], "13", ["13", "15", "11", "12"]),
    ("t-2", "What is 6 * 7?", "42", ["48", "41", "43"], "40", ["42", "40", "36", "45"]),
]


def make_run(path, model: str = SMOL, items=ITEMS, flip_correct: bool = False):
    """A small finished run without the probe: items, candidates (aligned sources/authors, as the probe
    writes them) and generations (greedy + samples of ``model``)."""
    store = RunStore.open(path, {"models": [{"name": model}], "task": {"name": "test-arith"}})
    item_rows, cands, gens = [], [], []
    for iid, question, ref, perts, greedy, samples in items:
        item_rows.append({"item_id": iid, "task": "test", "question": question, "references": [ref],
                          "distractors": [], "choices": [], "answer_type": "number", "meta": "{}"})
        merged: dict[str, dict] = {}
        entries = ([(greedy, "own_greedy", model)] + [(s, "own_sample", model) for s in samples]
                   + [(ref, "reference", "dataset")] + [(p, "perturbation", "perturbation") for p in perts])
        for text, source, author in entries:
            row = merged.setdefault(text, {"sources": [], "authors": []})
            if (source, author) not in zip(row["sources"], row["authors"]):
                row["sources"].append(source)
                row["authors"].append(author)
        for k, (text, row) in enumerate(merged.items()):
            correct = (text == ref) != flip_correct
            cands.append({"item_id": iid, "candidate_id": f"{iid}#{k}", "text": text, "source": row["sources"][0],
                          "sources": row["sources"], "authors": row["authors"], "correct": correct})
        for kind, index, answer in [("greedy", 0, greedy)] + [("sample", i, s) for i, s in enumerate(samples)]:
            gens.append({"item_id": iid, "model": model, "kind": kind, "sample_index": index, "raw_text": answer,
                         "answer": answer, "correct": answer == ref, "token_ids": [1], "logprobs": [-0.5],
                         "finish_reason": "eos"})
    store.write_chunk("items", "task", "0", pd.DataFrame(item_rows))
    store.write_chunk("candidates", "probe", "0", pd.DataFrame(cands))
    store.write_chunk("generations", "probe", "0", pd.DataFrame(gens))
    run = store.finalize()
    store.close()
    return run


MODES = ("isolated", "alternatives", "pairwise")
PAIRED = ("perturbation",)  # one-model runs have no other model's answer to pair with


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The 2 CPU cores are shared with other jobs: two OpenMP threads then spin against them and a
    forward pass is ~10x slower than with one thread. Restored after this module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def judged(one_thread, smollm2, tmp_path_factory):
    """SmolLM2 judges its own small run (two items) in three modes."""
    path = tmp_path_factory.mktemp("judged") / "run"
    make_run(path, items=ITEMS[1:])
    return judge(path, modes=MODES, k=2, pair_sources=PAIRED, models={SMOL: smollm2}, progress=False)


@pytest.fixture(scope="module")
def tiny_wide(tiny):
    """The tiny random Llama with room for a critique (RoPE positions are not bounded by the config)."""
    return dataclasses.replace(tiny, context_length=1024)


# ------------------------------------------------------------------------------------ P(Yes)


def _hand_p(lm, prompt: str, first: list[str], second: list[str]) -> tuple[float, float]:
    """P(first option) and the option mass from one plain forward pass over the whole prompt."""
    ids = lm.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if lm.adds_bos:
        ids = [lm.tokenizer.bos_token_id] + ids
    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([ids]), logits_to_keep=1).logits[0, -1]
    probs = torch.softmax(logits.double(), -1)
    p1 = sum(probs[lm.tokenizer.convert_tokens_to_ids(t)].item() for t in first)
    p2 = sum(probs[lm.tokenizer.convert_tokens_to_ids(t)].item() for t in second)
    return p1 / (p1 + p2), p1 + p2


SMOL_YES = ["Yes", "ĠYes", "yes", "Ġyes"]
SMOL_NO = ["No", "ĠNo", "no", "Ġno", "NO", "ĠNO"]


def test_p_yes_matches_hand_computation(judged, smollm2):
    table = judged.judgments
    assert list(table.columns) == JUDGMENT_COLUMNS
    assert ((table.p_yes >= 0) & (table.p_yes <= 1)).all() and ((table.yes_no_mass > 0) & (table.yes_no_mass <= 1)).all()
    checked = 0
    for mode in MODES:
        prompts = judge_prompts(judged, smollm2, mode, k=2, pair_sources=PAIRED, items=["t-1"]).set_index("prompt_hash")
        rows = table[(table["mode"] == mode) & (table.item_id == "t-1")]
        picks = rows.iloc[[0, -1]]  # for pairwise: order 0 then order 1 (a shown second)
        for row in picks.itertuples():
            prompt = prompts.loc[row.prompt_hash, "prompt"]
            if mode == "pairwise":
                p1, mass = _hand_p(smollm2, prompt, ["1"], ["2"])
                expected = p1 if row.order == 0 else 1 - p1
            else:
                expected, mass = _hand_p(smollm2, prompt, SMOL_YES, SMOL_NO)
            assert row.p_yes == pytest.approx(expected, abs=TOL)
            assert row.yes_no_mass == pytest.approx(mass, abs=TOL)
            assert len(row.top_tokens) == len(row.top_probs) == 5
            assert list(row.top_probs) == sorted(row.top_probs, reverse=True)
            checked += 1
    assert checked == 6


def test_gemma_plain_format_few_shot_and_bos(gemma, tmp_path):
    run = make_run(tmp_path / "run", model=GEMMA, items=ITEMS[:1])
    df = judge_prompts(run, gemma, "isolated", few_shot=2, read=True)
    prompt = df.prompt.iloc[0]
    assert "<start_of_turn>" not in prompt and prompt.endswith("\nAnswer:")
    assert prompt.startswith("Question: What is the capital of Australia?\nIs the following proposed answer "
                             "correct? Answer Yes or No.\nProposed answer: Canberra\nAnswer: Yes\n\n"
                             "Question: What is 7 + 5?\n")
    assert "Proposed answer: 13\nAnswer: No\n\nQuestion: What is 2 + 3?" in prompt
    yes = [s + w for w in ("yes", "Yes", "YES") for s in ("", "▁")]
    no = [s + w for w in ("no", "No", "NO") for s in ("", "▁")]
    expected, mass = _hand_p(gemma, prompt, yes, no)  # the hand computation adds Gemma's <bos>
    assert df.p_yes.iloc[0] == pytest.approx(expected, abs=TOL)
    assert df.yes_no_mass.iloc[0] == pytest.approx(mass, abs=TOL)


# ------------------------------------------------------------------------------------ spellings


def _spelled(tok, word):
    return set(tok.convert_ids_to_tokens(find_option_tokens(tok, word)))


def test_option_spellings_of_both_tokenizers(smollm2, gemma):
    s = smollm2.tokenizer
    assert _spelled(s, "Yes") == {"Yes", "ĠYes", "yes", "Ġyes"}  # "YES" is two tokens
    assert _spelled(s, "No") == {"No", "ĠNo", "no", "Ġno", "NO", "ĠNO"}
    assert _spelled(s, "1") == {"1"} and _spelled(s, "2") == {"2"}  # digits are split from the space
    g = gemma.tokenizer
    assert _spelled(g, "Yes") == {"yes", "▁yes", "Yes", "▁Yes", "YES", "▁YES"}
    assert _spelled(g, "No") == {"no", "▁no", "No", "▁No", "NO", "▁NO"}
    assert _spelled(g, "1") == {"1"}
    assert find_option_tokens(s, "Absolutely-yes") == []


def test_option_without_single_token_is_a_clear_error(smollm2, tmp_path):
    run = make_run(tmp_path / "run", items=ITEMS[:1])
    bad = JudgeTemplate("isolated", "chat", "Grader.", "Q: {question}\nA: {answer}\nRight?", "",
                        ("Absolutely-yes", "No"))
    with pytest.raises(ValueError) as err:
        judge(run, modes=("isolated",), templates={"isolated": bad}, models={SMOL: smollm2}, progress=False)
    msg = str(err.value)
    assert "'isolated/chat'" in msg and "Absolutely-yes" in msg and "\n" not in msg
    assert "judgments" not in load_run(run.path).tables()


# ------------------------------------------------------------------------------------ prompts


def _block(prompt: str) -> list[str]:
    # the judged answer's list is the last block (few-shot examples, if any, come first with lists of their own)
    inside = prompt.rsplit("Possible answers:\n", 1)[1].split("\nIs the following proposed answer correct?", 1)[0]
    return inside.split("\n")


def test_alternatives_prompts_never_mark_correctness(smollm2, tmp_path):
    run = make_run(tmp_path / "a")
    flipped = make_run(tmp_path / "b", flip_correct=True)
    df = judge_prompts(run, smollm2, "alternatives", k=2, list_design="pooled")  # the earlier rule
    cands = run.candidates.set_index("candidate_id")
    assert len(df) == len(cands)  # every item has a list here
    for row in df.itertuples():
        alts = list(row.alternatives)
        item = cands[cands.item_id == row.item_id]
        pool = [c for c, authors, ok in zip(item.index, item.authors, item.correct)
                if SMOL not in authors and c != row.candidate_id and not ok]
        assert set(alts) <= set(pool) and len(alts) == row.list_length >= 1  # external, wrong, not itself
        assert not row.gold_shown and row.shown_sources == ["perturbation"] * len(alts)
        shown = [f"- {cands.loc[a, 'text']}" for a in alts]
        assert _block(row.prompt) == shown  # in the recorded order
        block = "\n".join(_block(row.prompt)).lower()
        for marker in ("correct", "reference", "right", "wrong", "true", "false", "dataset", "perturbation", "✓"):
            assert marker not in block
        assert "reference" not in row.prompt.lower() and "dataset" not in row.prompt
    assert df.groupby("item_id").list_length.nunique().eq(1).all()
    # with correct answers admitted, the correctness flag never reaches the prompt: flipping it changes none
    everything = ("perturbation", "reference")
    shown = judge_prompts(run, smollm2, "alternatives", k=2, alt_sources=everything, list_design="pooled")
    other = judge_prompts(flipped, smollm2, "alternatives", k=2, alt_sources=everything, list_design="pooled")
    assert shown.prompt_hash.tolist() == other.prompt_hash.tolist()
    assert shown.alternatives.tolist() == other.alternatives.tolist()
    # prompts of one candidate share their prefix up to the list (the list differs per candidate)
    assert (df.prompt_prefix + df.prompt_suffix == df.prompt).all()
    assert df.prompt_prefix.str.endswith("Possible answers:\n").all()


def test_pairwise_runs_both_orders(judged):
    table = judged.judgments
    pw = table[table["mode"] == "pairwise"]
    cands = judged.candidates.set_index("candidate_id")
    assert len(pw) > 0 and set(pw.pair_type) == {"self_perturbation", "perturbation_perturbation"}
    for (cid, other), g in pw.groupby(["candidate_id", "other_candidate_id"]):
        assert sorted(g.order) == [0, 1] and g.pair_type.nunique() == 1
        own = ("own_greedy", SMOL) in zip(cands.loc[cid, "sources"], cands.loc[cid, "authors"])
        assert own == (g.pair_type.iloc[0] == "self_perturbation")  # controls: neither answer is the judge's
        assert SMOL not in cands.loc[other, "authors"]
        first = g[g.order == 0].iloc[0]
        second = g[g.order == 1].iloc[0]
        assert list(first.alternatives) == [cid, other] and list(second.alternatives) == [other, cid]
        assert first.prompt_hash != second.prompt_hash
    frame = judged.pairwise_frame()
    assert len(frame) == len(pw) // 2
    assert frame.p_a_first.notna().all() and frame.p_a_second.notna().all()
    assert ((frame.pref_a - (frame.p_a_first + frame.p_a_second) / 2).abs() < 1e-12).all()
    expected = [("a" if f > 0.5 and s > 0.5 else "b" if f < 0.5 and s < 0.5 else "inconsistent")
                for f, s in zip(frame.p_a_first, frame.p_a_second)]
    assert frame.verdict.tolist() == expected
    assert set(frame.pair_type) == set(pw.pair_type)


def test_own_samples_and_critique_modes(tiny_wide, tmp_path):
    tiny = tiny_wide
    run = make_run(tmp_path / "run", items=ITEMS[:2])
    out = judge(run, modes=("own_samples", "critique"), k=2, list_design="pooled", models={SMOL: tiny},
                progress=False)
    table = out.judgments
    own = table[table["mode"] == "own_samples"]
    cands = out.candidates.set_index("candidate_id")
    # t-1's samples are 13, 15, 11, 12: its lists hold 2 of the wrong ones (15 is correct), never the judged one
    rows = own[own.item_id == "t-1"]
    for row in rows.itertuples():
        texts = [cands.loc[c, "text"] for c in row.alternatives]
        assert len(texts) == 2 and set(texts) <= {"13", "11", "12"} - {cands.loc[row.candidate_id, "text"]}
    assert all(list(x) == ["own_sample", "own_sample"] for x in rows.shown_sources) and not rows.gold_shown.any()
    crit = table[table["mode"] == "critique"]
    assert len(crit) == len(cands) and crit.critique.map(lambda c: isinstance(c, str)).all()
    prompts = judge_prompts(out, tiny, "critique", items=["t-0"])
    assert prompts.prompt_hash.tolist() == crit[crit.item_id == "t-0"].prompt_hash.tolist()
    for p, c in zip(prompts.prompt, prompts.critique):
        assert p.endswith(f"<|im_start|>assistant\nCritique: {c}\nVerdict (Yes or No):")


def test_judge_by_author_matrix_and_missing_own_answers(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(J, "CHUNK_ITEMS", 1)
    run = make_run(tmp_path / "run")
    store = RunStore.open(run.path, None)  # t-0 loses the model's greedy answer: no pairwise anchor there
    cands = store.read_table("candidates")
    first = cands.index[cands.item_id == "t-0"][0]
    cands.at[first, "sources"] = ["reference"]
    cands.at[first, "authors"] = ["dataset"]
    store.write_chunk("candidates", "probe", "0", cands)
    store.close()
    out = judge(run, modes=("alternatives", "pairwise"), judges=[SMOL], k=2, pair_sources=PAIRED,
                list_design="pooled", models={SMOL: tiny}, progress=False)
    pw = out.judgments[out.judgments["mode"] == "pairwise"]
    assert set(pw[pw.pair_type == "self_perturbation"].item_id) == {"t-1", "t-2"}  # t-0 has no anchor
    assert "t-0" in set(pw.item_id)  # but its control pair (two perturbations) is judged
    with pytest.raises(ValueError, match="no candidate has source 'own_greedy' authored by 'other'"):
        judge(run, modes=("pairwise",), judges=[SMOL, "other"], models={SMOL: tiny, "other": tiny}, progress=False)
    with pytest.raises(ValueError, match="no sample rows of model 'other'"):
        judge(run, modes=("own_samples",), judges=["other"], models={"other": tiny}, progress=False)
    before = out.judgments
    both = judge(run, modes=("alternatives",), judges=[SMOL, {"name": "other"}], k=2, list_design="pooled",
                 models={SMOL: tiny, "other": tiny}, progress=False)  # adds a judge, keeps SMOL's rows
    kept = both.judgments[both.judgments.judge == SMOL].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, before, check_dtype=False)
    table = both.judgments[both.judgments["mode"] == "alternatives"]
    skipped = both.manifest["judge"]["skipped_items"]
    expected = {j: int((~cands.item_id.isin(skipped[j])).sum()) for j in (SMOL, "other")}
    assert table.groupby("judge").size().to_dict() == expected and expected["other"] == len(cands)
    authored = {c for c, a in zip(cands.candidate_id, cands.authors) if SMOL in a}
    shown = {"other": set(), SMOL: set()}
    for judge_name, alts in zip(table.judge, table.alternatives):
        shown[judge_name] |= set(alts)
    assert not shown[SMOL] & authored and shown["other"] & authored  # another judge sees SMOL's answers


# ------------------------------------------------------------------------------------ settings


def test_settings_recorded_and_changes_refused(judged, tiny, tmp_path, monkeypatch):
    settings = judged.manifest["judge"]
    stages = settings["stages"]
    assert set(stages) == {f"{SMOL}={m}" for m in MODES}
    assert stages[f"{SMOL}=alternatives"]["lists"] == {"k": 2, "min_k": 1, "sources": list(J.DEFAULT_ALT_SOURCES),
                                                      "design": "cells", "p_correct": 0.5}
    assert stages[f"{SMOL}=pairwise"]["pair_sources"] == list(PAIRED) and stages[f"{SMOL}=pairwise"]["k"] == 2
    assert "k" not in stages[f"{SMOL}=isolated"] and stages[f"{SMOL}=isolated"]["template_set"] == "default"
    chat = stages[f"{SMOL}=isolated"]["templates"]["chat"]
    assert chat["system"] == DEFAULT_TEMPLATES["isolated"]["chat"].system
    assert settings["spellings"][SMOL]["options"]["Yes"] == ["yes", "Ġyes", "Yes", "ĠYes"]
    assert "lists" in stages[f"{SMOL}=alternatives"]["rules"] and "pairwise" in stages[f"{SMOL}=pairwise"]["rules"]
    path = tmp_path / "copy"
    shutil.copytree(judged.path, path)
    before = load_run(path).judgments
    with pytest.raises(RunError, match=r"other judge settings \(judge\.stages\[smollm2-135m=alternatives\]"
                                       r"\.lists\.k: 2 in the run, 3 requested\)"):
        judge(path, modes=MODES, k=3, pair_sources=PAIRED, models={SMOL: tiny}, progress=False)
    with pytest.raises(RunError, match=r"pair_sources\[0\]: \"perturbation\" in the run, \"other_model\""):
        judge(path, modes=("pairwise",), k=2, models={SMOL: tiny}, progress=False)
    with monkeypatch.context() as m:  # same settings: every chunk exists, no model is loaded or run
        m.setattr("selfbias.models.load_model", lambda *a, **k: pytest.fail("model loaded"))
        again = judge(path, modes=MODES, k=2, pair_sources=PAIRED, progress=False)
        pd.testing.assert_frame_equal(again.judgments, before)
        # isolated does not depend on k: no conflict, nothing redone
        judge(path, modes=("isolated",), k=3, progress=False)
    # overwrite redoes only the judge and mode in conflict; the others stay identical
    replaced = judge(path, modes=("alternatives",), k=1, models={SMOL: tiny}, overwrite=True, progress=False)
    table = replaced.judgments
    assert set(table["mode"]) == set(MODES)
    assert (table[table["mode"] == "alternatives"].list_length == 1).all()
    for mode in ("isolated", "pairwise"):
        pd.testing.assert_frame_equal(table[table["mode"] == mode].reset_index(drop=True),
                                      before[before["mode"] == mode].reset_index(drop=True))
    assert replaced.manifest["judge"]["stages"][f"{SMOL}=alternatives"]["lists"]["k"] == 1
    assert replaced.manifest["judge"]["stages"][f"{SMOL}=pairwise"]["k"] == 2


def test_few_shot_examples_are_disjoint_from_items(smollm2, tmp_path):
    items = ITEMS[:1] + [("t-x", "What is 7 + 5 ?", "12", ["13"], "12", ["12"])]  # = pool example 2, normalised
    run = make_run(tmp_path / "run", items=items)
    df = judge_prompts(run, smollm2, "isolated", few_shot=3, items=["t-0"])
    prompt = df.prompt.iloc[0]
    assert "What is 7 + 5?" not in prompt
    assert prompt.count("<|im_start|>user") == 4 and "What is 9 * 4?" in prompt
    assert "You are a careful grader." in prompt and "SmolLM" not in prompt  # explicit system message


# ------------------------------------------------------------------------------------ templates


def test_template_missing_field_is_one_clear_line():
    with pytest.raises(ValueError) as err:
        JudgeTemplate("own_samples", "chat", None, "Question: {question}\nProposed answer: {answer}")
    msg = str(err.value)
    assert "'own_samples/chat'" in msg and "{samples}" in msg and "\n" not in msg
    with pytest.raises(ValueError, match=r"'alternatives/plain': missing field \{alternatives\}"):
        J.resolve_templates({"alternatives": {"format": "plain", "prefix": "Q: {question} A: {answer}"}}, ["alternatives"])
    with pytest.raises(ValueError, match=r"field \{samples\} is not used by mode 'isolated'"):
        JudgeTemplate("isolated", "plain", None, "{question} {answer} {samples}")
    custom = J.resolve_templates({"isolated": {"plain": {"prefix": "Q: {question}\nA: {answer}", "suffix": "\nOK?"}}},
                                 ["isolated"])
    assert custom["isolated"]["plain"].options == ("Yes", "No")
    assert custom["isolated"]["chat"] == DEFAULT_TEMPLATES["isolated"]["chat"]
    assert DEFAULT_TEMPLATES["pairwise"]["chat"].options == ("1", "2")


def test_import_is_light():
    code = "import sys, selfbias.judge; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------ kill and resume


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import torch
    torch.set_num_threads(int(sys.argv[3]))
    import importlib
    J = importlib.import_module("selfbias.judge")
    import selfbias.scoring as S
    from selfbias.models import load_model
    J.CHUNK_ITEMS = 1
    real, calls = S.next_token_logprobs, [0]
    def stall_after_first_chunk(*args, **kwargs):
        calls[0] += 1
        if calls[0] > 1:
            print("FIRST CHUNK WRITTEN", flush=True)
            time.sleep(600)
        return real(*args, **kwargs)
    S.next_token_logprobs = stall_after_first_chunk
    J.judge(sys.argv[1], modes=%r, k=2, models={%r: load_model(sys.argv[2], prompt_format="chat")}, progress=False)
    """
)
ALL_MODES = ("isolated", "own_samples", "alternatives", "pairwise", "critique")


def test_kill_and_resume_gives_identical_judgments(tiny_wide, tmp_path, monkeypatch):
    """A subprocess judging in every mode is killed (SIGKILL) after its first chunk; resuming gives the
    table of an uninterrupted run. The judge is the tiny random Llama (saved, reloaded in the subprocess)."""
    monkeypatch.setattr(J, "CHUNK_ITEMS", 1)
    tiny = tiny_wide
    folder = tmp_path / "tiny"
    tiny.model.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "max_position_embeddings": tiny.context_length}))
    reference = judge(make_run(tmp_path / "ref"), modes=ALL_MODES, k=2, models={SMOL: tiny}, progress=False)

    path = tmp_path / "run"
    make_run(path)
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT % (ALL_MODES, SMOL))
    proc = subprocess.Popen([sys.executable, str(script), str(path), str(folder), str(torch.get_num_threads())],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 240)
        line = proc.stdout.readline() if ready else ""  # the first chunk is committed (or the process died)
        assert line.strip() == "FIRST CHUNK WRITTEN", (proc.kill(), proc.stderr.read()[-2000:])[1]
        written = sorted(p.relative_to(path).as_posix() for p in (path / "chunks" / "judgments").rglob("*.parquet"))
        assert written == [f"chunks/judgments/{SMOL}=isolated/0.parquet"]
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    resumed = judge(path, modes=ALL_MODES, k=2, models={SMOL: tiny}, progress=False)
    assert any(s.get("resumed") for s in resumed.manifest["sessions"])
    assert set(resumed.judgments["mode"]) == set(ALL_MODES)
    pd.testing.assert_frame_equal(resumed.judgments, reference.judgments)


# ------------------------------------------------------------------------------------ the comparison experiment


@pytest.fixture(scope="module")
def probed(one_thread, smollm2, tmp_path_factory):
    """`selfbias probe` on 8 arithmetic items (SmolLM2, 6 samples, default judge modes), then the README's
    `selfbias judge RUN --mode pairwise --mode own_samples` through the command line."""
    from typer.testing import CliRunner

    from selfbias.cli import app
    from selfbias.probe import probe

    path = tmp_path_factory.mktemp("probed") / "run"
    # 6 samples: the list design needs 4 distinct wrong answers of the model's own per item (k = 3)
    first = probe(SMOL, "arithmetic", n=8, samples=6, max_new_tokens=8, out=path, loaded={SMOL: smollm2},
                  progress=False)
    before = first.judgments  # read now: a Run reads its tables lazily
    result = CliRunner().invoke(app, ["judge", str(path), "--mode", "pairwise", "--mode", "own_samples"])
    return before, result, load_run(path)


def _texts(run) -> dict[tuple[str, str], str]:
    """(item, shown id) -> text: candidates, and unmapped samples as ``sample:<index>``."""
    out = {(i, c): t for i, c, t in zip(run.candidates.item_id, run.candidates.candidate_id, run.candidates.text)}
    g = run.generations
    for i, idx, a in zip(g.item_id, g.sample_index, g.answer):
        out.setdefault((i, f"sample:{idx}"), a)
    return out


def test_readme_judge_example_after_probe_keeps_earlier_judgments(probed):
    before, result, run = probed
    assert result.exit_code == 0, result.output
    skipped = run.manifest["judge"]["skipped_items"][SMOL]
    assert f"lists: {len(skipped)} of 8 items skipped for judge {SMOL}" in " ".join(result.output.split())
    table = run.judgments
    assert set(table["mode"]) == {"isolated", "alternatives", "pairwise", "own_samples"}
    kept = table[table["mode"].isin(["isolated", "alternatives"])].reset_index(drop=True)
    empty = ["other_candidate_id", "critique", "pair_type"]  # all-null there; their dtype follows the other modes
    cols = [c for c in JUDGMENT_COLUMNS if c not in empty]
    pd.testing.assert_frame_equal(kept[cols], before[cols])
    assert kept[empty].isna().all().all() and before[empty].isna().all().all()
    pw = run.pairwise_frame()
    assert len(pw) and set(pw.verdict) <= {"a", "b", "inconsistent"} and pw.pair_type.notna().all()


def test_default_lists_show_a_correct_answer_by_the_design(probed):
    """The cells design: a list holds a correct answer exactly when its drawn cell says so (checked
    against the candidates' labels), the own list's from the judge's own answers, the outside list's
    the reference."""
    _, _, run = probed
    cands = run.candidates
    correct = {(i, c): bool(v) for i, c, v in zip(cands.item_id, cands.candidate_id, cands.correct)}
    authors = {(i, c): list(a) for i, c, a in zip(cands.item_id, cands.candidate_id, cands.authors)}
    sources = {(i, c): list(s) for i, c, s in zip(cands.item_id, cands.candidate_id, cands.sources)}
    lists = run.judgments[run.judgments["mode"].isin(["alternatives", "own_samples"])]
    assert len(lists) and (lists["mode"] == "alternatives").any()
    for row in lists.itertuples():
        shown = [correct[(row.item_id, a)] for a in row.alternatives]
        assert bool(row.gold_shown) == any(shown) == bool(row.list_has_correct)
        assert sum(shown) == int(row.list_has_correct)
        if row.list_has_correct:
            hit = row.alternatives[row.correct_position]
            assert correct[(row.item_id, hit)]
            if row.mode == "own_samples":
                assert SMOL in authors[(row.item_id, hit)]
            else:
                assert "reference" in sources[(row.item_id, hit)]
        else:
            assert row.correct_position == -1
    frame = run.analysis_frame()
    lf = frame[frame["mode"].isin(["alternatives", "own_samples"])]
    assert (lf.gold_shown == lf.list_has_correct).all() and lf.list_mean_loglik.notna().all()


def test_lists_are_matched_and_never_hold_the_judged_answer(probed):
    _, _, run = probed
    texts = _texts(run)
    lists = run.judgments[run.judgments["mode"].isin(["alternatives", "own_samples"])]
    skipped = set(run.manifest["judge"]["skipped_items"][SMOL])
    design = run.manifest["judge"]["list_designs"][SMOL]
    assert set(lists.item_id) == set(run.items.item_id) - skipped  # skipped in every cell, and only those
    assert (lists.list_length == 3).all() and (lists.list_length == lists.alternatives.map(len)).all()
    assert design["list_lengths"] == {"3": len(lists) // 2}
    # the same candidates in both modes, with the same cell and position (the design's, not the data's)
    wide = lists.pivot(index="candidate_id", columns="mode", values="correct_position")
    assert wide.notna().all().all() and (wide["own_samples"] == wide["alternatives"]).all()
    n_cands = run.candidates[run.candidates.item_id.isin(set(lists.item_id))].shape[0]
    assert len(wide) + design["candidates_unfilled"] == n_cands
    correct = dict(zip(run.candidates.candidate_id, run.candidates.correct))
    for row in lists.itertuples():
        judged = " ".join(texts[(row.item_id, row.candidate_id)].split()).casefold()
        listed = [" ".join(texts[(row.item_id, a)].split()).casefold() for a in row.alternatives]
        inside = row.candidate_id in row.alternatives or judged in listed
        assert inside == bool(row.judged_in_list) == (bool(correct[row.candidate_id]) and bool(row.list_has_correct))
        assert len(row.shown_sources) == row.list_length
        allowed = {"own_sample"} if row.mode == "own_samples" else {"perturbation", "reference"}
        assert set(row.shown_sources) <= allowed


def test_real_prompts_show_only_the_matched_list(probed, smollm2):
    """Three real prompts of each list mode: the list block is exactly the recorded answers, in order,
    with no word about correctness or origin (they are printed when this fails)."""
    _, _, run = probed
    texts = _texts(run)
    for mode in ("alternatives", "own_samples"):
        df = judge_prompts(run, smollm2, mode)
        shown = "\n\n".join(df.prompt.head(3))
        assert len(df) >= 3, shown
        for row in df.itertuples():
            block = _block(row.prompt)
            assert block == [f"- {texts[(row.item_id, a)]}" for a in row.alternatives], shown
            low = "\n".join(block).lower()
            assert not any(w in low for w in ("correct", "reference", "wrong", "dataset", "sample")), shown
        table = run.judgments[run.judgments["mode"] == mode]
        assert df.prompt_hash.tolist() == table.prompt_hash.tolist(), shown  # what judge() read


def _wide_run(path):
    items = [("w-0", "What is 20 + 5?", "25", ["21", "22", "23", "24", "26", "27"], "30",
              ["30", "31", "32", "33", "34", "35"])]
    return make_run(path, items=items)


def test_list_order_is_seeded_and_independent_across_candidates(smollm2, tmp_path):
    run = _wide_run(tmp_path / "w")
    for mode in ("alternatives", "own_samples"):
        # p_correct=0: every candidate gets a list (the judge never gave the gold here)
        a = judge_prompts(run, smollm2, mode, k=5, p_correct=0.0)
        again = judge_prompts(run, smollm2, mode, k=5, p_correct=0.0)
        other_seed = judge_prompts(run, smollm2, mode, k=5, seed=1, p_correct=0.0)
        assert a.alternatives.tolist() == again.alternatives.tolist()
        assert a.alternatives.tolist() != other_seed.alternatives.tolist()
        assert (a.list_length == 5).all()
        # each candidate has its own order: the relative order of two answers listed to every
        # candidate is not fixed (one shared order trimmed per candidate would keep it)
        seen: dict[frozenset, set] = {}
        for alts in a.alternatives:
            for i, x in enumerate(alts):
                for y in alts[i + 1:]:
                    seen.setdefault(frozenset((x, y)), set()).add((x, y))
        assert sum(len(v) == 2 for v in seen.values()) >= len(seen) // 4  # many pairs seen in both orders
        firsts = {alts[0] for alts in a.alternatives}
        assert len(firsts) > 1  # not one fixed order trimmed per candidate


def test_min_k_skips_small_items_in_both_list_modes(tiny, tmp_path):
    run = make_run(tmp_path / "run")  # t-0's smallest pool is 1, the others' 2
    out = judge(run, modes=("alternatives", "own_samples"), k=3, min_k=2, list_design="pooled", models={SMOL: tiny},
                progress=False)
    assert out.manifest["judge"]["skipped_items"][SMOL] == ["t-0"]
    table = out.judgments
    assert "t-0" not in set(table.item_id) and (table.list_length == 2).all()
    shown = judge(run, modes=("alternatives",), judges=["other"], k=3, alt_sources="perturbation,reference",
                  list_design="pooled", models={"other": tiny}, progress=False).judgments
    shown = shown[shown.judge == "other"]
    gold = {c for c, ok in zip(out.candidates.candidate_id, out.candidates.correct) if ok}
    assert (shown.gold_shown == shown.alternatives.map(lambda a: bool(set(a) & gold))).all()
    assert shown.gold_shown.any() and "reference" in set().union(*map(set, shown.shown_sources))


def test_bad_sources_are_one_line_errors(tiny, tmp_path):
    run = make_run(tmp_path / "run", items=ITEMS[:1])
    with pytest.raises(ValueError, match=r"^alt_sources: unknown source 'gold'; use some of other_model"):
        judge(run, modes=("alternatives",), alt_sources="perturbation,gold", models={SMOL: tiny}, progress=False)
    with pytest.raises(ValueError, match=r"^pair_sources: unknown source 'correct'"):
        judge(run, modes=("pairwise",), pair_sources=["correct"], models={SMOL: tiny}, progress=False)


# ------------------------------------------------------------------------------------ few-shot, P(True)


def test_builtin_few_shot_lists_do_not_depend_on_the_verdict():
    from selfbias._judge_templates import FEW_SHOT_POOL, builtin_examples, example_fields

    with_correct = 0
    for i, (_q, right, wrong) in enumerate(FEW_SHOT_POOL):
        good, bad = builtin_examples([i, i])  # shown right at position 0, wrong at position 1
        assert good.correct and not bad.correct and good.alternatives == bad.alternatives
        # the judged lists' design: the correct answer listed by seed (not by verdict), the rest wrong
        # answers other than the shown wrong one, one length whatever the cell
        assert len(good.alternatives) == 2 and set(good.alternatives) <= {right, *wrong[1:]}
        with_correct += right in good.alternatives
        for mode, field in (("alternatives", "alternatives"), ("own_samples", "samples")):
            (fg, vg), (fb, vb) = example_fields(good, 0, mode, 3), example_fields(bad, 1, mode, 3)
            assert fg[field] == fb[field] and (vg, vb) == (0, 1)
            assert f"- {fb['answer']}" not in fb[field]
        (p0, v0), (p1, v1) = example_fields(good, 0, "pairwise", 3), example_fields(bad, 1, "pairwise", 3)
        assert (p0["answer_1"], v0) == (right, 0) and (p1["answer_2"], v1) == (right, 1)  # position alternates
    # a seeded Bernoulli(1/2) per example: between 0.2 and 0.8 of the pool (binomial 95% range for n = 20: 6-14)
    assert 0.2 * len(FEW_SHOT_POOL) <= with_correct <= 0.8 * len(FEW_SHOT_POOL), with_correct


def test_few_shot_file_and_its_errors(smollm2, tmp_path):
    run = make_run(tmp_path / "run", items=ITEMS[:1])
    good = tmp_path / "shots.jsonl"
    good.write_text(json.dumps({"question": "What is 1 + 1?", "answer": "2", "correct": True,
                                "alternatives": ["3", "4"]}) + "\n\n"
                    + json.dumps({"question": "What is 2 + 2?", "answer": "5", "correct": False,
                                  "alternatives": ["3", "6"]}) + "\n")
    df = judge_prompts(run, smollm2, "alternatives", few_shot_file=good, k=2, list_design="pooled")
    prompt = df.prompt.iloc[0]
    assert "What is 1 + 1?\nPossible answers:\n- 3\n- 4\n" in prompt and "Proposed answer: 5<|im_end|>" in prompt
    assert prompt.count("<|im_start|>assistant\nYes") == 1 and prompt.count("<|im_start|>assistant\nNo") == 1
    cases = [
        ('{"question": "q", "answer": "a"}', "line 1: missing field 'correct'", ":1: missing field 'correct'"),
        ('{"question": "q", "answer": "a", "correct": "yes"}', "", ":1: field 'correct' must be true or false"),
        ('{"question": "q", "answer": "a", "correct": true, "alternatives": "x"}', "", ":1: field 'alternatives' must be list"),
        ('{"question": "q", "answer": "a", "correct": true, "extra": 1}', "", ":1: unknown field 'extra'"),
        ('{"question": "q", "answer": "a", "correct": true}\n[1]', "", ":2: expected a JSON object"),
        ('{"question": "q", "answer": "a", "correct": true}\n{oops', "", ":2: not valid JSON"),
    ]
    for text, _, expected in cases:
        bad = tmp_path / "bad.jsonl"
        bad.write_text(text + "\n")
        with pytest.raises(ValueError) as err:
            judge_prompts(run, smollm2, "isolated", few_shot_file=bad)
        msg = str(err.value)
        assert msg.startswith(f"{bad}") and expected in msg and "\n" not in msg, msg
    with pytest.raises(ValueError, match=r"shots\.jsonl:1: missing field 'other' \(needed by mode 'pairwise'\)"):
        judge_prompts(run, smollm2, "pairwise", few_shot_file=good)


def test_ptrue_template_set(smollm2, tiny, tmp_path):
    run = make_run(tmp_path / "run", items=ITEMS[:1])
    df = judge_prompts(run, smollm2, "isolated", template_set="ptrue", read=True)
    prompt = df.prompt.iloc[0]
    assert "Proposed Answer: 5\nIs the proposed answer:\n (A) True\n (B) False<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\nThe proposed answer is:") and df.options.iloc[0] == ["True", "False"]
    true = smollm2.tokenizer.convert_ids_to_tokens(find_option_tokens(smollm2.tokenizer, "True"))
    false = smollm2.tokenizer.convert_ids_to_tokens(find_option_tokens(smollm2.tokenizer, "False"))
    expected, mass = _hand_p(smollm2, prompt, true, false)
    assert df.p_yes.iloc[0] == pytest.approx(expected, abs=TOL) and df.yes_no_mass.iloc[0] == pytest.approx(mass, abs=TOL)
    out = judge(run, modes=("isolated",), template_set="ptrue", models={SMOL: tiny}, progress=False)
    stage = out.manifest["judge"]["stages"][f"{SMOL}=isolated"]
    assert stage["template_set"] == "ptrue" and stage["templates"]["chat"]["options"] == ["True", "False"]
    with pytest.raises(ValueError, match="unknown set 'kadavath'"):
        judge(run, modes=("isolated",), template_set="kadavath", models={SMOL: tiny}, progress=False)


@pytest.mark.model  # the CLI loads the default model
def test_cli_judge_and_probe_take_the_list_pair_and_template_options(tmp_path):
    from typer.testing import CliRunner

    from selfbias.cli import app

    cli = CliRunner()
    # the model never gave the reference 6 here, so it is an outside answer
    run = make_run(tmp_path / "run", items=[("c-0", "What is 3 + 3?", "6", ["5", "7", "8"], "9", ["9", "4"])])
    out = cli.invoke(app, ["judge", str(run.path), "--mode", "alternatives", "--k", "2", "--alt-sources",
                           "perturbation,reference", "--template-set", "ptrue", "--list-design", "pooled"])
    assert out.exit_code == 0, out.output
    judged = load_run(run.path)
    stage = judged.manifest["judge"]["stages"][f"{SMOL}=alternatives"]
    assert stage["lists"]["sources"] == ["perturbation", "reference"] and stage["template_set"] == "ptrue"
    assert judged.judgments.gold_shown.any()  # the reference (correct) may be listed when asked for
    bad = cli.invoke(app, ["judge", str(run.path), "--alt-sources", "gold"])
    assert bad.exit_code == 2 and "alt_sources: unknown source 'gold'" in bad.output
    probed = cli.invoke(app, ["probe", "--n", "2", "--samples", "0", "--max-new-tokens", "6", "--judge-modes",
                              "alternatives", "--alt-sources", "perturbation", "--template-set", "ptrue",
                              "--out", str(tmp_path / "probed")])
    assert probed.exit_code == 0, probed.output
    stage = load_run(tmp_path / "probed").manifest["judge"]["stages"][f"{SMOL}=alternatives"]
    assert stage["lists"]["sources"] == ["perturbation"] and stage["template_set"] == "ptrue"


def test_ungraded_answers_are_never_listed_by_default():
    # An ungraded answer (correct = NA: the checker could not tell) may be the gold, so the default
    # lists leave it out like a correct one; gold_shown counts only answers known to be correct.
    import importlib

    import pandas as pd

    J = importlib.import_module("selfbias.judge")  # the module (selfbias.judge is the function)
    items = pd.DataFrame({"item_id": ["q"], "question": ["Why?"]})
    cands = pd.DataFrame({
        "item_id": ["q"] * 4, "candidate_id": ["q#0", "q#1", "q#2", "q#3"],
        "text": ["judged", "known wrong", "ungraded", "right"],
        "sources": [["own_greedy"], ["distractor"], ["distractor"], ["reference"]],
        "authors": [["m"], ["dataset"], ["dataset"], ["dataset"]],
        "correct": pd.array([False, False, pd.NA, True], dtype="boolean")})
    data = J._RunData.from_tables(items, cands, pd.DataFrame(), "test")
    assert [c.correct for c in data.candidates["q"]] == [False, False, None, True]
    judged = data.candidates["q"][0]
    pool = J._external_pool(data, "m", "q", judged, ("distractor", "perturbation", "other_model"), False)
    assert [x.id for x in pool] == ["q#1"]
    wide = J._external_pool(data, "m", "q", judged, ("distractor", "reference"), True)
    assert {x.id for x in wide} == {"q#1", "q#2", "q#3"}
    frame_judgments = pd.DataFrame({"item_id": ["q", "q"], "mode": ["alternatives", "alternatives"],
                                    "alternatives": [["q#2"], ["q#3"]]})
    from selfbias.frames import _list_info

    gold, length = _list_info(frame_judgments, cands)
    assert gold == [False, True] and length == [1, 1]
