"""A post-incident review completed, and an action item closed, in a real browser: headless
Chromium over the DevTools protocol (``tests/support_browser.py``) against the app on a
loopback port, with a real worker, Temporal, PostgreSQL and an aiosmtpd server.

test_review_surfaces.py drives the same forms with HTTP posts; here a responder signs in,
types the review into the incident page's form and clicks, then clicks "Done" on the
"Action items" page. What the browser showed is then checked where it lands: the review and
action item rows in PostgreSQL, the closed incident, and the reminders (two items fall due
together seconds ahead; once the still-open one has been reminded, the done one must not
have been).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from temporalio.client import Client

from schemas.review import ReviewStatus
from schemas.settings import Settings
from schemas.tokens import generate_token
from starter.api.app import create_app
from starter.dashboard.routes import mount_dashboard
from tests.support_browser import Page, chromium, find_chromium
from tests.support_receivers import SmtpServer
from tests.support_reviews import review_stack
from tests.support_surfaces import SESSION_SECRET, serve_http
from tests.test_dashboard_browser import exists, js, text
from tests.test_review_surfaces import (
    TOKENS,
    Surfaces,
    assert_reminder_stopped,
    item_rows,
    policy_with_tokens,
    scheduled,
)

#: seconds ahead the two items fall due: room to type, submit and click "Done" before then
DUE_IN = 15


def chromium_or_skip() -> str:
    executable = find_chromium()
    if executable is None:
        why = "Chromium not found ($CHROMIUM, chromium, ...): run `make browser`"
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI is set, so this test may not skip")
        pytest.skip(why)
    return executable


@asynccontextmanager
async def review_app(
    temporal: Client, database_url: str, task_queue: str
) -> AsyncIterator[Surfaces]:
    """test_review_surfaces' stack (review policy, worker mailing aiosmtpd) plus the app
    with the dashboard on a real port."""
    tokens = {name: generate_token() for name in TOKENS}
    policy = policy_with_tokens(tokens)
    with SmtpServer() as smtp:
        async with review_stack(temporal, database_url, task_queue, policy, smtp.port) as rs:
            settings = Settings(database_url=database_url, temporal_task_queue=task_queue)
            app = create_app(settings, policy, temporal=temporal)
            mount_dashboard(app, secret=SESSION_SECRET, refresh_seconds=1.0)
            async with (
                serve_http(app) as url,
                httpx.AsyncClient(base_url=url, timeout=30) as http,
            ):
                yield Surfaces(rs=rs, smtp=smtp, url=url, http=http, tokens=tokens)


async def value(page: Page, selector: str) -> str:
    return str(await page.evaluate(f"document.querySelector({js(selector)}).value"))


async def status_of(page: Page, ident: int) -> str:
    """The ``data-status`` of action item ``ident``'s row."""
    return str(await page.evaluate(f"document.querySelector('#item-{ident}').dataset.status"))


async def item_id(page: Page, title: str) -> int:
    """The id of the action item row titled ``title`` in the page's #action-items table."""
    found = await page.evaluate(
        f"""(() => {{
            for (const tr of document.querySelectorAll('#action-items tbody tr[id^="item-"]')) {{
                if ([...tr.cells].some(td => td.textContent.trim() === {js(title)})) {{
                    return Number(tr.id.slice('item-'.length));
                }}
            }}
            return null;
        }})()"""
    )
    assert isinstance(found, int), f"no action item row titled {title!r}"
    return found


async def test_review_completed_and_action_item_done_in_chromium(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    executable = chromium_or_skip()
    async with review_app(temporal_client, database_url, task_queue) as live:
        number = await scheduled(live, "browser")
        async with chromium(executable) as browser:
            page = await browser.new_page()

            # -- sign in on the way to the incident page ------------------------------------
            incident_url = f"{live.url}/dashboard/incidents/{number}"
            await page.goto(incident_url)
            assert (await page.url()).startswith(f"{live.url}/dashboard/login?next=")
            await page.type("#token", live.tokens["responder"])
            await page.click("#sign-in", navigates=True)
            assert await page.url() == incident_url
            assert await text(page, "#review-status") == "scheduled"

            # -- complete the review by typing and clicking -------------------------------
            due = (datetime.now(UTC) + timedelta(seconds=DUE_IN)).replace(microsecond=0)
            form = "#form-review-complete"
            summary = "Disk filled up on the checkout database."
            items = (
                f"bob: Alert on disk @ {due.isoformat()}\ncarol: Control item @ {due.isoformat()}"
            )
            await page.type(f"{form} textarea[name=summary]", summary)
            await page.type(f"{form} textarea[name=contributing_factors]", "log rotation off")
            await page.type(f"{form} textarea[name=action_items]", items)
            # typed, and not wiped by the page's 1 s refresh
            assert await value(page, f"{form} textarea[name=summary]") == summary
            assert await value(page, f"{form} textarea[name=action_items]") == items
            await page.click("#do-review-complete", navigates=True)

            assert await page.url() == f"{incident_url}?review=completed#review"
            assert await text(page, "#review-status") == "completed"
            assert "Review completed: the incident is closed." in await text(page, "#review")
            assert await text(page, "#review-summary") == summary
            assert await page.evaluate(f"document.querySelector({js(form)}) === null")
            closed_id = await item_id(page, "Alert on disk")
            control_id = await item_id(page, "Control item")
            for ident, owner in ((closed_id, "bob"), (control_id, "carol")):
                assert await status_of(page, ident) == "open"
                assert owner in await text(page, f"#item-{ident}")
                assert await page.evaluate(exists(f"#done-{ident}"))

            # -- "Done" on the Action items page (the nav link: bob's open items) ----------
            await page.click('header nav a[href$="/action-items"]', navigates=True)
            assert await page.url() == f"{live.url}/dashboard/action-items"
            assert await page.evaluate(exists(f"#item-{closed_id}"))
            assert not await page.evaluate(exists(f"#item-{control_id}"))  # carol's, not bob's
            await page.click(f"#done-{closed_id}", navigates=True)
            assert await page.url() == f"{live.url}/dashboard/action-items?view=mine"
            assert not await page.evaluate(exists(f"#item-{closed_id}"))  # no longer open

            await page.click('nav.filters a[href$="view=closed"]', navigates=True)
            assert await status_of(page, closed_id) == "done"
            assert await page.evaluate(exists(f"#reopen-{closed_id}"))
            assert not await page.evaluate(exists(f"#done-{closed_id}"))

            await page.goto(incident_url)
            assert await status_of(page, closed_id) == "done"
            assert await page.evaluate(exists(f"#reopen-{closed_id}"))
            assert await page.evaluate(exists(f"#done-{control_id}"))
            assert page.script_errors() == []

        # -- outside the browser: PostgreSQL, the workflow, the reminders --------------------
        review = await live.rs.review_row(number)
        assert review is not None
        assert review["status"] == ReviewStatus.COMPLETED.value
        assert review["summary"] == summary and review["completed_at"] is not None
        (ticket,) = await live.rs.rows("SELECT status FROM incidents WHERE number = %s", number)
        assert ticket["status"] == "closed"
        rows = {r["id"]: r for r in await item_rows(live, number)}
        assert rows.keys() == {closed_id, control_id}
        closed = rows[closed_id]
        assert (closed["title"], closed["owner"], closed["status"]) == (
            "Alert on disk",
            "bob",
            "done",
        )
        assert closed["updated_by"] == "bob" and closed["closed_at"] is not None
        assert closed["closed_at"] < due, (
            "closed after it fell due: the reminder check proves nothing"
        )
        assert rows[control_id]["status"] == "open" and rows[control_id]["closed_at"] is None
        assert rows[control_id]["due_at"] == due == closed["due_at"]

        await assert_reminder_stopped(live, number, closed_id, control_id)
