"""The analysis package imports in one direction: no cycle among its modules' imports, no
import below code, none for side effects only, and each module imports on its own."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "convzoo" / "analysis"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """The imports a module runs when it is imported (not those under TYPE_CHECKING)."""
    return [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]


def targets(node: ast.Import | ast.ImportFrom, modules: set[str]) -> set[str]:
    """The modules an import runs: each named module (``from pkg import sub`` names
    ``pkg.sub`` when that is a module) and the packages above it."""
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
    else:
        base = node.module or ""
        names = {base} | {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules}
    found = set()
    for name in names:
        parts = name.split(".")
        found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return found & modules


def graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """``module -> modules its import runs first``; a package above the importer is
    already being imported, so it is no edge."""
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        found: set[str] = set()
        for node in top_level_imports(tree):
            found |= targets(node, set(modules))
        edges[name] = {t for t in found if not name.startswith(f"{t}.") and t != name}
    return edges


def cycle(edges: dict[str, set[str]]) -> list[str]:
    """One import cycle (its modules in order), or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return []

    for start in sorted(edges):
        if start not in state and (found := visit(start)):
            return found
    return []


def test_the_analysis_package_has_no_import_cycle() -> None:
    edges = graph(MODULES)
    assert "convzoo.analysis.receptive.table" in edges["convzoo.analysis.receptive.layout"]
    assert cycle(edges) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycle(edges) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) == []


def test_imports_come_first_and_none_is_for_side_effects_only() -> None:
    for name, path in MODULES.items():
        text = path.read_text()
        tree = ast.parse(text)
        body = [n for n in tree.body if not isinstance(n, ast.Expr)]  # the docstring
        kinds = [isinstance(n, (ast.Import, ast.ImportFrom)) for n in body]
        assert kinds == sorted(kinds, reverse=True), f"{name}: an import below code"
        assert "noqa: F401" not in text, f"{name}: an import for its side effects"
        roots = {
            (alias.name if isinstance(node, ast.Import) else node.module or "").split(".")[0]
            for node in top_level_imports(tree)
            for alias in node.names
        }
        assert "torchvision" not in roots, f"{name} imports torchvision"


@pytest.mark.slow  # one fresh interpreter per module
def test_every_analysis_module_imports_on_its_own() -> None:
    """Each module imported first in a fresh analysis package (the rest stays loaded)."""
    script = (
        "import importlib, sys, convzoo\n"
        f"for name in {sorted(MODULES)!r}:\n"
        "    for loaded in [m for m in sys.modules if m.startswith('convzoo.analysis')]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
