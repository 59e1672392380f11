"""The postmortem draft (jinja2 markdown) and the calendar invite (.ics), rendered directly."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar

from activities.reviews.invite import invite_subject
from activities.reviews.rendering import PostmortemRenderer, incident_metrics
from schemas.enums import EventKind
from schemas.incident import TimelineEvent
from schemas.review import (
    ActionItemInput,
    ReviewCompletion,
    ReviewInviteInput,
    ReviewState,
    ReviewStatus,
)
from schemas.review_calendar import Person, build_invite, review_uid
from tests.support_notifications import T0, make_snapshot

BERLIN = ZoneInfo("Europe/Berlin")


def event(seq: int, minutes: float, kind: EventKind, actor: str = "alice", **details: object):
    return TimelineEvent(
        seq=seq, at=T0 + timedelta(minutes=minutes), actor=actor, kind=kind, details=details
    )


#: a scripted incident: acknowledged after 4 min, mitigated at 9, resolved at 12, reopened at
#: 20, resolved again at 31 -- TTA 4m, TTM 9m, TTR 31m (the last resolution counts)
TIMELINE = [
    event(1, 0, EventKind.TRIGGERED, "monitoring", source="alertmanager"),
    event(2, 4, EventKind.ACKNOWLEDGED, note="on it"),
    event(3, 6, EventKind.NOTE_ADDED, "bob", text="payment gateway\ntimeouts | 504s"),
    event(4, 9, EventKind.MITIGATED, "carol", note="rolled back"),
    event(5, 12, EventKind.RESOLVED, resolution="fixed"),
    event(6, 20, EventKind.REOPENED, "monitoring", reason="errors are back"),
    event(7, 31, EventKind.RESOLVED, resolution="timeout raised"),
    event(8, 95, EventKind.REVIEW_SCHEDULED, "incidentflow", workflow_id="review:INC-7"),
]


def review(**kw: object) -> ReviewState:
    incident = make_snapshot(number="INC-7")
    start = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
    return ReviewState.model_validate(
        {
            "number": "INC-7",
            "workflow_id": "review:INC-7",
            "status": ReviewStatus.SCHEDULED,
            "incident": incident,
            "facilitator": "alice",
            "attendees": ["alice", "bob", "carol"],
            "start": start,
            "end": start + timedelta(hours=1),
            "zone": "Europe/Berlin",
            **kw,
        }
    )


def test_metrics_count_first_ack_and_mitigation_and_last_resolution() -> None:
    metrics = incident_metrics(make_snapshot(number="INC-7"), TIMELINE)
    assert metrics.tta == timedelta(minutes=4)
    assert metrics.ttm == timedelta(minutes=9)
    assert metrics.ttr == timedelta(minutes=31)


def test_draft_has_every_timeline_event_and_the_response_times() -> None:
    text = PostmortemRenderer().render(review(), TIMELINE)
    assert text.startswith("# Postmortem: INC-7 — Checkout returns 500s\n")
    for e in TIMELINE:
        line = f"- `{e.at:%Y-%m-%d %H:%M:%S} UTC` #{e.seq} **{e.kind.value.replace('_', ' ')}**"
        assert line in text, e
    assert "| Time to acknowledge (TTA) | 2026-03-02 14:07:00 UTC | 4m |" in text
    assert "| Time to mitigate (TTM) | 2026-03-02 14:12:00 UTC | 9m |" in text
    assert "| Time to resolve (TTR) | 2026-03-02 14:34:00 UTC | 31m |" in text
    assert "- When: Tuesday 2026-03-10 14:00 CET (2026-03-10 13:00:00 UTC), 1h" in text
    # facts of the snapshot: severity, service, breach, escalation level reached
    assert "| Severity | SEV1 |" in text and "| Service | checkout |" in text
    assert "- ack: deadline 2026-03-02 14:08:00 UTC" in text
    assert "highest level reached 2 of 2" in text
    # a multi-line note stays inside its list item / blockquote
    assert "> payment gateway\n> timeouts | 504s" in text
    assert "note added** by bob — text: payment gateway timeouts | 504s" in text
    for heading in ("Contributing factors", "What went well", "What to improve", "Action items"):
        assert f"\n## {heading}\n" in text
    assert "_To be written in the review._" in text
    assert "None" not in text


def test_completed_review_fills_the_sections() -> None:
    done = ReviewCompletion(
        completed_by="alice",
        completed_at=datetime(2026, 3, 10, 14, 0, tzinfo=UTC),
        summary="A gateway timeout was lowered by mistake.",
        contributing_factors=["config change without review"],
        what_went_well=["fast rollback"],
        what_to_improve=["alert on gateway latency"],
        action_items=[
            ActionItemInput(owner="bob", title="Add | latency alert", due_date=date(2026, 4, 1)),
            ActionItemInput(owner="carol", title="Review config process"),
        ],
    )
    text = PostmortemRenderer().render(
        review(status=ReviewStatus.COMPLETED, completion=done), TIMELINE
    )
    assert "*Review completed by alice on 2026-03-10 14:00:00 UTC.*" in text
    assert "A gateway timeout was lowered by mistake." in text
    assert "- config change without review" in text
    assert "- fast rollback" in text and "- alert on gateway latency" in text
    assert "| bob | Add \\| latency alert | 2026-04-01 |" in text
    assert "| carol | Review config process | — |" in text


def test_invite_parses_with_zone_uid_sequence_organizer_attendees() -> None:
    start = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
    invite = ReviewInviteInput(
        number="INC-7",
        seq=9,
        title="Checkout\n500s",
        service="checkout",
        severity="SEV1",
        start=start,
        end=start + timedelta(hours=1),
        zone="Europe/Berlin",
        facilitator="alice",
        attendees=["alice", "bob"],
        sequence=2,
        stamp=start - timedelta(days=2),
    )
    alice = Person("alice", "alice@example.com", "Alice Smith")
    bob = Person("bob", "bob@example.com")
    ics = build_invite(invite, organizer=alice, attendees=[alice, bob], link="https://x/INC-7")
    calendar = Calendar.from_ical(ics)
    assert str(calendar["METHOD"]) == "REQUEST"
    ev: Any = calendar.walk("VEVENT")[0]
    assert len(calendar.walk("VEVENT")) == 1
    assert str(ev["UID"]) == review_uid("INC-7") == "review-INC-7@incidentflow"
    assert int(ev["SEQUENCE"]) == 2
    assert ev["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert ev.decoded("DTSTART") == datetime(2026, 3, 10, 14, 0, tzinfo=BERLIN)
    assert ev.decoded("DTEND") == datetime(2026, 3, 10, 15, 0, tzinfo=BERLIN)
    assert str(ev["ORGANIZER"]) == "mailto:alice@example.com"
    assert ev["ORGANIZER"].params["CN"] == "Alice Smith"
    assert {str(a) for a in ev["ATTENDEE"]} == {
        "mailto:alice@example.com",
        "mailto:bob@example.com",
    }
    assert str(ev["SUMMARY"]) == "Post-incident review: INC-7 Checkout 500s"
    assert [tz.tz_name for tz in calendar.timezones] == ["Europe/Berlin"]


def test_cancellation_keeps_the_uid_and_says_cancelled() -> None:
    start = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
    invite = ReviewInviteInput(
        number="INC-7",
        seq=12,
        title="Checkout 500s",
        service="checkout",
        severity="SEV1",
        start=start,
        end=start + timedelta(hours=1),
        zone="Europe/Berlin",
        facilitator="alice",
        attendees=["alice"],
        sequence=3,
        stamp=start,
        method="CANCEL",
    )
    alice = Person("alice", "alice@example.com")
    calendar = Calendar.from_ical(
        build_invite(invite, organizer=alice, attendees=[alice], link="#")
    )
    ev: Any = calendar.walk("VEVENT")[0]
    assert str(calendar["METHOD"]) == "CANCEL" and str(ev["STATUS"]) == "CANCELLED"
    assert str(ev["UID"]) == review_uid("INC-7") and int(ev["SEQUENCE"]) == 3
    subject = invite_subject(invite, "Tuesday 2026-03-10 14:00 CET")
    assert subject.startswith("Cancelled: post-incident review of INC-7")
