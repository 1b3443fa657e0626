"""Analysis 5: critique vs imitation (SmolLM2, arithmetic), measured with the toolkit itself (issue 11).

SmolLM2 is fine-tuned with each objective of ``selfbias train`` (imitation, critique with static and
with its own errors, corrupted traces, correct traces), >= 3 training seeds each, on the same
training questions and budget; the base model and every trained model are then probed and judged
(``selfbias probe`` + judge, isolated and alternatives) on the same held-out items. Per model:
answer accuracy (greedy), judge AUROC (isolated, alternatives), yes/no mass, the degenerate flag,
mean P(Yes) on its own wrong answers vs other sources' wrong answers, and the within-item slope of
logit P(Yes) on the answer's log-likelihood. Differences to the base model and between objectives
get 95% intervals from a two-level bootstrap: held-out items (shared by all models, so paired) and
training seeds (resampled within each objective).

``--reduced``: one seed, few items and steps (checks the pipeline; its numbers mean nothing).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from _common import FIGURES, SEED, assemble_readme, parse_args

NAME = "05_critique_vs_imitation"
BASE = "smollm2-135m"
# arm -> (objective, errors, rounds)
ARMS = {
    "imitation": ("imitation", "static", 1),
    "critique": ("critique", "static", 1),
    "critique_own": ("critique", "own", 2),
    "corrupted": ("corrupted", "static", 1),
    "imitation_trace": ("imitation_trace", "static", 1),
}
CONTRASTS = [("critique", "imitation"), ("critique_own", "critique"), ("imitation_trace", "imitation"),
             ("corrupted", "imitation_trace")]
METRICS = {
    "accuracy": "answer accuracy (greedy)",
    "auroc_isolated": "judge AUROC, isolated",
    "auroc_alternatives": "judge AUROC, alternatives",
    "yes_no_mass_isolated": "yes/no mass, isolated",
    "yes_no_mass_alternatives": "yes/no mass, alternatives",
    "p_yes_own_wrong": "mean P(Yes) on own wrong answers (isolated)",
    "p_yes_other_wrong": "mean P(Yes) on other sources' wrong answers (isolated)",
    "own_minus_other_wrong": "own - other wrong, mean P(Yes) (isolated)",
    "slope_isolated": "within-item slope of logit P(Yes) on log-likelihood (isolated)",
}


@dataclass(frozen=True)
class Config:
    n: int
    seeds: tuple[int, ...]
    steps: int
    tokens_per_step: int
    learning_rate: float
    samples: int
    max_new_tokens: int
    n_boot: int


# Sized for about 30-40 minutes on 2 idle CPU cores (from the reduced run: 1.5-5 s per step, about 3 s per
# held-out item and model for probe + judge): 24 training and 24 held-out items, 20 steps of ~32 trained
# tokens (almost two epochs of critiques, batch 2; imitation sees each answer about five times, batch ~6).
FULL = Config(n=48, seeds=(0, 1, 2), steps=20, tokens_per_step=32, learning_rate=1e-4, samples=2,
              max_new_tokens=40, n_boot=1000)
REDUCED = Config(n=10, seeds=(0,), steps=2, tokens_per_step=32, learning_rate=1e-4, samples=1,
                 max_new_tokens=40, n_boot=100)


# ------------------------------------------------------------------------------------ metrics


def _logit(p: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    p = np.clip(p, eps, 1 - eps)
    return np.log(p / (1 - p))


def _wauc(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> float:
    """Weighted AUROC (ties count half): P(score of a correct > score of a wrong), weights multiply."""
    pos, neg = y & (w > 0), ~y & (w > 0)
    if not pos.any() or not neg.any():
        return float("nan")
    sp, wp, sn, wn = s[pos], w[pos], s[neg], w[neg]
    order = np.argsort(sn)
    sn, wn = sn[order], wn[order]
    cum = np.concatenate([[0.0], np.cumsum(wn)])
    below = cum[np.searchsorted(sn, sp, side="left")]
    equal = cum[np.searchsorted(sn, sp, side="right")] - below
    return float(np.sum(wp * (below + 0.5 * equal)) / (wp.sum() * wn.sum()))


def _wmean(x: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum(w * x) / np.sum(w)) if np.sum(w) > 0 else float("nan")


def _within_slope(x: np.ndarray, y: np.ndarray, codes: np.ndarray, w: np.ndarray) -> float:
    """OLS slope of y on x with item fixed effects (weights are constant within an item)."""
    n_items = codes.max() + 1 if len(codes) else 0
    cnt = np.bincount(codes, minlength=n_items)
    xd = x - (np.bincount(codes, x, n_items) / np.maximum(cnt, 1))[codes]
    yd = y - (np.bincount(codes, y, n_items) / np.maximum(cnt, 1))[codes]
    den = np.sum(w * xd * xd)
    return float(np.sum(w * xd * yd) / den) if den > 0 else float("nan")


@dataclass
class ModelData:
    """One evaluated model's rows as arrays over a shared item index (for fast bootstrap)."""

    greedy_codes: np.ndarray
    greedy_correct: np.ndarray
    judged: dict  # mode -> dict of arrays


def model_data(frame: pd.DataFrame, greedy: pd.DataFrame, item_index: dict[str, int]) -> ModelData:
    judged = {}
    for mode, g in frame.groupby("mode"):
        judged[mode] = {
            "codes": g["item_id"].map(item_index).to_numpy(),
            "p_yes": g["p_yes"].to_numpy(float), "mass": g["yes_no_mass"].to_numpy(float),
            "correct": g["correct"].to_numpy(bool), "self": g["self_authored"].to_numpy(bool),
            "loglik": g["sum_logprob"].to_numpy(float),
        }
    return ModelData(greedy["item_id"].map(item_index).to_numpy(), greedy["correct"].to_numpy(bool), judged)


def metrics(data: ModelData, item_weights: np.ndarray) -> dict[str, float]:
    """Every metric of one model with items weighted by ``item_weights`` (1 = all items once)."""
    out = {"accuracy": _wmean(data.greedy_correct.astype(float), item_weights[data.greedy_codes])}
    for mode in ("isolated", "alternatives"):
        d = data.judged.get(mode)
        if d is None:
            continue
        w = item_weights[d["codes"]]
        out[f"auroc_{mode}"] = _wauc(d["correct"], d["p_yes"], w)
        out[f"yes_no_mass_{mode}"] = _wmean(d["mass"], w)
        if mode == "isolated":
            own, other = ~d["correct"] & d["self"], ~d["correct"] & ~d["self"]
            out["p_yes_own_wrong"] = _wmean(d["p_yes"][own], w[own])
            out["p_yes_other_wrong"] = _wmean(d["p_yes"][other], w[other])
            out["own_minus_other_wrong"] = out["p_yes_own_wrong"] - out["p_yes_other_wrong"]
            out["slope_isolated"] = _within_slope(d["loglik"], _logit(d["p_yes"]), d["codes"], w)
    return out


def _mean_of(dicts: list[dict[str, float]]) -> dict[str, float]:
    keys = dicts[0].keys()
    return {k: float(np.nanmean([d[k] for d in dicts])) if any(d[k] == d[k] for d in dicts) else float("nan")
            for k in keys}


def bootstrap(models: dict[str, list[ModelData]], n_items: int, contrasts, n_boot: int, seed: int = 0):
    """Point estimates (mean over seeds, all items) and 95% percentile intervals of each arm's metrics
    and of the differences ``a - b`` for ``contrasts``, resampling items (shared) and seeds (per arm)."""
    rng = np.random.default_rng(seed)
    ones = np.ones(n_items)
    point = {arm: _mean_of([metrics(d, ones) for d in runs]) for arm, runs in models.items()}
    draws: dict[str, list[dict]] = {arm: [] for arm in models}
    for _ in range(n_boot):
        w = rng.multinomial(n_items, np.full(n_items, 1 / n_items)).astype(float)
        for arm, runs in models.items():
            pick = rng.integers(0, len(runs), len(runs))
            draws[arm].append(_mean_of([metrics(runs[i], w) for i in pick]))
    boot = {arm: pd.DataFrame(v) for arm, v in draws.items()}
    rows = []

    def interval(values) -> tuple[float, float]:
        values = np.asarray(values, float)
        values = values[np.isfinite(values)]
        return tuple(np.percentile(values, [2.5, 97.5])) if len(values) else (float("nan"), float("nan"))

    for arm in models:
        for m, est in point[arm].items():
            lo, hi = interval(boot[arm][m])
            rows.append({"comparison": arm, "metric": m, "estimate": est, "ci_low": lo, "ci_high": hi,
                         "kind": "level"})
    for a, b in contrasts:
        if a not in models or b not in models:
            continue
        for m in point[a].keys() & point[b].keys():
            lo, hi = interval(boot[a][m] - boot[b][m])
            rows.append({"comparison": f"{a} - {b}", "metric": m, "estimate": point[a][m] - point[b][m],
                         "ci_low": lo, "ci_high": hi, "kind": "difference"})
    order = {m: i for i, m in enumerate(METRICS)}
    return pd.DataFrame(rows).sort_values(["kind", "comparison", "metric"], key=lambda c: c.map(order).fillna(-1)
                                          if c.name == "metric" else c, kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------------------ driver


def _train_all(cfg: Config, base, models_dir: Path, reduced: bool) -> tuple[dict, pd.DataFrame]:
    from selfbias.train import train

    trained, timing = {}, []
    for arm, (objective, errors, rounds) in ARMS.items():
        for seed in cfg.seeds:
            out = models_dir / f"{arm}-s{seed}"
            t0 = time.perf_counter()
            fresh = not (out / "training_record.json").exists()
            result = train(base, objective, "arithmetic", out=out, n=cfg.n, seed=seed, errors=errors,
                           rounds=rounds if errors == "own" else 1, steps=cfg.steps,
                           tokens_per_step=cfg.tokens_per_step, learning_rate=cfg.learning_rate,
                           save_steps=max(4, cfg.steps // 2), progress=not reduced)
            if fresh:
                timing.append({"arm": arm, "seed": seed, "seconds": time.perf_counter() - t0,
                               "steps": cfg.steps, "read_tokens": result.record["budget"]["read_tokens"],
                               "trained_tokens": result.record["budget"]["trained_tokens"]})
            trained.setdefault(arm, []).append((seed, out, result.record))
    return trained, pd.DataFrame(timing)


def _named(lm, name: str):
    """The model under a plain name: the probe names generations after the key of ``loaded`` and the
    judge after the identity's name, which must agree for its own answers to count as its own (a
    folder path as the name is also refused as a stage name)."""
    return dataclasses.replace(lm, name=name, identity=dataclasses.replace(lm.identity, name=name))


def _evaluate(name: str, lm, task, cfg: Config, runs_dir: Path, reduced: bool):
    import selfbias

    run = selfbias.probe([name], task, out=runs_dir / name, loaded={name: lm}, samples=cfg.samples,
                         max_new_tokens=cfg.max_new_tokens, judge_modes=("isolated", "alternatives"), seed=SEED,
                         few_shot=0, n_perturbations=2, list_design="pooled",  # as the committed figures were made
                         progress=not reduced)
    frame = run.analysis_frame()
    gen = run.generations
    greedy = gen[gen["kind"] == "greedy"][["item_id", "correct"]]
    return frame, greedy


def _forest_grid(rows: pd.DataFrame, metrics: list[str], color: str, zero: float | None, path: Path) -> None:
    """One forest panel per metric on a 3-column grid (estimates with 95% intervals, one row per arm or
    contrast); titles wrapped to the panel, so no text overlaps."""
    import textwrap

    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(rows["comparison"]))
    ncol = 3
    nrow = -(-len(metrics) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(9.5, 0.35 * len(labels) * nrow + 1.1 * nrow), squeeze=False)
    for ax, m in zip(axes.flat, metrics):
        sub = rows[rows["metric"] == m].set_index("comparison").reindex(labels)
        y = np.arange(len(labels))
        ax.errorbar(sub["estimate"], y, xerr=[sub["estimate"] - sub["ci_low"], sub["ci_high"] - sub["estimate"]],
                    fmt="o", color=color, capsize=2, ms=4)
        ref = 0.5 if zero is None and m.startswith("auroc") else zero
        if ref is not None:
            ax.axvline(ref, color="grey", lw=0.8, ls="--")
        ax.set_title("\n".join(textwrap.wrap(METRICS[m], 34)), fontsize=8)
        ax.set_yticks(y, labels if ax in axes[:, 0] else [""] * len(labels), fontsize=8)
        ax.invert_yaxis()
        ax.tick_params(axis="x", labelsize=7)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    fig.tight_layout()
    for ext in ("pdf", "png"):
        fig.savefig(path.with_suffix(f".{ext}"), dpi=150)
    plt.close(fig)


def _figures(table: pd.DataFrame, curves: pd.DataFrame, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = []
    levels = table[table["kind"] == "level"]
    metrics_shown = [m for m in METRICS if m in set(levels["metric"])]
    _forest_grid(levels, metrics_shown, "C0", None, out / "levels")
    levels.to_csv(out / "levels.csv", index=False, float_format="%.6g")
    drawn.append("levels")

    diffs = table[table["kind"] == "difference"]
    if len(diffs):
        _forest_grid(diffs, metrics_shown, "C1", 0.0, out / "differences")
        diffs.to_csv(out / "differences.csv", index=False, float_format="%.6g")
        drawn.append("differences")

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for i, (arm, g) in enumerate(curves.groupby("arm", sort=False)):
        for j, (_, s) in enumerate(g.groupby("seed")):
            ax.plot(s["step"], s["loss"], color=f"C{i}", alpha=0.7, label=arm if j == 0 else None)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("completion loss (nats/token)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    for ext in ("pdf", "png"):
        fig.savefig(out / f"loss_curves.{ext}", dpi=150)
    plt.close(fig)
    curves.to_csv(out / "loss_curves.csv", index=False, float_format="%.6g")
    drawn.append("loss_curves")
    return drawn


def _fmt(row) -> str:
    return f"{row.estimate:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}]"


def _findings(table: pd.DataFrame, health: pd.DataFrame) -> list[str]:
    lines = []
    diffs = table[table["kind"] == "difference"]
    for comp in dict.fromkeys(diffs["comparison"]):
        sub = diffs[diffs["comparison"] == comp].set_index("metric")
        parts = []
        for m in ("accuracy", "auroc_isolated", "auroc_alternatives", "own_minus_other_wrong", "slope_isolated"):
            if m in sub.index:
                r = sub.loc[m]
                if not np.isfinite(r.estimate):
                    parts.append(f"{METRICS[m]} not estimable (too few such answers among the held-out items)")
                    continue
                sig = "" if not (r.ci_low > 0 or r.ci_high < 0) else " (interval excludes 0)"
                parts.append(f"{METRICS[m]} {_fmt(r)}{sig}")
        lines.append(f"{comp}: " + "; ".join(parts))
    degenerate = health.groupby(["arm", "mode"])["degenerate"].mean().reset_index()
    healthy = degenerate[degenerate["degenerate"] < 1]
    if len(healthy):
        lines.append("No longer a degenerate judge in at least one seed: " + ", ".join(
            f"{r.arm} ({r.mode}, degenerate in {r.degenerate:.0%} of seeds)" for r in healthy.itertuples()))
    else:
        lines.append("Every model, trained or not, is still flagged as a degenerate judge in every mode and seed.")
    return lines


def main() -> None:
    args = parse_args(__doc__)
    import selfbias
    from selfbias import stats
    from selfbias.train import heldout_task

    cfg = REDUCED if args.reduced else FULL
    out = args.out or FIGURES / NAME
    out.mkdir(parents=True, exist_ok=True)
    root = args.runs / ("reduced" if args.reduced else "full") / NAME
    t0 = time.perf_counter()
    base = selfbias.load_model(BASE)
    trained, timing = _train_all(cfg, base, root / "models", args.reduced)
    split_sets = {tuple(rec["split"]["eval_ids"]) for runs in trained.values() for _, _, rec in runs}
    assert len(split_sets) == 1, "every arm must be evaluated on the same held-out items"
    task = heldout_task(next(iter(trained.values()))[0][1])
    item_index = {it.id: i for i, it in enumerate(task.items)}
    t_train = time.perf_counter() - t0

    evaluated = {"base": [(SEED, base)]}
    for arm, runs in trained.items():
        evaluated[arm] = [(seed, path) for seed, path, _ in runs]
    data, frames, health_rows = {}, [], []
    for arm, runs in evaluated.items():
        for seed, model in runs:
            name = BASE if arm == "base" else f"{arm}-s{seed}"
            lm = model if arm == "base" else _named(selfbias.load_model(str(model)), name)
            frame, greedy = _evaluate(name, lm, task, cfg, root / "runs", args.reduced)
            data.setdefault(arm, []).append(model_data(frame, greedy, item_index))
            frames.append(frame.assign(arm=arm, seed=seed))
            h = stats.judge_health(frame, n_boot=200)
            health_rows.append(h.assign(arm=arm, seed=seed))
            del lm
    t_eval = time.perf_counter() - t0 - t_train
    table = bootstrap(data, len(task.items), [(arm, "base") for arm in ARMS] + CONTRASTS, cfg.n_boot)
    table.to_csv(out / "effects.csv", index=False, float_format="%.6g")
    pd.concat(frames, ignore_index=True).to_csv(out / "analysis_frame.csv", index=False, float_format="%.6g")
    health = pd.concat(health_rows, ignore_index=True)
    health.to_csv(out / "judge_health.csv", index=False, float_format="%.6g")
    curves = pd.DataFrame([{"arm": arm, "seed": seed, **h} for arm, runs in trained.items()
                           for seed, _, rec in runs for h in rec["loss_curve"]])
    budgets = pd.DataFrame([{"arm": arm, "seed": seed, **{k: v for k, v in rec["budget"].items() if k != "rule"}}
                            for arm, runs in trained.items() for seed, _, rec in runs])
    budgets.to_csv(out / "budgets.csv", index=False)
    drawn = _figures(table, curves, out)
    runtime = time.perf_counter() - t0
    if len(timing):
        timing.to_csv(out / "train_timing.csv", index=False, float_format="%.4g")
    (out / "timing.json").write_text(json.dumps({"train_s": t_train, "evaluate_s": t_eval, "total_s": runtime},
                                                indent=1))
    section = _section(cfg, budgets, _findings(table, health), drawn, runtime, args.reduced, len(task.items))
    (out / "SECTION.md").write_text(section)
    if not args.reduced and args.out is None:
        assemble_readme()
    print(section)


def _section(cfg, budgets, findings, drawn, runtime, reduced, n_eval) -> str:
    steps = int(budgets["steps"].iloc[0])
    tok = budgets.groupby("arm")["trained_tokens"].mean()
    lines = [
        "## 5. Critique vs imitation (SmolLM2, arithmetic)", "",
        "SmolLM2 fine-tuned with `selfbias train` (imitation; critique on perturbed and on its own answers; "
        "corrupted and correct worked steps), then probed and judged on the same held-out items as the base "
        "model. Intervals: 95% two-level bootstrap over held-out items (paired across models) and training "
        "seeds. The question is whether learning to critique teaches more than learning to copy "
        "(Critique Fine-Tuning, Wang et al. 2025) and whether on-policy errors matter (SCoRe, Kumar et al. 2024).",
        "",
        f"- script: `python analyses/{NAME}.py` (seed {SEED}); runtime {runtime:.0f} s on 2 CPU cores"
        + (" (reduced: one seed, a handful of steps; the numbers mean nothing)" if reduced else ""),
        f"- {len(cfg.seeds)} training seed(s) per objective; {steps} optimizer steps each; trained tokens per "
        "run (mean): " + ", ".join(f"{a} {v:.0f}" for a, v in tok.items())
        + f"; {n_eval} held-out arithmetic items (disjoint from the training items, split recorded in each "
        "model's training_record.json).",
        "", "Findings (differences, 95% intervals):", "",
    ]
    lines += [f"- {f}" for f in findings]
    lines += ["", "Figures: " + ", ".join(f"[{f}]({NAME}/{f}.png)" for f in drawn), "",
              f"Numbers: `{NAME}/effects.csv` (levels and differences), `{NAME}/judge_health.csv`, "
              f"`{NAME}/budgets.csv`, per-candidate rows in `{NAME}/analysis_frame.csv`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
