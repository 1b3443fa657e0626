"""The marker for long simulations: ``@slow`` = ``pytest.mark.slow`` and skipped unless
``SELFBIAS_SLOW=1`` (CI runs ``pytest`` without deselecting the marker, so the skip keeps CI fast;
each slow check has a short unmarked twin that CI runs)."""

import os

import pytest

RUN_SLOW = os.environ.get("SELFBIAS_SLOW") == "1"


def slow(test):
    return pytest.mark.slow(pytest.mark.skipif(not RUN_SLOW, reason="long simulation: set SELFBIAS_SLOW=1")(test))
