"""Analysis 6: the thesis experiment (issue 23's list design) on the best bundled judge, Gemma 3 270M.

Does comparing its own wrong answer against outside answers lower a model's trust in it more than
comparing it against its own other answers? The list modes use the toolkit's defaults: the cells design
(k = 3 answers, a correct one listed with probability 1/2 by seed at a seeded position whatever the
judged answer's correctness, own and outside wrong answers matched in mean log-likelihood under the
judge) and few-shot judging (examples from held-out items of the same task). Prints, in this order:
judge health, the realised list lengths and the balance table, three real judge prompts, the thesis
cells with their interaction and plausibility, and writes the figure.
"""

from __future__ import annotations

import time
from pathlib import Path

from _common import FIGURES, SEED, SHARED_DATA, assemble_readme, parse_args

NAME = "06_thesis"
TITLE = "6. The thesis experiment (Gemma 3 270M, capitals and TruthfulQA mc1, cells design)"
JUDGE = "gemma3-270m"
MODES = ("isolated", "own_samples", "alternatives")
SAMPLES = 8  # own wrong answers to fill k = 3 (4 distinct wrong answers: one is set aside per judged candidate)
TEMPERATURE = 1.0  # at the default 0.7 Gemma repeats itself: too few distinct own wrong answers to fill a list
FEW_SHOT = 4  # the toolkit's default (8 doubles the judge's prompt length: too slow for 2 shared cores)
PLAUSIBILITY_TOLERANCE = 0.5  # nats: a larger own - outside gap in a cell is reported as a failed match
HEALTH_BAR = 0.65  # benchmarks/JUDGES.md: a judge passes when its isolated AUROC's lower bound exceeds this
TRUTHFULQA = SHARED_DATA / "truthfulqa" / "mc_task.json"
MIN_OPTIONS = 7  # TruthfulQA items with >= 7 mc1 options (>= 6 wrong): room for 4 distinct own wrong choices
TASKS = [("capitals", {"n": 60}), (str(TRUTHFULQA), {"n": 24, "fmt": "truthfulqa_mc1"})]
REDUCED_N = 6
THESIS_ESTIMANDS = ("p_yes_own_list_no_correct", "p_yes_outside_list_no_correct", "p_yes_shift_no_correct",
                    "p_yes_own_list_with_correct", "p_yes_outside_list_with_correct", "p_yes_shift_with_correct",
                    "p_yes_shift_interaction", "p_yes_shift", "slope_change_own_wrong")
THESIS_COLUMNS = ["task", "judge", "estimand", "estimate", "ci_low", "ci_high", "p_value", "n", "n_items",
                  "own_list_loglik", "outside_list_loglik", "method"]
BALANCE_COLUMNS = ["task", "judge", "mode", "feature", "mean_correct", "mean_wrong", "difference", "ci_low",
                   "ci_high", "p_value", "mde_80", "n_correct", "n_wrong", "n_items", "method"]
K_COLUMNS = ["task", "mode", "list_length", "judgments", "items"]
HEALTH_COLUMNS = ["task", "mode", "n", "yes_no_mass", "p_yes_mean", "auroc", "auroc_ci_low", "auroc_ci_high",
                  "passes_bar", "degenerate", "reasons"]


def md(df) -> str:
    """A DataFrame as a Markdown table (3 significant digits), as the run summaries write them."""
    from selfbias.stats._summary import _markdown_table

    return _markdown_table(df, digits=3)


def task_label(task: str) -> str:
    name = Path(task).name
    return "truthfulqa_mc1" if name == "mc_task.json" or name.startswith("truthfulqa_mc1") else Path(task).stem


def tasks_to_run(reduced: bool) -> list[tuple[str, dict]]:
    """The tasks, TruthfulQA only where ../shared/data holds it; the reduced run: capitals' first items."""
    tasks = [(t, o) for t, o in TASKS if t == "capitals" or Path(t).exists()]
    missing = [t for t, _ in TASKS if (t, _) not in tasks]
    for t in missing:
        print(f"skipped: {t} not found (this analysis reads the public question sets in ../shared/data)")
    if reduced:
        return [(tasks[0][0], {**tasks[0][1], "n": REDUCED_N})]
    return tasks


def many_options(path: Path, out: Path) -> Path:
    """TruthfulQA's mc_task.json less the items with fewer than MIN_OPTIONS mc1 options, in file order,
    written into the runs folder (a property of the item, not of any answer: the own list needs 4
    distinct wrong choices of the model, impossible on an item with 3 wrong options)."""
    import json

    records = [r for r in json.loads(path.read_text(encoding="utf-8")) if len(r["mc1_targets"]) >= MIN_OPTIONS]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(records), encoding="utf-8")
    return out


def run_task(task: str, options: dict, runs: Path, loaded: dict, reduced: bool):
    import selfbias

    folder = runs / ("reduced" if reduced else "full")
    if task_label(task) == "truthfulqa_mc1":
        task = str(many_options(Path(task), folder / f"truthfulqa_mc1_{MIN_OPTIONS}plus_options.json"))
    return selfbias.probe([JUDGE], task, out=folder / f"{NAME}-{task_label(task)}", judge_modes=MODES,
                          loaded=loaded, samples=SAMPLES, temperature=TEMPERATURE, few_shot=FEW_SHOT, seed=SEED,
                          progress=not reduced, **options)


def health_table(frame):
    """Judge health per task and mode (stats.judge_health) and the judge table's bar (isolated AUROC)."""
    import pandas as pd

    from selfbias import stats

    rows = []
    for task, g in frame.groupby("task", sort=False):
        h = stats.judge_health(g, by=("judge", "mode"))
        h.insert(0, "task", task)
        rows.append(h)
    h = pd.concat(rows, ignore_index=True)
    h["passes_bar"] = (h["mode"] == "isolated") & (h["auroc_ci_low"] > HEALTH_BAR)
    h["reasons"] = h["reasons"].map(lambda r: "; ".join(r) if isinstance(r, (list, tuple)) else str(r or ""))
    return h[HEALTH_COLUMNS]


def k_table(frame):
    lists = frame[frame["mode"].isin(["own_samples", "alternatives"])]
    return (lists.groupby(["task", "mode", "list_length"], sort=False)
            .agg(judgments=("candidate_id", "size"), items=("item_id", "nunique")).reset_index()[K_COLUMNS])


def design_notes(runs) -> list[str]:
    """What the design gave per task (the manifest's list_designs: lengths, cells, skipped, plausibility gap)."""
    out = []
    for label, run in runs:
        for judge, d in (run.manifest.get("judge", {}).get("list_designs") or {}).items():
            gap = d.get("loglik_own_minus_outside") or {}
            mean_abs = gap.get("mean_abs")
            out.append(f"{label}: {judge}: items skipped in every cell {d.get('items_skipped')}, candidates whose cell "
                       f"could not be filled {d.get('candidates_unfilled')}, cells {d.get('cells')}, "
                       f"non-answers left out of the pools {d.get('non_answers_dropped')}, "
                       f"own - outside mean log-likelihood |gap| mean "
                       f"{'n/a' if mean_abs is None else f'{mean_abs:.3f}'} nats over {gap.get('n')} lists")
    return out


def example_prompts(run, lm, frame) -> list[tuple[str, str]]:
    """Three real prompts (isolated, own list, outside list) of one own wrong answer judged in both lists."""
    from selfbias.judge import judge_prompts

    both = frame[frame["mode"].isin(["own_samples", "alternatives"]) & frame["self_authored"].astype(bool)
                 & (frame["correct"] == False)]  # noqa: E712 (nullable booleans)
    counts = both.groupby(["item_id", "candidate_id"]).size()
    paired = counts[counts == 2]
    if paired.empty:
        return []
    # prefer one whose lists hold a correct answer (the cell the thesis turns on)
    has = both.set_index(["item_id", "candidate_id"])["list_has_correct"].groupby(level=[0, 1]).all()
    pick = next((key for key in paired.index if has.get(key, False)), paired.index[0])
    item_id, cand = pick
    out = []
    for mode in MODES:
        p = judge_prompts(run, lm, mode, items=[item_id], judge_name=JUDGE)
        row = p[p["candidate_id"] == cand]
        if len(row):
            out.append((mode, str(row["prompt"].iloc[0])))
    return out


def thesis_table(frame):
    import pandas as pd

    from selfbias import stats

    rows, sentences, notes = [], [], []
    for task, g in frame.groupby("task", sort=False):
        t = stats.thesis_effect(g.drop(columns="task"))
        tab = t.table.copy()
        tab.insert(0, "task", task)
        rows.append(tab)
        sentences += [f"{task}: {s}" for s in t.sentences]
        notes += [f"{task}: {n}" for n in t.notes]
    table = pd.concat(rows, ignore_index=True)
    table = table[table["estimand"].isin(THESIS_ESTIMANDS)][THESIS_COLUMNS]
    return table, sentences, notes


def verdict(table, health) -> list[str]:
    """The thesis per task: undecided where the judge fails the health bar; else which way the two shifts and
    the interaction point (the thesis predicts all negative); with each cell's plausibility gap where the
    own and outside lists differ by more than PLAUSIBILITY_TOLERANCE nats."""
    out = []
    for task, g in table.groupby("task", sort=False):
        by = g.set_index("estimand")
        parts, signs = [], []
        for est, words in (("p_yes_shift_no_correct", "outside vs own list, no correct answer listed"),
                           ("p_yes_shift_with_correct", "outside vs own list, a correct answer listed"),
                           ("p_yes_shift_interaction", "interaction (with minus without)")):
            if est not in by.index or not _finite(by.loc[est, "estimate"]):
                parts.append(f"{words}: not estimated")
                continue
            r = by.loc[est]
            if r["ci_high"] < 0:
                sign, what = -1, "lower"
            elif r["ci_low"] > 0:
                sign, what = 1, "higher"
            else:
                sign, what = 0, "no clear change"
            signs.append(sign)
            parts.append(f"{words}: {r['estimate']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] ({what}, n={int(r['n'])})")
        if any(s < 0 for s in signs) and not any(s > 0 for s in signs):
            call = "in the thesis's direction where an interval excludes 0"
        elif any(s > 0 for s in signs) and not any(s < 0 for s in signs):
            call = "against the thesis where an interval excludes 0"
        elif any(s != 0 for s in signs):
            call = "mixed"
        else:
            call = "undecided (every interval includes 0)"
        iso = health[(health["task"] == task) & (health["mode"] == "isolated")]
        passes = bool(iso["passes_bar"].any())
        if passes:
            head = f"{task}: on {JUDGE} the estimates are {call}"
        else:
            auroc = (f" (isolated AUROC {iso['auroc'].iloc[0]:.2f} [{iso['auroc_ci_low'].iloc[0]:.2f}, "
                     f"{iso['auroc_ci_high'].iloc[0]:.2f}], bar: lower bound > {HEALTH_BAR})" if len(iso) else "")
            head = (f"{task}: the thesis is undecided on {JUDGE}: the judge fails the health bar{auroc}, so its "
                    f"P(Yes) barely reads the answer; the estimates are {call}")
        gaps = []
        for cell, words in (("no_correct", "without"), ("with_correct", "with")):
            est = f"p_yes_shift_{cell}"
            if est in by.index and _finite(by.loc[est, "own_list_loglik"]) and _finite(by.loc[est, "outside_list_loglik"]):
                gap = by.loc[est, "own_list_loglik"] - by.loc[est, "outside_list_loglik"]
                if abs(gap) > PLAUSIBILITY_TOLERANCE:
                    gaps.append(f"{words} a correct answer listed the own lists are {abs(gap):.1f} nats "
                                f"{'likelier' if gap > 0 else 'less likely'} than the outside lists (mean log-likelihood "
                                f"of the listed answers under the judge), so that contrast mixes authorship with "
                                "plausibility")
        out.append(head + ". " + "; ".join(parts) + "." + ("" if not gaps else " Matching: " + "; ".join(gaps) + "."))
    return out


def _finite(x) -> bool:
    import math

    return x is not None and math.isfinite(float(x))


def draw_figure(table, path: Path):
    """Per task: mean P(Yes) on own wrong answers after the own and the outside list, without and with a
    correct answer listed (95% item-clustered intervals), with each cell's list plausibility."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(table["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks), 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        by = table[table["task"] == task].set_index("estimand")
        for j, (side, colour) in enumerate((("own_list", "#4c72b0"), ("outside_list", "#dd8452"))):
            xs, ys, lo, hi = [], [], [], []
            for i, cell in enumerate(("no_correct", "with_correct")):
                est = f"p_yes_{side}_{cell}"
                if est not in by.index or not _finite(by.loc[est, "estimate"]):
                    continue
                r = by.loc[est]
                xs.append(i + (j - 0.5) * 0.25)
                ys.append(r["estimate"])
                lo.append(r["estimate"] - r["ci_low"] if _finite(r["ci_low"]) else 0)
                hi.append(r["ci_high"] - r["estimate"] if _finite(r["ci_high"]) else 0)
                ll = r[f"{'own' if side == 'own_list' else 'outside'}_list_loglik"]
                if _finite(ll):
                    ax.annotate(f"ll {ll:.1f}", (xs[-1], ys[-1]), textcoords="offset points", xytext=(4, -12),
                                fontsize=7, color=colour)
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", color=colour, capsize=4,
                        label="own list" if side == "own_list" else "outside list")
        inter = by.loc["p_yes_shift_interaction"] if "p_yes_shift_interaction" in by.index else None
        sub = ""
        if inter is not None and _finite(inter["estimate"]):
            sub = f"\ninteraction {inter['estimate']:+.3f} [{inter['ci_low']:+.3f}, {inter['ci_high']:+.3f}]"
        ax.set_title(f"{task}: own wrong answers{sub}", fontsize=9)
        ax.set_xticks([0, 1], ["no correct answer listed", "a correct answer listed"])
        ax.set_xlim(-0.6, 1.6)
        ax.set_ylabel("mean P(Yes) (95% item-clustered CI)")
        ax.legend(fontsize=8)
    fig.suptitle(f"Judge {JUDGE}, {FEW_SHOT} few-shot examples; ll = mean log-likelihood of the listed answers "
                 "under the judge", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    import pandas as pd

    import selfbias
    from selfbias import stats

    args = parse_args(__doc__)
    out = args.out or FIGURES / NAME
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    lm = selfbias.load_model(JUDGE)
    loaded = {JUDGE: lm}
    runs, frames = [], []
    for task, options in tasks_to_run(args.reduced):
        run = run_task(task, options, args.runs, loaded, args.reduced)
        label = task_label(task)
        runs.append((label, run))
        frames.append(run.analysis_frame().assign(task=label))
    frame = pd.concat(frames, ignore_index=True)
    frame.to_csv(out / "analysis_frame.csv", index=False, float_format="%.6g")
    lines: list[str] = []

    def emit(text: str = "") -> None:
        print(text)
        lines.append(text)

    health = health_table(frame)
    health.to_csv(out / "judge_health.csv", index=False, float_format="%.6g")
    emit(f"# {TITLE}")
    emit()
    emit("## Judge health")
    emit()
    for task, g in health[health["mode"] == "isolated"].groupby("task", sort=False):
        r = g.iloc[0]
        emit(f"- {task}: judge {JUDGE} {'PASSES' if r['passes_bar'] else 'FAILS'} the health bar (isolated AUROC "
             f"{r['auroc']:.2f} [{r['auroc_ci_low']:.2f}, {r['auroc_ci_high']:.2f}], bar: lower bound > "
             f"{HEALTH_BAR}, benchmarks/JUDGES.md); stats.judge_health "
             f"{'flags it degenerate: ' + r['reasons'] if r['degenerate'] else 'passes it'}")
    emit()
    emit(md(health))
    emit()
    emit("## Realised list lengths (k) and the design")
    emit()
    k = k_table(frame)
    k.to_csv(out / "list_lengths.csv", index=False)
    emit(md(k))
    emit()
    for note in design_notes(runs):
        emit(f"- {note}")
    emit()
    emit("## List balance: every list feature by the judged answer's correctness (stats.list_balance)")
    emit()
    balance = []
    for task, g in frame.groupby("task", sort=False):
        b = stats.list_balance(g)
        b.insert(0, "task", task)
        balance.append(b)
    bal = pd.concat(balance, ignore_index=True)[BALANCE_COLUMNS]
    bal.to_csv(out / "list_balance.csv", index=False, float_format="%.6g")
    emit(md(bal.drop(columns="method")))
    emit()
    tests = sorted(set(bal["method"].dropna()) - {"constant: no variation"})
    emit(f"Test: {'; '.join(tests) or 'none (every feature constant)'}; a feature that never varies is reported as "
         "difference 0, p = 1. mde_80: the difference detectable with 80% power at the 5% level.")
    emit()
    emit("## Three real judge prompts (one own wrong answer: alone, after its own list, after the outside list)")
    emit()
    label, first = runs[0]
    prompts = example_prompts(first, lm, frame[frame["task"] == label].drop(columns="task"))
    text = []
    for mode, prompt in prompts:
        text += [f"### {label}, mode {mode}", "", "```", prompt, "```", ""]
    (out / "prompts.md").write_text("\n".join(text))
    for t in text:
        emit(t)
    emit("## The thesis: on the judge's own wrong answers, outside list vs own list, by cell")
    emit()
    table, sentences, notes = thesis_table(frame)
    table.to_csv(out / "thesis.csv", index=False, float_format="%.6g")
    emit(md(table.drop(columns="method")))
    emit()
    emit("Cells: mean P(Yes) with item-clustered t intervals; own_list_loglik / outside_list_loglik: mean "
         "log-likelihood under the judge of the listed answers (the plausibility the lists were matched on).")
    emit()
    for s in verdict(table, health):
        emit(f"- {s}")
    for s in sentences:
        emit(f"- {s}")
    for n in notes:
        emit(f"- note: {n}")
    emit()
    draw_figure(table, out / "thesis_cells.png")
    runtime = time.perf_counter() - t0
    emit(f"Figure: [thesis_cells]({NAME}/thesis_cells.png). Runtime of this invocation {runtime:.0f} s on 2 shared "
         f"CPU cores{' (reduced)' if args.reduced else ''} (finished runs under --runs are reused, not recomputed); "
         f"model time recorded in the runs: {_recorded_seconds(runs)}; script `python analyses/{NAME}.py` (seed {SEED}), judge "
         f"{JUDGE}, {SAMPLES} samples at temperature {TEMPERATURE}, {FEW_SHOT} few-shot examples, modes {', '.join(MODES)}, tasks "
         + ", ".join(f"{task_label(t)} (n={o['n']}" + (f", items with >= {MIN_OPTIONS} options" if "fmt" in o else "") + ")"
                   for t, o in tasks_to_run(args.reduced)) + ".")
    (out / "RESULTS.md").write_text("\n".join(lines) + "\n")
    if not args.reduced and args.out is None:
        (out / "SECTION.md").write_text(_section(lines))
        assemble_readme()


def _recorded_seconds(runs) -> str:
    """Generation and scoring seconds the runs' manifests recorded (the judge's are not recorded)."""
    parts = []
    for label, run in runs:
        timing = run.manifest.get("timing") or {}
        parts.append(f"{label}: " + ", ".join(f"{k} {v:.0f} s" for k, v in timing.items() if k != "load"))
    return "; ".join(parts)


def _section(lines: list[str]) -> str:
    """The README section: the title, the explanation and what was printed (minus the prompts)."""
    body = []
    skip = False
    for line in lines[1:]:
        if line.startswith("## Three real judge prompts"):
            skip = True
            body += ["Three real prompts: [prompts.md](06_thesis/prompts.md).", ""]
            continue
        if skip and line.startswith("## "):
            skip = False
        if not skip:
            body.append(line.replace("## ", "### ", 1) if line.startswith("## ") else line)
    return "\n".join([f"## {TITLE}", "", __doc__.split("\n", 2)[2].strip(), "", *body, ""])


if __name__ == "__main__":
    main()
