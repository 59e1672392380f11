"""The dashboard on the responder's phone: headless Chromium at 390x844 CSS pixels
(``Emulation.setDeviceMetricsOverride``), against the app on a loopback port with a real worker.

The board becomes cards that read well (number, severity, status, title, countdown), neither
the board nor the incident page scrolls sideways, the legal actions sit above the fold, and a
page's signed acknowledge link works in one tap without signing in: its GET changes nothing,
its POST acknowledges as the paged user, and it works once. Screenshots go to
``build/test-artifacts/dashboard/phone-*.png``.
"""

from __future__ import annotations

import json
import os

import httpx
import pytest
from temporalio.client import Client

from starter.dashboard.ack_links import VIA_LINK
from tests.support_browser import PHONE, Page, chromium, find_chromium
from tests.support_links import page_payload, paging_app
from tests.support_receivers import HttpReceiver
from tests.test_dashboard_browser import ARTIFACTS, exists, text

LONG_TITLE = (
    "Checkout API returns 502 for every card payment in eu-west-1 since the 14:00 deploy "
    "of payments-gateway"
)
UNBROKEN = "X" * 120  # a stack-trace-like word must wrap, not widen the page


def chromium_or_skip() -> str:
    executable = find_chromium()
    if executable is None:
        why = "Chromium not found ($CHROMIUM, chromium, ...): run `make browser`"
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI is set, so this test may not skip")
        pytest.skip(why)
    return executable


async def assert_no_sideways_scroll(page: Page, where: str) -> None:
    width, viewport = await page.horizontal_overflow()
    assert viewport == PHONE[0], (where, viewport)
    assert width <= viewport, f"{where} scrolls sideways: {width}px wide in {viewport}px"


async def rect(page: Page, selector: str) -> dict[str, float]:
    box = await page.evaluate(
        f"""(() => {{
            const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();
            return {{top: r.top, bottom: r.bottom, left: r.left, right: r.right,
                     width: r.width, height: r.height}};
        }})()"""
    )
    assert isinstance(box, dict), selector
    return {k: float(v) for k, v in box.items()}


async def test_board_and_incident_fit_a_phone_and_the_ack_link_works(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    executable = chromium_or_skip()
    shots = ARTIFACTS / "dashboard"
    with HttpReceiver() as receiver:
        async with (
            paging_app(temporal_client, database_url, task_queue, receiver) as live,
            chromium(executable) as browser,
        ):
            page = await browser.new_page()
            await page.emulate(*PHONE)
            await page.goto(f"{live.url}/dashboard/")
            await page.type("#token", live.token("responder"))
            await page.click("#sign-in", navigates=True)
            assert await page.url() == f"{live.url}/dashboard/"

            # -- the board: cards, no sideways scroll --------------------------------------
            ref = await live.trigger(LONG_TITLE, severity="SEV2")
            number = ref["number"]
            await live.trigger(f"Disk full on db-7 {UNBROKEN}", severity="SEV1")
            card = f'tr[data-number="{number}"]'
            await page.wait_for(exists(card), what=f"{number} on the board")
            await assert_no_sideways_scroll(page, "the board")
            title = await rect(page, f"{card} td.title")
            assert title["width"] > 300, f"the title is squeezed into {title['width']}px"
            assert title["height"] < 100, f"the title takes {title['height']}px of height"
            for cell in ("num", "sev", "state", "title", "next"):
                box = await rect(page, f"{card} td.{cell}")
                assert box["width"] > 0 and box["right"] <= PHONE[0], (cell, box)
            assert (
                await page.evaluate(
                    f"getComputedStyle(document.querySelector('{card} td.service')).display"
                )
                == "none"
            )
            assert (await text(page, f"{card} .countdown")).startswith("in ")
            assert (await rect(page, "table.board thead"))[
                "height"
            ] <= 1  # read by screen readers only
            await page.screenshot(shots / "phone-incidents.png")

            # -- the incident: no sideways scroll, the legal actions above the fold -----------
            await page.click(f"{card} td.title a", navigates=True)
            assert await page.url() == f"{live.url}/dashboard/incidents/{number}"
            await page.evaluate("window.scrollTo(0, 0)")
            await assert_no_sideways_scroll(page, "the incident page")
            ack = await rect(page, "#do-acknowledge")
            assert 0 <= ack["top"] and ack["bottom"] <= PHONE[1], (
                f"acknowledge below the fold: {ack}"
            )
            snapshot = await rect(page, ".grid")
            assert ack["top"] < snapshot["top"], "the actions come before the snapshot"
            await page.screenshot(shots / "phone-incident.png")
            unbroken = await live.trigger(UNBROKEN, severity="SEV3")
            await page.goto(f"{live.url}/dashboard/incidents/{unbroken['number']}")
            await assert_no_sideways_scroll(page, "an incident with an unbroken title")

            # -- the other pages do not scroll sideways either ------------------------------
            for path in ("/dashboard/reports", "/dashboard/action-items"):
                await page.goto(f"{live.url}{path}")
                assert await page.url() == f"{live.url}{path}"
                await assert_no_sideways_scroll(page, path)

            # -- the page's acknowledge link -------------------------------------------------
            payload = await page_payload(receiver, "alice", number)  # level 1 pages alice
            assert payload["link"] == f"{live.url}/dashboard/incidents/{number}"
            ack_link = payload["ack_link"]
            assert ack_link.startswith(f"{live.url}/dashboard/ack/")
            assert ack_link in payload["text"]
            async with httpx.AsyncClient(timeout=30) as http:
                # a mail scanner's prefetch (even following redirects) changes nothing
                prefetch = await http.get(ack_link, follow_redirects=True)
                assert prefetch.status_code == 200
                assert f"Acknowledge {number}" in prefetch.text
            await live.ticket(number, status="triggered")
            state = await live.http.get(f"/api/v1/incidents/{number}", headers=live.auth("read"))
            assert state.json()["status"] == "triggered"

            # one tap on a phone that never signed in
            phone = await browser.new_page(isolated=True)
            await phone.emulate(*PHONE)
            await phone.goto(ack_link)
            assert await phone.url() == ack_link  # no detour through sign-in
            await assert_no_sideways_scroll(phone, "the acknowledge page")
            button = await rect(phone, "#ack-confirm")
            assert button["bottom"] <= PHONE[1]
            assert "alice" in await text(phone, "main")
            await phone.screenshot(shots / "phone-ack.png")
            await phone.click("#ack-confirm", navigates=True)
            assert await text(phone, "#ack-done") == f"{number} acknowledged as alice."
            assert await text(phone, "#incident-status") == "acknowledged"
            assert await phone.evaluate("document.querySelector('#ack-confirm') === null")

            incident = (
                await live.http.get(f"/api/v1/incidents/{number}", headers=live.auth("read"))
            ).json()
            assert incident["status"] == "acknowledged"
            acked = [e for e in incident["timeline"] if e["kind"] == "acknowledged"]
            assert len(acked) == 1
            assert acked[0]["actor"] == "alice"  # the paged user, not whoever holds a session
            assert acked[0]["details"].get("note") == VIA_LINK

            # it works once
            async with httpx.AsyncClient(timeout=30) as http:
                again = await http.post(ack_link)
            assert again.status_code == 409
            assert "already used" in again.text
            used = await live.stack.rows(
                "SELECT number, username FROM ack_link_uses WHERE number = %s", number
            )
            assert used == [{"number": number, "username": "alice"}]

            assert page.script_errors() == [] and phone.script_errors() == []
    for name in ("phone-incidents", "phone-incident", "phone-ack"):
        assert (shots / f"{name}.png").stat().st_size > 5_000
