"""selfbias.plots: every figure draws from simulated runs without warnings, saves non-empty files,
labels degenerate judges, and draw_all skips what a run cannot support with a reason."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from selfbias import plots  # noqa: E402
from selfbias.runs import Run, RunStore  # noqa: E402
from selfbias.stats import judge_health, likelihood_regression, simulate  # noqa: E402

N_BOOT = 100
MODES = ("isolated", "own_samples", "alternatives")


# ----------------------------------------------------------------------------- fixtures / builders


@pytest.fixture(scope="module")
def sim():
    return simulate.simulate_run(n_items=30, modes=MODES, seed=1)


def _two_judges(sim) -> pd.DataFrame:
    """The simulated frame for judge 'model-a' plus a second judge 'model-b' that authored the
    'other_model' answers (its P(Yes) from another simulation)."""
    other = simulate.simulate_run(n_items=sim.analysis["item_id"].nunique(), modes=MODES, seed=2).analysis
    a = sim.analysis.assign(judge="model-a")
    b = a.copy()
    b["judge"] = "model-b"
    b["p_yes"] = other["p_yes"].to_numpy()
    b["self_authored"] = b["source"].eq("other_model").to_numpy()
    return pd.concat([a, b], ignore_index=True)


def _degenerate(sim) -> pd.DataFrame:
    """A (nearly) constant-P(Yes) judge ('flat-judge') next to the healthy simulated one."""
    jitter = np.random.default_rng(0).normal(0.0, 0.002, len(sim.analysis))
    flat = sim.analysis.assign(judge="flat-judge", p_yes=0.62 + jitter)
    return pd.concat([sim.analysis, flat], ignore_index=True)


def _texts(fig: Figure) -> str:
    fig.canvas.draw()  # creates the tick labels
    return "\n".join(" ".join(t.get_text().split()) for t in fig.findobj(Text))


def _has_artists(fig: Figure) -> bool:
    visible = [ax for ax in fig.axes if ax.get_visible()]
    return bool(visible) and all(
        ax.lines or ax.collections or ax.patches or ax.images or ax.containers for ax in visible
    )


def _scores_and_candidates(analysis: pd.DataFrame, scorer: str = "sim-judge", rng_seed: int = 0):
    """scores / candidates tables consistent with an analysis frame (one judge)."""
    rng = np.random.default_rng(rng_seed)
    cand = analysis[analysis["mode"] == analysis["mode"].iloc[0]].drop_duplicates("candidate_id")
    authors = {"own_greedy": [scorer], "own_sample": [scorer], "other_model": ["model-b"]}
    candidates = pd.DataFrame({
        "item_id": cand["item_id"].to_numpy(),
        "candidate_id": cand["candidate_id"].to_numpy(),
        "text": [f"answer {k}" for k in range(len(cand))],
        "source": cand["source"].to_numpy(),
        "sources": [[s] for s in cand["source"]],
        "authors": [authors.get(s, ["dataset"]) for s in cand["source"]],
        "correct": cand["correct"].to_numpy(),
    })
    rows = []
    for r in cand.itertuples(index=False):
        n = int(r.n_tokens)
        w = rng.dirichlet(np.ones(n))
        lps = (w * r.sum_logprob).tolist()
        toks = ["Ġthe"] + [f"Ġw{i}" if i % 3 else "Ċ" for i in range(1, n)]
        rows.append({
            "item_id": r.item_id, "candidate_id": r.candidate_id, "scorer": scorer,
            "token_ids": list(range(n)), "tokens": toks[:n], "logprobs": lps,
            "is_argmax": [bool(i % 2) for i in range(n)], "sum_logprob": float(r.sum_logprob),
            "mean_logprob": float(r.mean_logprob), "n_tokens": n, "rank": 1, "truncated_tokens": 0,
        })
    return pd.DataFrame(rows), candidates


def _judgments(analysis: pd.DataFrame, pairwise: pd.DataFrame | None = None) -> pd.DataFrame:
    j = pd.DataFrame({
        "item_id": analysis["item_id"].to_numpy(), "candidate_id": analysis["candidate_id"].to_numpy(),
        "judge": analysis["judge"].to_numpy(), "mode": analysis["mode"].to_numpy(), "order": 0,
        "other_candidate_id": None, "p_yes": analysis["p_yes"].to_numpy(float),
        "yes_no_mass": analysis["yes_no_mass"].to_numpy(float), "prompt_hash": "h",
    })
    if pairwise is None:
        return j
    parts = [j]
    for order, col in ((0, "p_a_first"), (1, "p_a_second")):
        parts.append(pd.DataFrame({
            "item_id": pairwise["item_id"].to_numpy(), "candidate_id": pairwise["candidate_a"].to_numpy(),
            "judge": pairwise["judge"].to_numpy(), "mode": "pairwise", "order": order,
            "other_candidate_id": pairwise["candidate_b"].to_numpy(), "p_yes": pairwise[col].to_numpy(float),
            "yes_no_mass": 0.95, "prompt_hash": "h",
        }))
    return pd.concat(parts, ignore_index=True)


def _make_run(path, tables: dict[str, pd.DataFrame]) -> Run:
    store = RunStore.open(path, {"task": "sim", "models": ["sim-judge"]})
    for name, df in tables.items():
        store.write_chunk(name, "main", "0", df)
    run = store.finalize()
    store.close()
    return run


# ----------------------------------------------------------------------------- every figure draws


def _figures(sim) -> dict:
    a = sim.analysis
    scores, candidates = _scores_and_candidates(a)
    return {
        "likelihood_vs_confidence": lambda: plots.likelihood_vs_confidence(a, n_boot=N_BOOT),
        "misplaced_confidence": lambda: plots.misplaced_confidence(a, n_boot=N_BOOT),
        "reliability": lambda: plots.reliability(a, n_boot=N_BOOT),
        "ptrue_histograms": lambda: plots.ptrue_histograms(a, n_boot=N_BOOT),
        "token_trace": lambda: plots.token_trace(scores, candidates),
        "judge_author_heatmap": lambda: plots.judge_author_heatmap(_two_judges(sim), n_boot=N_BOOT),
        "winrate_by_perplexity": lambda: plots.winrate_by_perplexity(sim.pairwise, n_boot=N_BOOT),
        "regression_forest": lambda: plots.regression_forest(likelihood_regression(a)),
        "judge_health": lambda: plots.judge_health(a, n_boot=N_BOOT),
    }


@pytest.mark.parametrize("name", list(plots.FIGURES))
def test_every_figure_draws_and_saves(sim, name, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = _figures(sim)[name]()
        assert isinstance(fig, Figure)
        assert _has_artists(fig)
        assert isinstance(fig.selfbias_data, pd.DataFrame) and len(fig.selfbias_data)
        paths = plots.save(fig, tmp_path / name)
    assert fig.get_figwidth() in (pytest.approx(3.3), pytest.approx(6.9))
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text()]
    assert sizes and min(sizes) >= 7  # legible at column width
    assert [p.suffix for p in paths] == [".pdf", ".png"]
    for p in paths:
        assert p.exists() and p.stat().st_size > 1024
    assert paths[0].read_bytes()[:5] == b"%PDF-"


def test_style_fonts_and_widths(sim):
    fig = plots.misplaced_confidence(sim.analysis, n_boot=N_BOOT)
    assert fig.get_figwidth() == pytest.approx(6.9)
    fig.canvas.draw()
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_text()]
    assert sizes and min(sizes) >= 7
    one = plots.regression_forest(likelihood_regression(sim.analysis))
    assert one.get_figwidth() == pytest.approx(3.3)
    labels = _texts(plots.likelihood_vs_confidence(sim.analysis, n_boot=N_BOOT))
    assert "log-likelihood under judge (nats)" in labels and "P(Yes)" in labels


def test_save_formats_return_paths(sim, tmp_path):
    fig = plots.ptrue_histograms(sim.analysis, n_boot=N_BOOT)
    paths = plots.save(fig, tmp_path / "sub" / "hist", formats=("png",))
    assert paths == [tmp_path / "sub" / "hist.png"] and paths[0].stat().st_size > 1024


# ----------------------------------------------------------------------------- degenerate judges


def test_degenerate_judge_is_labelled_on_every_figure(sim):
    df = _degenerate(sim)
    health = judge_health(df, n_boot=N_BOOT)
    flat = health[health["judge"] == "flat-judge"]
    assert flat["degenerate"].all() and not health[health["judge"] == "sim-judge"]["degenerate"].any()
    flat_pairs = sim.pairwise.assign(judge="flat-judge", p_a_first=0.5, p_a_second=0.5, pref_a=0.5)
    coefs = likelihood_regression(df, judge="flat-judge").coefficients.assign(judge="flat-judge")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figures = {
            "likelihood_vs_confidence": plots.likelihood_vs_confidence(df, n_boot=N_BOOT),
            "misplaced_confidence": plots.misplaced_confidence(df, n_boot=N_BOOT),
            "reliability": plots.reliability(df, n_boot=N_BOOT),
            "ptrue_histograms": plots.ptrue_histograms(df, n_boot=N_BOOT),
            "judge_author_heatmap": plots.judge_author_heatmap(df, n_boot=N_BOOT),
            "judge_health": plots.judge_health(df, n_boot=N_BOOT),
            "winrate_by_perplexity": plots.winrate_by_perplexity(flat_pairs, n_boot=N_BOOT),
            "regression_forest": plots.regression_forest(coefs, health=health),
        }
        texts = {name: _texts(fig) for name, fig in figures.items()}
    for name, text in texts.items():
        assert "degenerate judge" in text, name
        assert "nearly constant" in text, name
    # the healthy judge alone carries no label
    healthy = plots.reliability(sim.analysis, n_boot=N_BOOT)
    assert "degenerate" not in _texts(healthy)
    # the reason reaches the data as well
    data = figures["reliability"].selfbias_data
    assert data.loc[data["judge"] == "flat-judge", "degenerate_reason"].notna().all()
    assert data.loc[data["judge"] == "sim-judge", "degenerate_reason"].isna().all()


# ----------------------------------------------------------------------------- contents


def test_misplaced_confidence_uses_stats_intervals(sim):
    fig = plots.misplaced_confidence(sim.analysis, n_boot=N_BOOT)
    data = fig.selfbias_data
    wrong = data[(data["correctness"] == "wrong") & (data["measure"] == "share_above_threshold")]
    assert set(wrong["mode"]) == set(MODES)
    assert {"own greedy", "distractor"} <= set(wrong["source_group"])
    assert (wrong["ci_low"] <= wrong["estimate"]).all() and (wrong["estimate"] <= wrong["ci_high"]).all()


def test_likelihood_bins_have_clustered_intervals(sim):
    data = plots.likelihood_vs_confidence(sim.analysis, n_boot=N_BOOT).selfbias_data
    assert set(data["mode"]) == set(MODES)
    ok = data.dropna(subset=["ci_low"])
    assert len(ok) and ((ok["ci_low"] <= ok["p_yes_mean"]) & (ok["p_yes_mean"] <= ok["ci_high"])).all()
    assert data["n"].sum() == len(sim.analysis)


def test_reliability_reports_ece_and_brier(sim):
    fig = plots.reliability(sim.analysis, n_bins=5, n_boot=N_BOOT)
    text = _texts(fig)
    assert "ECE" in text and "Brier" in text
    assert {"ece", "brier"} <= set(fig.selfbias_data.columns)
    assert len(fig.selfbias_data) == 5 * len(MODES)


def test_heatmap_derives_authors_or_uses_column(sim):
    df = _two_judges(sim)
    data = plots.judge_author_heatmap(df, n_boot=N_BOOT).selfbias_data
    assert set(data["judge"]) == {"model-a", "model-b"}
    assert {"self", "other model", "dataset"} <= set(data["author"])
    given = df.assign(author=np.where(df["self_authored"], "me", "them"))
    data = plots.judge_author_heatmap(given, n_boot=N_BOOT).selfbias_data
    assert set(data["author"]) == {"me", "them"}


def test_regression_forest_accepts_frames_with_judges(sim):
    df = _two_judges(sim)
    parts = [likelihood_regression(df, judge=j).coefficients.assign(judge=j) for j in ("model-a", "model-b")]
    fig = plots.regression_forest(pd.concat(parts, ignore_index=True))
    assert set(fig.selfbias_data["judge"]) == {"model-a", "model-b"}
    assert "Intercept" not in set(fig.selfbias_data["term"])
    with pytest.raises(TypeError):
        plots.regression_forest([1, 2])


def test_token_trace_picks_wrong_own_answer_that_outscores_reference(sim):
    scores, candidates = _scores_and_candidates(sim.analysis)
    fig = plots.token_trace(scores, candidates)
    data = fig.selfbias_data
    own = data[data["role"].str.startswith("own")]
    ref = data[data["role"] == "reference"]
    assert len(own) and len(ref)
    assert not own["correct"].iloc[0] and ref["correct"].iloc[0]
    assert own["sum_logprob"].iloc[0] > ref["sum_logprob"].iloc[0]
    assert np.isclose(own["logprob"].sum(), own["sum_logprob"].iloc[0])
    text = _texts(fig)
    assert "␣the" in text and "Ġ" not in text
    # an explicit item, and an impossible request
    item = candidates["item_id"].iloc[0]
    assert set(plots.token_trace(scores, candidates, item_id=item).selfbias_data["item_id"]) == {item}
    with pytest.raises(ValueError, match="no item"):
        plots.token_trace(scores, candidates, scorer="nobody")


def test_readable_tokens():
    assert plots.readable_tokens(["Ġthe", "Ċ", "Ġ", "âĢĻ", "x"]) == ["␣the", "↵", "␣", "’", "x"]
    assert plots.readable_tokens(["▁Paris", "<0x0A>", "\n", "▁"]) == ["␣Paris", "↵", "↵", "␣"]
    assert plots.readable_tokens(["plain", " space", "", None]) == ["plain", "␣space", "∅", "∅"]
    assert plots.readable_tokens(["中"]) == ["U+4E2D"]


def test_one_mode_one_judge_all_correct_edge_cases(sim):
    one = sim.analysis[sim.analysis["mode"] == "isolated"]
    fig = plots.reliability(one, n_boot=N_BOOT)
    assert fig.get_figwidth() == pytest.approx(3.3)
    right = one[one["correct"]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots.reliability(right, n_boot=N_BOOT)
        plots.ptrue_histograms(right, n_boot=N_BOOT)
        plots.judge_health(right, n_boot=N_BOOT)
    with pytest.raises(ValueError, match="no wrong answers"):
        plots.misplaced_confidence(right, n_boot=N_BOOT)
    with pytest.raises(ValueError, match="missing column"):
        plots.reliability(one.drop(columns=["p_yes"]))


# ----------------------------------------------------------------------------- draw_all


def test_draw_all_on_a_full_run(tmp_path):
    sim = simulate.simulate_run(n_items=20, modes=MODES, seed=3)
    analysis = sim.analysis
    scores, candidates = _scores_and_candidates(analysis)
    b_scores = scores.assign(scorer="model-b")
    pw = sim.pairwise
    second = analysis.assign(judge="model-b")
    tables = {
        "items": pd.DataFrame({"item_id": candidates["item_id"].unique(), "question": "What is it?"}),
        "candidates": candidates,
        "scores": pd.concat([scores, b_scores], ignore_index=True),
        "judgments": _judgments(pd.concat([analysis, second], ignore_index=True), pw),
    }
    run = _make_run(tmp_path / "run", tables)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = plots.draw_all(run, tmp_path / "figs", formats=("png",), n_boot=N_BOOT)
    assert list(table.columns) == ["figure", "status", "reason", "files"]
    assert list(table["figure"]) == list(plots.FIGURES)
    assert (table["status"] == "drawn").all(), table[["figure", "status", "reason"]].to_string()
    for files in table["files"]:
        exts = sorted(f.rsplit(".", 1)[1] for f in files)
        assert exts == ["csv", "png"]
    assert (tmp_path / "figs" / "reliability.csv").stat().st_size > 100


def test_draw_all_without_judgments_skips_with_reasons(sim, tmp_path):
    _, candidates = _scores_and_candidates(sim.analysis)
    run = _make_run(tmp_path / "run", {"candidates": candidates})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = plots.draw_all(run, tmp_path / "figs", formats=("png",), n_boot=N_BOOT)
    assert (table["status"] == "skipped").all(), table.to_string()
    assert (table["reason"].str.len() > 0).all()
    reasons = dict(zip(table["figure"], table["reason"]))
    assert reasons["judge_health"] == "no judgments in this run"
    assert reasons["winrate_by_perplexity"] == "no pairwise judgments in this run"
    assert reasons["token_trace"] == "no scores in this run"
    assert all(files == [] for files in table["files"])
    assert not any((tmp_path / "figs").iterdir())


def test_draw_all_partial_run(sim, tmp_path):
    """One judge, one mode, no scores, no pairwise: what can be drawn is drawn."""
    one = sim.analysis[sim.analysis["mode"] == "isolated"]
    _, candidates = _scores_and_candidates(one)
    run = _make_run(tmp_path / "run", {"candidates": candidates, "judgments": _judgments(one)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = plots.draw_all(run, tmp_path / "figs", formats=("png",), n_boot=N_BOOT)
    status = dict(zip(table["figure"], table["status"]))
    reasons = dict(zip(table["figure"], table["reason"]))
    for name in ("judge_health", "misplaced_confidence", "reliability", "ptrue_histograms"):
        assert status[name] == "drawn", (name, reasons[name])
    assert status["judge_author_heatmap"] == "skipped" and reasons["judge_author_heatmap"] == "only one judge model"
    assert status["likelihood_vs_confidence"] == "skipped" and "log-likelihood" in reasons["likelihood_vs_confidence"]
    assert status["regression_forest"] == "skipped"
    assert reasons["winrate_by_perplexity"] == "no pairwise judgments in this run"
    assert reasons["token_trace"] == "no scores in this run"
    assert "failed" not in set(table["status"])


# ----------------------------------------------------------------------------- the registry


def test_registry_lists_every_figure_once():
    names = [spec.name for spec in plots.REGISTRY]
    assert len(set(names)) == len(names) and tuple(names) == plots.FIGURES
    public = {n for n in plots.__all__ if callable(getattr(plots, n))}
    for spec in plots.REGISTRY:
        assert spec.name in public, spec.name  # every registered figure is a public function
        assert spec.description and "\n" not in spec.description
        assert spec.requires and all(table in {"analysis", "pairwise", "scores", "candidates"}
                                     for table, _ in spec.requires)


class _BrokenScores:
    """A run whose scores table cannot be read (the other tables are fine)."""

    def __init__(self, analysis):
        self._analysis = analysis
        self.judgments = _judgments(analysis)
        self.candidates = _scores_and_candidates(analysis)[1]
        self.items = pd.DataFrame()

    def analysis_frame(self):
        return self._analysis

    def pairwise_frame(self):
        return pd.DataFrame()

    @property
    def scores(self):
        raise RuntimeError("chunk scores/main/0 is corrupt")


def test_draw_all_uses_a_given_health_table_and_reports_unreadable_tables(sim, tmp_path):
    one = sim.analysis[sim.analysis["mode"] == "isolated"]
    health = judge_health(one, n_boot=N_BOOT).assign(degenerate=True, reasons="planted for the test")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = plots.draw_all(_BrokenScores(one), tmp_path, formats=("png",), n_boot=N_BOOT, health=health)
    reasons = dict(zip(table["figure"], table["reason"]))
    status = dict(zip(table["figure"], table["status"]))
    assert status["reliability"] == "drawn"
    data = pd.read_csv(tmp_path / "reliability.csv")
    assert (data["degenerate_reason"] == "planted for the test").all()  # the given table, not a new one
    assert status["token_trace"] == "skipped"
    assert reasons["token_trace"] == "scores table could not be read (RuntimeError: chunk scores/main/0 is corrupt)"
    assert reasons["winrate_by_perplexity"] == "no pairwise judgments in this run"
