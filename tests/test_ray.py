"""Runs on Ray (issue 13): a real local Ray cluster started here on 127.0.0.1 with two CPUs, two actors
each holding a SmolLM2 replica. The tables must equal a single-process run's, also when an actor is
killed mid-run and when the driver is killed mid-run and the command re-run; the run lock still
refuses a second driver; without ``ray=`` Ray is never imported."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from selfbias.distributed import RayOptions, check_storage, split_actors
from selfbias.runs import RunError, load_run

TABLES = ("items", "generations", "candidates", "scores", "agreement", "judgments")
# few items and samples: 9 items are two generation/scoring chunks (8 + 1) and one judge chunk per mode
# zero-shot: a probe without judge modes builds no examples, and one test judges such a run afterwards
SMALL = dict(task="arithmetic", n=9, samples=1, max_new_tokens=8, judge_modes=("isolated", "alternatives"),
             few_shot=0, progress=False)
TWO_ACTORS = dict(actors=2, num_cpus=1)


def slow(test):
    """Long real-model runs: marked slow and skipped unless SELFBIAS_SLOW=1 (as tests/stats/_slow.py)."""
    skip = pytest.mark.skipif(os.environ.get("SELFBIAS_SLOW") != "1", reason="long run: set SELFBIAS_SLOW=1")
    return pytest.mark.slow(skip(test))


def _env(**extra) -> dict:
    # each actor and the driver use one thread, so float sums (and tables) match the local run's
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **extra}


def _assert_same_tables(a, b, tables=TABLES) -> None:
    for table in tables:
        pd.testing.assert_frame_equal(a.table(table), b.table(table), obj=table)


def _no_leftovers(path) -> None:
    """No token, write-check or temporary chunk file of the Ray run is left in the folder."""
    hidden = [p.name for p in path.rglob(".*") if p.name != ".lock"]
    assert hidden == [], hidden


# ------------------------------------------------------------------------------------ pure parts


def test_split_actors_even_over_models_in_waves():
    assert split_actors(2, ["a"]) == [{"a": 2}]
    assert split_actors(2, ["a", "b"]) == [{"a": 1, "b": 1}]
    assert split_actors(3, ["a", "b"]) == [{"a": 2, "b": 1}]
    assert split_actors(4, ["a", "b", "c"]) == [{"a": 2, "b": 1, "c": 1}]
    # fewer actors than models: waves, each model loaded once per stage (never per chunk)
    assert split_actors(1, ["a", "b", "c"]) == [{"a": 1}, {"b": 1}, {"c": 1}]
    assert split_actors(2, ["a", "b", "c"]) == [{"a": 1, "b": 1}, {"c": 2}]
    for n in range(1, 6):
        for models in (["a"], ["a", "b"], ["a", "b", "c"]):
            waves = split_actors(n, models)
            assert [m for w in waves for m in w] == models
            assert all(sum(w.values()) == n and min(w.values()) >= 1 for w in waves)


def test_storage_check_names_the_path_and_node(tmp_path):
    (tmp_path / ".tok").write_text("abc")
    check_storage(tmp_path, ".tok", "abc", "node-1 (10.0.0.1)")  # the driver's folder, writable
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tok"]  # the write check leaves nothing
    with pytest.raises(RunError, match=r"node-1 \(10.0.0.1\) sees another folder than the driver's.*shared"):
        check_storage(tmp_path, ".tok", "xyz", "node-1 (10.0.0.1)")
    missing = tmp_path / "not-here"
    with pytest.raises(RunError, match=f"{missing}: Ray actor on node n2 cannot read the run folder"):
        check_storage(missing, ".tok", "abc", "n2")
    if os.geteuid() != 0:  # root writes anywhere
        tmp_path.chmod(0o555)
        try:
            with pytest.raises(RunError, match="cannot write the run folder"):
                check_storage(tmp_path, ".tok", "abc", "n3")
        finally:
            tmp_path.chmod(0o755)


def test_replica_refuses_another_model_than_the_drivers(smollm2, tmp_path):
    from selfbias.distributed import _Replica, model_identity
    from selfbias.models import ModelError

    (tmp_path / ".tok").write_text("t")
    expect = {**model_identity(smollm2), "sha256": "0" * 64}
    with pytest.raises(ModelError, match="sha256"):
        _Replica(torch_threads()).setup("smollm2-135m", {"dtype": "float32"}, expect, str(tmp_path), ".tok", "t")


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def test_bad_ray_values_are_refused_before_loading():
    from selfbias import probe

    with pytest.raises(ValueError, match="ray: actors must be a positive number"):
        probe("smollm2-135m", n=2, ray={"actors": 0})
    with pytest.raises(ValueError, match="ray: .*unexpected keyword"):
        probe("smollm2-135m", n=2, ray={"gpus": 1})


def test_without_ray_nothing_imports_it(tmp_path):
    code = ("import sys, selfbias, selfbias.cli\n"
            "from selfbias import probe\n"
            f"probe('smollm2-135m', 'arithmetic', n=2, samples=1, max_new_tokens=6, out={str(tmp_path / 'r')!r},"
            " judge_modes=('isolated',), progress=False)\n"
            "assert 'ray' not in sys.modules, 'ray was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert load_run(tmp_path / "r").judgments.shape[0] > 0


# ------------------------------------------------------------------------------- on a Ray cluster


@pytest.fixture(scope="module")
def cluster():
    """A real Ray cluster on 127.0.0.1 with two CPUs (two one-CPU actors); its GCS address."""
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'selfbias[ray]')")
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by Ray's workers
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level="ERROR", log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same request run in this process, one thread (as the actors)."""
    import torch

    from selfbias import probe

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return probe("smollm2-135m", out=tmp_path_factory.mktemp("local") / "run", **SMALL)
    finally:
        torch.set_num_threads(threads)


def test_on_ray_with_an_actor_killed_the_tables_equal_the_local_run(cluster, reference, tmp_path):
    """probe on two actors, one killed while it computes a chunk, then judge on its own (Python keyword)."""
    import ray

    from selfbias import judge, probe

    box: dict = {"chunks": []}

    def kill_one_busy_actor(executor, job):
        box["executor"] = executor
        box["chunks"].append((job.table, job.stage, job.key))
        if "killed" not in box:
            busy = executor.running_actors()
            box["killed"] = bool(busy)
            ray.kill(busy[0] if busy else executor.slots[0].actor)  # mid-chunk, or dead for its next chunk

    probe("smollm2-135m", out=tmp_path / "run", ray=RayOptions(**TWO_ACTORS, after_chunk=kill_one_busy_actor),
          **{**SMALL, "judge_modes": ()})
    ex = box["executor"]
    assert box["killed"], "the actor was not computing a chunk when killed"
    # one chunk redone on a third actor; otherwise the two actors keep their model from generation to scoring
    assert len(ex.retried) == 1 and ex.started == 3, (ex.retried, ex.started)
    assert sorted(box["chunks"]) == sorted([("generations", "smollm2-135m", k) for k in "01"]
                                           + [("scores", "smollm2-135m", k) for k in "01"])
    run = judge(tmp_path / "run", modes=SMALL["judge_modes"], ray=RayOptions(**TWO_ACTORS), progress=False)
    _assert_same_tables(reference, run)
    assert run.manifest["finalized"]
    _no_leftovers(run.path)


def test_killed_driver_then_rerun_gives_the_same_tables(cluster, reference, tmp_path):
    out = tmp_path / "run"  # given relative to the driver's folder: actors write where the driver means
    cli = [sys.executable, "-m", "selfbias.cli", "probe", "--model", "smollm2-135m", "--task", "arithmetic",
           "--n", "9", "--samples", "1", "--max-new-tokens", "8", "--judge-modes", "isolated,alternatives",
           "--few-shot", "0", "--out", "run", "--ray", cluster, "--ray-actors", "2", "--ray-cpus", "1"]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this checkout's selfbias, from any folder
    env = _env(PYTHONPATH=os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(cli, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    chunks = out / "chunks" / "generations"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if chunks.exists() and any(chunks.rglob("*.parquet")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before the driver could be killed"
    proc.send_signal(signal.SIGKILL)  # the driver; Ray then stops the actors it owned
    proc.wait()
    assert not (out / "scores.parquet").exists()
    result = subprocess.run(cli, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    run = load_run(out)
    first, again = run.manifest["sessions"][:2]  # (the judge adds a session of the second driver)
    assert again["resumed"] and again["pid"] != first["pid"]
    _assert_same_tables(reference, run)
    _no_leftovers(out)


def test_the_run_lock_still_refuses_a_second_driver(cluster, tmp_path):
    from selfbias import judge, probe

    out = tmp_path / "run"
    code = (f"from selfbias.runs import RunStore\nstore = RunStore.open({str(out)!r}, {{'job': 'other'}})\n"
            "print('locked', flush=True)\nimport time\ntime.sleep(120)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunError, match="in use by another process"):
            probe("smollm2-135m", out=out, ray=RayOptions(**TWO_ACTORS), **SMALL)
        with pytest.raises(RunError, match="in use by another process"):
            judge(out, ray=RayOptions(**TWO_ACTORS), progress=False)
        # the same through the CLI's --ray (one line, exit code 2)
        from typer.testing import CliRunner

        from selfbias.cli import app

        result = CliRunner().invoke(app, ["judge", str(out), "--ray", cluster, "--ray-actors", "2"])
        assert result.exit_code == 2 and "in use by another process" in result.output, result.output
    finally:
        holder.kill()
        holder.wait()


@slow
def test_two_models_on_ray_equal_the_local_run(cluster, tmp_path):
    """Two models on two actors: one replica per model, kept from generation to scoring (each scores
    every candidate with the weights it loaded once); tables equal to the single-process run."""
    import torch

    from selfbias import probe

    two = dict(task="arithmetic", n=9, samples=1, max_new_tokens=6, judge_modes=("isolated",), progress=False)
    models = ["smollm2-135m", "gemma3-270m"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = probe(models, out=tmp_path / "local", **two)
    finally:
        torch.set_num_threads(threads)
    box: dict = {}
    run = probe(models, out=tmp_path / "ray", ray=RayOptions(**TWO_ACTORS, after_chunk=_keep(box)), **two)
    _assert_same_tables(local, run)
    # 2 (one per model, generation and scoring: 8 chunks) + 1 + 2 (the judge gives both actors to
    # each judge in turn: 2 chunks): loads per model and stage, never per chunk
    assert box["executor"].started == 5 and len(box["executor"].timings) == 10


def _keep(box: dict):
    def hook(executor, job):
        box["executor"] = executor
    return hook


def test_an_actor_that_sees_another_folder_stops_the_run(cluster, smollm2, tmp_path):
    """A node whose run path is not the driver's folder (here: the token differs) is refused by name."""
    from selfbias._chunks import ChunkJob
    from selfbias.distributed import RayExecutor
    from selfbias.runs import RunStore

    store = RunStore.open(tmp_path / "run", {"job": "storage check"})
    ex = RayExecutor(RayOptions(actors=1, num_cpus=1), store.path)
    try:
        ex._connect()
        (store.path / ex.token_file).write_text("another folder's token")
        job = ChunkJob("smollm2-135m", "generations", "smollm2-135m", "0", str)
        refused = r"/run: Ray actor on node \S+ \(\S+\) sees another folder than the driver.s; .*shared"
        with pytest.raises(RunError, match=refused):
            ex.run(store, {"smollm2-135m": smollm2}, [job], "check", False)
        assert ex.timings == [] and store.chunk_keys("generations", "smollm2-135m") == []
    finally:
        ex.close()
        store.close()
    _no_leftovers(store.path)
