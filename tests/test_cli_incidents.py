"""The responder commands of ``incidentflow`` through typer's CliRunner, against the live app
(uvicorn on a loopback port, a real worker, Temporal and PostgreSQL): each command, ``--json``
that parses, and the exit codes scripts rely on (0 ok, 1 rejected, 2 usage, 3 unreachable)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from click.testing import Result
from temporalio.client import Client
from typer.testing import CliRunner

from launcher.cli import app
from tests.conftest import wait_for
from tests.support_surfaces import Live, live_app
from worker.devinfra import free_port

#: what a terminal would not be: no forced colour, whatever the CI environment says
PLAIN = {"FORCE_COLOR": None, "TTY_COMPATIBLE": None, "NO_COLOR": None}


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def live(temporal_client: Client, database_url: str) -> AsyncIterator[Live]:
    async with live_app(temporal_client, database_url, f"tq-cli-{uuid.uuid4()}") as running:
        yield running


async def cli(
    live: Live, *args: str, token: str | None = "admin", env: dict[str, str | None] | None = None
) -> Result:
    """Run ``incidentflow ARGS`` in a thread (the app it calls runs on this event loop)."""
    environ: dict[str, str | None] = {
        **PLAIN,
        "INCIDENTFLOW_URL": live.url,
        "INCIDENTFLOW_TOKEN": live.token(token) if token else None,
        "COLUMNS": "160",
    }
    environ.update(env or {})
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, app, list(args), env=environ)


async def cli_json(live: Live, *args: str, token: str = "admin") -> Any:
    result = await cli(live, *args, "--json", token=token)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return json.loads(result.stdout)


async def open_incident(live: Live, title: str = "checkout errors", *extra: str) -> str:
    ref = await cli_json(live, "trigger", title, "--service", live.service, *extra)
    assert ref["created"] is True
    number: str = ref["number"]
    return number


# ---------------------------------------------------------------------------- success paths
async def test_trigger_show_and_the_whole_lifecycle(live: Live) -> None:
    result = await cli(
        live,
        "trigger",
        "Checkout 5xx above 5%",
        "--service",
        live.service,
        "--severity",
        "sev2",
        "--label",
        "region=eu-1",
        "--dedup-key",
        f"k-{uuid.uuid4().hex}",
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip().endswith("opened (triggered)")
    number = result.stdout.split()[0]
    assert number.startswith("INC-")

    shown = await cli_json(live, "show", number)
    assert shown["number"] == number and shown["severity"] == "SEV2"
    assert shown["labels"] == {"region": "eu-1"}
    assert [e["kind"] for e in shown["timeline"]] == ["triggered"]

    plain = await cli(live, "show", number.removeprefix("INC-"))  # "42" names INC-42 too
    assert plain.exit_code == 0, plain.stderr
    assert "Checkout 5xx above 5%" in plain.stdout and "SEV2" in plain.stdout
    assert "# SLA clocks" in plain.stdout
    ack_line = next(line for line in plain.stdout.splitlines() if line.startswith("ack\t"))
    assert "\tin 14m" in ack_line  # the ack deadline as a countdown
    assert "level 1 of 3, next level in 14m" in plain.stdout
    assert "# Timeline" in plain.stdout and "\ttriggered\t" in plain.stdout

    steps = [
        (("ack", number, "--note", "looking"), "acknowledged"),
        (("investigate", number), "investigating"),
        (("mitigate", number, "--note", "traffic drained"), "mitigated"),
        (("resolve", number, "--resolution", "bad deploy rolled back"), "resolved"),
        (("close", number, "--reason", "done"), "closed"),
    ]
    for args, status in steps:
        snapshot = await cli_json(live, *args, token="responder")
        assert snapshot["status"] == status, args
    final = await cli_json(live, "show", number, token="read")
    kinds = [e["kind"] for e in final["timeline"]]
    assert kinds[-5:] == ["acknowledged", "investigating", "mitigated", "resolved", "closed"]
    assert all(e["actor"] == "bob" for e in final["timeline"][-5:])  # the token's user
    assert final["responders"]["commander"] == "bob"


async def test_every_other_action(live: Live) -> None:
    number = await open_incident(live, "search is slow")
    duplicate = await open_incident(live, "search is slow (again)")

    snap = await cli_json(live, "assign", number, "carol", "--role", "scribe")
    assert snap["responders"]["scribe"] == "carol"
    snap = await cli_json(live, "severity", number, "sev1", "--reason", "all regions")
    assert snap["severity"] == "SEV1"
    await cli_json(live, "note", number, "cache hit ratio dropped")  # checked in the timeline
    snap = await cli_json(live, "status-update", number, "Search degraded, mitigation underway")
    assert snap["last_status_update_at"] is not None
    phased = ("Search is slow for some", "--phase", "identified")
    await cli_json(live, "status-update", number, *phased, "--component-status", "partial_outage")
    public = await cli(live, "status-update", number, "for everyone", "--public")
    assert public.exit_code == 1  # the service is not on the status page
    assert "is not on the public status page" in public.stderr
    snap = await cli_json(live, "escalate", number, "--to", "user:dave", "--reason", "db help")
    assert snap["status"] == "triggered"
    snap = await cli_json(live, "merge", duplicate, "--into", number)
    assert snap["status"] == "closed" and snap["merged_into"] == number
    snap = await cli_json(live, "resolve", number)
    assert snap["status"] == "resolved"
    snap = await cli_json(live, "reopen", number, "--reason", "came back")
    assert snap["status"] == "triggered" and snap["reopen_count"] == 1
    snap = await cli_json(live, "cancel", number, "--reason", "test traffic after all")
    assert snap["status"] == "closed"

    timeline = (await cli_json(live, "show", number))["timeline"]
    kinds = [e["kind"] for e in timeline]
    for kind in (
        "assigned",
        "severity_changed",
        "note_added",
        "status_update_posted",
        "escalated",
        "resolved",
        "reopened",
        "cancelled",
    ):
        assert kind in kinds, kind
    note = next(e for e in timeline if e["kind"] == "note_added")
    assert note["details"]["text"] == "cache hit ratio dropped"
    updates = [e["details"] for e in timeline if e["kind"] == "status_update_posted"]
    assert updates[-1] == {
        "text": "Search is slow for some",
        "phase": "identified",
        "component_status": "partial_outage",
    }

    # plain output of an action: one line naming the incident and its new state
    other = await open_incident(live, "plain output")
    result = await cli(live, "ack", other)
    assert result.exit_code == 0
    assert result.stdout.startswith(f"{other} acknowledged · ")


async def test_pause_and_resume(live: Live) -> None:
    """Issue 20: ``pause --reason --until 2h`` stops mitigate and resolve; ``show`` says
    "paused: <reason>" with their time left; a second pause exits 1; ``resume`` restarts."""
    number = await open_incident(live, "waiting on the PSP")
    snap = await cli_json(live, "pause", number, "--reason", "PSP ticket 4711", "--until", "2h")
    assert snap["paused"]["reason"] == "PSP ticket 4711" and snap["deadlines"]["resolve"] is None
    until = datetime.fromisoformat(snap["paused"]["until"])
    assert 7100 < (until - datetime.fromisoformat(snap["paused"]["since"])).total_seconds() < 7300
    shown = await cli(live, "show", number)
    assert "  paused          PSP ticket 4711 (since " in shown.stdout
    resolve_line = next(line for line in shown.stdout.splitlines() if line.startswith("resolve\t"))
    assert "paused, " in resolve_line and " left" in resolve_line
    await live.ticket(number)

    async def listed_paused() -> bool:
        listed = await cli(live, "list", "--service", live.service, "--limit", "500")
        row = next(line for line in listed.stdout.splitlines() if line.startswith(number + "\t"))
        return "\ttriggered (paused)\t" in row

    assert await wait_for(listed_paused, timeout=15, message="listed as paused")
    again = await cli(live, "pause", number, "--reason", "twice")
    assert again.exit_code == 1 and "already paused" in again.stderr
    result = await cli(live, "resume", number, "--note", "PSP answered")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"{number} triggered") and "clocks resumed" in result.stdout
    final = await cli_json(live, "show", number)
    assert final["paused"] is None and final["deadlines"]["resolve"] is not None
    assert [e["kind"] for e in final["timeline"]][-2:] == ["paused", "resumed"]


async def test_list_filters_pages_and_prints_plain_rows(live: Live) -> None:
    done = await open_incident(live, "list me resolved", "--severity", "SEV1")
    await cli_json(live, "resolve", done)
    await live.ticket(done, "resolved")
    sev1 = await open_incident(live, "list me first", "--severity", "SEV1")
    sev4 = await open_incident(live, "list me second", "--severity", "SEV4")
    await live.ticket(sev1)
    await live.ticket(sev4)

    listed = await cli_json(live, "list", "--service", live.service, "--limit", "500")
    numbers = [item["number"] for item in listed["items"]]
    assert sev1 in numbers and sev4 in numbers
    assert numbers.index(sev4) < numbers.index(sev1)  # newest first

    only_sev1 = await cli_json(live, "list", "--service", live.service, "--severity", "sev1")
    assert {i["severity"] for i in only_sev1["items"]} == {"SEV1"}
    assert sev1 in [i["number"] for i in only_sev1["items"]]

    open_ones = await cli_json(
        live, "list", "--service", live.service, "--status", "open", "--limit", "500"
    )
    open_numbers = {i["number"] for i in open_ones["items"]}
    assert {sev1, sev4} <= open_numbers and done not in open_numbers
    assert {i["status"] for i in open_ones["items"]} <= {
        "triggered",
        "acknowledged",
        "investigating",
        "mitigated",
    }
    recent = await cli_json(live, "list", "--service", live.service, "--since", "10m")
    assert sev4 in [i["number"] for i in recent["items"]]
    future = await cli_json(live, "list", "--service", live.service, "--since", "2999-01-01")
    assert future["items"] == []

    # --limit pages through the API's cursor: one per page until the limit
    two = await cli_json(live, "list", "--service", live.service, "--limit", "2")
    assert len(two["items"]) == 2 and two["next_cursor"]

    plain = await cli(live, "list", "--service", live.service, "--limit", "3")
    assert plain.exit_code == 0
    lines = plain.stdout.splitlines()
    assert lines[0] == "number\tsev\tstatus\tservice\tcommander\tage\ttitle"
    assert lines[1].startswith(f"{sev4}\tSEV4\ttriggered\t{live.service}\t")


async def test_report(live: Live) -> None:
    # the policy's second service, where no other test of this module opens incidents: the
    # report over it counts exactly this one
    service = live.names.other_service
    ref = await cli_json(
        live, "trigger", "report input", "--service", service, "--severity", "SEV3"
    )
    number = ref["number"]
    await cli_json(live, "ack", number)
    await cli_json(live, "resolve", number)
    await live.ticket(number, "resolved")
    shown = await cli_json(live, "show", number)
    data = await cli_json(live, "report", "--since", "1d", "--service", service)
    assert data["total"] == 1 and data["service"] == service
    assert data["by_severity"] == {"SEV3": 1}
    assert data["by_service"] == {service: 1}
    created = datetime.fromisoformat(shown["created_at"])
    tta = (datetime.fromisoformat(shown["acknowledged_at"]) - created).total_seconds()
    ttr = (datetime.fromisoformat(shown["resolved_at"]) - created).total_seconds()
    assert data["mtta_seconds"] == pytest.approx(tta, abs=0.01)
    assert data["mttr_seconds"] == pytest.approx(ttr, abs=0.01)
    assert 0 < data["mtta_seconds"] <= data["mttr_seconds"]
    result = await cli(live, "report", "--since", "2w", "--service", service)
    assert result.exit_code == 0, result.stderr
    assert "# Time to acknowledge / resolve" in result.stdout
    assert "# SLA compliance" in result.stdout and "# By service" in result.stdout
    assert f"{service}\t" in result.stdout


async def test_bulk_import_shows_progress_and_reports_each_line(live: Live, tmp_path: Path) -> None:
    key = f"bulk-{uuid.uuid4().hex}"
    lines = [
        json.dumps({"title": "disk full on db-1", "service": live.service, "dedup_key": key}),
        json.dumps({"title": "disk full on db-1", "service": live.service, "dedup_key": key}),
        json.dumps({"title": "latency", "service": live.service, "severity": "SEV3"}),
        "",
        "not json",
        json.dumps({"title": "wrong place", "service": "no-such-service"}),
    ]
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text("\n".join(lines) + "\n")
    result = await cli(live, "trigger", "--from-file", str(alerts), "--json")
    assert result.exit_code == 1, result.stderr  # some lines were rejected
    summary = json.loads(result.stdout)
    assert (summary["created"], summary["attached"], summary["failed"]) == (2, 1, 2)
    by_line = {r["line"]: r for r in summary["results"]}
    assert by_line[1]["number"] == by_line[2]["number"] and by_line[2]["created"] is False
    assert "bad JSON" in by_line[5]["message"]
    assert "no-such-service" in by_line[6]["message"]

    clean = tmp_path / "clean.jsonl"
    clean.write_text(json.dumps({"title": "one more", "service": live.service}) + "\n")
    ok = await cli(live, "trigger", "--from-file", str(clean))
    assert ok.exit_code == 0, ok.stderr
    assert "1 lines: 1 opened, 0 attached, 0 failed" in ok.stdout
    # on a terminal the import draws a progress bar
    shown = await cli(live, "trigger", "--from-file", str(clean), env={"FORCE_COLOR": "1"})
    assert shown.exit_code == 0
    assert "importing" in shown.stderr and "1/1" in shown.stderr


async def test_terminal_output_is_rich(live: Live) -> None:
    number = await open_incident(live, "[bold]not markup[/bold]")
    result = await cli(live, "show", number, env={"FORCE_COLOR": "1"})
    assert result.exit_code == 0
    assert "\x1b[" in result.stdout  # colour
    assert "┃" in result.stdout or "│" in result.stdout  # a drawn table
    assert "[bold]not markup[/bold]" in result.stdout  # user text is never rich markup
    listing = await cli(live, "list", "--service", live.service, env={"FORCE_COLOR": "1"})
    assert listing.exit_code == 0 and "\x1b[" in listing.stdout and number in listing.stdout


# ---------------------------------------------------------------------------- failures
async def test_rejected_actions_exit_1_with_what_to_do_next(live: Live) -> None:
    number = await open_incident(live, "rejections")
    await cli_json(live, "resolve", number)

    result = await cli(live, "ack", number)
    assert result.exit_code == 1
    assert f"error: {number} is resolved: cannot acknowledge" in result.stderr
    assert "allowed actions: close, reopen" in result.stderr
    assert f"next: see its state with `incidentflow show {number}`" in result.stderr
    assert result.stdout == ""

    as_json = await cli(live, "ack", number, "--json")
    assert as_json.exit_code == 1
    error = json.loads(as_json.stdout)
    assert error["status"] == 409 and error["error"] == "action_rejected"
    assert error["exit_code"] == 1

    missing = await cli(live, "show", "INC-99999999")
    assert missing.exit_code == 1
    assert "INC-99999999" in missing.stderr and "incidentflow list" in missing.stderr

    invalid = await cli(live, "cancel", number, "--reason", "")
    assert invalid.exit_code == 1 and "reason" in invalid.stderr

    # an open incident has no post-incident review yet: the review API's own 404 says why,
    # and the CLI points at the incident
    no_review = await cli(live, "review", "show", number)
    assert no_review.exit_code == 1
    assert no_review.stdout == ""
    assert f"error: {number} has no post-incident review" in no_review.stderr, no_review.stderr
    assert f"incidentflow show {number}" in no_review.stderr
    no_review_json = await cli(live, "review", "show", number, "--json")
    assert no_review_json.exit_code == 1
    error = json.loads(no_review_json.stdout)
    assert (error["status"], error["error"]) == (404, "not_found")
    assert error["message"].startswith(f"{number} has no post-incident review yet: closing it")


async def test_usage_errors_exit_2(live: Live) -> None:
    bad_number = await cli(live, "ack", "checkout")
    assert bad_number.exit_code == 2 and "not an incident number" in bad_number.stderr

    no_token = await cli(live, "list", token=None)
    assert no_token.exit_code == 2
    assert "no API token" in no_token.stderr and "INCIDENTFLOW_TOKEN" in no_token.stderr

    wrong_token = await cli(live, "list", "--token", "not-a-token")
    assert wrong_token.exit_code == 2 and "invalid bearer token" in wrong_token.stderr

    no_scope = await cli(live, "ack", "INC-1", token="read")
    assert no_scope.exit_code == 2
    assert "lacks the 'respond' scope" in no_scope.stderr and "scope" in no_scope.stderr

    bad_since = await cli(live, "list", "--since", "last tuesday")
    assert bad_since.exit_code == 2 and "30m, 24h, 7d" in bad_since.stderr

    no_title = await cli(live, "trigger", "--service", live.service)
    assert no_title.exit_code == 2

    bad_item = await cli(
        live, "review", "complete", "INC-1", "--summary", "s", "--action-item", "x"
    )
    assert bad_item.exit_code == 2 and "owner:title" in bad_item.stderr

    unknown = await cli(live, "acknowledge-everything")
    assert unknown.exit_code == 2


async def test_unreachable_api_exits_3(live: Live) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # a port nobody listens on
    for args in (("list",), ("ack", "INC-1"), ("show", "INC-1", "--json")):
        result = await cli(live, *args, "--url", url)
        assert result.exit_code == 3, args
        assert f"cannot reach the API at {url}" in result.stderr
        assert "INCIDENTFLOW_URL" in result.stderr
    as_json = await cli(live, "list", "--json", env={"INCIDENTFLOW_URL": url})
    assert as_json.exit_code == 3
    assert json.loads(as_json.stdout)["exit_code"] == 3
