"""Tests of selfbias.runs: manifest, matching, overwrite, chunk atomicity under kill, frames."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from selfbias.runs import (
    ANALYSIS_COLUMNS,
    PAIRWISE_COLUMNS,
    Run,
    RunError,
    RunStore,
    file_hash,
    load_run,
    first_difference,
    make_analysis_frame,
    make_pairwise_frame,
    package_versions,
    show_value,
)

REQUEST = {
    "models": [{"name": "tiny-a", "revision": "abc123"}, {"name": "tiny-b", "revision": "def456"}],
    "task": {"name": "arithmetic", "source_hash": "sha256:00ff"},
    "templates": {"judge": "Is this answer correct? {answer}"},
    "seeds": [0, 1],
    "arguments": {"samples": 4, "temperature": 0.7, "max_new_tokens": 16},
}

# Deterministic chunk contents, shared by the test process and the subprocesses.
GEN_SRC = textwrap.dedent(
    """
    import numpy as np
    import pandas as pd

    def make_chunk(i):
        rng = np.random.default_rng(i)
        n = 12
        lens = rng.integers(0, 25, size=n)
        return pd.DataFrame({
            "item_id": [f"item{i:04d}" for _ in range(n)],
            "candidate_id": [f"item{i:04d}#{k}" for k in range(n)],
            "scorer": ["tiny-a" if k % 2 else "tiny-b" for k in range(n)],
            "token_ids": [[int(t) for t in rng.integers(0, 50000, size=m)] for m in lens],
            "tokens": [[f"t{int(t)}" for t in rng.integers(0, 99, size=m)] for m in lens],
            "logprobs": [[float(v) for v in -rng.exponential(2.0, size=m)] for m in lens],
            "is_argmax": [[bool(v) for v in rng.random(m) < 0.5] for m in lens],
            "sum_logprob": rng.standard_normal(n) * 10,
            "n_tokens": lens.astype("int64"),
            "rank": np.arange(1, n + 1, dtype="int64"),
        })
    """
)
_ns: dict = {}
exec(GEN_SRC, _ns)
make_chunk = _ns["make_chunk"]

N_CHUNKS = 60


def _script(run_path: Path, body: str) -> str:
    return (
        "import json, sys, time\n"
        "from selfbias.runs import RunStore\n"
        + GEN_SRC
        + f"\nREQUEST = json.loads({json.dumps(json.dumps(REQUEST))})\n"
        + f"PATH = {str(run_path)!r}\n"
        + textwrap.dedent(body)
    )


def _write_all(store: RunStore, n: int = N_CHUNKS) -> int:
    written = 0
    for i in range(n):
        key = f"c{i}"
        if not store.has_chunk("scores", "probe", key):
            store.write_chunk("scores", "probe", key, make_chunk(i))
            written += 1
    return written


def _committed(run_path: Path) -> set[str]:
    d = run_path / "chunks" / "scores" / "probe"
    if not d.is_dir():
        return set()
    return {f[: -len(".parquet")] for f in os.listdir(d) if f.endswith(".parquet") and not f.startswith(".")}


# ----------------------------------------------------------------------------- manifest


def test_new_run_writes_manifest(tmp_path):
    run_dir = tmp_path / "run"
    store = RunStore.open(run_dir, REQUEST)
    assert not store.resumed
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["request"] == REQUEST
    assert m["timing"] == {}
    assert set(m["versions"]) == {
        "python", "selfbias", "torch", "transformers", "numpy", "pandas", "pyarrow", "scipy",
        "statsmodels", "platform",
    }
    assert m["versions"]["pandas"] == pd.__version__
    assert m["versions"] == package_versions()
    assert m["created"][:4].isdigit()
    run = load_run(run_dir)
    assert isinstance(run, Run)
    assert run.manifest["request"] == REQUEST
    assert run.tables() == []
    assert run.scores.empty and run.judgments.empty


def test_same_request_resumes(tmp_path):
    run_dir = tmp_path / "run"
    store = RunStore.open(run_dir, REQUEST)
    store.write_chunk("items", "tasks", "0", pd.DataFrame({"item_id": ["a"]}))
    # tuples vs lists and numpy scalars normalise to the same JSON request
    req = json.loads(json.dumps(REQUEST))
    req["seeds"] = (np.int64(0), 1)
    again = RunStore.open(run_dir, req)
    assert again.resumed
    assert again.has_chunk("items", "tasks", "0")
    assert len(again.manifest["sessions"]) == 2
    # request=None reopens without checking
    assert RunStore.open(run_dir, None).resumed


def test_mismatch_refusal_names_the_field(tmp_path):
    run_dir = tmp_path / "run"
    RunStore.open(run_dir, REQUEST).write_chunk("items", "tasks", "0", pd.DataFrame({"x": [1]}))
    before = (run_dir / "manifest.json").read_text()

    req = json.loads(json.dumps(REQUEST))
    req["arguments"]["samples"] = 8
    with pytest.raises(RunError) as ei:
        RunStore.open(run_dir, req)
    msg = str(ei.value)
    assert "\n" not in msg
    assert str(run_dir) in msg
    assert "request.arguments.samples: 4 in the run, 8 requested" in msg
    assert "overwrite" in msg

    req = json.loads(json.dumps(REQUEST))
    req["models"][1]["revision"] = "zzz"
    with pytest.raises(RunError, match=r'request\.models\[1\]\.revision: "def456" in the run, "zzz" requested'):
        RunStore.open(run_dir, req)

    req = json.loads(json.dumps(REQUEST))
    req["arguments"]["top_p"] = 0.9
    with pytest.raises(RunError, match=r"request\.arguments\.top_p: absent in the run, 0\.9 requested"):
        RunStore.open(run_dir, req)

    req = json.loads(json.dumps(REQUEST))
    del req["seeds"]
    with pytest.raises(RunError, match=r"request\.seeds: \[0, 1\] in the run, absent requested"):
        RunStore.open(run_dir, req)

    req = json.loads(json.dumps(REQUEST))
    req["arguments"]["samples"] = True  # bool is not the int 4 (nor 1)
    with pytest.raises(RunError, match="request.arguments.samples"):
        RunStore.open(run_dir, req)

    # the refused run is untouched
    assert (run_dir / "manifest.json").read_text() == before
    assert load_run(run_dir).table("items")["x"].tolist() == [1]


def test_overwrite_replaces_the_run(tmp_path):
    run_dir = tmp_path / "run"
    RunStore.open(run_dir, REQUEST).write_chunk("items", "tasks", "0", pd.DataFrame({"x": [1]}))
    req = json.loads(json.dumps(REQUEST))
    req["arguments"]["samples"] = 8
    store = RunStore.open(run_dir, req, overwrite=True)
    assert not store.resumed
    assert load_run(run_dir).manifest["request"]["arguments"]["samples"] == 8
    assert not store.has_chunk("items", "tasks", "0")
    assert load_run(run_dir).tables() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing left aside
    # the new run is usable and resumable
    store.write_chunk("items", "tasks", "0", pd.DataFrame({"x": [2]}))
    assert RunStore.open(run_dir, req).read_table("items")["x"].tolist() == [2]


def test_non_run_folder_refused(tmp_path):
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    for kwargs in ({}, {"overwrite": True}):
        with pytest.raises(RunError, match="not a selfbias run"):
            RunStore.open(foreign, REQUEST, **kwargs)
    assert (foreign / "thesis.tex").read_text() == "precious"
    with pytest.raises(RunError, match="not a selfbias run"):
        load_run(foreign)
    with pytest.raises(RunError, match="no such run folder"):
        load_run(tmp_path / "missing")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(RunError, match="not a folder"):
        RunStore.open(a_file, REQUEST)
    with pytest.raises(RunError, match="not a selfbias run"):
        RunStore.open(tmp_path / "new", None)
    # an empty folder becomes a run
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not RunStore.open(empty, REQUEST).resumed
    # a corrupt manifest is reported, not silently replaced
    (empty / "manifest.json").write_text("{not json")
    with pytest.raises(RunError, match="unreadable run manifest"):
        load_run(empty)


def test_timing_and_manifest_updates(tmp_path):
    run_dir = tmp_path / "run"
    store = RunStore.open(run_dir, REQUEST)
    store.record_timing("probe", 1.25)
    store.record_timing("probe", 0.5)
    store.record_timing("judge", 2)
    store.update_manifest(skipped={"rows": 3, "reason": "too long"}, notes="hello")
    m = load_run(run_dir).manifest
    assert m["timing"] == {"probe": 1.75, "judge": 2.0}
    assert m["skipped"] == {"rows": 3, "reason": "too long"}
    assert m["notes"] == "hello"
    with pytest.raises(RunError, match="request"):
        store.update_manifest(request={"x": 1})
    assert load_run(run_dir).manifest["request"] == REQUEST
    # a resumed run adds to the totals
    RunStore.open(run_dir, REQUEST).record_timing("probe", 0.25)
    assert load_run(run_dir).manifest["timing"]["probe"] == 2.0
    assert not [p for p in run_dir.iterdir() if ".tmp-" in p.name]


# ----------------------------------------------------------------------------- tables


def test_list_columns_round_trip_exactly(tmp_path):
    rng = np.random.default_rng(7)
    floats = rng.standard_normal(50) * 10.0 ** rng.integers(-300, 300, size=50)
    df = pd.DataFrame({
        "item_id": ["a", "b", "c"],
        "ints": [[1, -2, 2**62], [], [0]],
        "floats": [list(floats), [0.1, float("nan"), float("-inf"), 5e-324], np.array([1.5, -0.0])],
        "strs": [["x", "", "ünï"], ["y"], []],
        "bools": [[True, False], [], [False]],
        "sum_logprob": [floats[0], float("nan"), -1e-310],
        "n_tokens": np.array([3, 0, 1], dtype="int64"),
        "correct": [True, False, True],
        "other": [None, "b#1", None],
    })
    store = RunStore.open(tmp_path / "run", REQUEST)
    store.write_chunk("scores", "probe", "k0", df)
    back = store.read_table("scores")

    assert list(back.columns) == list(df.columns)
    assert back["n_tokens"].dtype == np.int64
    assert back["sum_logprob"].dtype == np.float64
    assert back["correct"].dtype == bool
    assert back["item_id"].tolist() == ["a", "b", "c"]
    assert back["other"].isna().tolist() == [True, False, True]
    # convention: list columns come back as Python lists of Python scalars
    for col in ("ints", "floats", "strs", "bools"):
        assert back[col].dtype == object
        assert all(type(v) is list for v in back[col]), col
    assert [type(v) for v in back["ints"][0]] == [int, int, int]
    assert [type(v) for v in back["floats"][0][:3]] == [float, float, float]
    assert [type(v) for v in back["bools"][0]] == [bool, bool]
    assert back["ints"][0] == [1, -2, 2**62]
    assert back["strs"][0] == ["x", "", "ünï"]
    assert back["floats"][2] == [1.5, -0.0] and math.copysign(1, back["floats"][2][1]) == -1
    # exact float64 values, bit for bit, including NaN / -inf / subnormals inside lists
    assert np.array(back["floats"][0]).tobytes() == floats.tobytes()
    got = np.array(back["floats"][1])
    want = np.array([0.1, float("nan"), float("-inf"), 5e-324])
    assert got.tobytes() == want.tobytes()
    assert back["sum_logprob"].to_numpy().tobytes() == df["sum_logprob"].to_numpy().tobytes()

    # written again and read again: identical; consolidated file reads the same as the chunks
    store.write_chunk("scores", "probe", "k1", back)
    both = store.read_table("scores")
    pd.testing.assert_frame_equal(both.iloc[3:].reset_index(drop=True), back)
    run = store.finalize()
    assert (tmp_path / "run" / "scores.parquet").exists()
    pd.testing.assert_frame_equal(run.scores, both)
    pd.testing.assert_frame_equal(load_run(tmp_path / "run").scores, both)
    assert all(type(v) is list for v in run.scores["floats"])


def test_chunk_order_keys_and_stale_consolidation(tmp_path):
    store = RunStore.open(tmp_path / "run", REQUEST)
    keys = ["c10", "c2", "model/Qwen 0.5B#1", ".hidden", "c1"]
    for k in keys:
        store.write_chunk("t", "s1", k, pd.DataFrame({"k": [k]}))
    store.write_chunk("t", "s0", "z", pd.DataFrame({"k": ["s0z"]}))
    order = ["s0z", ".hidden", "c1", "c2", "c10", "model/Qwen 0.5B#1"]
    assert store.read_table("t")["k"].tolist() == order
    assert store.chunk_keys("t", "s1") == order[1:]
    assert all(store.has_chunk("t", "s1", k) for k in keys)
    assert not store.has_chunk("t", "s1", "c3")
    with pytest.raises(ValueError):
        store.write_chunk("../evil", "s", "k", pd.DataFrame({"k": [1]}))
    with pytest.raises(ValueError):
        store.write_chunk("t", "s", "", pd.DataFrame({"k": [1]}))

    run = store.finalize()
    assert run.table("t")["k"].tolist() == order
    # a chunk written after finalize makes the consolidated copy stale: it is removed
    store.write_chunk("t", "s1", "c11", pd.DataFrame({"k": ["c11"]}))
    assert not (tmp_path / "run" / "t.parquet").exists()
    assert load_run(tmp_path / "run").table("t")["k"].tolist() == order[:5] + ["c11", order[5]]
    assert load_run(tmp_path / "run").table("nonexistent").empty


def test_stray_tmp_files_ignored_and_cleaned(tmp_path):
    run_dir = tmp_path / "run"
    store = RunStore.open(run_dir, REQUEST)
    store.write_chunk("scores", "probe", "c0", make_chunk(0))
    cdir = run_dir / "chunks" / "scores" / "probe"
    # what a writer killed mid-write leaves behind: partial, unreadable files with tmp names
    strays = [
        cdir / ".c1.parquet.tmp-99999-deadbeef",
        run_dir / ".manifest.json.tmp-99999-cafe0000",
        run_dir / ".scores.parquet.tmp-99999-00000000",
    ]
    for p in strays:
        p.write_bytes(b"PAR1 partial garbage")
    assert not store.has_chunk("scores", "probe", "c1")
    expected = make_chunk(0)
    pd.testing.assert_frame_equal(store.read_table("scores"), expected)
    pd.testing.assert_frame_equal(load_run(run_dir).scores, expected)
    assert load_run(run_dir).tables() == ["scores"]
    store.close()
    RunStore.open(run_dir, REQUEST)  # resume cleans them up
    assert not any(p.exists() for p in strays)
    pd.testing.assert_frame_equal(load_run(run_dir).scores, expected)


# The writer subprocess: a slow "disk" (each file is written in 8 pieces with a pause between them)
# so that a kill lands inside a write most of the time; with STOP_AT >= 0 it stops for good halfway
# through writing chunk STOP_AT and announces it, so that the kill is certain to hit a partial file.
WRITER = """
    import builtins
    import selfbias._storage as _st

    STOP_AT, PAUSE, N = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    current = {"i": -1}

    class _SlowFile:
        def __init__(self, fh):
            self.fh = fh
        def write(self, data):
            mv = memoryview(data)
            step = max(1, len(mv) // 8)
            for k in range(0, len(mv), step):
                self.fh.write(mv[k:k + step])
                self.fh.flush()
                if STOP_AT >= 0 and current["i"] == STOP_AT and k >= len(mv) // 2:
                    print("mid-write", flush=True)
                    time.sleep(60)
                time.sleep(PAUSE)
            return len(mv)
        def __getattr__(self, name):
            return getattr(self.fh, name)
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            return self.fh.__exit__(*exc)

    _st.open = lambda *a, **k: _SlowFile(builtins.open(*a, **k))

    store = RunStore.open(PATH, REQUEST)
    for i in range(N):
        key = f"c{i}"
        if not store.has_chunk("scores", "probe", key):
            current["i"] = i
            store.write_chunk("scores", "probe", key, make_chunk(i))
    store.finalize()
"""


@pytest.fixture(scope="module")
def reference_scores(tmp_path_factory):
    """The scores table of an uninterrupted run (and its finalized copy)."""
    ref = RunStore.open(tmp_path_factory.mktemp("ref") / "run", REQUEST)
    assert _write_all(ref) == N_CHUNKS
    scores = ref.read_table("scores")
    assert len(scores) == 12 * N_CHUNKS
    finalized = ref.finalize().scores
    pd.testing.assert_frame_equal(finalized, scores)
    return scores


@pytest.mark.parametrize(
    "sig, how",
    [(signal.SIGKILL, "random"), (signal.SIGINT, "random"), (signal.SIGKILL, "mid-write")],
    ids=["SIGKILL-random", "SIGINT-random", "SIGKILL-mid-write"],
)
def test_killed_run_resumes_to_identical_tables(tmp_path, reference_scores, sig, how):
    run_dir = tmp_path / "run"
    rnd = random.Random(f"{sig}-{how}-{os.getpid()}-{time.time()}")
    kill_after = rnd.randint(3, N_CHUNKS // 3)
    stop_at = kill_after if how == "mid-write" else -1
    cmd = [sys.executable, "-c", _script(run_dir, WRITER), str(stop_at), "0.001", str(N_CHUNKS)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        if how == "mid-write":
            assert proc.stdout.readline().strip() == "mid-write"
        else:
            deadline = time.monotonic() + 60
            while len(_committed(run_dir)) < kill_after:
                assert proc.poll() is None, "writer ended before it was killed"
                assert time.monotonic() < deadline, "writer too slow"
                time.sleep(0.001)
            time.sleep(rnd.random() * 0.01)
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL

    done = _committed(run_dir)
    assert kill_after <= len(done) < N_CHUNKS, "the kill must interrupt the work"
    assert not (run_dir / "scores.parquet").exists()
    if how == "mid-write":
        # chunk stop_at was half written when killed: only a temporary file, never the chunk
        assert len(done) == stop_at
        assert [p.name.split(".tmp-")[0] for p in run_dir.rglob("*.tmp-*")] == [f".c{stop_at}.parquet"]
        assert not RunStore.open(run_dir, REQUEST).has_chunk("scores", "probe", f"c{stop_at}")
    # every committed chunk is complete and exactly right
    partial = load_run(run_dir).scores
    idx = sorted(int(k[1:]) for k in done)
    assert idx == list(range(len(idx))), "chunks are committed in order"
    pd.testing.assert_frame_equal(partial, pd.concat([make_chunk(i) for i in idx], ignore_index=True))

    # resume with the same request: only the missing chunks are written
    store = RunStore.open(run_dir, REQUEST)
    assert store.resumed
    assert _write_all(store) == N_CHUNKS - len(done)
    assert not [p for p in run_dir.rglob("*") if ".tmp-" in p.name]
    pd.testing.assert_frame_equal(store.read_table("scores"), reference_scores)
    run = store.finalize()
    pd.testing.assert_frame_equal(run.scores, reference_scores)
    pd.testing.assert_frame_equal(load_run(run_dir).scores, reference_scores)


def test_run_in_use_by_another_process_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    RunStore.open(run_dir, REQUEST).close()
    script = _script(run_dir, """
        store = RunStore.open(PATH, REQUEST)
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        with pytest.raises(RunError, match=f"in use by another process \\(pid {proc.pid}\\)"):
            RunStore.open(run_dir, REQUEST)
        with pytest.raises(RunError, match="in use"):
            RunStore.open(run_dir, REQUEST, overwrite=True)
        assert load_run(run_dir).manifest["request"] == REQUEST  # reading is always allowed
    finally:
        proc.kill()
        proc.wait()
    assert RunStore.open(run_dir, REQUEST).resumed  # a killed holder releases the lock


def test_drop_stage_removes_one_partition_only(tmp_path):
    store = RunStore.open(tmp_path / "run", REQUEST)
    for stage in ("a=isolated", "a=pairwise", "b=isolated"):
        for key in ("0", "1"):
            store.write_chunk("judgments", stage, key, pd.DataFrame({"stage": [stage], "key": [key]}))
    store.finalize()
    assert store.stages("judgments") == ["a=isolated", "a=pairwise", "b=isolated"]
    assert store.drop_stage("judgments", "a=pairwise") and not store.drop_stage("judgments", "a=pairwise")
    assert store.stages("judgments") == ["a=isolated", "b=isolated"]
    assert not (tmp_path / "run" / "judgments.parquet").exists()  # the stale consolidated copy is gone
    assert store.manifest.get("finalized") is None
    left = load_run(tmp_path / "run").judgments
    assert left.stage.tolist() == ["a=isolated", "a=isolated", "b=isolated", "b=isolated"]
    assert not any(p.name.startswith(".") for p in (tmp_path / "run" / "chunks" / "judgments").iterdir())
    store.close()


def test_first_difference_is_public():
    assert first_difference({"k": 2, "m": [1]}, {"k": 2, "m": [1]}, "judge") is None
    where, old, new = first_difference({"k": 2}, {"k": 3, "x": 1}, "judge")
    assert (where, old, new) == ("judge.k", 2, 3)
    where, old, _ = first_difference({"k": 2}, {"k": 2, "x": 1}, "judge")
    assert where == "judge.x" and show_value(old) == "absent"


def test_file_hash(tmp_path):
    p = tmp_path / "task.jsonl"
    p.write_bytes(b'{"q": "1+1"}\n')
    assert file_hash(p) == "sha256:" + hashlib.sha256(b'{"q": "1+1"}\n').hexdigest()


# ----------------------------------------------------------------------------- frames


def _frames_run(tmp_path) -> Run:
    candidates = pd.DataFrame({
        "item_id": ["q1", "q1", "q1", "q2"],
        "candidate_id": ["q1#0", "q1#1", "q1#2", "q2#0"],
        "text": ["4", "5", "3", "Paris"],
        "source": ["own_greedy", "own_sample", "reference", "own_greedy"],
        "sources": [["own_greedy"], ["own_sample"], ["reference"], ["own_greedy", "own_greedy", "reference"]],
        "authors": [["A"], ["B"], ["dataset"], ["A", "B", "dataset"]],
        "correct": [True, False, False, True],
    })
    scores = pd.DataFrame({
        "item_id": ["q1", "q1", "q1", "q1", "q1", "q2"],
        "candidate_id": ["q1#0", "q1#1", "q1#2", "q1#0", "q1#1", "q2#0"],
        "scorer": ["A", "A", "A", "B", "B", "A"],
        "token_ids": [[1], [2], [3], [1], [2], [4, 5]],
        "sum_logprob": [-0.5, -2.0, -3.0, -1.5, -0.25, -1.0],
        "mean_logprob": [-0.5, -2.0, -3.0, -1.5, -0.25, -0.5],
        "n_tokens": [1, 1, 1, 1, 1, 2],
    })

    def j(item, cand, judge, mode, p, order=0, other=None, alts=()):
        return {"item_id": item, "candidate_id": cand, "judge": judge, "mode": mode, "order": order,
                "other_candidate_id": other, "p_yes": p, "yes_no_mass": 0.9,
                "alternatives": list(alts), "critique": None}

    judgments = pd.DataFrame([
        j("q1", "q1#0", "A", "isolated", 0.8),
        j("q1", "q1#1", "A", "isolated", 0.3),
        j("q1", "q1#0", "B", "isolated", 0.6),
        j("q1", "q1#2", "B", "alternatives", 0.1),  # B never scored q1#2 -> NaN logprobs
        # pair (q1#0, q1#1) judged by A; alternatives give the shown order
        j("q1", "q1#0", "A", "pairwise", 0.7, 0, "q1#1", ["q1#0", "q1#1"]),
        j("q1", "q1#0", "A", "pairwise", 0.4, 1, "q1#1", ["q1#1", "q1#0"]),
        j("q1", "q1#1", "A", "pairwise", 0.3, 0, "q1#0", ["q1#0", "q1#1"]),  # mirror row, ignored
        # pair (q1#1, q1#0) judged by B: only mirror-side rows for order 1, no alternatives -> order
        j("q1", "q1#1", "B", "pairwise", 0.2, 0, "q1#0"),
        j("q1", "q1#0", "B", "pairwise", 0.55, 0, "q1#1"),  # q1#0 shown first -> P(b first)
        j("q2", "q2#0", "A", "critique", 0.95),
    ])
    store = RunStore.open(tmp_path / "run", REQUEST)
    store.write_chunk("candidates", "probe", "0", candidates)
    store.write_chunk("scores", "probe", "0", scores)
    store.write_chunk("judgments", "judge", "0", judgments)
    return store.finalize()


def test_analysis_frame(tmp_path):
    af = _frames_run(tmp_path).analysis_frame()
    assert list(af.columns) == ANALYSIS_COLUMNS
    expected = pd.DataFrame({
        "item_id": ["q1", "q1", "q1", "q1", "q2"],
        "candidate_id": ["q1#0", "q1#1", "q1#0", "q1#2", "q2#0"],
        "judge": ["A", "A", "B", "B", "A"],
        "mode": ["isolated", "isolated", "isolated", "alternatives", "critique"],
        "p_yes": [0.8, 0.3, 0.6, 0.1, 0.95],
        "yes_no_mass": [0.9] * 5,
        "correct": [True, False, True, False, True],
        # relative to the judge: B's answer is "other_model" for A, and A's for B
        "source": ["own_greedy", "other_model", "other_model", "reference", "own_greedy"],
        "self_authored": [True, False, False, False, True],
        "sum_logprob": [-0.5, -2.0, -1.5, float("nan"), -1.0],
        "mean_logprob": [-0.5, -2.0, -1.5, float("nan"), -0.5],
        "n_tokens": [1.0, 1.0, 1.0, float("nan"), 2.0],  # float: one judged candidate is unscored
        "author": ["A", "B", "A", "dataset", "A"],
        # these judgments predate the columns: derived from `alternatives` (none listed here)
        "gold_shown": [False] * 5,
        "list_length": pd.Series([0] * 5, dtype="int64"),
        # the list design's columns (issue 23) predate them too: gold_shown, -1, NaN
        "list_has_correct": [False] * 5,
        "correct_position": pd.Series([-1] * 5, dtype="int64"),
        "list_mean_loglik": [float("nan")] * 5,
    })
    pd.testing.assert_frame_equal(af, expected)
    # every scored -> n_tokens is int64
    run = _frames_run(tmp_path / "x")
    j = run.judgments
    full = make_analysis_frame(j[j["candidate_id"] != "q1#2"], run.candidates, run.scores)
    assert full["n_tokens"].dtype == np.int64 and full["n_tokens"].tolist() == [1, 1, 1, 2]


def test_pairwise_frame(tmp_path):
    pf = _frames_run(tmp_path).pairwise_frame()
    assert list(pf.columns) == PAIRWISE_COLUMNS
    expected = pd.DataFrame({
        "item_id": ["q1", "q1"],
        "judge": ["A", "B"],
        "candidate_a": ["q1#0", "q1#1"],
        "candidate_b": ["q1#1", "q1#0"],
        # A: P(q1#0) = 0.7 shown first, 0.4 shown second (its own rows win over the mirror row)
        # B: P(q1#1) = 0.2 shown first; shown second when q1#0 was first: 1 - 0.55
        "p_a_first": [0.7, 0.2],
        "p_a_second": [0.4, 0.45],
        "pref_a": [0.55, 0.325],
        "orders_agree": [False, True],
        "a_correct": [True, False],
        "b_correct": [False, True],
        "a_self": [True, True],
        "b_self": [False, False],
        "a_sum_logprob": [-0.5, -0.25],
        "b_sum_logprob": [-2.0, -1.5],
        "a_mean_logprob": [-0.5, -0.25],
        "b_mean_logprob": [-2.0, -1.5],
        # not recorded in these judgments: derived (each judge's own answer against the other model's)
        "pair_type": pd.Series(["self_other", "self_other"], dtype=object),
        # A: 0.7 then 0.4 -> the orders disagree; B: 0.2 and 0.45 -> b in both orders
        "verdict": pd.Series(["inconsistent", "b"], dtype=object),
    })
    pd.testing.assert_frame_equal(pf, expected)


def test_frames_use_recorded_list_and_pair_columns(tmp_path):
    """Recorded gold_shown / list_length / pair_type win over the derived ones; a list that shows a
    correct candidate derives gold_shown=True; a single order gives no verdict."""
    run = _frames_run(tmp_path)
    j = run.judgments
    extra = pd.DataFrame([
        {"item_id": "q1", "candidate_id": "q1#1", "judge": "A", "mode": "alternatives", "order": 0,
         "other_candidate_id": None, "p_yes": 0.5, "yes_no_mass": 0.9, "alternatives": ["q1#0", "q1#2"],
         "critique": None},
        {"item_id": "q1", "candidate_id": "q1#2", "judge": "A", "mode": "pairwise", "order": 0,
         "other_candidate_id": "q1#1", "p_yes": 0.6, "yes_no_mass": 0.9, "alternatives": ["q1#2", "q1#1"],
         "critique": None},
    ])
    derived = make_analysis_frame(pd.concat([j, extra], ignore_index=True), run.candidates, run.scores)
    row = derived[(derived.candidate_id == "q1#1") & (derived["mode"] == "alternatives")].iloc[0]
    assert bool(row.gold_shown) and row.list_length == 2  # q1#0 is correct
    recorded = pd.concat([j, extra], ignore_index=True).assign(
        gold_shown=False, list_length=7, pair_type="reference_other")
    af = make_analysis_frame(recorded, run.candidates, run.scores)
    assert not af.gold_shown.any() and (af.list_length == 7).all()
    pf = make_pairwise_frame(recorded, run.candidates, run.scores)
    assert set(pf.pair_type) == {"reference_other"}
    single = pf[pf.candidate_a == "q1#2"].iloc[0]
    assert pd.isna(single.verdict) and math.isnan(single.p_a_second)
    derived_pf = make_pairwise_frame(pd.concat([j, extra], ignore_index=True), run.candidates, run.scores)
    assert derived_pf.set_index("candidate_a").loc["q1#2", "pair_type"] == "other_reference"


def test_frames_of_a_run_without_judgments(tmp_path):
    run = RunStore.open(tmp_path / "run", REQUEST).finalize()
    assert run.analysis_frame().empty and list(run.analysis_frame().columns) == ANALYSIS_COLUMNS
    assert run.pairwise_frame().empty and list(run.pairwise_frame().columns) == PAIRWISE_COLUMNS


def test_repr_html(tmp_path):
    store = RunStore.open(tmp_path / "run", REQUEST)
    store.write_chunk("generations", "probe", "0", pd.DataFrame({
        "item_id": ["q1", "q2", "q1", "q1"], "model": ["tiny-a", "tiny-a", "tiny-b", "tiny-a"],
        "kind": ["greedy", "greedy", "greedy", "sample"], "correct": [True, False, True, True],
        "token_ids": [[1], [2], [3], [4]],
    }))
    store.write_chunk("items", "tasks", "0", pd.DataFrame({"item_id": ["q1", "q2"], "question": ["<b>?", "x"]}))
    run = load_run(tmp_path / "run")
    h = run._repr_html_()
    assert str(tmp_path / "run") in h and "arithmetic" in h and "tiny-a, tiny-b" in h
    assert "<td>items</td><td>2</td>" in h and "<td>generations</td><td>4</td>" in h
    assert "<td>tiny-a</td><td>50.0%</td>" in h and "<td>tiny-b</td><td>100.0%</td>" in h
    assert run.accuracy() == {"tiny-a": 0.5, "tiny-b": 1.0}
    assert repr(run).startswith(f"Run({str(tmp_path / 'run')!r}, task='arithmetic'")
    assert "items=2" in repr(run)


def test_stage_names_may_be_model_paths(tmp_path):
    # A model given as a folder (`selfbias probe -m /models/run-1`) names its stages by that path:
    # stored under a percent-encoded folder name, listed back as the path itself.
    store = RunStore.open(tmp_path / "run", REQUEST)
    stages = ["/models/run-1", "/models/run-1=isolated", ".hidden/x=alternatives", "smollm2-135m=isolated"]
    for stage in stages:
        store.write_chunk("judgments", stage, "0", pd.DataFrame({"stage": [stage]}))
        assert store.chunk_keys("judgments", stage) == ["0"]
    assert sorted(store.stages("judgments")) == sorted(stages)
    names = {p.name for p in (tmp_path / "run" / "chunks" / "judgments").iterdir()}
    assert "smollm2-135m=isolated" in names  # safe names keep their folder name (older runs resume)
    assert all("/" not in n and not n.startswith(".") for n in names)
    assert sorted(store.finalize().judgments.stage) == sorted(stages)
    store.close()


def test_judgments_written_before_top_k_mass_read_as_full_mass(tmp_path):
    """Runs made before the column existed were all judged by the HF backend (full distribution)."""
    store = RunStore.open(tmp_path / "run", REQUEST)
    old = pd.DataFrame({"item_id": ["a"], "candidate_id": ["a#0"], "p_yes": [0.3]})
    new = pd.DataFrame({"item_id": ["b"], "candidate_id": ["b#0"], "p_yes": [0.6], "top_k_mass": [0.8]})
    store.write_chunk("judgments", "j=isolated", "0", old)
    store.write_chunk("judgments", "j=isolated", "1", new)
    run = store.finalize()
    got = run.judgments.set_index("item_id")["top_k_mass"]
    assert got.to_dict() == {"a": 1.0, "b": 0.8}
    only_old = RunStore.open(tmp_path / "old", REQUEST)
    only_old.write_chunk("judgments", "j=isolated", "0", old)
    assert only_old.finalize().judgments["top_k_mass"].tolist() == [1.0]
