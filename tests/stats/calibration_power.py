"""Size and power of the calibration checks (issue 27).  ``python -m tests.stats.calibration_power
[n_runs]`` rewrites tests/stats/CALIBRATION_TEST.md; tests/stats/test_calibration_test.py runs short
twins.

Scenarios (40 items x 8 candidates unless named): correctness drawn as Bernoulli(P(Yes)) from a
calibrated judge (`simulate_run(calibrated=True)`), then P(Yes) reported as is (``calibrated``), made
overconfident (``overconfident``: logit P(Yes) x 2.2, ECE ~0.12) or shifted (``shifted``: P(Yes) +
0.09 clipped to [0, 1], ECE ~0.09).  Checks: the consistency-resampling test of the ECE (the
``p_value`` of :func:`selfbias.stats.calibration`'s ``ece`` row) at 5%, and, for comparison, the
debiased squared calibration error's interval excluding 0.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import special

from selfbias.stats import calibration
from selfbias.stats.simulate import simulate_run

SCENARIOS = ("calibrated", "overconfident", "shifted")
DESIGNS = ((40, 8), (20, 4), (100, 5))


def scenario_frame(name: str, n_items: int, k: int, seed: int):
    a = simulate_run(n_items=n_items, n_candidates=k, modes=("isolated",), calibrated=True, seed=seed).analysis
    p = a["p_yes"].to_numpy()
    if name == "overconfident":
        p = special.expit(2.2 * special.logit(np.clip(p, 1e-6, 1 - 1e-6)))
    elif name == "shifted":
        p = np.clip(p + 0.09, 0, 1)
    return a.assign(p_yes=p)


def rates(name: str, n_items: int, k: int, n_runs: int, n_boot: int = 200, n_resamples: int = 1000) -> dict:
    test, debiased, eces = [], [], []
    for seed in range(n_runs):
        t = calibration(scenario_frame(name, n_items, k, seed), n_boot=n_boot, seed=seed,
                        n_resamples=n_resamples).set_index("measure")
        test.append(t.loc["ece", "p_value"] < 0.05)
        debiased.append(t.loc["sq_ce_debiased", "ci_low"] > 0)
        eces.append(t.loc["ece", "estimate"])
    return {"test": float(np.mean(test)), "debiased": float(np.mean(debiased)), "ece": float(np.mean(eces))}


if __name__ == "__main__":
    n_runs = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    n_debiased = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    n_power = int(sys.argv[3]) if len(sys.argv) > 3 else n_runs
    lines = ["| scenario | items x candidates | runs | mean ECE | consistency test rejects (5%) | debiased CI excludes 0 |",
             "|---|---|---|---|---|---|"]
    for n_items, k in DESIGNS:
        for name in SCENARIOS:
            n = n_runs if name == "calibrated" else n_power
            r = rates(name, n_items, k, n, n_boot=0)  # the test needs no bootstrap
            d = rates(name, n_items, k, n_debiased, n_resamples=0)  # the debiased interval does
            lines.append(f"| {name} | {n_items} x {k} | {n} | {r['ece']:.3f} | {r['test']:.1%} | {d['debiased']:.1%} |")
    head = (f"# Calibration test: size and power (issue 27)\n\nProduced by `python -m tests.stats.calibration_power "
            f"{n_runs} {n_debiased} {n_power}`: the consistency-resampling test (1000 resamples) over seeds 0 to "
            f"runs - 1 ({n_runs} runs for the size rows, {n_power} for the power rows), the debiased interval over "
            f"the first {n_debiased} (200 bootstrap resamples). For `calibrated` the "
            "rejection rate is the size (target 5%; binomial SE "
            f"{np.sqrt(0.05 * 0.95 / n_runs):.1%}), otherwise the power.\n\n")
    Path(__file__).with_name("CALIBRATION_TEST.md").write_text(head + "\n".join(lines) + "\n")
    print("\n".join(lines))
