"""Every installed model as a judge: how well its P(Yes) separates correct from wrong answers.

A judge whose AUROC is 0.5 turns every downstream estimate into noise, so this table comes before any
analysis of verdicts. For each installed model (embedded defaults and optional judges, `selfbias
models`), task and few-shot setting, the model answers ``--n`` held-out items (greedy), every candidate
(its own answer, the reference, perturbations) is judged in isolation, and the table reports:

- ``auroc``: AUROC of P(Yes), correct vs wrong candidates, with an item-clustered bootstrap interval
  (``selfbias.stats.discrimination``; Kadavath et al. 2022 report the same for P(True));
- ``auroc_gold_vs_perturbed``: the same on the reference against the perturbations only (answers of the
  same form, so the judge cannot tell them apart by their look);
- ``yes_no_mass``: mean next-token mass on the yes/no spellings (is the judge being asked the question?);
- ``passes``: the lower bound of ``auroc`` above 0.65 (the README's health threshold for a judge whose
  verdicts are worth analysing);
- ``cpu_s_per_judgment``: process CPU seconds of the judge stage over the judgments made.

Few-shot examples come from items of the same task disjoint from the judged ones (their references as
correct answers, perturbations as wrong ones, alternating), written as a few-shot file::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/judge_table.py --n 100 --shots 0 8
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import pandas as pd

import selfbias
from selfbias import stats
from selfbias.models import bundled_status
from selfbias.tasks import Task, load_task, numeric_perturbations

HERE = Path(__file__).resolve().parent
PASS_LOWER = 0.65


def few_shot_file(task: Task, path: Path, seed: int = 0) -> Path:
    """Grading examples from ``task``'s items (disjoint from the judged ones): reference = correct,
    a perturbation (numeric offset, or another example item's reference) = wrong, alternating."""
    rng = random.Random(seed)
    rows = []
    for i, item in enumerate(task.items):
        correct = i % 2 == 0
        if correct:
            answer = item.references[0]
        elif item.answer_type == "number":
            answer = numeric_perturbations(item.references[0], 1, seed=seed + i)[0]
        else:
            others = [o.references[0] for o in task.items if o.id != item.id]
            answer = rng.choice(others)
        rows.append({"question": item.question, "answer": answer, "correct": correct})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def measure(model: str, task_name: str, n: int, shots: list[int], runs: Path, seed: int) -> list[dict]:
    """One model on one task: probe once (greedy answers, scores), then the isolated judge per setting."""
    full = load_task(task_name, n=n + max(shots + [0]), seed=seed)
    judged = Task(name=full.name, items=full.items[:n], checker=full.checker, source=full.source)
    run = selfbias.probe(model, judged, out=runs / f"{model}-{task_name}", samples=0, judge_modes=(),
                         seed=seed, progress=False)
    rows = []
    for k in shots:
        kwargs = {}
        if k:
            examples = Task(name=full.name, items=full.items[n:n + k], checker=full.checker, source=full.source)
            kwargs["few_shot_file"] = few_shot_file(examples, runs / f"{model}-{task_name}-shots{k}.jsonl", seed)
        t0, c0 = time.perf_counter(), time.process_time()
        run = selfbias.judge(run, modes=("isolated",), overwrite=True, progress=False, **kwargs)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        frame = run.analysis_frame()
        frame = frame[(frame["judge"] == model) & (frame["mode"] == "isolated")]
        auroc = stats.discrimination(frame, by=("judge",), seed=seed).iloc[0]
        gold = frame[frame["source"].isin(["reference", "perturbation"])]
        gold_auroc = stats.discrimination(gold, by=("judge",), seed=seed).iloc[0]
        rows.append({
            "model": model, "task": task_name, "shots": k, "items": int(frame["item_id"].nunique()),
            "judgments": len(frame), "accuracy": float(run.generations.query("kind == 'greedy'")["correct"].mean()),
            "auroc": auroc["estimate"], "auroc_low": auroc["ci_low"], "auroc_high": auroc["ci_high"],
            "auroc_gold_vs_perturbed": gold_auroc["estimate"], "gold_low": gold_auroc["ci_low"],
            "gold_high": gold_auroc["ci_high"], "yes_no_mass": float(frame["yes_no_mass"].mean()),
            "mean_p_yes": float(frame["p_yes"].mean()), "passes": bool(auroc["ci_low"] > PASS_LOWER),
            "cpu_s_per_judgment": cpu / max(len(frame), 1), "wall_s": wall,
        })
        print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(table: pd.DataFrame) -> str:
    """The committed table: one row per model x task x shots, intervals in brackets."""
    lines = ["| model | task | shots | items | judgments | greedy accuracy | AUROC [95% CI] | gold vs perturbed "
             "[95% CI] | yes/no mass | mean P(Yes) | passes (lower > 0.65) | CPU s / judgment |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples(index=False):
        lines.append(f"| {r.model} | {r.task} | {r.shots} | {r.items} | {r.judgments} | {r.accuracy:.2f} | "
                     f"{r.auroc:.2f} [{r.auroc_low:.2f}, {r.auroc_high:.2f}] | {r.auroc_gold_vs_perturbed:.2f} "
                     f"[{r.gold_low:.2f}, {r.gold_high:.2f}] | {r.yes_no_mass:.2f} | {r.mean_p_yes:.2f} | "
                     f"{'yes' if r.passes else 'no'} | {r.cpu_s_per_judgment:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    installed = [r["alias"] for r in bundled_status() if r["installed"]]
    parser.add_argument("--models", nargs="+", default=installed)
    parser.add_argument("--tasks", nargs="+", default=["arithmetic", "capitals"])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--shots", type=int, nargs="+", default=[0, 8])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=Path, default=HERE.parent / "runs" / "judge_table")
    parser.add_argument("--out", type=Path, default=HERE / "JUDGES.md")
    args = parser.parse_args()
    rows = []
    for model in args.models:
        for task in args.tasks:
            rows += measure(model, task, args.n, args.shots, args.runs, args.seed)
    table = pd.DataFrame(rows)
    table.to_csv(args.out.with_suffix(".csv"), index=False)
    args.out.write_text("# Judges measured\n\nMade by `benchmarks/judge_table.py " + " ".join(
        f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in
        (("n", args.n), ("shots", args.shots), ("tasks", args.tasks))) + f"` on {time.strftime('%Y-%m-%d')}, "
        f"selfbias {selfbias.__version__}, isolated mode, item-bootstrap intervals.\n\n" + markdown(table) + "\n")
    print(markdown(table))


if __name__ == "__main__":
    main()
