"""The import rules of the layout, checked on the source (every import, function-level and
``TYPE_CHECKING`` ones included):

    schemas  ←  workflows, activities  ←  worker
    schemas  ←  starter (clients; they may name workflow classes for typed handles)
    worker + starter  ←  launcher (the composition root; nothing imports it)

- ``schemas`` imports nothing of ours but ``schemas``;
- ``workflows`` imports ``schemas`` and ``workflows``; ``activities`` ``schemas`` and
  ``activities``;
- ``worker`` imports ``schemas``, ``workflows``, ``activities`` and ``worker``;
- ``starter`` imports ``schemas``, ``workflows`` and ``starter``, never ``worker`` nor
  ``activities``;
- only ``launcher`` imports both ``worker`` and ``starter``;
- nothing imports ``tests`` or ``bench`` (but tests and bench);
- no import cycles between modules (a cycle held together by function-level imports is
  still a cycle; ``TYPE_CHECKING`` imports, never executed, are left out of this one).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("schemas", "workflows", "activities", "worker", "starter", "launcher")
OURS = (*PACKAGES, "tests", "bench")

#: package → the packages of ours its modules may import
ALLOWED: dict[str, set[str]] = {
    "schemas": {"schemas"},
    "workflows": {"schemas", "workflows"},
    "activities": {"schemas", "activities"},
    "worker": {"schemas", "workflows", "activities", "worker"},
    "starter": {"schemas", "workflows", "starter"},
    "launcher": {"schemas", "workflows", "activities", "worker", "starter", "launcher"},
    "tests": set(OURS),
    "bench": set(OURS),
}
#: the composition root: the one package allowed to import both worker and starter
COMPOSITION_ROOT = "launcher"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for top in OURS:
        for path in sorted((root / top).rglob("*.py")):
            found[module_name(path, root)] = path
    return found


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.body:
                inside.update(id(n) for n in ast.walk(stmt))
    return inside


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> Iterator[tuple[str, int, bool]]:
    """(imported module of ours, line, executed at run time) for every import in ``path``."""
    tree = ast.parse(path.read_text("utf-8"), str(path))
    typing_only = _type_checking_nodes(tree)
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` imports the module pkg.mod when there is one
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        for target in targets:
            if target.split(".")[0] not in OURS:
                continue
            while target not in modules and "." in target:  # `import a.b.c` of a name
                target = target.rsplit(".", 1)[0]
            yield target, node.lineno, id(node) not in typing_only


def import_graph(root: Path = ROOT) -> dict[str, list[tuple[str, int, bool]]]:
    modules = project_modules(root)
    return {name: list(imports_of(name, path, modules)) for name, path in modules.items()}


def rule_violations(graph: dict[str, list[tuple[str, int, bool]]]) -> list[str]:
    found: list[str] = []
    uses_both: dict[str, set[str]] = {}
    for name, imports in sorted(graph.items()):
        package = name.split(".")[0]
        for target, line, _ in imports:
            top = target.split(".")[0]
            if top not in ALLOWED[package]:
                found.append(f"{name}:{line} imports {target} ({package} may not import {top})")
            if top == COMPOSITION_ROOT and package not in (COMPOSITION_ROOT, "tests"):
                found.append(f"{name}:{line} imports the composition root ({target})")
            uses_both.setdefault(name, set()).add(top)
    for name, tops in sorted(uses_both.items()):
        package = name.split(".")[0]
        if {"worker", "starter"} <= tops and package not in (COMPOSITION_ROOT, "tests", "bench"):
            found.append(f"{name} imports both worker and starter (only {COMPOSITION_ROOT} may)")
    return found


def cycles(graph: dict[str, list[tuple[str, int, bool]]]) -> list[list[str]]:
    """Strongly connected components of more than one module (or importing itself), over
    the imports executed at run time (Tarjan)."""
    edges = {
        name: sorted({t for t, _, runtime in imports if runtime and t in graph})
        for name, imports in graph.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in edges[node]:
                found.append(sorted(component))

    for name in sorted(edges):
        if name not in index:
            visit(name)
    return found


# ---------------------------------------------------------------------------- the rules
def test_every_package_imports_only_what_the_layout_allows() -> None:
    graph = import_graph()
    assert {name.split(".")[0] for name in graph} >= set(PACKAGES)
    assert rule_violations(graph) == []


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


# ---------------------------------------------------------------------------- the checker
def _tree(root: Path, files: dict[str, str]) -> dict[str, list[tuple[str, int, bool]]]:
    for top in OURS:
        (root / top).mkdir(parents=True, exist_ok=True)
        (root / top / "__init__.py").write_text("")
    for rel, source in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(source)
    return import_graph(root)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"schemas/a.py": "from starter import b\n", "starter/b.py": ""}, "schemas may not"),
        ({"workflows/w.py": "import activities.x\n", "activities/x.py": ""}, "workflows may"),
        ({"starter/s.py": "def f():\n    import worker.main\n", "worker/main.py": ""}, "worker"),
        ({"starter/s.py": "from activities import db\n", "activities/db.py": ""}, "activities"),
        ({"worker/w.py": "from starter import c\n", "starter/c.py": ""}, "worker may not"),
        ({"activities/a.py": "from tests import support\n", "tests/support.py": ""}, "tests"),
        ({"starter/s.py": "import bench.harness\n", "bench/harness.py": ""}, "bench"),
        ({"worker/w.py": "from launcher import cli\n", "launcher/cli.py": ""}, "composition"),
    ],
)
def test_a_planted_violation_is_found(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    found = rule_violations(_tree(tmp_path, files))
    assert found and any(expected in line for line in found), found


def test_a_planted_cycle_is_found_even_through_function_level_imports(tmp_path: Path) -> None:
    graph = _tree(
        tmp_path,
        {
            "starter/a.py": "from starter.b import x\n",
            "starter/b.py": "x = 1\ndef f():\n    from starter import a\n",
            "starter/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from starter import a\n",
            "starter/d.py": "from . import c\n",
        },
    )
    assert cycles(graph) == [["starter.a", "starter.b"]]
    assert ("starter.c", 1, True) in graph["starter.d"]  # a relative import, resolved
    assert ("starter.a", 3, False) in graph["starter.c"]  # TYPE_CHECKING: no cycle, but
    assert rule_violations(graph) == []  # still held to the layout rules
