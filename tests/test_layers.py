"""The package's layers: imports run one way (core → artifacts → backends → scenarios → report →
tools → cli), with no cycle and no underscored name taken from another module. Read from the
source's syntax trees, imports inside functions included, so nothing is imported to check it."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "quantbench"
# a module's layer is its subpackage's; the flat core is 0, the command on top
LAYERS = {"": 0, "artifacts": 1, "backends": 2, "scenarios": 3, "report": 4, "tools": 5}
TOP = {"quantbench.cli", "quantbench.__main__"}
# libraries whose import costs seconds: a quantbench module that imports one at its top may be
# imported inside a function (so that the light callers stay light), no other
HEAVY = ("torch", "transformers", "llama_cpp", "onnxruntime", "onnx", "optimum", "plotly",
         "pandas", "bitsandbytes", "torchao", "scipy", "gguf", "lm_eval", "kaleido")


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported quantbench module
    names: tuple[str, ...]
    in_function: bool
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    if module in TOP:
        return max(LAYERS.values()) + 1
    parts = module.split(".")
    return LAYERS.get(parts[1], 0) if len(parts) > 1 else 0


def _walk(node: ast.AST, in_function: bool = False):
    for child in ast.iter_child_nodes(node):
        inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                   ast.Lambda))
        yield child, inner
        yield from _walk(child, inner)


def imports_of(module: str, path: Path, known: set[str]) -> list[Import]:
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node, in_function in _walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("quantbench"):
                continue
            for alias in node.names:
                # ``from quantbench.pkg import module`` imports a module, not a name
                sub = f"{target}.{alias.name}"
                if sub in known:
                    out.append(Import(module, sub, (), in_function, node.lineno))
                else:
                    out.append(Import(module, target, (alias.name,), in_function, node.lineno))
        elif isinstance(node, ast.Import):
            out += [Import(module, a.name, (), in_function, node.lineno)
                    for a in node.names if a.name.startswith("quantbench")]
    return out


def heavy_at_top(path: Path) -> bool:
    for node in ast.parse(path.read_text()).body:
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        if any(n.split(".")[0] in HEAVY for n in names):
            return True
    return False


@pytest.fixture(scope="module")
def graph() -> list[Import]:
    mods = modules()
    return [i for m, p in mods.items() for i in imports_of(m, p, set(mods))
            if i.target != m and i.target in mods]


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state and (found := visit(n)):
            return found
    return None


def edges_of(graph: list[Import]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for i in graph:
        # a package's __init__ is imported by each of its modules: that is no cycle of code
        if not i.source.startswith(i.target + "."):
            edges.setdefault(i.source, set()).add(i.target)
    return edges


def test_the_import_graph_has_no_cycle(graph):
    cycle = find_cycle(edges_of(graph))
    assert cycle is None, " -> ".join(cycle or ())


def test_no_module_imports_from_a_higher_layer(graph):
    up = [f"{i.source} (layer {layer(i.source)}) -> {i.target} (layer {layer(i.target)}), "
          f"line {i.line}" for i in graph if layer(i.target) > layer(i.source)]
    assert not up, "\n".join(up)


def test_no_underscored_name_is_imported_from_another_module(graph):
    private = [f"{i.source}:{i.line} imports {n} from {i.target}" for i in graph
               for n in i.names if n.startswith("_")]
    assert not private, "\n".join(private)


def private_attributes(module: str, path: Path, known: set[str]) -> list[str]:
    """``alias._name`` where ``alias`` is a quantbench module this module imported."""
    tree = ast.parse(path.read_text())
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("quantbench"):
            aliases |= {a.asname or a.name for a in node.names
                        if f"{node.module}.{a.name}" in known}
    return [f"{module}:{node.lineno} reads {node.value.id}.{node.attr}" for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id in aliases and node.attr.startswith("_")]


def test_no_underscored_name_of_another_module_is_read():
    mods = modules()
    found = [f for m, p in mods.items() for f in private_attributes(m, p, set(mods))]
    assert not found, "\n".join(found)


def test_a_module_is_imported_inside_a_function_only_when_it_is_heavy(graph):
    mods = modules()
    light = [f"{i.source}:{i.line} imports {i.target} inside a function" for i in graph
             if i.in_function and not heavy_at_top(mods[i.target])]
    assert not light, "\n".join(light)


def test_the_checks_find_what_they_look_for():
    """The checks above are not vacuous: a cycle, an upward import, a private name and a light
    in-function import are each found in a made-up graph."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None
    assert layer("quantbench.report.aggregate") > layer("quantbench.backends.hf")
    assert layer("quantbench.backends") == layer("quantbench.backends.hf")
    assert layer("quantbench.config") == 0 and layer("quantbench.cli") > layer("quantbench.tools.x")
    made_up = PACKAGE.parent.parent / "tests" / "data" / "private_read.py"
    assert private_attributes("quantbench.x", made_up, {"quantbench.report.findings"}) == [
        "quantbench.x:4 reads findings._within_quality"]
    tree = PACKAGE / "precisions.py"
    assert not heavy_at_top(tree)
    assert heavy_at_top(PACKAGE / "backends" / "hf.py")


def test_no_module_is_over_600_lines():
    """A module that grows past this answers more than one question: split it by what it
    answers (as report/ is: findings, recommend, anomalies, hardware, variants)."""
    long = {m: n for m, p in modules().items() if (n := len(p.read_text().splitlines())) > 600}
    assert long == {}


def test_what_the_workflow_imports_loads_no_heavy_library():
    """The Snakefile and the rule files import only light modules: building the DAG loads
    neither torch, transformers, pandas, plotly nor llama_cpp."""
    import re
    import subprocess
    import sys

    repo = PACKAGE.parents[1]
    sources = [repo / "Snakefile", *sorted((repo / "workflow" / "rules").glob("*.smk"))]
    lines = sorted({m.strip() for s in sources for m in re.findall(
        r"^\s*(?:from quantbench[\w.]* import [^\n]+|import quantbench[\w.]*)", s.read_text(),
        re.MULTILINE)})
    assert lines, "the workflow imports nothing of the package?"
    code = "\n".join([*lines, "import sys",
                      f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"])
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=repo, env={"PYTHONPATH": str(PACKAGE.parent), "PATH": ""})
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
