"""The dashboard in a real browser: headless Debian Chromium over the DevTools protocol
(``tests/support_browser.py``), against the app on a loopback port with a real worker.

What only a browser can show: an incident triggered through the API appears on the open
board without a reload, countdowns tick, acknowledging is a click, the timeline updates by
itself, a hostile title stays text (no dialog opens), the strict CSP raises no violation,
and the charts render. Screenshots of the three pages are saved as test artifacts
(``build/test-artifacts/dashboard/``, or ``$INCIDENTFLOW_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from temporalio.client import Client

from tests.support_browser import Page, chromium, find_chromium
from tests.support_surfaces import live_app

ARTIFACTS = Path(
    os.environ.get("INCIDENTFLOW_TEST_ARTIFACTS")
    or Path(__file__).resolve().parent.parent / "build" / "test-artifacts"
)


def js(value: str) -> str:
    return json.dumps(value)


def row(number: str) -> str:
    return f"document.querySelector('tr[data-number=\"{number}\"]')"


def exists(selector: str) -> str:
    """A script that is true once ``selector`` matches (an element itself is not JSON)."""
    return f"!!document.querySelector({js(selector)})"


async def text(page: Page, selector: str) -> str:
    return str(await page.evaluate(f"document.querySelector({js(selector)}).textContent.trim()"))


async def test_dashboard_in_chromium(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    executable = find_chromium()
    if executable is None:
        why = (
            "Chromium not found (looked for $CHROMIUM, chromium, chromium-browser, "
            "google-chrome): `make test` installs Debian's chromium where apt-get is available"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI is set, so this test may not skip")
        pytest.skip(why)
    shots = ARTIFACTS / "dashboard"
    async with (
        live_app(temporal_client, database_url, task_queue, refresh_seconds=1.0) as live,
        chromium(executable) as browser,
    ):
        page = await browser.new_page()

        # -- sign in through the form ------------------------------------------------------
        await page.goto(f"{live.url}/dashboard/")
        assert (await page.url()).startswith(f"{live.url}/dashboard/login?next=")
        await page.type("#token", live.token("responder"))
        await page.click("#sign-in", navigates=True)
        assert await page.url() == f"{live.url}/dashboard/"
        assert "bob" in await text(page, ".who")
        cookie_visible = await page.evaluate("document.cookie")
        assert "incidentflow_session" not in cookie_visible  # HttpOnly: scripts cannot read it

        # -- a new incident appears without a reload, its countdown ticks -------------------
        await page.evaluate("window.__sameDocument = 'board'")
        ref = await live.trigger("Payment API returns 502", severity="SEV2")
        number = ref["number"]
        await page.wait_for(exists(f'tr[data-number="{number}"]'), what=f"{number} on the board")
        assert await page.evaluate("window.__sameDocument") == "board"  # not reloaded
        countdown = f'tr[data-number="{number}"] .countdown'
        first = await text(page, countdown)
        assert first.startswith("in 14m"), first
        await page.wait_for(
            f"document.querySelector({js(countdown)}).textContent.trim() !== {js(first)}",
            what="the countdown to tick",
        )
        assert "sev-SEV2" in await page.evaluate(f"{row(number)}.innerHTML")
        await page.screenshot(shots / "incidents.png")

        # -- the incident page refreshes itself, but never under the user's typing ----------
        await page.click(f'tr[data-number="{number}"] td a', navigates=True)
        assert await page.url() == f"{live.url}/dashboard/incidents/{number}"
        assert await text(page, "#incident-status") == "triggered"
        await page.evaluate("window.__sameDocument = 'incident'")
        noted = await live.http.post(
            f"/api/v1/incidents/{number}/notes",
            json={"text": "rollback started by the CLI"},
            headers=live.auth("admin"),
        )
        assert noted.status_code == 200
        await page.wait_for(
            exists('#timeline tr[data-kind="note_added"]'), what="the note in the timeline"
        )
        assert await page.evaluate("window.__sameDocument") == "incident"

        await page.type("#form-add_note textarea", "half-typed thought")
        refreshed = int(
            await page.evaluate("document.querySelector('#incident').dataset.refreshed")
        )
        await live.http.post(
            f"/api/v1/incidents/{number}/notes",
            json={"text": "second note"},
            headers=live.auth("admin"),
        )
        await live.ticket(number)
        # three refresh periods pass without replacing what is being typed
        await page.evaluate("new Promise(resolve => setTimeout(resolve, 3000))")
        assert (
            await page.evaluate("document.querySelector('#form-add_note textarea').value")
            == "half-typed thought"
        )
        assert (
            int(await page.evaluate("document.querySelector('#incident').dataset.refreshed"))
            == refreshed
        )

        # -- acknowledge by clicking; the timeline shows it -----------------------------------
        await page.click("#do-acknowledge", navigates=True)
        assert await text(page, "#incident-status") == "acknowledged"
        ack_row = '#timeline tr[data-kind="acknowledged"]'
        assert "bob" in await text(page, ack_row)
        assert await page.evaluate("document.querySelector('#form-acknowledge') === null")
        assert await page.evaluate("document.querySelector('#form-resolve') !== null")
        assert "Acknowledge: done." in await text(page, "main")
        await page.screenshot(shots / "incident.png")

        # -- a hostile title is text --------------------------------------------------------
        evil_title = "<img src=x onerror=alert(1)>"
        evil = await live.trigger(evil_title)
        await page.goto(f"{live.url}/dashboard/incidents/{evil['number']}")
        assert await text(page, "#incident-title") == evil_title
        assert await page.evaluate("document.querySelectorAll('main img').length") == 0
        await page.goto(f"{live.url}/dashboard/")
        await page.wait_for(exists(f'tr[data-number="{evil["number"]}"]'))
        assert evil_title in await text(page, f'tr[data-number="{evil["number"]}"] td.title')
        assert await page.evaluate("document.querySelectorAll('main img').length") == 0

        # -- reports: charts render ----------------------------------------------------------
        await page.goto(f"{live.url}/dashboard/reports?service={live.service}")
        # MTTA, MTTR, SLA, categories, services and the weekly trends
        assert await page.evaluate("document.querySelectorAll('svg.chart').length") == 6
        assert (
            await page.evaluate("document.querySelectorAll('#chart-trends svg.chart').length") == 1
        )
        assert await page.evaluate("document.querySelectorAll('svg.chart rect.bar').length") > 0
        width = await page.evaluate(
            "document.querySelector('#chart-services svg').getBoundingClientRect().width"
        )
        assert width > 300  # laid out, not collapsed
        await page.screenshot(shots / "reports.png")

        assert page.dialogs() == []  # no injected script ever ran
        assert page.script_errors() == []  # no JS error, no CSP violation
    for name in ("incidents", "incident", "reports"):
        assert (shots / f"{name}.png").stat().st_size > 10_000
