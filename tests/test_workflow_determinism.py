"""Workflow code makes no non-deterministic call: checked on the source, not at run time.

The worker passes the workflow modules through the sandbox (worker/main.py says why), so the
sandbox's import proxies no longer stop a ``datetime.now()`` in them at run time. This test
stands in: every module under ``workflows/`` may import only deterministic modules, and may
not call the clock, randomness, the environment, files or the network. Time comes from
``workflow.now()``, ids from ``workflow.uuid4()``, waiting from ``workflow.sleep``/timers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WORKFLOWS = sorted((Path(__file__).parent.parent / "workflows").glob("*.py"))

#: top-level modules workflow code may import (``datetime`` for types and ``timedelta``)
ALLOWED_IMPORTS = {
    "__future__",
    "asyncio",
    "collections",
    "dataclasses",
    "datetime",
    "enum",
    "functools",
    "itertools",
    "math",
    "schemas",
    "temporalio",
    "typing",
    "workflows",
}
#: calls that read the clock, draw randomness or touch the world, by dotted name
FORBIDDEN_CALLS = {
    "datetime.now",
    "datetime.utcnow",
    "datetime.today",
    "date.today",
    "time.time",
    "time.monotonic",
    "time.perf_counter",
    "time.sleep",
    "uuid.uuid1",
    "uuid.uuid4",
    "asyncio.get_event_loop",
    "asyncio.to_thread",
    "open",
    "input",
}


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def violations(source: str) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] if node.level == 0 else []
        else:
            names = []
        for name in names:
            if name.split(".")[0] not in ALLOWED_IMPORTS:
                found.append(f"line {node.lineno}: imports {name}")
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in FORBIDDEN_CALLS or name.split(".")[-2:-1] == ["random"]:
                found.append(f"line {node.lineno}: calls {name}()")
    return found


def test_the_workflow_modules_are_found() -> None:
    assert {p.stem for p in WORKFLOWS} >= {"incident", "review"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_no_nondeterministic_call_in_workflow_code(path: Path) -> None:
    assert violations(path.read_text()) == []


#: the incident's rules: outside ``workflows/`` but run inside the workflow, so held to the
#: same check, and free of Temporal so they run in unit tests without it
RULES = [
    Path(__file__).parent.parent / "schemas" / n for n in ("incident_rules.py", "lifecycle.py")
]


@pytest.mark.parametrize("path", RULES, ids=[p.stem for p in RULES])
def test_the_incident_rules_are_deterministic_and_know_no_temporal(path: Path) -> None:
    source = path.read_text()
    assert violations(source) == []
    assert "temporalio" not in source


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("from datetime import datetime\nx = datetime.now()", "calls datetime.now()"),
        ("import time\ntime.sleep(1)", "calls time.sleep()"),
        ("import random\nrandom.random()", "imports random"),
        ("import uuid\nuuid.uuid4()", "imports uuid"),
        ("import httpx", "imports httpx"),
        ("from activities.tickets import TicketActivities", "imports activities.tickets"),
        ("with open('x') as f: pass", "calls open()"),
    ],
)
def test_the_check_catches(snippet: str, expected: str) -> None:
    assert any(expected in v for v in violations(snippet)), violations(snippet)


def test_the_check_allows_the_deterministic_api() -> None:
    source = (
        "from temporalio import workflow\n"
        "from datetime import timedelta\n"
        "now = workflow.now()\n"
        "ident = workflow.uuid4()\n"
        "later = now + timedelta(seconds=1)\n"
    )
    assert violations(source) == []
