"""The committed figures are what the analysis scripts produce, on any CPU.

A reduced run of analysis 1 and one retrained arm of analysis 5 give the same per-candidate numbers as
the committed full runs, for the items both contain, within tolerances derived from measurement:
``tests/measure_kernel_spread.py`` reruns both reproductions under every CPU kernel set this machine has
(``ATEN_CPU_CAPABILITY=default|avx2|avx512``, the float summation orders of other machines) and 1 or 2
threads, and writes the largest differences from the committed numbers to ``tests/KERNEL_SPREAD.md``.
Each tolerance below is that measured maximum times a stated margin (other CPUs, ARM's kernels or
another BLAS, may sum in orders not seen here). ``make test`` runs this file once more under
``ATEN_CPU_CAPABILITY=default``, so a machine-dependent assertion fails in CI where it was written.
"""

from __future__ import annotations

import pytest
from _reproduce import ANALYSIS_01, ANALYSIS_05, reproduce_analysis_01, reproduce_analysis_05


pytestmark = pytest.mark.model  # both analyses run SmolLM2

# Analysis 1 (scoring and judging, no training), measured 2026-12-07 on an AMD EPYC with AVX-512, torch
# 2.13.0, kernel sets default/avx2/avx512 x 1/2 threads (tests/KERNEL_SPREAD.md). The reduced run batches
# other prompts together than the committed full run, so even the machine's own kernels differ from the
# committed numbers; sums are held per token (answers have 1-9 tokens, a sum's error grows with them).
#   column               measured max   margin   tolerance
#   per-token sum diff   2.6e-05        3.8x     1e-4 (the scorer's own per-token tolerance, test_scoring.py)
#   mean_logprob         2.0e-05        5x       1e-4
#   p_yes                6.0e-06        16x      1e-4
#   yes_no_mass          1.0e-05        10x      1e-4
TOL_01 = {"per_token_sum_diff": 1e-4, "mean_logprob": 1e-4, "p_yes": 1e-4, "yes_no_mass": 1e-4}

# Analysis 5 (20 optimizer steps of fine-tuning, then scoring and judging). Training amplifies a kernel
# set's different float sums: the same seed gives other weights on another machine. Compared like with
# like, the stable facts exactly (which answers exist, which are correct, their token counts) and the
# numbers within the training noise measured across kernel sets (same machine, same day, as above):
#   column               measured max             margin   tolerance
#   per-token sum diff   3.8e-03 (AVX2; 1.8e-4    3.9x     1.5e-2 (a broken objective or tokenisation
#                        on the committing kernels)          moves answers by nats, not hundredths)
#   p_yes                5.9e-05                  8.5x     5e-4
#   yes_no_mass          4.2e-05                  12x      5e-4
TOL_05 = {"per_token_sum_diff": 1.5e-2, "p_yes": 5e-4, "yes_no_mass": 5e-4}


def _check(merged, tolerances: dict[str, float]) -> None:
    assert merged["p_yes_committed"].notna().all(), "rows missing from the committed numbers"
    for col, tol in tolerances.items():
        diff = merged[col].max() if col == "per_token_sum_diff" else (merged[col] - merged[f"{col}_committed"]).abs().max()
        assert diff <= tol, f"{col}: max difference {diff:.2e} from the committed numbers (tolerance {tol:.0e})"


def test_reduced_analysis_reproduces_committed_numbers(tmp_path):
    if not ANALYSIS_01.exists():
        pytest.fail(f"{ANALYSIS_01} is missing: run analyses/01_likelihood_confidence.py")
    merged = reproduce_analysis_01(tmp_path)
    assert len(merged) > 20
    _check(merged, TOL_01)
    for col in ("correct", "source", "self_authored", "n_tokens"):
        assert (merged[col] == merged[f"{col}_committed"]).all(), col
    assert (tmp_path / "out" / "likelihood_vs_confidence.png").stat().st_size > 1000


def test_one_arm_of_analysis_05_reproduces_committed_numbers(tmp_path):
    """Analysis 5's imitation arm, seed 0, retrained with the committed settings and evaluated on its first
    four held-out items: the per-candidate numbers equal the committed ones within training's kernel noise
    (training is seeded; arithmetic candidates depend only on their own item)."""
    if not ANALYSIS_05.exists():
        pytest.fail(f"{ANALYSIS_05} is missing: run analyses/05_critique_vs_imitation.py")
    merged = reproduce_analysis_05(tmp_path)
    assert len(merged) >= 8
    _check(merged, TOL_05)
    assert (merged["correct"].astype(bool) == merged["correct_committed"].astype(bool)).all()
    assert (merged["n_tokens"] == merged["n_tokens_committed"]).all()
