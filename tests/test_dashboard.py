"""The dashboard over real HTTP: sign-in, sessions, CSRF, scopes, legal-only forms, escaping,
reports. A real worker, Temporal and PostgreSQL behind the app; httpx as the browser.
(The JavaScript — live refresh, countdowns, clicking — is covered in
``test_dashboard_browser.py`` with Chromium.)"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html import unescape

import httpx
import psycopg
import pytest
import pytest_asyncio
from temporalio.client import Client

from schemas.enums import Severity
from starter import time_text
from starter.dashboard import charts
from starter.dashboard.session import SESSION_COOKIE
from tests.support_state import incident_facts
from tests.support_surfaces import Live, live_app


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def live(temporal_client: Client, database_url: str) -> AsyncIterator[Live]:
    async with live_app(temporal_client, database_url, f"tq-dash-{uuid.uuid4()}") as app:
        yield app


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden field {name}"
    return unescape(match.group(1))


@asynccontextmanager
async def signed_in(live: Live, token: str) -> AsyncIterator[httpx.AsyncClient]:
    """A fresh client (own cookie jar) signed in through the real form."""
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
        page = await client.get("/dashboard/login")
        assert page.status_code == 200
        response = await client.post(
            "/dashboard/login",
            data={
                "csrf": hidden(page.text, "csrf"),
                "next": "/dashboard/",
                "token": live.token(token),
            },
        )
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/dashboard/"
        yield client


async def csrf_of(client: httpx.AsyncClient, number: str) -> str:
    page = await client.get(f"/dashboard/incidents/{number}")
    assert page.status_code == 200, page.text
    return hidden(page.text, "csrf")


def board_row(html: str, number: str) -> str:
    """The ``<tr>`` of one incident on the board."""
    at = html.index(f'data-number="{number}"')
    start = html.rindex("<tr", 0, at)
    return html[start : html.index("</tr>", at)]


def action_forms(html: str) -> set[str]:
    return set(re.findall(r'id="form-([a-z_]+)"', html))


# ---------------------------------------------------------------------------- sign-in
async def test_pages_need_a_session(live: Live) -> None:
    async with httpx.AsyncClient(base_url=live.url) as client:
        for path in ("/dashboard/", "/dashboard/reports", "/dashboard/incidents/INC-1"):
            response = await client.get(path)
            assert response.status_code == 303
            assert response.headers["location"].startswith("/dashboard/login?next=")
        # the refresh script gets a 401 (and reloads into the sign-in page)
        fragment = await client.get("/dashboard/_board", headers={"X-Requested-With": "fetch"})
        assert fragment.status_code == 401
        # forms cannot be posted without a session either
        post = await client.post("/dashboard/incidents/INC-1/act", data={"action": "acknowledge"})
        assert post.status_code == 303
        assert post.headers["location"].startswith("/dashboard/login")
        root = await client.get("/")
        assert root.status_code == 307 and root.headers["location"] == "/dashboard/"


async def test_sign_in_checks_token_and_csrf(live: Live) -> None:
    async with httpx.AsyncClient(base_url=live.url) as client:
        page = await client.get("/dashboard/login")
        csrf = hidden(page.text, "csrf")
        wrong = await client.post("/dashboard/login", data={"csrf": csrf, "token": "nope"})
        assert wrong.status_code == 401
        assert "That token is not valid" in wrong.text
        assert SESSION_COOKIE not in client.cookies
        no_csrf = await client.post(
            "/dashboard/login", data={"csrf": "forged", "token": live.token("admin")}
        )
        assert no_csrf.status_code == 403
        assert SESSION_COOKIE not in client.cookies


async def test_session_cookie_is_signed_httponly_and_holds_no_token(live: Live) -> None:
    async with httpx.AsyncClient(base_url=live.url) as client:
        page = await client.get("/dashboard/login?next=//evil.example/x")
        assert hidden(page.text, "next") == "/dashboard/"  # no open redirect
        response = await client.post(
            "/dashboard/login",
            data={"csrf": hidden(page.text, "csrf"), "token": live.token("read"), "next": "//x"},
        )
        assert response.status_code == 303 and response.headers["location"] == "/dashboard/"
        set_cookie = response.headers["set-cookie"]
        assert set_cookie.startswith(f"{SESSION_COOKIE}=")
        assert "HttpOnly" in set_cookie and "SameSite=lax" in set_cookie
        assert "Path=/dashboard" in set_cookie
        cookie = client.cookies[SESSION_COOKIE]
        assert live.token("read") not in cookie
        board = await client.get("/dashboard/")
        assert board.status_code == 200 and "carol" in board.text
        # a tampered cookie is no session
        payload, mac = cookie.split(".")
        async with httpx.AsyncClient(base_url=live.url) as other:
            for forged in (payload + "." + mac[::-1], payload[:-2] + "." + mac, "x.y", ""):
                response = await other.get(
                    "/dashboard/", headers={"Cookie": f"{SESSION_COOKIE}={forged}"}
                )
                assert response.status_code == 303
        # sign out ends the session
        out = await client.post("/dashboard/logout", data={"csrf": hidden(board.text, "csrf")})
        assert out.status_code == 303
        assert SESSION_COOKIE not in client.cookies
        assert (await client.get("/dashboard/")).status_code == 303


async def test_security_headers(live: Live) -> None:
    async with signed_in(live, "read") as client:
        response = await client.get("/dashboard/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


# ---------------------------------------------------------------------------- the board
async def test_board_lists_open_incidents_first_with_clocks_and_filters(live: Live) -> None:
    tag = uuid.uuid4().hex[:6]
    low = await live.trigger(f"disk filling {tag}", severity="SEV4")
    high = await live.trigger(f"checkout down {tag}", severity="SEV1")
    gone = await live.trigger(f"blip {tag}", severity="SEV1")
    resolved = await live.http.post(
        f"/api/v1/incidents/{gone['number']}/resolve", headers=live.auth("admin")
    )
    assert resolved.status_code == 200
    await live.ticket(gone["number"], "resolved")
    async with signed_in(live, "read") as client:
        board = (await client.get("/dashboard/", params={"q": tag})).text
        numbers = re.findall(r'data-number="(INC-\d+)"', board)
        assert numbers == [high["number"], low["number"]]  # open only, SEV1 first
        row = board_row(board, high["number"])
        assert "sev-SEV1" in row and "triggered" in row
        assert re.search(r'data-deadline="\d{4}-\d\d-\d\dT[^"]+Z"', row)  # live countdown
        assert ">ack<" in row  # the next SLA deadline is the ack clock
        everything = (await client.get("/dashboard/", params={"q": tag, "status": "all"})).text
        numbers = re.findall(r'data-number="(INC-\d+)"', everything)
        assert numbers == [high["number"], low["number"], gone["number"]]  # open first
        sev4 = (await client.get("/dashboard/_board", params={"q": tag, "severity": "SEV4"})).text
        assert re.findall(r'data-number="(INC-\d+)"', sev4) == [low["number"]]
        assert "<html" not in sev4  # the refresh fragment is rows only


async def test_breached_clock_is_highlighted(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    async with live_app(temporal_client, database_url, task_queue, ack_within=0.5) as fast:
        ref = await fast.trigger("nobody answers")
        from tests.conftest import wait_for

        async def breached() -> bool:
            rows = await fast.stack.rows(
                "SELECT breaches FROM incidents WHERE number = %s", ref["number"]
            )
            return bool(rows and rows[0]["breaches"])

        await wait_for(breached, timeout=20, message="ack breach recorded")
        async with signed_in(fast, "read") as client:
            board = (await client.get("/dashboard/")).text
            page = (await client.get(f"/dashboard/incidents/{ref['number']}")).text
        row = board_row(board, ref["number"])
        assert 'class="sev-row-SEV3 breached"' in row
        assert "ack breached" in row
        assert 'class="badge breach"' in page


# ---------------------------------------------------------------------------- incident page
async def test_incident_page_offers_only_legal_actions(live: Live) -> None:
    ref = await live.trigger("api latency", severity="SEV2", labels={"region": "eu-1"})
    number = ref["number"]
    async with signed_in(live, "responder") as client:
        page = (await client.get(f"/dashboard/incidents/{number}")).text
        assert action_forms(page) == {
            "acknowledge",
            "investigate",
            "mitigate",
            "resolve",
            "cancel",
            "merge_into",
            "assign",
            "change_severity",
            "add_note",
            "post_status_update",
            "escalate",
            "pause",  # not "resume": the clocks are running
            "link",  # not "unlink": each link has its own button
        }
        assert "Level <strong>1</strong> of 3 reached" in page
        assert "eu-1" in page and 'data-kind="triggered"' in page
        for action in ("resolve",):
            response = await client.post(
                f"/dashboard/incidents/{number}/act",
                data={"csrf": hidden(page, "csrf"), "action": action, "resolution": "rolled back"},
            )
            assert response.status_code == 303
            assert response.headers["location"] == f"/dashboard/incidents/{number}?done=resolve"
        page = (await client.get(f"/dashboard/incidents/{number}?done=resolve")).text
        assert "Resolve: done." in page
        assert action_forms(page) == {"close", "reopen", "assign", "add_note", "link"}
        assert 'data-kind="resolved"' in page and "rolled back" in page


async def test_pause_and_resume_buttons(live: Live) -> None:
    """Issue 20: Pause shows "paused: <reason>" and the clocks' time left, and offers Resume
    instead; Resume restarts them."""
    number = (await live.trigger("vendor outage", severity="SEV3"))["number"]
    async with signed_in(live, "responder") as client:
        csrf = await csrf_of(client, number)
        response = await client.post(
            f"/dashboard/incidents/{number}/act",
            data={"csrf": csrf, "action": "pause", "reason": "waiting on <the> vendor"},
        )
        assert response.status_code == 303, response.text
        page = (await client.get(f"/dashboard/incidents/{number}")).text
        assert "paused: waiting on &lt;the&gt; vendor" in page
        assert page.count("left</span>") == 2  # mitigate and resolve keep their time left
        forms = action_forms(page)
        assert "resume" in forms and "pause" not in forms

        from tests.conftest import wait_for

        async def board_shows_paused() -> bool:
            board = (await client.get("/dashboard/")).text
            return 'class="badge paused"' in board_row(board, number)

        assert await wait_for(board_shows_paused, timeout=15, message="paused on the board")
        response = await client.post(
            f"/dashboard/incidents/{number}/act",
            data={"csrf": hidden(page, "csrf"), "action": "resume"},
        )
        assert response.status_code == 303, response.text
        page = (await client.get(f"/dashboard/incidents/{number}")).text
        assert "paused:" not in page and 'data-kind="resumed"' in page
        assert "pause" in action_forms(page)
        reports = (await client.get("/dashboard/reports")).text
        assert 'id="paused-time"' in reports and "net of pauses" in reports


async def test_actions_need_csrf_and_the_respond_scope(live: Live) -> None:
    ref = await live.trigger("queue backlog")
    number = ref["number"]
    async with signed_in(live, "read") as reader:
        page = (await reader.get(f"/dashboard/incidents/{number}")).text
        assert action_forms(page) == set()
        assert "Read-only session" in page
        denied = await reader.post(
            f"/dashboard/incidents/{number}/act",
            data={"csrf": hidden(page, "csrf"), "action": "acknowledge"},
        )
        assert denied.status_code == 403
        assert "lacks the respond scope" in denied.text
    async with signed_in(live, "responder") as responder:
        forged = await responder.post(
            f"/dashboard/incidents/{number}/act", data={"csrf": "x", "action": "acknowledge"}
        )
        assert forged.status_code == 403 and "CSRF" in forged.text
        snapshot = await live.http.get(f"/api/v1/incidents/{number}", headers=live.auth("read"))
        assert snapshot.json()["status"] == "triggered"  # neither post changed anything
        ok = await responder.post(
            f"/dashboard/incidents/{number}/act",
            data={
                "csrf": await csrf_of(responder, number),
                "action": "acknowledge",
                "note": "on it",
            },
        )
        assert ok.status_code == 303
    snapshot = await live.http.get(f"/api/v1/incidents/{number}", headers=live.auth("read"))
    body = snapshot.json()
    assert body["status"] == "acknowledged"
    assert body["timeline"][-1]["actor"] == "bob"  # the session's user is the actor
    assert body["timeline"][-1]["details"].get("note") == "on it"


async def test_illegal_or_invalid_actions_are_explained(live: Live) -> None:
    ref = await live.trigger("cache stampede")
    number = ref["number"]
    async with signed_in(live, "responder") as client:
        csrf = await csrf_of(client, number)
        illegal = await client.post(
            f"/dashboard/incidents/{number}/act", data={"csrf": csrf, "action": "close"}
        )
        assert illegal.status_code == 409
        assert f"{number} is triggered: cannot close" in unescape(illegal.text)
        invalid = await client.post(
            f"/dashboard/incidents/{number}/act", data={"csrf": csrf, "action": "cancel"}
        )
        assert invalid.status_code == 422 and "reason" in invalid.text
        unknown = await client.post(
            f"/dashboard/incidents/{number}/act", data={"csrf": csrf, "action": "explode"}
        )
        assert unknown.status_code == 422
        missing = await client.get("/dashboard/incidents/INC-999999999")
        assert missing.status_code == 404
        nonsense = await client.get("/dashboard/incidents/not-a-number")
        assert nonsense.status_code == 404
        # the forms' other actions go through too: assign, severity, note, status update
        for data in (
            {"action": "assign", "role": "scribe", "user": "carol"},
            {"action": "change_severity", "severity": "SEV2", "reason": "wider impact"},
            {"action": "add_note", "text": "first note"},
            {"action": "post_status_update", "text": "we are on it"},
            {"action": "escalate", "target": "user:dave", "reason": "need db help"},
        ):
            done = await client.post(
                f"/dashboard/incidents/{number}/act", data={"csrf": csrf, **data}
            )
            assert done.status_code == 303, (data, done.text)
        page = (await client.get(f"/dashboard/incidents/{number}")).text
    assert "we are on it" in page and "first note" in page and "wider impact" in page
    assert re.search(r"Scribe</dt><dd>carol", page)
    assert 'class="badge sev sev-SEV2"' in page


async def test_every_user_string_is_escaped(live: Live) -> None:
    evil = "<img src=x onerror=alert(1)>"
    ref = await live.trigger(
        evil,
        description="<script>alert(2)</script>",
        labels={"<b>k</b>": "<i>v</i>"},
        dedup_key=f"<svg onload=alert(3)>{uuid.uuid4().hex[:6]}",
    )
    number = ref["number"]
    noted = await live.http.post(
        f"/api/v1/incidents/{number}/notes",
        json={"text": "<a href=javascript:alert(4)>x</a>"},
        headers=live.auth("admin"),
    )
    assert noted.status_code == 200
    async with signed_in(live, "admin") as client:
        page = (await client.get(f"/dashboard/incidents/{number}")).text
        board = (await client.get("/dashboard/", params={"q": "onerror"})).text
    for html in (page, board):
        assert "&lt;img src=x onerror=alert(1)&gt;" in html
        assert "<img" not in html
    for raw in ("<script>alert", "<b>k</b>", "<i>v</i>", "<svg onload", "<a href=javascript"):
        assert raw not in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page


async def test_review_and_postmortem_show_once_scheduled(live: Live) -> None:
    ref = await live.trigger("needs a review")
    number = ref["number"]
    async with signed_in(live, "read") as client:
        before = (await client.get(f"/dashboard/incidents/{number}")).text
    assert 'id="review"' not in before
    # what the review activities write once a review is scheduled
    async with await psycopg.AsyncConnection.connect(live.stack.database_url) as conn:
        await conn.execute(
            "INSERT INTO reviews (number, status, facilitator, scheduled_at, document) "
            "VALUES (%s, 'scheduled', 'carol', now() + interval '2 days', %s)",
            (number, "# Postmortem\n<script>alert(5)</script>"),
        )
        await conn.execute(
            "INSERT INTO action_items (number, owner, title, due_date) "
            "VALUES (%s, 'dave', 'add a canary stage', current_date + 7)",
            (number,),
        )
        await conn.commit()
    async with signed_in(live, "read") as client:
        page = (await client.get(f"/dashboard/incidents/{number}")).text
    review = page[page.index('id="review"') :]
    review = review[: review.index("</section>")]
    assert 'id="review-status">scheduled<' in review
    assert "<dt>Facilitator</dt><dd>carol</dd>" in review
    assert "add a canary stage" in review and "dave" in review
    assert "# Postmortem" in review and "&lt;script&gt;alert(5)&lt;/script&gt;" in review


# ---------------------------------------------------------------------------- reports
async def test_reports_show_charts_and_tables(live: Live) -> None:
    ref = await live.trigger("report me", severity="SEV3", category="network")
    number = ref["number"]
    for action in ("acknowledge", "resolve"):
        response = await live.http.post(
            f"/api/v1/incidents/{number}/{action}", headers=live.auth("admin")
        )
        assert response.status_code == 200
    await live.ticket(number, "resolved")
    async with signed_in(live, "read") as client:
        page = (await client.get("/dashboard/reports", params={"service": live.service})).text
    assert page.count('<svg class="chart"') == 6  # trends too
    for chart in ("MTTA per severity per week", "MTTR per severity per week", "SLA compliance"):
        assert chart in page
    assert '<rect class="bar"' in page
    weekly = page[page.index('id="table-weekly"') :]
    weekly = weekly[: weekly.index("</table>")]
    assert "SEV3" in weekly
    categories = page[page.index('id="table-categories"') :]
    assert "<td>network</td>" in categories[: categories.index("</table>")]
    services = page[page.index('id="table-services"') :]
    assert f"<td>{live.service}</td>" in services[: services.index("</table>")]
    sla = page[page.index('id="table-sla"') :]
    assert re.search(r"<td>ack</td><td>[1-9]\d*</td>", sla[: sla.index("</table>")])


async def test_a_huge_form_is_refused(live: Live) -> None:
    padding = "x" * 300_000  # past the dashboard's 256 KiB form limit
    async with httpx.AsyncClient(base_url=live.url) as client:
        page = await client.get("/dashboard/login")
        sign_in = {
            "csrf": hidden(page.text, "csrf"),
            "next": "/dashboard/",
            "token": live.token("read"),
        }
        cookies = dict(client.cookies)
        response = await client.post("/dashboard/login", data={"token": padding})
        assert response.status_code == 413
        # a valid sign-in but for its size: refused before the form is read, so no session
        padded = await client.post("/dashboard/login", data={**sign_in, "padding": padding})
        assert padded.status_code == 413
        for refused in (response, padded):
            assert "set-cookie" not in refused.headers
        assert dict(client.cookies) == cookies and SESSION_COOKIE not in client.cookies
        board = await client.get("/dashboard/")
        assert board.status_code == 303  # still signed out
        assert board.headers["location"].startswith("/dashboard/login")
        # the same form within the limit signs in: only the size kept the session out
        ok = await client.post("/dashboard/login", data=sign_in)
        assert ok.status_code == 303 and SESSION_COOKIE in client.cookies

    # a legal action but for its size changes nothing about the incident
    ref = await live.trigger("huge form")
    number = ref["number"]
    before = incident_facts(await live.stack.client.get(number))
    async with signed_in(live, "responder") as responder:
        act = {"csrf": await csrf_of(responder, number), "action": "acknowledge"}
        # (the form ignores fields it does not know, so only the size refuses this one)
        huge = await responder.post(
            f"/dashboard/incidents/{number}/act", data={**act, "padding": padding}
        )
        assert huge.status_code == 413
        assert incident_facts(await live.stack.client.get(number)) == before
        assert before["status"] == "triggered"
        ok = await responder.post(f"/dashboard/incidents/{number}/act", data=act)
        assert ok.status_code == 303
    assert incident_facts(await live.stack.client.get(number))["status"] == "acknowledged"


# ---------------------------------------------------------------------------- pure parts
def test_charts_escape_labels_and_scale() -> None:
    svg = charts.grouped_bars(
        "t<script>",
        ["<w1>", "w2"],
        [charts.Series("<s>", "#000", [10.0, None]), charts.Series("b", "#111", [5.0, 20.0])],
    )
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "<w1>" not in svg and "&lt;w1&gt;" in svg
    heights = [float(h) for h in re.findall(r'class="bar"[^>]*height="([\d.]+)"', svg)]
    assert len(heights) == 3  # the None value draws nothing
    assert max(heights) == pytest.approx(176.0)  # 20 fills the axis (nice maximum 20)
    empty = charts.horizontal_bars("none", [])
    assert "no data" in empty


def test_time_text() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert time_text.short(4) == "4s"
    assert time_text.short(252) == "4m 12s"
    assert time_text.short(7500) == "2h 5m"
    assert time_text.short(3 * 86400 + 4 * 3600) == "3d 4h"
    assert time_text.countdown(now + timedelta(seconds=90), now) == "in 1m 30s"
    assert time_text.countdown(now - timedelta(seconds=40), now) == "overdue 40s"
    assert time_text.maybe(None) == "—"


def test_severity_colours_cover_every_severity() -> None:
    assert set(charts.SEVERITY_COLOURS) == set(Severity)
