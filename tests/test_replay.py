"""Every recorded incident history must replay against today's workflow code.

A change that would break running incidents fails here until it is guarded with
``workflow.patched`` (see docs/deploy.md for re-recording).

``histories/py311/`` holds histories recorded before the ``python-invariant-waits`` patch
(workflows/waiting.py). Their timed waits went through ``asyncio.wait_for``, whose wake-up
order Python 3.12 changed, so they replay on Python 3.11 only: the worker Python an incident
started on must finish it (docs/deploy.md, "Upgrading Python"). Histories in ``histories/``
replay on every supported Python.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, WorkflowReplayResult

from worker.main import STRICT_SANDBOX, WORKFLOWS
from workflows import incident
from workflows.common import NOTIFY_HEARTBEATS
from workflows.incident import BUNDLED_2026_11, PATCHES_2026_11
from workflows.waiting import INVARIANT_WAITS

TESTS = Path(__file__).parent
HISTORIES = sorted((TESTS / "histories").glob("*.json"))
#: recorded by Python 3.11 before the python-invariant-waits patch: they replay on 3.11 only
PY311_HISTORIES = sorted((TESTS / "histories" / "py311").glob("*.json"))
ON_311 = sys.version_info[:2] == (3, 11)
#: ``await record_history(st, ref.number, "<name>")``, ``await record_review_history(…)``,
#: ``await record_workflow_history(temporal, workflow_id, "<name>")``
RECORD_CALL = re.compile(r"\bawait record_(?:review_|workflow_)?history\([^()]*?\"(\w+)\"\s*\)")


def recorded_by_tests() -> set[str]:
    """The names of the histories the tests record (INCIDENTFLOW_RECORD_HISTORIES=1)."""
    return {
        name
        for path in TESTS.glob("test_*.py")
        for name in RECORD_CALL.findall(path.read_text(encoding="utf-8"))
    }


def replayer() -> Replayer:
    return Replayer(
        workflows=WORKFLOWS, data_converter=pydantic_data_converter, workflow_runner=STRICT_SANDBOX
    )


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))


def test_histories_are_recorded() -> None:
    names = recorded_by_tests()
    assert names, "found no record_history calls in the tests: RECORD_CALL is out of date"
    missing = names - {p.stem for p in HISTORIES}
    assert not missing, (
        f"no recorded history for {sorted(missing)}: INCIDENTFLOW_RECORD_HISTORIES=1 make test"
    )


async def replay_all(paths: list[Path]) -> None:
    """Replay ``paths`` in one pass: each file is replayed once, and none fails."""
    assert paths, "no history to replay"

    async def histories() -> AsyncIterator[WorkflowHistory]:
        for path in paths:
            yield load(path)

    results: list[WorkflowReplayResult] = []
    async with replayer().workflow_replay_iterator(histories()) as replayed:
        async for result in replayed:
            results.append(result)
    assert sorted(r.history.workflow_id for r in results) == sorted(p.stem for p in paths)
    failures = {r.history.workflow_id: r.replay_failure for r in results if r.replay_failure}
    assert not failures, failures


async def test_every_history_replays() -> None:
    await replay_all(HISTORIES)


@pytest.mark.skipif(not ON_311, reason="recorded by Python 3.11's asyncio.wait_for (see above)")
async def test_every_pre_invariant_wait_history_replays_on_311() -> None:
    await replay_all(PY311_HISTORIES)


def patches(path: Path) -> set[str]:
    """The patch ids a history's ``core_patch`` markers carry."""
    found: set[str] = set()
    for event in json.loads(path.read_text(encoding="utf-8"))["events"]:
        marker = event.get("markerRecordedEventAttributes")
        if marker and marker.get("markerName") == "core_patch":
            for payload in marker["details"]["patch-data"]["payloads"]:
                found.add(json.loads(base64.b64decode(payload["data"]))["id"])
    return found


def test_the_invariant_histories_took_the_patch() -> None:
    """A history recorded today carries the python-invariant-waits patch, itself or in the
    incident's patches-2026-11 bundle (without it, it would replay only on the Python that
    recorded it); none of the 3.11 ones does."""
    for path in HISTORIES:
        assert patches(path) & {INVARIANT_WAITS, PATCHES_2026_11}, path.name
    bundled = [path for path in HISTORIES if PATCHES_2026_11 in patches(path)]
    assert bundled, "no history recorded with the patches-2026-11 bundle"
    for path in bundled:  # the bundle stands for them: a run that took it asks no other
        assert patches(path) == {PATCHES_2026_11}, path.name
    assert PY311_HISTORIES
    for path in PY311_HISTORIES:
        assert INVARIANT_WAITS not in patches(path), path.name


def test_the_bundle_stands_for_every_patch_the_incident_asks() -> None:
    """Every patch the incident asks through ``_patched`` is in the bundle (it refuses any
    other at run time), the shared waits and heartbeats too, and nothing else asks
    ``workflow.patched`` but the bundle and ``_patched`` itself."""
    source = Path(incident.__file__).read_text(encoding="utf-8")
    asked = {getattr(incident, name) for name in re.findall(r"self\._patched\((\w+)\)", source)}
    assert asked and asked <= BUNDLED_2026_11
    assert {NOTIFY_HEARTBEATS, INVARIANT_WAITS} <= BUNDLED_2026_11
    assert source.count("patched=self._patched") == 3  # notify, due dates, the drain
    assert re.findall(r"workflow\.patched\((\w+)\)", source) == ["PATCHES_2026_11", "patch_id"]


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_replays(path: Path) -> None:
    result = await replayer().replay_workflow(load(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
