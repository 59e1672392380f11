"""Every recorded incident history must replay against today's workflow code.

A change that would break running incidents fails here until it is guarded with
``workflow.patched`` (see docs/deploy.md for re-recording).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from worker.main import STRICT_SANDBOX, WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_recorded() -> None:
    assert len(HISTORIES) >= 4, "record histories: INCIDENTFLOW_RECORD_HISTORIES=1 make test"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_replays(path: Path) -> None:
    replayer = Replayer(
        workflows=WORKFLOWS, data_converter=pydantic_data_converter, workflow_runner=STRICT_SANDBOX
    )
    history = WorkflowHistory.from_json(path.stem, path.read_text())  # noqa: ASYNC240 - a test fixture file
    result = await replayer.replay_workflow(history)
    assert result.replay_failure is None
