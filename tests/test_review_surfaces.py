"""The post-incident review through every operator surface, against the real stack: the HTTP
API, the CLI (typer's CliRunner over real HTTP) and the dashboard (form posts), with a real
worker, Temporal, PostgreSQL and an aiosmtpd server.

Each surface completes a review and closes an action item; the reminder check is the same
for all: two items fall due at the same instant seconds ahead, one is closed at once, and
once the other's ``action_item_due`` notification has gone out (the condition waited on),
the closed one must have had none. The workflow learns of the closing by its Update, never
from the table.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import httpx
import pytest_asyncio
from click.testing import Result
from icalendar import Calendar
from temporalio.client import Client
from typer.testing import CliRunner

from launcher.cli import app as cli_app
from schemas.policy import Policy
from schemas.review import ReviewStatus
from schemas.review_calendar import review_uid
from schemas.settings import Settings
from schemas.tokens import generate_token, hash_token
from starter.api.app import create_app
from starter.dashboard.routes import mount_dashboard
from tests.conftest import wait_for
from tests.support_receivers import SmtpServer
from tests.support_reviews import (
    ReviewStack,
    email_of,
    invites,
    resolved_incident,
    review_policy,
    review_stack,
)
from tests.support_surfaces import SESSION_SECRET, serve_http

#: token name -> (user, scopes)
TOKENS = {
    "read": ("carol", ["read"]),
    "responder": ("bob", ["respond", "read"]),
    "admin": ("dave", ["admin"]),
}
PEOPLE = {"alice", "bob", "carol"}
PLAIN = {"FORCE_COLOR": None, "TTY_COMPATIBLE": None, "NO_COLOR": None}
#: seconds ahead the reminder checks' items fall due: room to close one before then
DUE_IN = 8


@dataclass
class Surfaces:
    rs: ReviewStack
    smtp: SmtpServer
    url: str
    http: httpx.AsyncClient
    tokens: dict[str, str]

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    async def get(self, path: str, token: str = "read", **kwargs: Any) -> httpx.Response:
        return await self.http.get(f"/api/v1{path}", headers=self.auth(token), **kwargs)

    async def post(self, path: str, body: Any, token: str = "responder") -> httpx.Response:
        return await self.http.post(f"/api/v1{path}", json=body, headers=self.auth(token))

    async def patch(self, path: str, body: Any, token: str = "responder") -> httpx.Response:
        return await self.http.patch(f"/api/v1{path}", json=body, headers=self.auth(token))


def policy_with_tokens(tokens: dict[str, str]) -> Policy:
    data = review_policy().model_dump(mode="json")
    data["tokens"] = [
        {"name": name, "user": user, "sha256": hash_token(tokens[name]), "scopes": scopes}
        for name, (user, scopes) in TOKENS.items()
    ]
    return Policy.model_validate(data)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def live(temporal_client: Client, database_url: str) -> AsyncIterator[Surfaces]:
    tokens = {name: generate_token() for name in TOKENS}
    policy = policy_with_tokens(tokens)
    task_queue = f"tq-review-surfaces-{uuid.uuid4()}"
    with SmtpServer() as smtp:
        async with review_stack(temporal_client, database_url, task_queue, policy, smtp.port) as rs:
            settings = Settings(database_url=database_url, temporal_task_queue=task_queue)
            app = create_app(settings, policy, temporal=temporal_client)
            mount_dashboard(app, secret=SESSION_SECRET, refresh_seconds=1.0)
            async with (
                serve_http(app) as url,
                httpx.AsyncClient(base_url=url, timeout=30) as http,
            ):
                yield Surfaces(rs=rs, smtp=smtp, url=url, http=http, tokens=tokens)


async def scheduled(live: Surfaces, key: str) -> str:
    number = await resolved_incident(live.rs, f"{key}-{uuid.uuid4().hex[:8]}")
    await live.rs.wait_review_status(number, ReviewStatus.SCHEDULED)
    return number


def soon() -> str:
    return (datetime.now(UTC) + timedelta(seconds=DUE_IN)).isoformat()


async def item_rows(live: Surfaces, number: str) -> list[dict[str, Any]]:
    return await live.rs.rows("SELECT * FROM action_items WHERE number = %s ORDER BY id", number)


async def assert_reminder_stopped(live: Surfaces, number: str, closed: int, control: int) -> None:
    """``closed`` and ``control`` fall due together; only ``control`` may be reminded."""

    async def control_reminded() -> list[dict[str, Any]]:
        rows = await live.rs.notified(number, "action_item_due")
        return [r for r in rows if r["status"] == "sent"]

    sent = await wait_for(control_reminded, timeout=DUE_IN + 20, message="control reminder")
    events = await live.rs.events(number, "action_item_due")
    assert [e["details"]["ids"] for e in events] == [[control]], events
    assert {r["recipient"] for r in sent} == {"carol"}
    reminded_ids = {i for e in events for i in e["details"]["ids"]}
    assert closed not in reminded_ids
    # the workflow's own view: the closed item is no longer open
    state = await live.rs.reviews.get(number)
    statuses = {i.id: i.status for i in state.action_items}
    assert statuses[closed] in ("done", "cancelled") and statuses[control] == "open"
    assert state.action_items_reminded.keys() == {control}


def parse_ics(body: bytes) -> Any:
    calendar = Calendar.from_ical(body)
    return calendar, next(iter(calendar.walk("VEVENT")))


# ---------------------------------------------------------------------------- API
async def test_api_review_lifecycle_and_action_items(live: Surfaces) -> None:
    number = await scheduled(live, "api")

    response = await live.get(f"/incidents/{number}/review")
    assert response.status_code == 200, response.text
    review = response.json()
    assert review["status"] == "scheduled" and review["facilitator"] == "alice"
    assert set(review["attendees"]) == PEOPLE and review["owner"] == "dave"
    meeting = review["meeting"]
    assert meeting["zone"] == "Europe/Berlin" and meeting["sequence"] == 0
    row = await live.rs.review_row(number)
    assert row is not None and review["postmortem"] == row["document"]
    assert datetime.fromisoformat(meeting["start"]) == row["scheduled_at"]
    assert review["action_items"] == []

    md = await live.get(f"/incidents/{number}/review/postmortem.md")
    assert md.status_code == 200 and md.headers["content-type"] == "text/markdown; charset=utf-8"
    assert md.text == row["document"] and f"# Postmortem: {number}" in md.text

    ics = await live.get(f"/incidents/{number}/review/invite.ics")
    assert ics.status_code == 200 and ics.headers["content-type"] == "text/calendar; charset=utf-8"
    calendar, event = parse_ics(ics.content)
    assert str(calendar["METHOD"]) == "REQUEST" and str(event["UID"]) == review_uid(number)
    assert int(event["SEQUENCE"]) == 0 and event.decoded("DTSTART") == row["scheduled_at"]
    assert event["DTSTART"].params["TZID"] == "Europe/Berlin"

    # reschedule: updated invite, same UID, higher SEQUENCE (mailed and downloadable)
    at = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    moved = await live.post(f"/incidents/{number}/review/reschedule", {"at": at.isoformat()})
    assert moved.status_code == 200, moved.text
    assert moved.json()["meeting"]["sequence"] == 1
    _, event = parse_ics((await live.get(f"/incidents/{number}/review/invite.ics")).content)
    assert int(event["SEQUENCE"]) == 1 and event.decoded("DTSTART") == at

    def mailed(to: str, sequence: int) -> list[Any]:
        return [
            i
            for i in invites(live.smtp.sink.messages)
            if i.to == email_of(to)
            and str(i.event["UID"]) == review_uid(number)
            and i.sequence == sequence
        ]

    await wait_for(lambda: all(mailed(p, 1) for p in PEOPLE), message="updated invites")

    # more attendees: only they get the (same-sequence) invite, listing everyone
    unknown = await live.post(f"/incidents/{number}/review/attendees", {"people": ["zed"]})
    assert unknown.status_code == 422 and unknown.json()["details"][0]["field"] == "people.0"
    added = await live.post(f"/incidents/{number}/review/attendees", {"people": ["dave"]})
    assert added.status_code == 200, added.text
    assert "dave" in added.json()["attendees"]
    (dave_invite,) = await wait_for(lambda: mailed("dave", 1), message="dave's invite")
    assert f"mailto:{email_of('dave')}" in dave_invite.attendees
    assert len(mailed("alice", 1)) == 1
    (added_event,) = await live.rs.events(number, "review_attendees_added")
    assert added_event["details"]["added"] == ["dave"] and added_event["actor"] == "bob"

    # waiving needs admin
    waive = await live.post(f"/incidents/{number}/review/waive", {"reason": "no"})
    assert waive.status_code == 403 and "admin" in waive.json()["message"]

    # complete, with two items due together seconds ahead and one due in a month
    due = soon()
    later = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    body = {
        "summary": "A timeout was lowered by mistake.",
        "contributing_factors": ["config change without review"],
        "action_items": [
            {"title": "Alert on gateway latency", "owner": "bob", "due": due},
            {"title": "Control item", "owner": "carol", "due": due},
            {"title": "Review config changes", "owner": "carol", "due": later},
        ],
    }
    bad = await live.post(
        f"/incidents/{number}/review/complete",
        {**body, "action_items": [{"title": "x", "owner": "nobody"}]},
    )
    assert bad.status_code == 422 and bad.json()["details"][0]["field"] == "action_items.0.owner"
    done = await live.post(f"/incidents/{number}/review/complete", body)
    assert done.status_code == 200, done.text
    completed = done.json()
    assert completed["status"] == "completed" and completed["completed_by"] == "bob"
    items = {i["title"]: i for i in completed["action_items"]}
    closed_id = items["Alert on gateway latency"]["id"]
    control_id = items["Control item"]["id"]

    # PATCH it done at once: the workflow (Update) stops its reminder
    patched = await live.patch(f"/action-items/{closed_id}", {"status": "done"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["status"] == "done" and patched.json()["updated_by"] == "bob"

    (ticket,) = await live.rs.rows("SELECT status FROM incidents WHERE number = %s", number)
    assert ticket["status"] == "closed"
    rows = {r["title"]: r for r in await item_rows(live, number)}
    assert rows["Alert on gateway latency"]["status"] == "done"
    assert rows["Alert on gateway latency"]["closed_at"] is not None
    assert rows["Control item"]["due_at"] == datetime.fromisoformat(due)
    assert str(rows["Review config changes"]["due_date"]) == later
    assert rows["Review config changes"]["due_at"].astimezone(UTC).hour in (7, 8)  # 09:00 Berlin

    for action in ("complete", "reschedule"):
        again = await live.post(
            f"/incidents/{number}/review/{action}",
            {"summary": "again"} if action == "complete" else {"at": at.isoformat()},
        )
        assert again.status_code == 409 and "it is completed" in again.json()["message"]

    await assert_reminder_stopped(live, number, closed_id, control_id)

    # listings: by owner, status, overdue
    overdue = await live.get("/action-items", params={"overdue": "true", "number": number})
    assert [i["id"] for i in overdue.json()["items"]] == [control_id]
    assert overdue.json()["items"][0]["overdue"] is True
    carol = await live.get("/action-items", params={"owner": "carol", "status": "open"})
    carol_ids = [i["id"] for i in carol.json()["items"] if i["number"] == number]
    assert carol_ids == [control_id, items["Review config changes"]["id"]]
    mine_done = await live.get("/action-items", params={"owner": "bob", "status": "done"})
    assert closed_id in [i["id"] for i in mine_done.json()["items"]]

    # refusals: a done item must be reopened before it is reassigned; bad input; unknown
    reassign = await live.patch(f"/action-items/{closed_id}", {"owner": "dave"})
    assert reassign.status_code == 409 and "is done" in reassign.json()["message"]
    assert (await live.patch(f"/action-items/{closed_id}", {})).status_code == 422
    wrong = await live.patch(f"/action-items/{closed_id}", {"status": "finished"})
    assert wrong.status_code == 422 and wrong.json()["details"][0]["field"] == "status"
    assert (await live.patch("/action-items/999999999", {"status": "done"})).status_code == 404
    forbidden = await live.patch(f"/action-items/{control_id}", {"status": "done"}, token="read")
    assert forbidden.status_code == 403

    # add one more, then reassign and cancel it
    new = await live.post(
        f"/incidents/{number}/review/action-items",
        {"title": "Runbook for timeouts", "owner": "alice", "due": later},
    )
    assert new.status_code == 201, new.text
    new_id = new.json()["id"]
    assert new.headers["location"] == f"/api/v1/action-items/{new_id}"
    dup = await live.post(
        f"/incidents/{number}/review/action-items",
        {"title": "Runbook for timeouts", "owner": "alice"},
    )
    assert dup.status_code == 409
    moved_item = await live.patch(f"/action-items/{new_id}", {"owner": "dave", "due": None})
    assert moved_item.status_code == 200, moved_item.text
    assert moved_item.json()["owner"] == "dave" and moved_item.json()["due_at"] is None
    cancelled = await live.patch(f"/action-items/{new_id}", {"status": "cancelled"})
    assert cancelled.json()["status"] == "cancelled"
    (row,) = await live.rs.rows("SELECT * FROM action_items WHERE id = %s", new_id)
    assert (row["owner"], row["status"], row["due_at"]) == ("dave", "cancelled", None)


async def test_api_no_review_and_waive_cancels_the_meeting(live: Surfaces) -> None:
    # an incident that has no review (still open)
    response = await live.http.post(
        "/api/v1/incidents",
        json={"title": "no review here", "service": "checkout", "dedup_key": uuid.uuid4().hex},
        headers=live.auth("admin"),
    )
    open_number = response.json()["number"]
    missing = await live.get(f"/incidents/{open_number}/review")
    assert missing.status_code == 404
    assert "has no post-incident review" in missing.json()["message"]
    assert (await live.get(f"/incidents/{open_number}/review/invite.ics")).status_code == 404
    assert (await live.get("/incidents/INC-99999999/review")).status_code == 404

    number = await scheduled(live, "waive")
    waived = await live.post(
        f"/incidents/{number}/review/waive", {"reason": "duplicate"}, token="admin"
    )
    assert waived.status_code == 200, waived.text
    assert waived.json()["status"] == "waived" and waived.json()["waived_by"] == "dave"
    ics = await live.get(f"/incidents/{number}/review/invite.ics")
    calendar, event = parse_ics(ics.content)
    assert str(calendar["METHOD"]) == "CANCEL" and str(event["STATUS"]) == "CANCELLED"
    assert int(event["SEQUENCE"]) == 1

    def cancels() -> set[str]:
        return {
            i.to
            for i in invites(live.smtp.sink.messages)
            if str(i.calendar["METHOD"]) == "CANCEL" and str(i.event["UID"]) == review_uid(number)
        }

    await wait_for(lambda: cancels() == {email_of(p) for p in PEOPLE}, message="cancellations")
    again = await live.post(f"/incidents/{number}/review/waive", {"reason": "again"}, token="admin")
    assert again.status_code == 409 and "it is waived" in again.json()["message"]
    added = await live.post(
        f"/incidents/{number}/review/action-items", {"title": "t", "owner": "bob"}
    )
    assert added.status_code == 409 and "waived" in added.json()["message"]


# ---------------------------------------------------------------------------- CLI
async def cli(live: Surfaces, *args: str, token: str = "responder") -> Result:
    environ: dict[str, str | None] = {
        **PLAIN,
        "INCIDENTFLOW_URL": live.url,
        "INCIDENTFLOW_TOKEN": live.tokens[token],
        "COLUMNS": "200",
    }
    return await asyncio.to_thread(CliRunner().invoke, cli_app, list(args), env=environ)


async def cli_json(live: Surfaces, *args: str, token: str = "responder") -> Any:
    result = await cli(live, *args, "--json", token=token)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return json.loads(result.stdout)


async def test_cli_review_and_action_items(live: Surfaces) -> None:
    number = await scheduled(live, "cli")

    shown = await cli(live, "review", "show", number, token="read")
    assert shown.exit_code == 0, shown.stderr
    assert f"{number} · scheduled" in shown.stdout and "Europe/Berlin" in shown.stdout
    assert re.search(r"^facilitator +alice$", shown.stdout, re.MULTILINE), shown.stdout
    assert f"incidentflow review show {number} --postmortem" in shown.stdout
    with_doc = await cli(live, "review", "show", number, "--postmortem", token="read")
    assert f"# Postmortem: {number}" in with_doc.stdout

    at = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0).isoformat()
    moved = await cli_json(live, "review", "reschedule", number, "--at", at, "--reason", "later")
    assert moved["meeting"]["sequence"] == 1

    waive = await cli(live, "review", "waive", number, "--reason", "no")
    assert waive.exit_code == 2 and "admin" in waive.stderr  # 403: usage, with what to do

    due = soon()
    completed = await cli(
        live,
        "review",
        "complete",
        number,
        "--summary",
        "A bad deploy.",
        "--factor",
        "no canary",
        "--action-item",
        f"bob:Add a canary stage@{due}",
        "--action-item",
        f"carol:Control item@{due}",
        "--action-item",
        "alice:Write the runbook@2099-01-31",
    )
    assert completed.exit_code == 0, completed.stderr
    assert f"review of {number} completed; {number} is closed (3 action items)" in completed.stdout
    assert "incidentflow action-items done <id>" in completed.stdout
    items = await cli_json(live, "action-items", "list", "--incident", number, "--status", "all")
    by_title = {i["title"]: i for i in items["items"]}
    closed_id = by_title["Add a canary stage"]["id"]
    control_id = by_title["Control item"]["id"]

    done = await cli(live, "action-items", "done", str(closed_id))
    assert done.exit_code == 0, done.stderr
    assert f"action item {closed_id} (Add a canary stage, bob) done" in done.stdout

    again = await cli(live, "review", "complete", number, "--summary", "twice")
    assert again.exit_code == 1
    assert (
        "it is completed" in again.stderr and f"incidentflow review show {number}" in again.stderr
    )

    runbook = by_title["Write the runbook"]["id"]
    assigned = await cli_json(live, "action-items", "assign", str(runbook), "dave")
    assert assigned["owner"] == "dave"
    cancelled = await cli_json(live, "action-items", "cancel", str(runbook))
    assert cancelled["status"] == "cancelled"
    reassign = await cli(live, "action-items", "assign", str(runbook), "bob")
    assert reassign.exit_code == 1 and "is cancelled" in reassign.stderr
    reopened = await cli_json(live, "action-items", "reopen", str(runbook))
    assert reopened["status"] == "open"

    rows = {r["id"]: r for r in await item_rows(live, number)}
    assert rows[closed_id]["status"] == "done" and rows[closed_id]["updated_by"] == "bob"
    assert (rows[runbook]["owner"], rows[runbook]["status"]) == ("dave", "open")

    await assert_reminder_stopped(live, number, closed_id, control_id)
    overdue = await cli(live, "action-items", "list", "--overdue", "--owner", "carol")
    assert overdue.exit_code == 0 and "# Overdue action items" in overdue.stdout
    assert f"{control_id}\t{number}\tcarol\tControl item\t" in overdue.stdout

    unknown = await cli(live, "action-items", "done", "999999999")
    assert unknown.exit_code == 1 and "no action item 999999999" in unknown.stderr
    assert "action-items list --status all" in unknown.stderr


# ---------------------------------------------------------------------------- dashboard
def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden field {name}"
    return unescape(match.group(1))


@asynccontextmanager
async def signed_in(live: Surfaces, token: str) -> AsyncIterator[httpx.AsyncClient]:
    """A fresh client (own cookie jar) signed in through the real form."""
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
        page = await client.get("/dashboard/login")
        response = await client.post(
            "/dashboard/login",
            data={
                "csrf": hidden(page.text, "csrf"),
                "next": "/dashboard/",
                "token": live.tokens[token],
            },
        )
        assert response.status_code == 303, response.text
        yield client


async def test_dashboard_review_and_action_items(live: Surfaces) -> None:
    number = await scheduled(live, "dash")
    async with signed_in(live, "responder") as client:
        page = await client.get(f"/dashboard/incidents/{number}")
        assert page.status_code == 200
        assert 'id="review-status">scheduled<' in page.text
        assert 'id="form-review-complete"' in page.text
        csrf = hidden(page.text, "csrf")

        invalid = await client.post(
            f"/dashboard/incidents/{number}/review/complete",
            data={"csrf": csrf, "summary": "s", "action_items": "nobody: thing"},
        )
        assert invalid.status_code == 422 and "unknown user" in invalid.text

        due = soon()
        completed = await client.post(
            f"/dashboard/incidents/{number}/review/complete",
            data={
                "csrf": csrf,
                "summary": "Disk filled up.",
                "contributing_factors": "no alert on disk\nlog rotation off",
                "action_items": f"bob: Alert on disk @ {due}\ncarol: Control item @ {due}",
            },
        )
        assert completed.status_code == 303, completed.text
        assert completed.headers["location"].endswith("?review=completed#review")
        page = await client.get(completed.headers["location"])
        assert 'id="review-status">completed<' in page.text
        assert "Review completed: the incident is closed." in page.text
        rows = {r["title"]: r for r in await item_rows(live, number)}
        closed_id, control_id = rows["Alert on disk"]["id"], rows["Control item"]["id"]
        assert f'id="done-{closed_id}"' in page.text

        closed = await client.post(
            f"/dashboard/action-items/{closed_id}",
            data={"csrf": csrf, "status": "done", "next": f"/dashboard/incidents/{number}"},
        )
        assert closed.status_code == 303 and closed.headers["location"] == (
            f"/dashboard/incidents/{number}"
        )
        (row,) = await live.rs.rows("SELECT * FROM action_items WHERE id = %s", closed_id)
        assert row["status"] == "done" and row["updated_by"] == "bob"
        page = await client.get(f"/dashboard/incidents/{number}")
        assert f'id="reopen-{closed_id}"' in page.text and f'id="done-{control_id}"' in page.text

        no_csrf = await client.post(
            f"/dashboard/action-items/{control_id}", data={"csrf": "x", "status": "done"}
        )
        assert no_csrf.status_code == 403

        await assert_reminder_stopped(live, number, closed_id, control_id)

        overdue = await client.get("/dashboard/action-items?view=overdue")
        assert overdue.status_code == 200 and f'id="item-{control_id}"' in overdue.text
        assert f'id="item-{closed_id}"' not in overdue.text
        mine = await client.get("/dashboard/action-items")  # bob's open items
        assert f'id="item-{closed_id}"' not in mine.text

        md = await client.get(f"/dashboard/incidents/{number}/review/postmortem.md")
        assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
        assert "Disk filled up." in md.text
        ics = await client.get(f"/dashboard/incidents/{number}/review/invite.ics")
        assert ics.headers["content-type"].startswith("text/calendar")

    async with signed_in(live, "read") as reader:
        page = await reader.get(f"/dashboard/incidents/{number}")
        assert 'id="review-status">completed<' in page.text and 'id="done-' not in page.text
        refused = await reader.post(
            f"/dashboard/action-items/{control_id}",
            data={"csrf": hidden(page.text, "csrf"), "status": "done"},
        )
        assert refused.status_code == 403
