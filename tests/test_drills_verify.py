"""``incidentflow verify``: the comparison rules (pure), the runner against a real stack with
drift planted in PostgreSQL, and the command's exit codes (0 clean, 1 drift, 3 unreachable)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client

from schemas.actions import CancelInput
from schemas.enums import Action, Severity, Status
from schemas.incident import Alert
from starter.cli.verify import (
    Drift,
    DriftKind,
    EventRow,
    IncidentRow,
    WorkflowTruth,
    compare,
    seq_ranges,
    verify,
)
from tests.conftest import wait_for
from tests.support_drills import fetch_all, fresh_database, terminate_all
from tests.support_incidents import make_policy, running_stack
from worker.devinfra import free_port

INCIDENTFLOW = Path(sys.executable).parent / "incidentflow"
KINDS = ["triggered", "alert_repeated", "acknowledged", "note_added"]


def truth(**overrides: object) -> WorkflowTruth:
    base: dict[str, object] = {
        "number": "INC-7",
        "workflow_id": "incident:checkout:k",
        "running": True,
        "status": Status.ACKNOWLEDGED,
        "severity": Severity.SEV2,
        "alert_count": 3,
        "last_seq": 4,
        "timeline": [EventRow(seq=i + 1, kind=k) for i, k in enumerate(KINDS)],
    }
    return WorkflowTruth.model_validate(base | overrides)


def row(**overrides: object) -> IncidentRow:
    base: dict[str, object] = {
        "number": "INC-7",
        "workflow_id": "incident:checkout:k",
        "status": "acknowledged",
        "severity": "SEV2",
        "alert_count": 3,
        "last_seq": 4,
    }
    return IncidentRow.model_validate(base | overrides)


def events(*seqs: int) -> list[EventRow]:
    return [EventRow(seq=s, kind=KINDS[s - 1] if s <= len(KINDS) else "note_added") for s in seqs]


def kinds_of(found: list[Drift]) -> list[DriftKind]:
    return [d.kind for d in found]


# ---------------------------------------------------------------------------- pure rules
def test_agreement_is_clean() -> None:
    assert compare(truth(), row(), events(1, 2, 3, 4)) == []


def test_each_kind_of_drift_is_named() -> None:
    assert kinds_of(compare(truth(), None, [])) == [DriftKind.MISSING_ROW]
    assert kinds_of(compare(None, row(), [])) == [DriftKind.NO_WORKFLOW]
    assert compare(None, row(status="closed"), []) == []  # past retention: nothing to compare

    mismatch = compare(truth(), row(alert_count=2, status="triggered"), events(1, 2, 3, 4))
    assert kinds_of(mismatch) == [DriftKind.FIELD_MISMATCH, DriftKind.FIELD_MISMATCH]
    assert mismatch[0].detail == "status: workflow acknowledged, row triggered"
    assert mismatch[1].detail == "alert_count: workflow 3, row 2"

    gap = compare(truth(), row(), events(1, 4))
    assert kinds_of(gap) == [DriftKind.SEQ_GAP]
    assert gap[0].detail == "incident_events lacks seq 2-3"

    lagging = compare(truth(), row(), events(1, 2))
    assert kinds_of(lagging) == [DriftKind.MISSING_EVENTS]
    assert lagging[0].detail == "incident_events lacks seq 3-4 (has up to 2)"

    extra = compare(truth(), row(), events(1, 2, 3, 4, 5))
    assert kinds_of(extra) == [DriftKind.EXTRA_EVENTS]

    wrong_kind = [*events(1, 2), EventRow(seq=3, kind="resolved"), *events(4)]
    mismatched = compare(truth(), row(), wrong_kind)
    assert kinds_of(mismatched) == [DriftKind.EVENT_MISMATCH]
    assert "3: workflow acknowledged, row resolved" in mismatched[0].detail

    holes = truth(timeline=[EventRow(seq=1, kind="triggered"), EventRow(seq=3, kind="x")])
    assert DriftKind.TIMELINE_GAP in kinds_of(compare(holes, row(), events(1, 2, 3, 4)))


def test_a_review_owns_the_sequence_after_hand_over() -> None:
    """The review workflow closes the incident and appends seq 5..6 the incident run never saw."""
    after = truth(
        running=False,
        status=Status.CLOSED,
        last_seq=6,
        timeline_upto=4,
        source="review",
    )
    assert compare(after, row(status="closed", last_seq=6), events(1, 2, 3, 4, 5, 6)) == []
    assert kinds_of(compare(after, row(status="closed", last_seq=6), events(1, 2, 3, 4))) == [
        DriftKind.MISSING_EVENTS
    ]


def test_seq_ranges() -> None:
    assert seq_ranges([9, 1, 2, 3, 7, 10]) == "1-3, 7, 9-10"
    assert seq_ranges([]) == ""


# ---------------------------------------------------------------------------- runner
async def _run_cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        str(INCIDENTFLOW),
        "verify",
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


async def test_verify_finds_planted_drift_and_the_cli_exit_codes(
    temporal_client: Client, postgres_server: str, task_queue: str
) -> None:
    policy = make_policy(level_delay=300, ack_within=300)
    prefix = uuid.uuid4().hex[:8]
    with fresh_database(postgres_server) as database_url:
        env = {
            "TEMPORAL_ADDRESS": temporal_client.service_client.config.target_host,
            "DATABASE_URL": database_url,
        }
        async with running_stack(temporal_client, database_url, task_queue, policy) as st:
            try:
                refs = [
                    await st.client.trigger(
                        Alert(service="checkout", title=f"v{i}", dedup_key=f"{prefix}-{i}")
                    )
                    for i in range(4)
                ]
                for i, ref in enumerate(refs[:3]):
                    repeat = Alert(service="checkout", title="again", dedup_key=f"{prefix}-{i}")
                    assert (await st.client.trigger(repeat)).alert_count == 2
                    await st.client.acknowledge(ref.number, "bob", note="looking")

                async def synced() -> bool:
                    stored = await fetch_all(
                        database_url,
                        "SELECT count(*) FROM incident_events WHERE kind = %s",
                        "acknowledged",
                    )
                    return stored[0][0] == 3

                await wait_for(synced, message="ticket rows written")
                # a closed incident: its workflow completed, verify replays it by query
                closed = await st.client.trigger(
                    Alert(service="checkout", title="closed", dedup_key=f"{prefix}-closed")
                )
                await st.client.act(
                    closed.number, Action.CANCEL, CancelInput(actor="bob", reason="false alarm")
                )
                handle = temporal_client.get_workflow_handle(closed.workflow_id)
                await asyncio.wait_for(handle.result(), 30)

                async def synced_closed() -> bool:
                    stored = await fetch_all(
                        database_url,
                        "SELECT status FROM incidents WHERE number = %s",
                        closed.number,
                    )
                    return stored == [("closed",)]

                await wait_for(synced_closed, message="closed ticket row")
                clean = await verify(temporal_client, database_url, task_queue=task_queue)
                assert clean.clean and clean.checked == 5, clean

                code, output = await _run_cli("--task-queue", task_queue, env=env)
                assert code == 0, output
                assert "verified 5 incident(s)" in output and "clean" in output

                # plant drift: a lost event, a stale count, a lost row, an orphan row
                a, b, c, _ = refs
                await _execute(
                    database_url,
                    "DELETE FROM incident_events WHERE number = %s AND seq = 1",
                    a.number,
                )
                await _execute(
                    database_url, "UPDATE incidents SET alert_count = 9 WHERE number = %s", b.number
                )
                await _execute(database_url, "DELETE FROM incidents WHERE number = %s", c.number)
                await _execute(
                    database_url,
                    "INSERT INTO incidents (number, number_seq, workflow_id, title, service,"
                    " status, severity, priority, impact, urgency, category, snapshot, created_at)"
                    " VALUES ('INC-999000', 999000, 'incident:checkout:gone', 't', 'checkout',"
                    " 'triggered', 'SEV3', 'P3', 'medium', 'medium', 'other', '{}', now())",
                )
                report = await verify(
                    temporal_client, database_url, task_queue=task_queue, settle=0.5
                )
                found = {(d.number, d.kind) for d in report.drift}
                assert found == {
                    (a.number, DriftKind.SEQ_GAP),
                    (b.number, DriftKind.FIELD_MISMATCH),
                    (c.number, DriftKind.MISSING_ROW),
                    ("INC-999000", DriftKind.NO_WORKFLOW),
                }, report.drift

                code, output = await _run_cli(
                    "--task-queue", task_queue, "--settle", "0.5", "--json", env=env
                )
                assert code == 1, output
                document = json.loads(output[output.index("{") :])
                assert {(d["number"], d["kind"]) for d in document["drift"]} == {
                    (n, k.value) for n, k in found
                }
                code, output = await _run_cli("--task-queue", task_queue, "--settle", "0", env=env)
                assert code == 1 and "seq_gap" in output and "no_workflow" in output
            finally:
                await terminate_all(temporal_client, task_queue)


async def _execute(database_url: str, sql: str, *params: object) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(sql.encode(), params or None)


async def test_verify_exit_code_3_when_something_is_unreachable(
    temporal_client: Client, postgres_server: str, task_queue: str
) -> None:
    address = temporal_client.service_client.config.target_host
    with fresh_database(postgres_server) as database_url:
        closed_port = f"127.0.0.1:{free_port()}"
        code, output = await _run_cli(
            env={"TEMPORAL_ADDRESS": closed_port, "DATABASE_URL": database_url}
        )
        assert code == 3, output
        assert "Temporal unreachable" in output

        dead_db = f"postgresql://postgres@127.0.0.1:{free_port()}/nope?connect_timeout=2"
        code, output = await _run_cli(env={"TEMPORAL_ADDRESS": address, "DATABASE_URL": dead_db})
        assert code == 3, output
        assert "PostgreSQL unreachable" in output

        code, output = await _run_cli(env={"TEMPORAL_ADDRESS": address, "DATABASE_URL": ""})
        assert code == 2, output

        # a running incident whose worker is gone cannot be asked: unverified, exit 3
        policy = make_policy(level_delay=300, ack_within=300)
        async with running_stack(temporal_client, database_url, task_queue, policy) as st:
            ref = await st.client.trigger(Alert(service="checkout", title="orphaned"))

            async def recorded() -> bool:
                rows = await fetch_all(
                    database_url, "SELECT 1 FROM incidents WHERE number = %s", ref.number
                )
                return bool(rows)

            await wait_for(recorded, message="ticket row")
        try:
            code, output = await _run_cli(
                "--task-queue",
                task_queue,
                "--settle",
                "0",
                env={"TEMPORAL_ADDRESS": address, "DATABASE_URL": database_url},
            )
            assert code == 3, output
            assert "could not be read" in output
        finally:
            await terminate_all(temporal_client, task_queue)


@pytest.mark.parametrize("argv", [["verify", "--help"]])
def test_verify_is_registered_on_the_cli(argv: list[str]) -> None:
    from typer.testing import CliRunner

    from launcher.cli import app

    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0
    assert "--task-queue" in result.output and "drift" in result.output.lower()
