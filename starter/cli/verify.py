"""``incidentflow verify``: does every ticket in PostgreSQL agree with its incident workflow?

The workflow is the source of truth for live state, PostgreSQL the system of record written
behind it by activities. After a crash, an outage or a bug the two can drift: a missing row,
a gap in ``incident_events`` sequence numbers, a stale status. This module finds such drift.

Two halves:

* pure comparison (:func:`compare`): one incident's workflow truth against its ``incidents``
  row and ``incident_events`` rows, returning :class:`Drift` items;
* the runner (:func:`verify`): every incident row, plus every incident workflow visibility
  knows, fetched concurrently, compared, and re-checked for a short ``settle`` window so a
  ticket write still in flight is not reported as drift.

Heavy imports (Temporal client, psycopg) happen inside the runner: ``starter.cli`` registers
the command at import time and ``incidentflow --help`` should stay quick.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from pydantic import BaseModel, Field

from schemas.enums import Severity, Status
from schemas.lifecycle import OPEN_STATUSES
from starter.cli.common import ExitCode, console, err_console
from starter.cli.dev_connection import DEFAULT_DATA_DIR, DataDirOption, settings_with_dev_stack

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowExecution

    from schemas.incident import IncidentSnapshot

#: how long one query may take; a running workflow whose worker is down never answers
QUERY_TIMEOUT = timedelta(seconds=5)
FIELDS = ("status", "severity", "alert_count", "last_seq")


# ---------------------------------------------------------------------------- models
class DriftKind(StrEnum):
    #: a numbered incident workflow has no ``incidents`` row
    MISSING_ROW = "missing_row"
    #: an open ``incidents`` row has no workflow
    NO_WORKFLOW = "no_workflow"
    #: status, severity, alert_count, last_seq or workflow_id differ
    FIELD_MISMATCH = "field_mismatch"
    #: ``incident_events`` lacks sequence numbers below one it has
    SEQ_GAP = "seq_gap"
    #: ``incident_events`` lacks the newest sequence numbers of the workflow
    MISSING_EVENTS = "missing_events"
    #: ``incident_events`` has sequence numbers the workflow never wrote
    EXTRA_EVENTS = "extra_events"
    #: same sequence number, different kind
    EVENT_MISMATCH = "event_mismatch"
    #: the workflow's own timeline is not numbered 1..last_seq
    TIMELINE_GAP = "timeline_gap"
    #: the workflow could not be asked (no worker, query failed)
    UNVERIFIED = "unverified"


class Drift(BaseModel):
    number: str
    kind: DriftKind
    detail: str
    workflow_id: str | None = None


class IncidentRow(BaseModel):
    """The columns of ``incidents`` that verify compares."""

    number: str
    workflow_id: str
    run_id: str = ""
    status: str
    severity: str
    alert_count: int
    last_seq: int


class EventRow(BaseModel):
    seq: int
    kind: str


class WorkflowTruth(BaseModel):
    """What the workflow says: its ``state`` query, else (closed, no worker) its result.

    ``timeline`` is ``None`` when only the final summary is known; ``timeline_upto`` limits
    the timeline comparison when later events were written by another workflow (the review).
    """

    number: str
    workflow_id: str
    run_id: str = ""
    running: bool
    status: Status
    severity: Severity
    alert_count: int
    last_seq: int
    timeline: list[EventRow] | None = None
    timeline_upto: int | None = None
    source: Literal["query", "result", "review"] = "query"

    @classmethod
    def from_snapshot(
        cls,
        snapshot: IncidentSnapshot,
        *,
        running: bool,
        source: Literal["query", "result", "review"] = "query",
        with_timeline: bool = True,
    ) -> WorkflowTruth:
        return cls(
            number=snapshot.number,
            workflow_id=snapshot.workflow_id,
            run_id=snapshot.run_id,
            running=running,
            status=snapshot.status,
            severity=snapshot.severity,
            alert_count=snapshot.alert_count,
            last_seq=snapshot.last_seq,
            timeline=[EventRow(seq=e.seq, kind=e.kind.value) for e in snapshot.timeline]
            if with_timeline
            else None,
            source=source,
        )


class VerifyReport(BaseModel):
    checked: int = 0
    #: closed rows whose workflow no longer exists (past retention): nothing to compare
    archived: int = 0
    #: running workflows that have no incident number yet (allocation pending)
    unnumbered: int = 0
    drift: list[Drift] = Field(default_factory=list)
    unverified: list[Drift] = Field(default_factory=list)
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.drift and not self.unverified


#: what became of one incident: checked, archived (closed row, workflow gone) or skipped
#: (its workflow runs on another task queue), with the drift found
_Outcome = tuple[Literal["checked", "archived", "skipped"], list[Drift]]


# ---------------------------------------------------------------------------- comparison
def seq_ranges(seqs: Iterable[int]) -> str:
    """``[1, 2, 3, 7, 9, 10]`` -> ``"1-3, 7, 9-10"``."""
    ordered = sorted(set(seqs))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ", ".join(parts)


def compare(
    truth: WorkflowTruth | None, row: IncidentRow | None, events: Sequence[EventRow]
) -> list[Drift]:
    """Every way ``row`` and ``events`` disagree with ``truth`` (empty when they agree).

    ``truth`` is ``None`` when no workflow holds the number: fine for a closed row (its
    history is past retention), drift for an open one.
    """
    number = (truth.number if truth else None) or (row.number if row else "?")
    workflow_id = truth.workflow_id if truth else row.workflow_id if row else None

    def drift(kind: DriftKind, detail: str) -> Drift:
        return Drift(number=number, kind=kind, detail=detail, workflow_id=workflow_id)

    if truth is None:
        if row is not None and Status(row.status) in OPEN_STATUSES:
            return [drift(DriftKind.NO_WORKFLOW, f"row is {row.status} but no workflow holds it")]
        return []
    found: list[Drift] = []
    if truth.timeline is not None:
        numbered = [e.seq for e in truth.timeline]
        upto = truth.timeline_upto or truth.last_seq
        if numbered != list(range(1, upto + 1)):
            found.append(
                drift(
                    DriftKind.TIMELINE_GAP,
                    f"workflow timeline seqs are not 1..{upto}: {seq_ranges(numbered)}",
                )
            )
    if row is None:
        orphans = f"; {len(events)} event rows exist" if events else ""
        found.append(drift(DriftKind.MISSING_ROW, f"no incidents row{orphans}"))
        return found

    for name in FIELDS:
        ours = getattr(truth, name)
        theirs = getattr(row, name)
        ours_value = ours.value if isinstance(ours, StrEnum) else ours
        if ours_value != theirs:
            found.append(
                drift(DriftKind.FIELD_MISMATCH, f"{name}: workflow {ours_value}, row {theirs}")
            )
    if row.workflow_id != truth.workflow_id:
        found.append(
            drift(
                DriftKind.FIELD_MISMATCH,
                f"workflow_id: workflow {truth.workflow_id}, row {row.workflow_id}",
            )
        )

    stored = {e.seq: e.kind for e in events}
    wanted = set(range(1, truth.last_seq + 1))
    missing = sorted(wanted - stored.keys())
    top = max(stored, default=0)
    inner = [s for s in missing if s < top]
    tail = [s for s in missing if s > top]
    if inner:
        found.append(drift(DriftKind.SEQ_GAP, f"incident_events lacks seq {seq_ranges(inner)}"))
    if tail:
        found.append(
            drift(
                DriftKind.MISSING_EVENTS,
                f"incident_events lacks seq {seq_ranges(tail)} (has up to {top})",
            )
        )
    extra = sorted(s for s in stored if s not in wanted)
    if extra:
        found.append(
            drift(
                DriftKind.EXTRA_EVENTS,
                f"incident_events has seq {seq_ranges(extra)} beyond last_seq {truth.last_seq}",
            )
        )
    if truth.timeline is not None:
        mismatched = [
            f"{e.seq}: workflow {e.kind}, row {stored[e.seq]}"
            for e in truth.timeline
            if e.seq in stored and stored[e.seq] != e.kind
        ]
        if mismatched:
            shown = "; ".join(mismatched[:5]) + (" …" if len(mismatched) > 5 else "")
            found.append(drift(DriftKind.EVENT_MISMATCH, f"kind differs at seq {shown}"))
    return found


# ---------------------------------------------------------------------------- runner
_ROWS = """
SELECT number, workflow_id, run_id, status, severity, alert_count, last_seq
  FROM incidents {where} ORDER BY number_seq NULLS LAST, number
"""
_EVENTS = "SELECT number, seq, kind FROM incident_events {where} ORDER BY number, seq"


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class _Sources:
    """Fetches both sides: rows from PostgreSQL, truth from Temporal."""

    def __init__(self, temporal: Client, database_url: str, task_queue: str | None) -> None:
        self.temporal = temporal
        self.database_url = database_url
        self.task_queue = task_queue

    async def rows(
        self, numbers: Sequence[str] | None = None
    ) -> tuple[dict[str, IncidentRow], dict[str, list[EventRow]]]:
        import psycopg
        from psycopg.rows import dict_row

        where = "" if numbers is None else "WHERE number = ANY(%(numbers)s)"
        params = {"numbers": list(numbers or [])}
        rows: dict[str, IncidentRow] = {}
        events: dict[str, list[EventRow]] = {}
        async with await psycopg.AsyncConnection.connect(
            self.database_url, connect_timeout=10
        ) as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_ROWS.format(where=where).encode(), params)
            for r in await cur.fetchall():
                rows[r["number"]] = IncidentRow.model_validate(r)
            await cur.execute(_EVENTS.format(where=where).encode(), params)
            for r in await cur.fetchall():
                events.setdefault(r["number"], []).append(EventRow(seq=r["seq"], kind=r["kind"]))
        return rows, events

    def _query(self, *clauses: str, queue: bool = True) -> str:
        parts = ["WorkflowType = 'IncidentWorkflow'", *clauses]
        if queue and self.task_queue:
            parts.append(f"TaskQueue = {_quote(self.task_queue)}")
        return " AND ".join(parts)

    async def executions(
        self, number: str | None = None, *, queue: bool = True
    ) -> tuple[dict[str, WorkflowExecution], int]:
        """Best execution per incident number (running, else the latest closed), and how
        many running workflows have no number yet."""
        from schemas import search_attributes as sa

        clauses = [f"IncidentNumber = {_quote(number)}"] if number else []
        best: dict[str, WorkflowExecution] = {}
        unnumbered = 0
        async for wf in self.temporal.list_workflows(self._query(*clauses, queue=queue)):
            found = wf.typed_search_attributes.get(sa.INCIDENT_NUMBER)
            if not found:
                unnumbered += _is_running(wf)
                continue
            current = best.get(found)
            if current is None or _rank(wf) > _rank(current):
                best[found] = wf
        return best, unnumbered

    async def truth(self, execution: WorkflowExecution) -> WorkflowTruth:
        """The incident's state by query; a closed run without a worker by its result; an
        incident handed to its review by the review's copy of the snapshot."""
        from temporalio.client import WorkflowExecutionStatus

        from schemas.incident import IncidentSnapshot
        from workflows.incident import IncidentWorkflow

        handle = self.temporal.get_workflow_handle(execution.id, run_id=execution.run_id)
        running = execution.status == WorkflowExecutionStatus.RUNNING
        try:
            snapshot: IncidentSnapshot = await handle.query(
                IncidentWorkflow.state, rpc_timeout=QUERY_TIMEOUT
            )
            truth = WorkflowTruth.from_snapshot(snapshot, running=running)
        except Exception:
            if running or execution.status != WorkflowExecutionStatus.COMPLETED:
                raise
            summary = await handle.result(follow_runs=False, rpc_timeout=QUERY_TIMEOUT)
            snapshot = IncidentSnapshot.model_validate(summary)
            truth = WorkflowTruth.from_snapshot(
                snapshot, running=False, source="result", with_timeline=False
            )
        if not running and snapshot.review_workflow_id:
            truth = await self._after_review(truth, snapshot.review_workflow_id)
        return truth

    async def _after_review(self, truth: WorkflowTruth, review_id: str) -> WorkflowTruth:
        """The review workflow owns the incident after hand-over (it closes it)."""
        from temporalio.client import WorkflowExecutionStatus

        from workflows.review import PostIncidentReviewWorkflow, ReviewState

        handle = self.temporal.get_workflow_handle(review_id)
        description = await handle.describe()
        if description.status == WorkflowExecutionStatus.RUNNING:
            state: ReviewState = await handle.query(
                PostIncidentReviewWorkflow.state, rpc_timeout=QUERY_TIMEOUT
            )
        else:
            state = ReviewState.model_validate(
                await handle.result(follow_runs=False, rpc_timeout=QUERY_TIMEOUT)
            )
        inc = state.incident
        return truth.model_copy(
            update={
                "status": inc.status,
                "severity": inc.severity,
                "alert_count": inc.alert_count,
                "last_seq": inc.last_seq,
                "timeline_upto": truth.last_seq,
                "source": "review",
            }
        )


def _is_running(wf: WorkflowExecution) -> bool:
    from temporalio.client import WorkflowExecutionStatus

    return wf.status == WorkflowExecutionStatus.RUNNING


def _rank(wf: WorkflowExecution) -> tuple[int, float]:
    """Running beats closed, a real end beats continued-as-new, then the newest start."""
    from temporalio.client import WorkflowExecutionStatus

    status = (
        2 if _is_running(wf) else 0 if wf.status == WorkflowExecutionStatus.CONTINUED_AS_NEW else 1
    )
    return (status, wf.start_time.timestamp() if wf.start_time else 0.0)


async def verify(
    temporal: Client,
    database_url: str,
    *,
    task_queue: str | None = None,
    settle: float = 5.0,
    concurrency: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Compare every incident row and every incident workflow; see the module docstring.

    ``task_queue`` limits the check to incidents whose workflow runs on that queue (rows of
    other queues are skipped, not reported). Drift still present after ``settle`` seconds of
    re-checking is reported. Raises when Temporal or PostgreSQL is unreachable.
    """
    started = time.monotonic()
    sources = _Sources(temporal, database_url, task_queue)
    rows, events = await sources.rows()
    executions, unnumbered = await sources.executions()
    numbers = sorted(set(rows) | set(executions), key=_number_order)
    report = VerifyReport(unnumbered=unnumbered)
    gate = asyncio.Semaphore(max(1, concurrency))
    done = 0

    async def check(number: str) -> _Outcome:
        nonlocal done
        async with gate:
            try:
                return await _check_one(sources, number, executions.get(number), rows, events)
            finally:
                done += 1
                if progress is not None:
                    progress(done, len(numbers))

    outcomes = dict(zip(numbers, await asyncio.gather(*(check(n) for n in numbers)), strict=True))
    report.checked = sum(1 for o in outcomes.values() if o[0] == "checked")
    report.archived = sum(1 for o in outcomes.values() if o[0] == "archived")
    found = {n: o[1] for n, o in outcomes.items() if o[1]}

    deadline = time.monotonic() + settle
    delay = 0.2
    while found and time.monotonic() < deadline:
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 2.0)
        again_rows, again_events = await sources.rows(list(found))

        rechecked = await asyncio.gather(
            *(_recheck(sources, gate, n, again_rows, again_events) for n in found)
        )
        found = {n: o[1] for n, o in zip(list(found), rechecked, strict=True) if o[1]}

    for items in found.values():
        for item in items:
            (report.unverified if item.kind == DriftKind.UNVERIFIED else report.drift).append(item)
    report.seconds = round(time.monotonic() - started, 3)
    return report


async def _recheck(
    sources: _Sources,
    gate: asyncio.Semaphore,
    number: str,
    rows: dict[str, IncidentRow],
    events: dict[str, list[EventRow]],
) -> _Outcome:
    """One incident again, its execution looked up afresh (it may have continued-as-new)."""
    async with gate:
        latest, _ = await sources.executions(number)
        return await _check_one(sources, number, latest.get(number), rows, events)


async def _check_one(
    sources: _Sources,
    number: str,
    execution: WorkflowExecution | None,
    rows: dict[str, IncidentRow],
    events: dict[str, list[EventRow]],
) -> _Outcome:
    row = rows.get(number)
    if execution is None and sources.task_queue:
        elsewhere, _ = await sources.executions(number, queue=False)
        if number in elsewhere:
            return ("skipped", [])
    if execution is None:
        drift = compare(None, row, events.get(number, []))
        return ("checked", drift) if drift else ("archived", [])
    try:
        truth = await sources.truth(execution)
    except Exception as exc:  # any failure to ask is reported, whatever its type
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        detail = f"could not read the workflow ({type(exc).__name__}: {reason})"
        return (
            "checked",
            [
                Drift(
                    number=number,
                    kind=DriftKind.UNVERIFIED,
                    detail=detail,
                    workflow_id=execution.id,
                )
            ],
        )
    if not truth.number:
        truth = truth.model_copy(update={"number": number})
    return ("checked", compare(truth, row, events.get(number, [])))


def _number_order(number: str) -> tuple[int, str]:
    digits = number.removeprefix("INC-")
    return (int(digits), number) if digits.isdigit() else (1 << 62, number)


# ---------------------------------------------------------------------------- CLI
def register(app: typer.Typer) -> None:
    """Add ``incidentflow verify`` to the CLI."""
    app.command("verify")(verify_command)


def verify_command(
    task_queue: Annotated[
        str | None,
        typer.Option(
            help="Only incidents whose workflow runs on this task queue (default: all).",
            show_default=False,
        ),
    ] = None,
    settle: Annotated[
        float,
        typer.Option(help="Seconds to re-check drift before reporting it (writes in flight)."),
    ] = 5.0,
    concurrency: Annotated[int, typer.Option(help="Workflows queried at once.")] = 32,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
) -> None:
    """Compare every incident's workflow state with its ticket rows in PostgreSQL.

    Checks status, severity, alert count, last sequence number and the timeline (seq and
    kind of every event) of each incident row and each incident workflow. Exit code 0 when
    they agree, 1 on drift, 3 when Temporal, PostgreSQL or the worker is unreachable.
    Configured by TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and DATABASE_URL; what they leave
    unset comes from a dev stack's --data-dir (`incidentflow dev` writes connection.json).
    """
    settings = settings_with_dev_stack(data_dir)
    if not settings.database_url:
        err_console.print(
            "error: DATABASE_URL is not set (verify reads the ticket rows there) and no "
            f"`incidentflow dev` stack left its connection info in {data_dir}"
        )
        raise typer.Exit(ExitCode.USAGE)
    try:
        report = asyncio.run(_run_cli(settings, task_queue, settle, concurrency, as_json))
    except _Unreachable as err:
        err_console.print(f"error: {err}", markup=False, highlight=False)
        raise typer.Exit(ExitCode.UNREACHABLE) from None
    if as_json:
        console.print_json(report.model_dump_json())
    else:
        _print_report(report)
    if report.drift:
        raise typer.Exit(ExitCode.REJECTED)  # 1: drift found
    if report.unverified:
        raise typer.Exit(ExitCode.UNREACHABLE)
    raise typer.Exit(ExitCode.OK)


class _Unreachable(Exception):
    pass


async def _run_cli(
    settings: Any, task_queue: str | None, settle: float, concurrency: int, quiet: bool
) -> VerifyReport:
    import psycopg
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from temporalio.service import RPCError

    from schemas.connection import connect_temporal

    try:
        temporal = await connect_temporal(settings)
    except RuntimeError as err:
        raise _Unreachable(f"Temporal unreachable at {settings.temporal_address}: {err}") from err
    columns = (TextColumn("verifying"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err_console, transient=True, disable=quiet) as bar:
        task = bar.add_task("verify", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            return await verify(
                temporal,
                settings.database_url,
                task_queue=task_queue,
                settle=settle,
                concurrency=concurrency,
                progress=advance,
            )
        except psycopg.OperationalError as err:
            raise _Unreachable(f"PostgreSQL unreachable: {_one_line(err)}") from err
        except RPCError as err:
            raise _Unreachable(f"Temporal unreachable: {_one_line(err)}") from err


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:300]


def _print_report(report: VerifyReport) -> None:
    from rich.table import Table

    problems = report.drift + report.unverified
    if problems:
        table = Table("incident", "drift", "detail", title="drift between workflows and tickets")
        for item in problems:
            table.add_row(item.number, item.kind.value, item.detail)
        console.print(table)
    verdict = "clean" if report.clean else f"{len(report.drift)} drift item(s)"
    if report.unverified:
        verdict += f", {len(report.unverified)} incident(s) could not be read (worker down?)"
    extras = []
    if report.archived:
        extras.append(f"{report.archived} archived")
    if report.unnumbered:
        extras.append(f"{report.unnumbered} not yet numbered")
    suffix = f" ({', '.join(extras)})" if extras else ""
    console.print(
        f"verified {report.checked} incident(s) in {report.seconds:.1f}s{suffix}: {verdict}",
        highlight=False,
    )
