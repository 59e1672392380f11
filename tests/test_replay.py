"""Every recorded incident history must replay against today's workflow code.

A change that would break running incidents fails here until it is guarded with
``workflow.patched`` (see docs/deploy.md for re-recording).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, WorkflowReplayResult

from worker.main import STRICT_SANDBOX, WORKFLOWS

TESTS = Path(__file__).parent
HISTORIES = sorted((TESTS / "histories").glob("*.json"))
#: ``await record_history(st, ref.number, "<name>")``, ``await record_review_history(…)``
RECORD_CALL = re.compile(r"\bawait record_(?:review_)?history\([^()]*?\"(\w+)\"\s*\)")


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


async def test_every_history_replays() -> None:
    assert HISTORIES, "tests/histories/ holds no history"

    async def histories() -> AsyncIterator[WorkflowHistory]:
        for path in HISTORIES:
            yield load(path)

    results: list[WorkflowReplayResult] = []
    async with replayer().workflow_replay_iterator(histories()) as replayed:
        async for result in replayed:
            results.append(result)
    # each file present was replayed, once
    assert sorted(r.history.workflow_id for r in results) == [p.stem for p in HISTORIES]
    failures = {r.history.workflow_id: r.replay_failure for r in results if r.replay_failure}
    assert not failures, failures


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_replays(path: Path) -> None:
    result = await replayer().replay_workflow(load(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
