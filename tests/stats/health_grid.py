"""False-flag and miss rates of :func:`selfbias.stats.judge_health` over judge quality x run size x
class balance (issue 27).  ``python -m tests.stats.health_grid [n_reps]`` (from the repository
root) rewrites tests/stats/HEALTH_GRID.md; tests/stats/test_health_grid.py runs short twins.

Judges (P(Yes) for candidate j of item i; correctness c ~ Bernoulli(expit(logit(share) - d_i)),
d_i ~ N(0, 1), so some items are all right or all wrong):

* ``good``: logit P(Yes) = 0.8 (2c - 1) + u_i + e, u_i ~ N(0, 0.5^2), e ~ N(0, 1) (AUROC ~0.85);
* ``narrow``: P(Yes) in 0.60-0.64, every correct answer above every wrong one (a perfect ranking
  in a narrow band);
* ``weak``: as good with 0.3 in place of 0.8 (AUROC ~0.64): a real but weak judge;
* ``constant``: P(Yes) = 0.62 + N(0, 0.01^2), unrelated to correctness (the bundled zero-shot
  judges);
* ``question``: P(Yes) = expit(-1.5 d_i) + N(0, 0.01^2): follows the question's difficulty (so it
  is above chance pooled) but does not rank an item's candidates;
* ``chance``: logit P(Yes) = u_i + e, unrelated to correctness.

good and narrow should pass (flag rate = false flags, target <= 5%); constant, question and
chance should fail (1 - flag rate = misses); weak is reported for information.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special

from selfbias.stats import judge_health

KINDS = ("good", "narrow", "weak", "constant", "question", "chance")
SHOULD_PASS = ("good", "narrow")
SIZES = ((20, 4), (40, 4), (100, 5))
SHARES = (0.2, 0.5)


def health_frame(kind: str, n_items: int, k: int, share: float, rng: np.random.Generator) -> pd.DataFrame:
    item = np.repeat(np.arange(n_items), k)
    d = rng.normal(0, 1, n_items)
    c = rng.random(item.size) < special.expit(special.logit(share) - d[item])
    u = rng.normal(0, 0.5, n_items)[item]
    e = rng.normal(0, 1, item.size)
    if kind in ("good", "weak"):
        p = special.expit((0.8 if kind == "good" else 0.3) * (2 * c - 1) + u + e)
    elif kind == "narrow":
        p = 0.60 + 0.02 * c + rng.uniform(0, 0.0199, item.size)
    elif kind == "constant":
        p = 0.62 + rng.normal(0, 0.01, item.size)
    elif kind == "question":
        p = np.clip(special.expit(-1.5 * d[item]) + rng.normal(0, 0.01, item.size), 0, 1)
    else:
        p = special.expit(u + e)
    return pd.DataFrame({"item_id": [f"q{i:03d}" for i in item], "judge": "J", "mode": "isolated",
                         "p_yes": p, "correct": c, "yes_no_mass": 0.95})


def flag_rate(kind: str, n_items: int, k: int, share: float, n_reps: int, n_boot: int = 300,
              seed: int = 0) -> tuple[float, float]:
    """Share of runs flagged degenerate, and the mean AUROC of the judge."""
    flags, aucs = [], []
    for r in range(n_reps):
        rng = np.random.default_rng([seed, r, n_items, k, int(share * 100), KINDS.index(kind)])
        h = judge_health(health_frame(kind, n_items, k, share, rng), n_boot=n_boot, seed=r).iloc[0]
        flags.append(bool(h["degenerate"]))
        aucs.append(h["auroc"])
    return float(np.mean(flags)), float(np.nanmean(aucs))


def grid(n_reps: int) -> str:
    lines = ["| judge | should | items x candidates | share correct | mean AUROC | flagged | error rate |",
             "|---|---|---|---|---|---|---|"]
    for kind in KINDS:
        for n_items, k in SIZES:
            for share in SHARES:
                rate, auc = flag_rate(kind, n_items, k, share, n_reps)
                should = "pass" if kind in SHOULD_PASS else ("fail" if kind != "weak" else "-")
                err = rate if should == "pass" else (1 - rate if should == "fail" else float("nan"))
                err_txt = "-" if should == "-" else f"{err:.1%}"
                lines.append(f"| {kind} | {should} | {n_items} x {k} | {share:.0%} | {auc:.2f} | {rate:.1%} | {err_txt} |")
    return "\n".join(lines)


if __name__ == "__main__":
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    table = grid(reps)
    head = (f"# Judge health: false-flag and miss rates (issue 27)\n\nProduced by `python -m tests.stats.health_grid {reps}` "
            f"({reps} runs per cell, 300 item-bootstrap resamples per run); the judges are described in "
            "tests/stats/health_grid.py. *error rate* is the false-flag rate for judges that should pass "
            "and the miss rate for judges that should fail (binomial SE of a 5% rate over "
            f"{reps} runs: {np.sqrt(0.05 * 0.95 / reps):.1%}).\n\n")
    Path(__file__).with_name("HEALTH_GRID.md").write_text(head + table + "\n")
    print(table)
