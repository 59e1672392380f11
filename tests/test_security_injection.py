"""Hostile strings (SQL injection, HTML/script, template syntax, header injection) in every
text field of an incident, end to end: through the HTTP API and a real worker into
PostgreSQL, out as real e-mail (aiosmtpd) and into the markdown postmortem.

Stored verbatim (and the tables still there), rendered escaped: the HTML part of every mail
carries no live markup, no header is injected, and the postmortem keeps its structure.
The dashboard's escaping of the same kind of strings is asserted in ``test_dashboard.py``.
"""

from __future__ import annotations

import re
import uuid
from email.message import EmailMessage
from typing import Any

import httpx
from temporalio.client import Client

from schemas.policy import Policy
from schemas.settings import Settings
from tests.conftest import wait_for
from tests.support_api import api_policy
from tests.support_drills import (
    api_with_worker,
    assert_verified,
    fetch_all,
    fresh_database,
    terminate_all,
)
from tests.support_receivers import SmtpServer

SQLI = "Robert'); DROP TABLE incidents; --"
XSS = '<script>alert("xss")</script><img src=x onerror=alert(1)>'
SSTI = "{{ 7*7 }}{% if true %}jinja{% endif %}"
HOSTILE = f"{SQLI} {XSS} {SSTI}"
TITLE = f"{XSS} {SQLI}\r\nBcc: mallory@evil.test"
DESCRIPTION = f"{HOSTILE}\n# Injected heading\n| a | b |\n</pre>{XSS}"
NOTE = f"{HOSTILE}\n## Action items\n- [x] pwned"
LABELS = {XSS: SQLI, "k|ey": "v|al"}
DETAILS: dict[str, Any] = {"html": XSS, SQLI: SSTI}


def with_emails(policy: Policy) -> Policy:
    data = policy.model_dump(mode="json")
    for user in data["users"]:
        user["email"] = f"{user['name']}@example.test"
    return Policy.model_validate(data)


async def test_hostile_strings_are_stored_verbatim_and_rendered_escaped(
    temporal_client: Client, postgres_server: str, task_queue: str
) -> None:
    policy, names = api_policy(review_required=True, reopen_window=1)
    policy = with_emails(policy)
    with SmtpServer() as smtp, fresh_database(postgres_server) as database_url:
        settings = Settings(
            database_url=database_url,
            temporal_task_queue=task_queue,
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
        )
        try:
            async with api_with_worker(temporal_client, policy, settings) as http:
                number = await _scenario(http, names.service, names.auth)
                await _assert_api_verbatim(http, number, names.auth("read"))
                await _assert_stored_verbatim(database_url, number)
                await _assert_mail_escaped(smtp)
                await _wait_for_review(database_url, number)
                # handed to its review: verify follows the incident into the review workflow
                await assert_verified(temporal_client, database_url, task_queue)
                await _assert_postmortem_structure(database_url, number)
        finally:
            await terminate_all(temporal_client, task_queue)


async def _scenario(http: httpx.AsyncClient, service: str, auth: Any) -> str:
    created = await http.post(
        "/api/v1/incidents",
        json={
            "title": TITLE,
            "service": service,
            "description": DESCRIPTION,
            "labels": LABELS,
            "details": DETAILS,
            "links": [
                {"href": "https://runbooks.example/x", "text": XSS},
                {"href": "javascript:alert(document.cookie)", "text": "runbook"},
            ],
            "dedup_key": f"{SQLI}-{uuid.uuid4().hex[:6]}",
            "source": XSS[:100],
        },
        headers=auth("ingest"),
    )
    assert created.status_code == 201, created.text
    number: str = created.json()["number"]
    base = f"/api/v1/incidents/{number}"
    for segment, body in (
        ("acknowledge", {"note": HOSTILE}),
        ("notes", {"text": NOTE}),
        ("status-updates", {"text": HOSTILE}),
        ("resolve", {"resolution": HOSTILE}),
    ):
        response = await http.post(f"{base}/{segment}", json=body, headers=auth("respond"))
        assert response.status_code == 200, (segment, response.text)
    return number


async def _assert_api_verbatim(http: httpx.AsyncClient, number: str, headers: Any) -> None:
    incident = (await http.get(f"/api/v1/incidents/{number}", headers=headers)).json()
    assert incident["title"] == TITLE
    assert incident["description"] == DESCRIPTION
    assert incident["labels"] == LABELS
    assert incident["details"] == DETAILS
    assert incident["source"] == XSS[:100]
    texts = [
        e["details"].get(k)
        for e in incident["timeline"]
        for k in ("note", "text", "resolution")
        if k in e["details"]
    ]
    assert texts == [HOSTILE, NOTE, HOSTILE, HOSTILE]


async def _assert_stored_verbatim(database_url: str, number: str) -> None:
    async def resolved_row() -> list[tuple[Any, ...]]:
        return await fetch_all(
            database_url,
            "SELECT title, description, labels, source, snapshot->'details' FROM incidents"
            " WHERE number = %s AND status IN ('resolved', 'closed')",
            number,
        )

    rows: list[tuple[Any, ...]] = await wait_for(resolved_row, message="resolved ticket row")
    [stored_row] = rows
    assert stored_row == (
        TITLE,
        DESCRIPTION,
        LABELS,
        XSS[:100],
        DETAILS,
    )
    stored = await fetch_all(
        database_url,
        "SELECT details->>'text' FROM incident_events WHERE number = %s AND kind = 'note_added'",
        number,
    )
    assert stored == [(NOTE,)]
    # the statement in the strings never ran: every table is still there
    tables = await fetch_all(
        database_url,
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN "
        "('incidents', 'incident_events', 'notifications', 'reviews')",
    )
    assert tables == [(4,)]


async def _assert_mail_escaped(smtp: SmtpServer) -> None:
    # triggered, acknowledged, resolved (to alice, paged at level 1) at least: HTML mails
    def html_mails() -> list[EmailMessage] | None:
        messages = smtp.sink.messages
        with_html = [m for m in messages if m.get_body(preferencelist=("html",)) is not None]
        return messages if len(with_html) >= 3 else None

    messages: list[EmailMessage] = await wait_for(html_mails, timeout=30, message="3 HTML mails")
    checked = 0
    for message in messages:
        subject = str(message["Subject"])
        assert "\r" not in subject and "\n" not in subject
        assert message["Bcc"] is None and "mallory" not in str(message["To"])
        html_part = message.get_body(preferencelist=("html",))
        if html_part is None:
            # only the review's calendar invite goes without an HTML part
            types = {part.get_content_type() for part in message.walk()}
            assert "text/calendar" in types, (subject, types)
            continue
        html = html_part.get_content()
        for live in ("<script", "<img src=x", "onerror=alert(1)>"):
            assert live not in html, (subject, live)
        assert "&lt;script&gt;" in html
        checked += 1
    assert checked >= 3
    with smtp.sink._lock:
        recipients = {r for env in smtp.sink.envelopes for r in env.rcpt_tos}
    assert not any("mallory" in r for r in recipients)


async def _wait_for_review(database_url: str, number: str) -> str:
    async def document() -> str | None:
        rows = await fetch_all(
            database_url, "SELECT document FROM reviews WHERE number = %s", number
        )
        return rows[0][0] if rows and rows[0][0] else None

    text: str = await wait_for(document, timeout=30, message="the postmortem draft")
    return text


async def _assert_postmortem_structure(database_url: str, number: str) -> None:
    text = await _wait_for_review(database_url, number)
    lines = text.splitlines()
    heading = next(line for line in lines if line.startswith("# Postmortem"))
    assert "Bcc: mallory@evil.test" in heading  # the title stayed on its heading line
    # the description's and the note's markdown stayed inside their blockquotes
    injected = ("Bcc:", "# Injected", "| a | b |", "- [x] pwned")
    assert not any(line.startswith(injected) for line in lines)
    assert "> # Injected heading" in text and "> ## Action items" in text
    assert "> - [x] pwned" in text
    # one "Action items" section, the template's own: its table follows the heading
    sections = [i for i, line in enumerate(lines) if line == "## Action items"]
    assert len(sections) == 1, sections
    after = [line for line in lines[sections[0] + 1 :] if line.strip()]
    assert after[0] == "| Owner | Action | Due |", after[:2]
    labels_row = next(line for line in lines if line.startswith("| Labels |"))
    assert len(re.split(r"(?<!\\)\|", labels_row)) == 4  # a label's pipes add no column
    # markdown renderers pass inline HTML through, and link any scheme: values must not
    # carry live markup or a script link into the document
    for live in ("<script", "<img src=x", "](javascript:"):
        assert live not in text, f"postmortem carries {live!r} unescaped"
