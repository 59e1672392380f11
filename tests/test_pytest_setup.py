"""How the suite itself is set up: what pytest rewrites, and that installs follow the lock.

CPython 3.11.7's AST converter fails with "SystemError: AST constructor recursion depth
mismatch" when two threads run ``ast.parse`` at once. pytest's assertion rewriter parses
every module it rewrites, so third-party packages rewritten on import (lazily, in the fuzz
test's hypothesis thread and on the event loop at once) crashed the suite. pyproject names
the plugins instead of autoloading them, which leaves only tests/ to the rewriter.
"""

from __future__ import annotations

import importlib
import re
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def rewritten(module: str) -> bool:
    loader = type(importlib.import_module(module).__loader__)
    return loader.__name__ == "AssertionRewritingHook"


def test_only_the_suite_is_rewritten() -> None:
    assert rewritten("tests.conftest"), "the rewriter is off: asserts lose their detail"
    assert rewritten(__name__)
    for lazy in ("anyio", "anyio.to_thread", "hypothesis", "schemathesis", "platformdirs"):
        assert not rewritten(lazy), f"{lazy} is rewritten: a plugin was autoloaded"


def test_the_named_plugins_are_active(pytestconfig: pytest.Config) -> None:
    for plugin in ("pytest_asyncio.plugin", "pytest_timeout", "_hypothesis_pytestplugin"):
        assert pytestconfig.pluginmanager.has_plugin(plugin), plugin
    assert pytestconfig.getini("timeout") == "300"


# ---------------------------------------------------------------------------- installs
def make_recipe(target: str) -> list[str]:
    """The recipe lines of one Makefile target (after `target:`, up to the next blank line)."""
    lines = (ROOT / "Makefile").read_text("utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"{re.escape(target)}\s*:", line))
    recipe: list[str] = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def make_variables() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in (ROOT / "Makefile").read_text("utf-8").splitlines():
        match = re.match(r"([A-Z_]+)\s*[:?]?=\s*(.*)$", line)
        if match:
            found[match[1]] = match[2]
    return found


def expand(text: str, variables: dict[str, str]) -> str:
    for _ in range(5):
        text = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m[1], m[0]), text)
    return text


def test_every_install_the_makefile_runs_is_constrained_by_the_lock() -> None:
    variables = make_variables()
    recipe = [expand(line, variables) for line in make_recipe("$(STAMP)")]
    installs = [line for line in recipe if "pip install" in line]
    assert installs, recipe
    project = [line for line in installs if "-e" in shlex.split(line)]
    assert project, f"the stamp does not install the project: {installs}"
    for line in installs:
        words = shlex.split(line)
        if "-e" in words:
            at = words.index("--constraint") if "--constraint" in words else words.index("-c")
            assert words[at + 1] == "requirements.lock", line
            # the tests and `make run` need the dev tools and the embedded stack's servers
            assert ".[dev,embedded]" in words, line
        else:
            # pip itself: one exact version, since the lock (pip freeze) cannot hold it
            assert re.fullmatch(r"pip==[\d.]+", words[-1]), line
    stamp_rule = next(
        line
        for line in (ROOT / "Makefile").read_text("utf-8").splitlines()
        if line.startswith("$(STAMP):")
    )
    assert "$(LOCK)" in stamp_rule or "requirements.lock" in stamp_rule, (
        "the venv is not rebuilt when the lock changes"
    )
    for target in ("run", "test", "lint"):
        assert make_recipe(target) and "$(STAMP)" in next(
            line
            for line in (ROOT / "Makefile").read_text("utf-8").splitlines()
            if line.startswith(f"{target}:")
        ), target


def test_make_lock_regenerates_the_lock_from_pyproject() -> None:
    recipe = " ".join(make_recipe("lock"))
    assert "pip install" in recipe and ".[dev,embedded]" in recipe and "pip freeze" in recipe, (
        recipe
    )
    assert "requirements.lock" in expand(recipe, make_variables())
    readme = (ROOT / "README.md").read_text("utf-8")
    assert "make lock" in readme, "README does not say when to run make lock"


def test_this_interpreter_is_one_the_project_supports() -> None:
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    assert pyproject["project"]["requires-python"] == ">=3.11"
    classifiers = pyproject["project"].get("classifiers", [])
    minor = f"Programming Language :: Python :: {sys.version_info.major}.{sys.version_info.minor}"
    assert minor in classifiers, f"{minor} is not a declared, tested version"
