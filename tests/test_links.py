"""Every link we send answers: no responder lands on "Not Found".

Renders every notification template for every event kind in every format (subject, text,
HTML, Markdown, Slack), takes the webhook payload a user really received, the review link
of invites and postmortems, ``incidentflow show`` and the dev banner's board link, extracts
every URL that points at the app, and GETs each against the running app, signed out (a
redirect to sign-in is fine, and sign-in answers) and signed in (the page itself). Then the
acknowledge link's refusals: forged, expired, for a removed user, used, moot, unconfigured;
never a 404 or a 500.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from datetime import UTC, datetime, timedelta

import httpx
from temporalio.client import Client
from typer.testing import CliRunner

from activities.db import load_migrations, migrate
from activities.notifications.activity import NotifyActivities
from activities.notifications.delivery import Delivery
from activities.reviews.activity import ReviewActivities
from launcher.cli import app as cli_app
from schemas.ack_tokens import AckClaim, sign_ack
from schemas.activity_io import NotifyInput
from schemas.enums import EventKind
from schemas.incident import IncidentSnapshot
from schemas.links import ack_url, board_url, incident_url
from schemas.policy import EscalationTarget
from tests.support_links import LINK_SECRET, page_payload, paging_app, urls_in
from tests.support_notifications import make_event
from tests.support_receivers import HttpReceiver
from tests.support_surfaces import Live, live_app
from worker.devinfra import fresh_database


async def signed_in(live: Live, token: str) -> httpx.AsyncClient:
    """An httpx client with a dashboard session, signed in through the form."""
    http = httpx.AsyncClient(base_url=live.url, timeout=30)
    form = await http.get("/dashboard/login")
    match = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert match, form.text
    done = await http.post(
        "/dashboard/login",
        data={"csrf": match.group(1), "token": live.token(token), "next": "/dashboard/"},
    )
    assert done.status_code == 303 and done.headers["location"] == "/dashboard/", done.text
    return http


async def snapshot(live: Live, number: str) -> IncidentSnapshot:
    answer = await live.http.get(f"/api/v1/incidents/{number}", headers=live.auth("read"))
    assert answer.status_code == 200, answer.text
    return IncidentSnapshot.model_validate(answer.json())


async def test_every_link_in_every_message_answers(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    with HttpReceiver() as receiver:
        async with paging_app(temporal_client, database_url, task_queue, receiver) as live:
            number = (await live.trigger("Checkout returns 502"))["number"]
            incident = await snapshot(live, number)
            stack = live.stack
            notify = NotifyActivities(stack.pool, stack.policy, stack.settings)
            found: dict[str, set[str]] = {}

            # every kind x every format, to a user (with an ack link) and to a channel
            alice = Delivery(number, 1, "user:alice", "alice", "webhook", "x", "alice")
            channel = Delivery(number, 1, "channel:ops-console", "ops-console", "console")
            for kind in EventKind:
                for delivery in (alice, channel):
                    note = NotifyInput(
                        incident=incident,
                        event=make_event(kind),
                        targets=[EscalationTarget.model_validate(delivery.target)],
                    )
                    ack_link = notify.ack_link(note, delivery)
                    assert (ack_link is not None) == (delivery is alice), kind
                    message = notify.renderer.render(
                        incident,
                        note.event,
                        recipient=delivery.recipient,
                        link=incident_url(notify.base_url, number),
                        ack_link=ack_link,
                    )
                    formats = {
                        "subject": message.subject,
                        "text": message.text,
                        "html": message.html,
                        "markdown": message.markdown,
                        "slack": json.dumps(message.slack),
                    }
                    for name, body in formats.items():
                        urls = urls_in(body, live.url)
                        if name != "subject":
                            assert f"{live.url}/dashboard/incidents/{number}" in urls, (kind, name)
                            assert any("/dashboard/ack/" in u for u in urls) == bool(ack_link), (
                                kind,
                                name,
                            )
                        for url in urls:
                            found.setdefault(url, set()).add(f"{kind}/{name}")

            # no credential in a log: the console channel gets no acknowledge link
            console = Delivery(number, 1, "user:alice", "alice", "console")
            assert notify.ack_link(note, console) is None

            # the webhook page alice really got, the review's link, the dev banner's board
            payload = await page_payload(receiver, "alice", number)
            payload_urls = urls_in(json.dumps(payload), live.url)
            assert {payload["link"], payload["ack_link"]} <= payload_urls
            for url in payload_urls:
                found.setdefault(url, set()).add("webhook payload")
            review = ReviewActivities(stack.pool, stack.policy, stack.settings).link(number)
            found.setdefault(review, set()).add("review invite and postmortem")
            shown = await asyncio.to_thread(
                CliRunner().invoke,
                cli_app,
                ["show", number],
                env={"INCIDENTFLOW_URL": live.url, "INCIDENTFLOW_TOKEN": live.token("read")},
            )
            assert shown.exit_code == 0, shown.stdout
            cli_urls = urls_in(shown.stdout, live.url)
            assert f"{live.url}/dashboard/incidents/{number}" in cli_urls, shown.stdout
            for url in cli_urls:
                found.setdefault(url, set()).add("incidentflow show")
            found.setdefault(board_url(notify.base_url), set()).add("dev banner")
            assert len(found) >= 4, found

            anonymous = httpx.AsyncClient(timeout=30)
            responder = await signed_in(live, "responder")
            try:
                for url, where in sorted(found.items()):
                    answer = await anonymous.get(url)
                    assert answer.status_code in (200, 303), (url, where, answer.status_code)
                    if answer.status_code == 303:
                        location = answer.headers["location"]
                        assert location.startswith("/dashboard/login?next="), (url, location)
                        assert (await anonymous.get(live.url + location)).status_code == 200
                        page = await responder.get(url)
                        assert page.status_code == 200, (url, where, page.status_code)
                        assert number in page.text
                    else:
                        assert f"Acknowledge {number}" in answer.text, url
            finally:
                await anonymous.aclose()
                await responder.aclose()
            # reading every link changed nothing
            assert (await snapshot(live, number)).status == "triggered"


def token_for(
    number: str, user: str, *, expires_in: float = 3600, secret: str = LINK_SECRET
) -> str:
    claim = AckClaim(
        number=number,
        user=user,
        expires=datetime.now(UTC) + timedelta(seconds=expires_in),
        id=secrets.token_urlsafe(12),
    )
    return sign_ack(secret.encode(), claim)


async def test_acknowledge_link_refusals(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    with HttpReceiver() as receiver:
        async with (
            paging_app(temporal_client, database_url, task_queue, receiver) as live,
            httpx.AsyncClient(timeout=30) as http,
        ):
            number = (await live.trigger("Queue backlog"))["number"]

            def link(token: str) -> str:
                return ack_url(live.url, token)

            good = token_for(number, "alice")
            # forged, cut short, signed with another secret, expired, a removed user
            other = token_for(number, "alice", secret="another-secret-0123456789")
            refused = {
                "forged": link(good[:-3] + "AAA"),
                "cut short": link(good[:20]),
                "garbage": link("not-a-token"),
                "another secret": link(other),
                "expired": link(token_for(number, "alice", expires_in=-1)),
                "removed user": link(token_for(number, "mallory")),
            }
            for why, url in refused.items():
                for method in ("GET", "POST"):
                    answer = await http.request(method, url)
                    assert answer.status_code == 403, (why, method, answer.status_code)
            assert "expired" in (await http.get(refused["expired"])).text
            assert (await snapshot(live, number)).status == "triggered"

            # GET shows a form and changes nothing, however often
            for _ in range(3):
                shown = await http.get(link(good))
                assert shown.status_code == 200
                assert 'id="ack-confirm"' in shown.text
            assert (
                await live.stack.rows("SELECT * FROM ack_link_uses WHERE number = %s", number) == []
            )

            # the first POST acknowledges as alice, the second is refused
            first = await http.post(link(good))
            assert first.status_code == 303
            assert first.headers["location"] == f"/dashboard/ack/{good}?done=1"
            after = await snapshot(live, number)
            assert after.status == "acknowledged"
            assert [e.actor for e in after.timeline if e.kind == EventKind.ACKNOWLEDGED] == [
                "alice"
            ]
            second = await http.post(link(good))
            assert second.status_code == 409
            assert "already used" in second.text
            used = await http.get(link(good))
            assert used.status_code == 200 and 'id="ack-used"' in used.text

            # a fresh link for an incident someone already acknowledged: 409 naming the status
            late = token_for(number, "bob")
            assert 'id="ack-moot"' in (await http.get(link(late))).text
            moot = await http.post(link(late))
            assert moot.status_code == 409
            assert "acknowledged" in moot.text


async def test_acknowledge_links_without_a_secret_say_so(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    async with live_app(temporal_client, database_url, task_queue) as live:
        number = (await live.trigger("No secret here"))["number"]
        async with httpx.AsyncClient(timeout=30) as http:
            for method in ("GET", "POST"):
                answer = await http.request(method, ack_url(live.url, token_for(number, "alice")))
                assert answer.status_code == 503, answer.status_code
                assert "INCIDENTFLOW_LINK_SECRET" in answer.text
        # and the worker, without a secret, sends pages without an acknowledge link
        notify = NotifyActivities(live.stack.pool, live.stack.policy, live.stack.settings)
        incident = await snapshot(live, number)
        note = NotifyInput(
            incident=incident,
            event=make_event(EventKind.TRIGGERED),
            targets=[EscalationTarget.model_validate("user:alice")],
        )
        alice = Delivery(number, 1, "user:alice", "alice", "webhook", "http://hook.test/a")
        assert notify.ack_link(note, alice) is None


async def test_acknowledge_link_before_its_migration_is_a_503(
    temporal_client: Client, postgres_server: str, task_queue: str
) -> None:
    """An API upgraded before the migration ran answers 503 saying so, never 500."""
    with fresh_database(postgres_server, "incidentflow_premigration", migrate=False) as url:
        # every migration but the one that adds the acknowledge links' table: the worker's
        # own tables (tickets, notifications) are as current as its code
        await migrate(url, [m for m in load_migrations() if m.version != "0002_ack_link_uses"])
        async with (
            live_app(
                temporal_client,
                url,
                task_queue,
                settings_overrides={"incidentflow_link_secret": LINK_SECRET},
            ) as live,
            httpx.AsyncClient(timeout=30) as http,
        ):
            number = (await live.trigger("Before the migration"))["number"]
            answer = await http.post(ack_url(live.url, token_for(number, "alice")))
            assert answer.status_code == 503, answer.text
            assert "not migrated" in answer.text
            assert (await snapshot(live, number)).status == "triggered"
