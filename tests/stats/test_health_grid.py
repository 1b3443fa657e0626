"""Short twins of the health grid (tests/stats/health_grid.py, table in tests/stats/HEALTH_GRID.md):
false flags of judges that should pass and misses of judges that should fail, at the smallest run
size.  The full grid runs behind SELFBIAS_SLOW=1."""

import pytest

from .health_grid import KINDS, SHARES, SHOULD_PASS, SIZES, flag_rate
from ._slow import slow


@pytest.mark.parametrize("kind", ["good", "narrow"])
def test_good_judges_are_rarely_flagged_at_20_items_short(kind):
    # 40 runs at 20 items x 4 with 20% correct: a true rate of 5% gives >= 5 flags with prob. 0.14,
    # a rate of 12.5% (the old top-1 check) with prob. 0.58
    rate, _ = flag_rate(kind, 20, 4, 0.2, 40, n_boot=200)
    assert rate <= 4 / 40, rate


@pytest.mark.parametrize("kind", ["constant", "question", "chance"])
def test_degenerate_judges_are_caught_at_40_items_short(kind):
    rate, _ = flag_rate(kind, 40, 4, 0.5, 20, n_boot=200)
    assert rate >= 0.85, rate


@slow
def test_health_grid_error_rates():
    for kind in KINDS:
        for n_items, k in SIZES:
            for share in SHARES:
                rate, _ = flag_rate(kind, n_items, k, share, 200)
                if kind in SHOULD_PASS:
                    assert rate <= 0.05 + 0.035, (kind, n_items, share, rate)  # 5% + 2.3 SE
                elif kind != "weak" and n_items >= 40:
                    assert rate >= 0.9, (kind, n_items, share, rate)
