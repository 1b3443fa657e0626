"""A run's analysis computed once (selfbias.analysis): one bootstrap setting, one health table for the
summary and the figures, cached on the Run. Synthetic runs only: no model weights."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from selfbias import analysis as A  # noqa: E402
from selfbias import plots, stats  # noqa: E402
from selfbias.runs import Run, RunError, RunStore  # noqa: E402
from selfbias.stats import simulate  # noqa: E402

N_BOOT = 50
N_PERM = 50
MODES = ("isolated", "alternatives")


class _Frames:
    """A duck-typed run: the frames of a simulated run, counting how often each is built."""

    def __init__(self, sim, path="sim"):
        self.sim, self.path = sim, path
        self.built = {"analysis": 0, "pairwise": 0}
        self.agreement = sim.agreement
        self.judgments = pd.DataFrame({"mode": ["isolated"]})
        self.scores = self.candidates = self.items = pd.DataFrame()

    def analysis_frame(self):
        self.built["analysis"] += 1
        return self.sim.analysis

    def pairwise_frame(self):
        self.built["pairwise"] += 1
        return self.sim.pairwise


@pytest.fixture(scope="module")
def sim():
    return simulate.simulate_run(n_items=24, modes=MODES, seed=5)


def _count_health_calls(monkeypatch) -> dict:
    calls = {"judge": 0, "pairwise": 0}
    judge_health, pairwise_health = stats.judge_health, stats.pairwise_health

    def counted_judge(*args, **kwargs):
        calls["judge"] += 1
        return judge_health(*args, **kwargs)

    def counted_pairwise(*args, **kwargs):
        calls["pairwise"] += 1
        return pairwise_health(*args, **kwargs)

    # every consumer reaches judge_health through selfbias.stats or stats._summary's import
    monkeypatch.setattr(stats, "judge_health", counted_judge)
    monkeypatch.setattr("selfbias.stats._summary.judge_health", counted_judge)
    monkeypatch.setattr("selfbias.stats._health.pairwise_health", counted_pairwise)
    monkeypatch.setattr(stats, "pairwise_health", counted_pairwise)
    return calls


def test_summary_and_figures_share_one_health_table(sim, tmp_path, monkeypatch):
    run = _Frames(sim)
    analysis = A.analyze_run(run, n_boot=N_BOOT, seed=3)
    calls = _count_health_calls(monkeypatch)
    summary = analysis.summarize(n_perm=N_PERM)
    report = plots.draw_all(run, tmp_path, formats=("png",), analysis=analysis)
    assert calls == {"judge": 1, "pairwise": 1}  # computed once, for the summary and every figure
    assert run.built == {"analysis": 1, "pairwise": 1}  # the frames too: draw_all used the analysis's
    assert summary.health is analysis.health and summary.pairwise_health is analysis.pairwise_health
    assert dict(zip(report["figure"], report["status"]))["judge_health"] == "drawn"
    figure_csv = pd.read_csv(tmp_path / "judge_health.csv")
    summary.write(tmp_path / "analysis")
    summary_csv = pd.read_csv(tmp_path / "analysis" / "health.csv")
    _assert_same_rows(summary_csv, figure_csv)


def _assert_same_rows(left: pd.DataFrame, right: pd.DataFrame) -> None:
    """Equal tables up to row order (the health figure orders judge x modes its own way)."""
    assert list(left.columns) == list(right.columns)

    def by_key(t):
        return t.sort_values(["judge", "mode"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(by_key(left), by_key(right), check_exact=True)


def test_given_health_changes_nothing_in_the_summary(sim):
    """summarize(health=...) with the table it would compute gives the summary it computes alone."""
    analysis = A.analyze_run(_Frames(sim), n_boot=N_BOOT, seed=3)
    alone = stats.summarize(sim.analysis, sim.pairwise, sim.agreement, n_boot=N_BOOT, n_perm=N_PERM, seed=3)
    given = analysis.summarize(n_perm=N_PERM)
    assert set(alone.tables()) == set(given.tables())
    for name, table in alone.tables().items():
        pd.testing.assert_frame_equal(table, given.tables()[name], obj=name)
    assert alone.findings == given.findings and alone.notes == given.notes


def test_health_is_the_statistic_under_the_analysis_setting(sim):
    analysis = A.analyze_run(_Frames(sim), n_boot=N_BOOT, seed=3, confidence=0.9)
    expected = stats.judge_health(sim.analysis, n_boot=N_BOOT, seed=3, confidence=0.9)
    pd.testing.assert_frame_equal(analysis.health, expected)
    other_seed = stats.judge_health(sim.analysis, n_boot=N_BOOT, seed=4, confidence=0.9)
    # the bootstrap setting matters (so one setting everywhere is needed for one result)
    assert not analysis.health["auroc_ci_low"].equals(other_seed["auroc_ci_low"])


def test_summarize_refuses_the_settings_the_analysis_fixes(sim):
    analysis = A.analyze_run(_Frames(sim), n_boot=N_BOOT)
    with pytest.raises(TypeError, match="n_boot are set by the analysis"):
        analysis.summarize(n_boot=10)
    custom = analysis.summarize(threshold=0.7, n_perm=N_PERM)
    assert custom.health is analysis.health
    with pytest.raises(ValueError, match="n_boot must be a non-negative integer"):
        A.analyze_run(_Frames(sim), n_boot=-1)
    with pytest.raises(ValueError, match="confidence must be in"):
        A.analyze_run(_Frames(sim), confidence=1.5)


def test_draw_all_refuses_a_second_setting_beside_an_analysis(sim, tmp_path):
    run = _Frames(sim)
    analysis = A.analyze_run(run, n_boot=N_BOOT)
    with pytest.raises(ValueError, match="either analysis= or health="):
        plots.draw_all(run, tmp_path, analysis=analysis, n_boot=N_BOOT + 1)
    with pytest.raises(ValueError, match="either analysis= or health="):
        plots.draw_all(run, tmp_path, analysis=analysis, health=analysis.health)


def _judged_run(tmp_path, sim) -> Run:
    """A run folder holding the simulated judgments (one judge, two modes) and their candidates."""
    frame = sim.analysis
    cand = frame.drop_duplicates("candidate_id")
    candidates = pd.DataFrame({
        "item_id": cand["item_id"].to_numpy(), "candidate_id": cand["candidate_id"].to_numpy(),
        "source": cand["source"].to_numpy(), "sources": [[s] for s in cand["source"]],
        "authors": [["dataset"] for _ in range(len(cand))], "correct": cand["correct"].to_numpy(),
    })
    judgments = frame[["item_id", "candidate_id", "judge", "mode", "p_yes"]].assign(
        yes_no_mass=0.9, order=0, gold_shown=False, list_length=0)
    with RunStore.open(tmp_path / "run", {"test": "analysis"}) as store:
        store.write_chunk("candidates", "all", "0", candidates)
        store.write_chunk("judgments", "j=m", "0", judgments)
        return store.finalize()


def test_run_caches_one_analysis_per_setting(sim, tmp_path):
    run = _judged_run(tmp_path, sim)
    first = run.analysis(n_boot=N_BOOT)
    assert run.analysis(n_boot=N_BOOT) is first and run.analysis(n_boot=N_BOOT, seed=0) is first
    assert run.analysis(n_boot=N_BOOT, seed=1) is not first
    assert run.summary(n_boot=N_BOOT) is first.summary  # Run.summary is the analysis's summary
    assert run.analysis().n_boot == stats.DEFAULT_N_BOOT == A.DEFAULT_N_BOOT  # the documented default
    pd.testing.assert_frame_equal(first.frame, run.analysis_frame())
    assert run.refresh().analysis(n_boot=N_BOOT) is not first


def test_summary_of_a_run_without_judgments_is_refused(tmp_path):
    with RunStore.open(tmp_path / "run", {"test": "empty"}) as store:
        run = store.finalize()
    with pytest.raises(RunError, match="no judgments yet"):
        run.summary(n_boot=N_BOOT)
