"""Every environment variable incidentflow reads, found in the code rather than listed by
hand: the fields of every pydantic-settings class in the packages (with their env prefix)
and every literal ``os.environ[...]`` / ``os.environ.get(...)`` / ``os.getenv(...)`` name.

tests/test_docs.py holds docs/deploy.md's settings table to it; tests/test_compose.py holds
compose's variable names to it.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parent.parent
#: the packages whose reads count (bench and tests configure themselves)
PACKAGES = ("schemas", "workflows", "activities", "worker", "starter", "launcher")


def python_files() -> list[Path]:
    return [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]


def settings_classes() -> list[type[BaseSettings]]:
    """Every BaseSettings subclass defined in :data:`PACKAGES` (each module imported)."""
    found: dict[str, type[BaseSettings]] = {}
    for path in python_files():
        # by path: starter/dashboard is a namespace package pkgutil would not walk into
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseSettings)
                and value is not BaseSettings
                and value.__module__ == module.__name__
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return [found[name] for name in sorted(found)]


def settings_env_names(cls: type[BaseSettings]) -> set[str]:
    """The environment variables ``cls`` reads (case-insensitive: upper-cased)."""
    prefix = str(cls.model_config.get("env_prefix") or "")
    names: set[str] = set()
    for name, field in cls.model_fields.items():
        alias = field.validation_alias or field.alias
        names.add((alias if isinstance(alias, str) else prefix + name).upper())
    return names


def environ_reads() -> dict[str, str]:
    """Literal names read through ``os.environ`` / ``os.getenv``, with where (path:line)."""
    reads: dict[str, str] = {}
    for path in python_files():
        tree = ast.parse(path.read_text("utf-8"), str(path))
        for node in ast.walk(tree):
            name = _environ_name(node)
            if name is not None:
                reads.setdefault(name, f"{path.relative_to(ROOT)}:{node.lineno}")
    return reads


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def _environ_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Subscript) and _is_environ(node.value):
        key = node.slice
    elif isinstance(node, ast.Call) and node.args:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in ("get", "setdefault", "pop"):
            if not _is_environ(func.value):
                return None
        elif not (
            (isinstance(func, ast.Attribute) and func.attr == "getenv")
            or (isinstance(func, ast.Name) and func.id == "getenv")
        ):
            return None
        key = node.args[0]
    else:
        return None
    if isinstance(key, ast.Constant) and isinstance(key.value, str):
        return key.value
    return None


def policy_named_env() -> dict[str, str]:
    """Variables the policy names rather than the code (``slack.bot_token_env``...): their
    default names, read by ``os.environ.get(<the named variable>)``."""
    from schemas.policy import SlackSettings

    return {
        str(field.default): f"{SlackSettings.__module__}.SlackSettings.{name}"
        for name, field in SlackSettings.model_fields.items()
        if name.endswith("_env")
    }


def every_env_name() -> dict[str, str]:
    """Every variable the code reads, with where it is read."""
    found = {
        name: f"{cls.__module__}.{cls.__qualname__}"
        for cls in settings_classes()
        for name in settings_env_names(cls)
    }
    for name, where in {**environ_reads(), **policy_named_env()}.items():
        found.setdefault(name, where)
    return found
