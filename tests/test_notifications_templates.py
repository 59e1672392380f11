"""Templates render for every event kind; escaping; overrides; webhook signatures."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from jinja2 import UndefinedError

from activities.notifications.rendering import BUILTIN_TEMPLATES, Renderer
from activities.notifications.signing import sign_webhook, verify_webhook
from schemas.enums import EventKind
from schemas.links import incident_url
from tests.support_notifications import (
    BASE_URL,
    NOTIFYING_KINDS,
    make_event,
    make_snapshot,
)

XSS = "<script>alert(1)</script>"


def test_every_template_renders_for_every_event_kind() -> None:
    renderer = Renderer()
    incident = make_snapshot(number="INC-7")
    link = incident_url(BASE_URL, incident.number)
    for kind in EventKind:
        no_details: dict[str, Any] = {}
        for details in (None, no_details):  # realistic details, and none at all
            event = make_event(kind, details=details)
            message = renderer.render(incident, event, recipient="Alice Smith", link=link)
            where = f"{kind} details={details}"
            assert message.subject.startswith("[SEV1] INC-7 "), where
            assert message.subject.endswith(": Checkout returns 500s"), where
            for body in (message.text, message.html, message.markdown):
                assert "INC-7" in body, where
                assert "Checkout returns 500s" in body, where
                assert link in body, where
            assert "None" not in message.text, where
            assert message.html.lstrip().startswith("<!DOCTYPE html>"), where
            blocks = message.slack["blocks"]
            assert blocks[0]["type"] == "header", where
            assert any(link in json.dumps(b) for b in blocks), where
            assert "INC-7" in message.slack["text"], where


def test_each_notifying_kind_has_its_own_template() -> None:
    renderer = Renderer()
    for kind in NOTIFYING_KINDS:
        assert renderer.kind_template(kind) == f"kinds/{kind}.j2"
        assert (BUILTIN_TEMPLATES / "kinds" / f"{kind}.j2").is_file()
    assert renderer.kind_template(EventKind.NOTE_ADDED) == "kinds/_generic.j2"


def test_headlines_say_what_happened() -> None:
    renderer = Renderer()
    incident = make_snapshot(number="INC-7")
    subjects = {
        kind: renderer.render(incident, make_event(kind), recipient="a", link="x").subject
        for kind in NOTIFYING_KINDS
    }
    assert subjects[EventKind.TRIGGERED] == "[SEV1] INC-7 triggered: Checkout returns 500s"
    assert "escalated to level 2" in subjects[EventKind.ESCALATED]
    assert "SLA breached (ack)" in subjects[EventKind.SLA_BREACHED]
    assert "acknowledged by alice" in subjects[EventKind.ACKNOWLEDGED]
    assert "severity changed to SEV1" in subjects[EventKind.SEVERITY_CHANGED]
    assert "review overdue" in subjects[EventKind.REVIEW_OVERDUE]
    assert "status update (public)" in subjects[EventKind.STATUS_UPDATE_POSTED]
    assert "commander is now carol" in subjects[EventKind.ASSIGNED]
    text = renderer.render(
        incident, make_event(EventKind.SLA_BREACHED), recipient="a", link="x"
    ).text
    assert "late by 1m35s" in text
    assert "2026-03-02 14:08 UTC" in text


def test_html_is_escaped_and_slack_json_carries_the_raw_title() -> None:
    incident = make_snapshot(number="INC-8", title=XSS + ' & "quotes" }}')
    message = Renderer().render(
        incident, make_event(EventKind.TRIGGERED), recipient="<b>Eve</b>", link="x"
    )
    assert "<script>" not in message.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in message.html
    assert "&lt;b&gt;Eve&lt;/b&gt;" in message.html
    # the payload is JSON (a dict parsed from the template) and survives a round trip
    payload = json.loads(json.dumps(message.slack))
    assert payload["blocks"][0]["text"]["type"] == "plain_text"
    assert XSS in payload["blocks"][0]["text"]["text"]
    # mrkdwn text escapes Slack's control characters instead
    assert "<script>" not in payload["text"]
    assert XSS in message.text


def test_subject_is_one_line_even_with_newlines_in_the_title() -> None:
    incident = make_snapshot(number="INC-9", title="first line\r\nBcc: victim@example.com")
    message = Renderer().render(incident, make_event(EventKind.TRIGGERED), recipient="a", link="x")
    assert "\n" not in message.subject and "\r" not in message.subject


def test_override_directory_wins_by_file_name(tmp_path: Path) -> None:
    (tmp_path / "kinds").mkdir()
    (tmp_path / "subject.txt.j2").write_text("PAGE {{ incident.number }} {{ headline }}")
    (tmp_path / "kinds" / "triggered.j2").write_text(
        "{% macro headline() %}is on fire{% endmacro %}{% macro body() %}Run.{% endmacro %}"
    )
    renderer = Renderer(tmp_path)
    incident = make_snapshot(number="INC-10")
    message = renderer.render(incident, make_event(EventKind.TRIGGERED), recipient="a", link="x")
    assert message.subject == "PAGE INC-10 is on fire"
    assert "Run." in message.text
    # files not overridden still come from the built-in set
    resolved = renderer.render(incident, make_event(EventKind.RESOLVED), recipient="a", link="x")
    assert resolved.subject == "PAGE INC-10 resolved"
    assert "Resolution: gateway timeout raised back to 5s" in resolved.text


def test_undefined_variables_fail_instead_of_rendering_empty(tmp_path: Path) -> None:
    (tmp_path / "text.txt.j2").write_text("{{ incident.no_such_field }}")
    renderer = Renderer(tmp_path)
    with pytest.raises(UndefinedError):
        renderer.render(make_snapshot(), make_event(EventKind.TRIGGERED), recipient="a", link="x")


def test_slack_template_must_render_valid_json(tmp_path: Path) -> None:
    (tmp_path / "slack.json.j2").write_text('{"text": "{{ incident.title }}"}')
    renderer = Renderer(tmp_path)
    incident = make_snapshot(title='say "hi"')
    with pytest.raises(json.JSONDecodeError):
        renderer.render(incident, make_event(EventKind.TRIGGERED), recipient="a", link="x")


# -- webhook signatures ---------------------------------------------------------------------


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    body = b'{"key":"INC-1:1:user:alice:webhook"}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign_webhook("s3cret", 1700000000, body) == f"sha256={expected}"


def test_verify_accepts_fresh_signature_and_rejects_tampering() -> None:
    body = b'{"a":1}'
    now = time.time()
    stamp = str(int(now))
    signature = sign_webhook("s3cret", stamp, body)
    assert verify_webhook("s3cret", stamp, body, signature, now=now)
    assert not verify_webhook("s3cret", stamp, b'{"a":2}', signature, now=now)
    assert not verify_webhook("other", stamp, body, signature, now=now)
    assert not verify_webhook("s3cret", str(int(now) + 1), body, signature, now=now)
    assert not verify_webhook("s3cret", stamp, body, signature, now=now + 301)
    assert verify_webhook("s3cret", stamp, body, signature, now=now + 299)
    assert not verify_webhook("s3cret", "not-a-number", body, signature, now=now)
    assert not verify_webhook("s3cret", stamp, body, "sha256=" + "0" * 64, now=now)
