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
    ("t-0", "What is 2 + 3?", "5", ["6"], "5", ["5", "6"]),
    ("t-1", "What is 7 + 8?", "15", ["14"], "13", ["13", "15"]),
    ("t-2", "What is 6 * 7?", "42", ["48"], "40", ["42", "40"]),
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
    return judge(path, modes=MODES, k=2, models={SMOL: smollm2}, progress=False)


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
        prompts = judge_prompts(judged, smollm2, mode, k=2, items=["t-1"]).set_index("prompt_hash")
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
    inside = prompt.split("Possible answers:\n", 1)[1].split("\nIs the following proposed answer correct?", 1)[0]
    return inside.split("\n")


def test_alternatives_prompts_never_mark_correctness(smollm2, tmp_path):
    run = make_run(tmp_path / "a")
    flipped = make_run(tmp_path / "b", flip_correct=True)
    df = judge_prompts(run, smollm2, "alternatives", k=2)
    cands = run.candidates.set_index("candidate_id")
    assert len(df) == len(cands)
    for row in df.itertuples():
        alts = list(row.alternatives)
        item = cands[cands.item_id == row.item_id]
        pool = [c for c, authors in zip(item.index, item.authors) if SMOL not in authors and c != row.candidate_id]
        assert set(alts) <= set(pool) and len(alts) == min(2, len(pool))  # external only, k of them
        shown = [f"- {cands.loc[a, 'text']}" for a in alts] or ["(none)"]
        assert _block(row.prompt) == shown  # in the recorded order
        block = "\n".join(_block(row.prompt)).lower()
        for marker in ("correct", "reference", "right", "wrong", "true", "false", "dataset", "perturbation", "✓"):
            assert marker not in block
        assert "reference" not in row.prompt.lower() and "dataset" not in row.prompt
    # the correctness flag never reaches the prompt: flipping it changes no prompt
    other = judge_prompts(flipped, smollm2, "alternatives", k=2)
    assert df.prompt_hash.tolist() == other.prompt_hash.tolist()
    assert df.alternatives.tolist() == other.alternatives.tolist()
    # prompts of one item share their prefix up to the answer
    assert (df.prompt_prefix + df.prompt_suffix == df.prompt).all()
    assert df.prompt_prefix.str.endswith("\nProposed answer: ").all()


def test_pairwise_runs_both_orders(judged):
    table = judged.judgments
    pw = table[table["mode"] == "pairwise"]
    cands = judged.candidates.set_index("candidate_id")
    assert len(pw) > 0
    for (cid, other), g in pw.groupby(["candidate_id", "other_candidate_id"]):
        assert sorted(g.order) == [0, 1]
        assert ("own_greedy", SMOL) in zip(cands.loc[cid, "sources"], cands.loc[cid, "authors"])
        first = g[g.order == 0].iloc[0]
        second = g[g.order == 1].iloc[0]
        assert list(first.alternatives) == [cid, other] and list(second.alternatives) == [other, cid]
        assert first.prompt_hash != second.prompt_hash
    frame = judged.pairwise_frame()
    assert len(frame) == len(pw) // 2
    assert frame.p_a_first.notna().all() and frame.p_a_second.notna().all()
    assert ((frame.pref_a - (frame.p_a_first + frame.p_a_second) / 2).abs() < 1e-12).all()


def test_own_samples_and_critique_modes(tiny_wide, tmp_path):
    tiny = tiny_wide
    run = make_run(tmp_path / "run", items=ITEMS[:2])
    out = judge(run, modes=("own_samples", "critique"), k=2, models={SMOL: tiny}, progress=False)
    table = out.judgments
    own = table[table["mode"] == "own_samples"]
    cands = out.candidates.set_index("candidate_id")
    # t-1's samples are "13", "15": shown as candidate ids, in sample order
    row = own[own.item_id == "t-1"].iloc[0]
    assert [cands.loc[c, "text"] for c in row.alternatives] == ["13", "15"]
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
    out = judge(run, modes=("alternatives", "pairwise"), judges=[SMOL], k=2, models={SMOL: tiny}, progress=False)
    pw = out.judgments[out.judgments["mode"] == "pairwise"]
    assert set(pw.item_id) == {"t-1", "t-2"}  # the empty chunk of t-0 reads back as no rows
    with pytest.raises(ValueError, match="no candidate has source 'own_greedy' authored by 'other'"):
        judge(run, modes=("pairwise",), judges=[SMOL, "other"], models={SMOL: tiny, "other": tiny}, progress=False)
    with pytest.raises(ValueError, match="no sample rows of model 'other'"):
        judge(run, modes=("own_samples",), judges=["other"], models={"other": tiny}, progress=False)
    both = judge(run, modes=("alternatives",), judges=[SMOL, {"name": "other"}], k=2,
                 models={SMOL: tiny, "other": tiny}, overwrite=True, progress=False)
    table = both.judgments
    assert table.groupby("judge").size().to_dict() == {SMOL: len(cands), "other": len(cands)}
    authored = {c for c, a in zip(cands.candidate_id, cands.authors) if SMOL in a}
    shown = {"other": set(), SMOL: set()}
    for judge_name, alts in zip(table.judge, table.alternatives):
        shown[judge_name] |= set(alts)
    assert not shown[SMOL] & authored and shown["other"] & authored  # another judge sees SMOL's answers


# ------------------------------------------------------------------------------------ settings


def test_settings_recorded_and_changes_refused(judged, tiny, tmp_path, monkeypatch):
    settings = judged.manifest["judge"]
    assert settings["modes"] == list(MODES) and settings["k"] == 2 and settings["judges"] == [SMOL]
    assert settings["templates"]["isolated"]["chat"]["system"] == DEFAULT_TEMPLATES["isolated"]["chat"].system
    assert settings["spellings"][SMOL]["options"]["Yes"] == ["yes", "Ġyes", "Yes", "ĠYes"]
    assert set(settings["rules"]) >= {"alternatives", "pairwise"}
    path = tmp_path / "copy"
    shutil.copytree(judged.path, path)
    before = load_run(path).judgments
    with pytest.raises(RunError, match=r"other judge settings \(judge\.k: 2 in the run, 3 requested\)"):
        judge(path, modes=MODES, k=3, models={SMOL: tiny}, progress=False)
    with monkeypatch.context() as m:  # same settings: every chunk exists, no model is loaded or run
        m.setattr("selfbias.models.load_model", lambda *a, **k: pytest.fail("model loaded"))
        again = judge(path, modes=MODES, k=2, progress=False)
    pd.testing.assert_frame_equal(again.judgments, before)
    replaced = judge(path, modes=("isolated",), k=3, models={SMOL: tiny}, overwrite=True, progress=False)
    assert set(replaced.judgments["mode"]) == {"isolated"} and replaced.manifest["judge"]["k"] == 3


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
