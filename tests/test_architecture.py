"""The import graph of selfbias: layers, no cycles, no private names across modules, a torch-free backend API.

Every module's imports are read with ``ast`` (module level, inside functions and under
``TYPE_CHECKING`` alike: an import inside a function is still a dependency), and checked against the
rules written in ARCHITECTURE.md ("Layers"):

* a module imports only from its own layer or a lower one (:data:`LAYERS`, lowest first);
* the graph has no cycle;
* a name starting with ``_`` is imported only from a private module (a module whose own name starts
  with ``_``: a package's helper, every name of it internal to the package); a public module's
  ``_names`` stay in that module;
* ``import selfbias.backends.openai`` (the HTTP backend) loads neither torch nor transformers.

An exception to the first two rules is an entry of :data:`ALLOWED_EDGES` with its reason.
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "selfbias"

# The layers, lowest first. A module imports from its own layer or below; `selfbias.stats.*` and
# `selfbias.plots.*` stand for a subpackage's modules.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("selfbias.errors", "selfbias._version", "selfbias._inputs", "selfbias._progress",
                    "selfbias._storage", "selfbias._checkers", "selfbias.backends.types")),
    ("tasks, prompts and judge rules", ("selfbias._loaders", "selfbias.tasks", "selfbias.eval_logs",
                                        "selfbias.prompts", "selfbias._judge_rules", "selfbias.judge_modes",
                                        "selfbias._judge_jobs", "selfbias._judge_templates",
                                        "selfbias._list_design", "selfbias._training_data")),
    ("statistics", ("selfbias.stats", "selfbias.stats.*")),
    ("figures", ("selfbias.plots", "selfbias.plots.*")),
    ("run folder", ("selfbias.frames", "selfbias.analysis", "selfbias.store", "selfbias.runs")),
    ("models", ("selfbias.models", "selfbias._gguf_cache", "selfbias._logits", "selfbias._batching",
                "selfbias._fused", "selfbias._packed")),
    ("model operations", ("selfbias.scoring", "selfbias.generation")),
    ("backends", ("selfbias.backends", "selfbias.backends.base", "selfbias.backends.hf", "selfbias.backends.openai",
                  "selfbias.backends._local_server", "selfbias.backends._chat")),
    ("validation and execution", ("selfbias._validate", "selfbias._chunks", "selfbias.distributed")),
    ("stages", ("selfbias.judge", "selfbias.probe", "selfbias.train", "selfbias.audit", "selfbias.report")),
    ("package", ("selfbias",)),
    ("command line", ("selfbias.cli",)),
]

# (importer, imported): reason. Each is an import inside a function, kept because the public API asks for it.
ALLOWED_EDGES: dict[tuple[str, str], str] = {
    ("selfbias.store", "selfbias.runs"):
        "RunStore.finalize() returns the finished run opened for reading (a Run), its documented result; "
        "the reader sits above the store and is imported inside finalize",
    ("selfbias.tasks", "selfbias.eval_logs"):
        "load_task('log:PATH') reads an evaluation log's questions with eval_logs, which builds Tasks; "
        "imported inside load_task",
    ("selfbias.stats._figure_data", "selfbias.stats"):
        "takes judge_health / likelihood_regression from the stats package, not its private modules, so it "
        "survives a split of those modules (stats/__init__ imports it after they are defined)",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    for i, (_, members) in enumerate(LAYERS):
        for m in members:
            if module == m or (m.endswith(".*") and module.startswith(m[:-1])):
                return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS here and in ARCHITECTURE.md")


@functools.cache
def imports(module: str) -> tuple[tuple[str, str | None, int], ...]:
    """(imported module, imported name or None, line) of every selfbias import in ``module``."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] == "selfbias"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != "selfbias":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                # `from . import _storage` imports a module; `from .x import name` a name of module x
                out.append((sub, None, node.lineno) if sub in MODULES else (base, alias.name, node.lineno))
    return tuple(out)


@functools.cache
def edges() -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for module in MODULES:
        for target, _, line in imports(module):
            if target != module and target in MODULES:
                found.setdefault((module, target), line)
    return found


def test_every_import_resolves_to_a_module():
    missing = [(m, t, line) for m in MODULES for t, _, line in imports(m) if t not in MODULES]
    assert not missing, f"imports of modules that do not exist: {missing}"


def test_every_module_has_a_layer_and_the_allowed_edges_exist():
    for module in MODULES:
        layer_of(module)
    stale = [e for e in ALLOWED_EDGES if e not in edges()]
    assert not stale, f"ALLOWED_EDGES lists imports that are gone (remove them): {stale}"


def test_no_import_from_a_lower_layer_to_a_higher_one():
    upward = [f"{a}:{line} imports {b} ({LAYERS[layer_of(a)][0]} -> {LAYERS[layer_of(b)][0]})"
              for (a, b), line in edges().items()
              if layer_of(b) > layer_of(a) and (a, b) not in ALLOWED_EDGES]
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (a depth-first search), or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle():
    graph: dict[str, set[str]] = {}
    for a, b in edges():
        if (a, b) not in ALLOWED_EDGES:
            graph.setdefault(a, set()).add(b)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_private_name_imported_from_a_public_module():
    crossing = [f"{m}:{line} imports {name} from {target}"
                for m in MODULES for target, name, line in imports(m)
                if name and name.startswith("_") and not name.startswith("__")
                and not target.rsplit(".", 1)[-1].startswith("_")]
    assert not crossing, "private names imported from public modules:\n" + "\n".join(crossing)


@pytest.mark.parametrize("module", ["selfbias.backends.openai", "selfbias.backends.types"])
def test_http_backend_imports_no_torch(module):
    code = (f"import sys, {module}; heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules); "
            "print(','.join(heavy))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"import {module} loaded {done.stdout.strip()}"


LONG_FILE = 600  # lines; a longer module says why on its first line


def test_long_modules_say_why():
    long = [f"{m} ({n} lines)" for m, p in MODULES.items()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > LONG_FILE
            and not p.read_text(encoding="utf-8").startswith(f"# Over {LONG_FILE} lines: ")]
    assert not long, (f"modules over {LONG_FILE} lines without a first line '# Over {LONG_FILE} lines: <reason>.' "
                      "(or split them): " + ", ".join(long))
