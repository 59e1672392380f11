"""The docs stay true to the code: docs/deploy.md's settings table names every environment
variable the code reads, every relative link in README.md and docs/*.md reaches a file of
this repository, and the license the package declares is the one shipped."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.support_env import every_env_name

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]

#: [text](target) and [text]: target, outside code spans and fenced blocks
_INLINE_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)


def settings_table(markdown: str) -> set[str]:
    """The variables named in the first column of deploy.md's environment reference."""
    section = markdown.split("## Environment reference", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", first))
    return names


def test_the_settings_table_names_every_variable_the_code_reads() -> None:
    documented = settings_table((ROOT / "docs" / "deploy.md").read_text("utf-8"))
    read = every_env_name()
    missing = {name: where for name, where in read.items() if name not in documented}
    assert not missing, f"docs/deploy.md's environment reference lacks (read in): {missing}"


def test_the_collector_finds_the_dashboard_settings_and_environ_reads() -> None:
    # the variables this test was written for: a collector that lost them would pass vacuously
    read = every_env_name()
    for name in (
        "INCIDENTFLOW_SESSION_SECRET",
        "INCIDENTFLOW_SESSION_MAX_AGE",
        "INCIDENTFLOW_DASHBOARD_REFRESH_SECONDS",
        "DATABASE_URL",
        "TEMPORAL_API_KEY",
    ):
        assert name in read
    assert len(read) >= 35


def links(path: Path) -> list[str]:
    """Link targets of a markdown file, without code blocks and code spans."""
    text = re.sub(r"(?ms)^(```|~~~).*?^\1", "", path.read_text("utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)
    return _INLINE_LINK.findall(text) + _REFERENCE_LINK.findall(text)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve_inside_the_repository(doc: Path) -> None:
    broken = []
    for target in links(doc):
        parts = urlsplit(target)
        if parts.scheme or parts.netloc or not parts.path:  # URLs, mailto:, #anchors
            continue
        resolved = (doc.parent / unquote(parts.path)).resolve()
        if not resolved.is_relative_to(ROOT):
            broken.append(f"{target} (outside the repository)")
        elif not resolved.exists():
            broken.append(f"{target} (no such file)")
    assert not broken, f"{doc.relative_to(ROOT)}: {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_path_of_one_machine(doc: Path) -> None:
    text = doc.read_text("utf-8")
    for pattern in (r"/work/", r"\.\./shared/", r"(?<![\w/])~/"):
        assert not re.search(pattern, text), f"{doc.relative_to(ROOT)} mentions {pattern}"


def test_the_link_checker_catches_outside_and_missing_targets(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("[a](../shared/DESIGN.md) `[b](ignored.md)`\n\n[c]: docs/y.md\n")
    assert links(doc) == ["../shared/DESIGN.md", "docs/y.md"]


def test_the_license_is_the_apache_2_0_text_pyproject_declares() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    assert pyproject["project"]["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text("utf-8")
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert "9. Accepting Warranty or Additional Liability." in text


def test_the_changelog_keeps_an_unreleased_section() -> None:
    text = (ROOT / "CHANGELOG.md").read_text("utf-8")
    assert "keepachangelog.com" in text
    assert re.search(r"^## \[Unreleased\]$", text, re.M)
