"""The docs point at things that exist: every test they cite, every ``quantbench.x.y`` name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def cited(pattern: str) -> set[tuple[str, ...]]:
    return {m for doc in DOCS for m in re.findall(pattern, doc.read_text())}


def top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom):
            names |= {a.asname or a.name for a in node.names}
    return names


def resolves(dotted: str) -> bool:
    """``quantbench.a.b.c``: the longest prefix that is a module or package, then at most one
    name defined at its top level (a method after it is not checked)."""
    parts = dotted.split(".")[1:]
    folder = REPO / "src" / "quantbench"
    for i, part in enumerate(parts):
        if (folder / part).is_dir():
            folder = folder / part
            continue
        if (folder / f"{part}.py").is_file():
            rest = parts[i + 1:]
            return not rest or rest[0] in top_level_names(folder / f"{part}.py")
        return part in top_level_names(folder / "__init__.py")
    return True


def test_every_cited_test_exists():
    missing = [f"{f}::{name}" for f, name in cited(r"(tests/test_\w+\.py)::(\w+)")
               if not (REPO / f).is_file() or f"def {name}(" not in (REPO / f).read_text()]
    assert missing == []


def test_every_cited_quantbench_name_exists():
    dotted = {m.rstrip(".") for m in cited(r"\bquantbench(?:\.\w+)+")}
    assert [d for d in sorted(dotted) if not resolves(d)] == []


def test_the_checks_find_what_is_not_there():
    assert resolves("quantbench.precisions.baseline_of")
    assert resolves("quantbench.report.findings")
    assert not resolves("quantbench.report.operating.baseline_of")
    assert not resolves("quantbench.analysis")
