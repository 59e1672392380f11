"""Running the ``incidentflow`` console script as a user would: in a subprocess, with an
environment that cannot point it at another test's servers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

from worker.devinfra import free_ports as free_ports  # the CLI tests' import

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_POLICY = ROOT / "examples" / "policy.yaml"
INCIDENTFLOW = Path(sys.executable).parent / "incidentflow"


def clean_env() -> dict[str, str]:
    """This environment without the settings that would point a command elsewhere."""
    drop = ("DATABASE_URL", "INCIDENTFLOW_POLICY", "INCIDENTFLOW_BASE_URL")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("TEMPORAL_")}


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(INCIDENTFLOW), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env or clean_env(),
        cwd=cwd,
    )


def processes_using(path: Path) -> list[psutil.Process]:
    """Live (non-zombie) processes whose command line names ``path``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
            continue
        if any(str(path) in part for part in proc.info["cmdline"] or ()):
            found.append(proc)
    return found


def spawn(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start ``incidentflow <args>`` in the background, its output appended to ``log``.

    It leads a process group of its own, as a shell job does, so ``os.killpg`` sends a signal
    the way a terminal's Ctrl-C does: to every process of the group.
    """
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(INCIDENTFLOW), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            process_group=0,
        )
