"""selfbias.plots at paper quality: every registered figure, drawn through the registry from
simulated runs (with a degenerate judge, so the warning path is drawn too), has no two text boxes
that overlap and no text outside the canvas. The checker itself is shown to flag both faults."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from selfbias import plots  # noqa: E402
from selfbias.stats import simulate  # noqa: E402

N_BOOT = 50
TOLERANCE_PX = 0.5  # at 100 dpi (scaled with the resolution); boxes that merely touch do not count
PNG_DPI = 300  # the resolution plots.save writes PNGs at


# ----------------------------------------------------------------------------- the checker


def _hidden_tick_labels(fig: Figure) -> set[int]:
    """Tick labels that are not drawn: their tick lies outside the axis' view interval."""
    hidden = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            span = max(hi - lo, 1e-12)
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not (lo - 1e-9 * span <= tick.get_loc() <= hi + 1e-9 * span):
                    hidden.update((id(tick.label1), id(tick.label2)))
    return hidden


def _visible(t: Text) -> bool:
    return t.get_visible() and (t.axes is None or t.axes.get_visible())


def text_boxes(fig: Figure) -> list[tuple[str, object]]:
    """(text, window extent) of every drawn, non-empty text of ``fig`` after an Agg draw: titles,
    axis and tick labels, legend entries and titles, annotations, suptitles and free texts."""
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    hidden = _hidden_tick_labels(fig)
    boxes = []
    for t in fig.findobj(Text):
        if id(t) in hidden or not t.get_text().strip() or not _visible(t):
            continue
        boxes.append((t.get_text(), t.get_window_extent(renderer)))
    return boxes


def layout_faults(fig: Figure, dpis=(100, PNG_DPI)) -> list[str]:
    """Overlapping pairs of text boxes and texts leaving the canvas, in words (empty: none).

    Checked at screen resolution and at the PNG's: font hinting makes text a few per cent wider
    at one than at the other (the committed likelihood_vs_confidence overlapped at 300 dpi only)."""
    faults = []
    original = fig.dpi
    try:
        for dpi in dpis:
            fig.set_dpi(dpi)
            faults += [f"{f} [{dpi} dpi]" for f in _faults_at(fig, TOLERANCE_PX * dpi / 100)]
    finally:
        fig.set_dpi(original)
    return faults


def _faults_at(fig: Figure, tolerance: float) -> list[str]:
    boxes = text_boxes(fig)
    width, height = fig.bbox.width, fig.bbox.height
    faults = []
    for text, b in boxes:
        if b.x0 < -tolerance or b.y0 < -tolerance or b.x1 > width + tolerance or b.y1 > height + tolerance:
            faults.append(f"off the canvas: {text!r} at {tuple(round(v) for v in b.extents)} "
                          f"(canvas {width:.0f} x {height:.0f})")
    for i, (ta, a) in enumerate(boxes):
        for tb, b in boxes[i + 1:]:
            dx = min(a.x1, b.x1) - max(a.x0, b.x0)
            dy = min(a.y1, b.y1) - max(a.y0, b.y0)
            if dx > tolerance and dy > tolerance:
                faults.append(f"overlap: {ta!r} and {tb!r}")
    return faults


def test_checker_flags_overlap_and_text_off_the_canvas():
    fig = Figure(figsize=(3.3, 2.0), layout="constrained")
    ax = fig.subplots()
    ax.set_title("a title")
    assert layout_faults(fig) == []
    ax.text(0.5, 0.5, "first label", transform=ax.transAxes)
    ax.text(0.52, 0.5, "second label", transform=ax.transAxes)
    faults = layout_faults(fig)
    assert any("overlap" in f and "first label" in f and "second label" in f for f in faults), faults
    fig = Figure(figsize=(3.3, 2.0))
    fig.text(0.9, 0.5, "this sentence runs off the right edge")
    assert any("off the canvas" in f for f in layout_faults(fig))


def test_checker_flags_neighbouring_x_labels_that_touch():
    """The fault of the committed likelihood_vs_confidence: long x labels on narrow panels; at
    2.4 in high they overlap at 300 dpi only (font hinting), so both resolutions are checked."""
    fig = Figure(figsize=(6.9, 2.4), layout="constrained")
    axes = fig.subplots(1, 4, sharey=True)
    for ax in axes:
        ax.set_xlim(-70, 2)
        ax.set_xlabel("log-likelihood under judge (nats)")
    axes[0].set_ylabel("P(Yes)")
    assert any("overlap" in f and "300 dpi" in f for f in layout_faults(fig))


def test_checker_ignores_tick_labels_outside_the_view():
    fig = Figure(figsize=(3.3, 2.0), layout="constrained")
    ax = fig.subplots()
    ax.set_xticks([0, 1, 2, 100])
    ax.set_xticklabels(["0", "1", "2", "far away, overlapping nothing drawn"])
    ax.set_xlim(0, 2)
    assert layout_faults(fig) == []


# ----------------------------------------------------------------------------- simulated runs


def _scores_and_candidates(analysis: pd.DataFrame, scorers) -> tuple[pd.DataFrame, pd.DataFrame]:
    """scores (per-token log-probabilities summing to sum_logprob) and candidates of a frame."""
    rng = np.random.default_rng(0)
    cand = analysis[analysis["mode"] == analysis["mode"].iloc[0]].drop_duplicates("candidate_id")
    authors = {"own_greedy": [scorers[0]], "own_sample": [scorers[0]], "other_model": [scorers[-1]]}
    candidates = pd.DataFrame({
        "item_id": cand["item_id"].to_numpy(), "candidate_id": cand["candidate_id"].to_numpy(),
        "text": [f"answer number {k} with a few words" for k in range(len(cand))],
        "source": cand["source"].to_numpy(), "sources": [[s] for s in cand["source"]],
        "authors": [authors.get(s, ["dataset"]) for s in cand["source"]], "correct": cand["correct"].to_numpy(),
    })
    rows = []
    for scorer in scorers:
        for r in cand.itertuples(index=False):
            n = int(r.n_tokens)
            lps = (rng.dirichlet(np.ones(n)) * r.sum_logprob).tolist()
            toks = ["Ġthe"] + [f"Ġword{i}" if i % 3 else "Ċ" for i in range(1, n)]
            rows.append({"item_id": r.item_id, "candidate_id": r.candidate_id, "scorer": scorer,
                         "tokens": toks[:n], "logprobs": lps, "is_argmax": [bool(i % 2) for i in range(n)],
                         "sum_logprob": float(r.sum_logprob), "mean_logprob": float(r.mean_logprob),
                         "n_tokens": n})
    return pd.DataFrame(rows), candidates


def _tables(modes, judges, *, degenerate: str | None, n_items: int = 24) -> SimpleNamespace:
    """A run-like object (what draw_all reads) of simulated judges; ``degenerate`` names a judge
    whose P(Yes) is nearly constant and whose pairwise verdicts are coin flips."""
    simulated = tuple(m for m in modes if m != "critique")  # simulate has no critique mode
    sims = [simulate.simulate_run(n_items=n_items, modes=simulated, seed=k) for k in range(len(judges))]
    for k, sim in enumerate(sims):
        if "critique" in modes:  # critique: the isolated rows with another judge's P(Yes)
            extra = simulate.simulate_run(n_items=n_items, modes=simulated, seed=10 + k).analysis
            critique = sim.analysis[sim.analysis["mode"] == "isolated"].assign(mode="critique")
            critique["p_yes"] = extra.loc[extra["mode"] == "isolated", "p_yes"].to_numpy()
            sims[k] = SimpleNamespace(analysis=pd.concat([sim.analysis, critique], ignore_index=True),
                                      pairwise=sim.pairwise)
    base = sims[0].analysis
    frames, pairs = [], []
    for k, (judge, sim) in enumerate(zip(judges, sims)):
        frame = base.assign(judge=judge, p_yes=sim.analysis["p_yes"].to_numpy(),
                            self_authored=base["self_authored"] if k == 0 else base["source"].eq("other_model"))
        pw = sims[0].pairwise.assign(judge=judge)
        if judge == degenerate:
            jitter = np.random.default_rng(k).normal(0.0, 0.002, len(frame))
            frame = frame.assign(p_yes=0.62 + jitter)
            pw = pw.assign(p_a_first=0.5, p_a_second=0.5, pref_a=0.5)
        frames.append(frame)
        pairs.append(pw)
    analysis = pd.concat(frames, ignore_index=True)
    pairwise = pd.concat(pairs, ignore_index=True)
    scores, candidates = _scores_and_candidates(base, judges)
    items = pd.DataFrame({"item_id": candidates["item_id"].unique(),
                          "question": "What is the capital city of the country that this question names?"})
    judgments = analysis[["item_id", "candidate_id", "judge", "mode", "p_yes"]]
    return SimpleNamespace(analysis_frame=lambda: analysis, pairwise_frame=lambda: pairwise, scores=scores,
                           candidates=candidates, items=items, judgments=judgments)


# the model names of a real run (long, with an org prefix)
SMOL, GEMMA = "HuggingFaceTB/SmolLM2-135M-Instruct", "google/gemma-3-270m"
SCENARIOS = {
    # four modes side by side on the page width: the committed likelihood_vs_confidence's x labels
    "four_modes_one_degenerate_judge": (("isolated", "own_samples", "alternatives", "critique"), (SMOL,), SMOL),
    "two_judges_one_degenerate": (("isolated",), (GEMMA, SMOL), GEMMA),
    "two_judges_two_modes_healthy": (("isolated", "alternatives"), (GEMMA, SMOL), None),
}


@pytest.fixture(scope="module", params=list(SCENARIOS))
def drawn(request):
    """Every registered figure of one scenario, drawn through the registry's specs."""
    modes, judges, degenerate = SCENARIOS[request.param]
    tables = plots.RunTables(_tables(modes, judges, degenerate=degenerate), n_boot=N_BOOT)
    figures = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for spec in plots.REGISTRY:
            assert spec.unmet(tables) is None or spec.name == "judge_author_heatmap", spec.name
            if spec.unmet(tables):
                continue
            out = spec.draw(tables)
            figures[spec.name] = out[0] if isinstance(out, tuple) else out
    return request.param, degenerate, figures


@pytest.mark.parametrize("name", list(plots.FIGURES))
def test_no_text_overlaps_or_leaves_the_canvas(drawn, name):
    scenario, degenerate, figures = drawn
    if name not in figures:
        pytest.skip(f"{name} needs two judges ({scenario})")
    faults = layout_faults(figures[name])
    assert faults == [], f"{name} ({scenario}):\n" + "\n".join(faults)


def test_degenerate_warnings_are_shown_in_full(drawn):
    """Every figure of a degenerate judge names it, and no warning is cut with an ellipsis."""
    scenario, degenerate, figures = drawn
    for name, fig in figures.items():
        texts = [t for t, _ in text_boxes(fig)]
        joined = " ".join(" ".join(t.split()) for t in texts)
        if degenerate and name != "token_trace":
            assert "degenerate judge" in joined, (scenario, name)
            assert "nearly constant" in joined, (scenario, name)
        warnings_ = [t for t in texts if "degenerate" in t or "nearly constant" in t]
        assert not any("…" in t for t in warnings_), (scenario, name, warnings_)


def test_every_figure_csv_marks_the_judge_that_fails_health(drawn):
    """Issue 27: every interval or p-value a figure's CSV holds carries ``judge_passes_health``,
    False exactly on the rows of the degenerate judge (as in every table of ``summarize``)."""
    scenario, degenerate, figures = drawn
    for name, fig in figures.items():
        data = getattr(fig, "selfbias_data", None)
        if data is None or not ({"ci_low", "ci_high", "p_value", "auroc_ci_low", "share"} & set(data.columns)):
            continue
        failing = data["judge"].astype(str) == degenerate if degenerate else np.zeros(len(data), bool)
        if name == "judge_health":  # the health table marks itself, as summarize's health table does
            assert (data["degenerate"].astype(bool) == failing).all(), scenario
            continue
        assert "judge_passes_health" in data.columns, (scenario, name)
        assert (~data["judge_passes_health"].astype(bool) == failing).all(), (scenario, name)
