"""The review meeting as an iCalendar (RFC 5545) invitation, built with ``icalendar``: the
mailed invite (``activities.reviews``) and the API's ``invite.ics`` are the same bytes.

A pure function of its inputs, so both the worker and the API build it. One UID per review
(``review-<number>@incidentflow``) and a SEQUENCE that grows with each reschedule: calendar
clients then update the event they already have instead of adding a second one. Start and
end carry the policy's time zone (TZID plus its VTIMEZONE), so the meeting reads as "14:00
Europe/Berlin" and follows that zone's DST rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, timedelta

from icalendar import Calendar, Event, vCalAddress, vText

from schemas.policy import Policy
from schemas.review import ReviewInviteInput
from schemas.review_schedule import zone_named

PRODID = "-//incidentflow//post-incident review//EN"


@dataclass(frozen=True)
class Person:
    name: str
    email: str
    display_name: str = ""


@dataclass(frozen=True)
class Invitees:
    organizer: Person
    #: facilitator and attendees with an email address, each once
    people: list[Person]
    #: those without one (they hear of the meeting through their other channels)
    without_email: list[str]


def invitees(policy: Policy, invite: ReviewInviteInput, sender: str) -> Invitees:
    """Who the invite lists: the organizer is the facilitator, else ``sender`` (SMTP_FROM)."""
    people: list[Person] = []
    without_email: list[str] = []
    for name in dict.fromkeys(n for n in [invite.facilitator, *invite.attendees] if n):
        user = policy.user(name)
        if user is None or not user.email:
            without_email.append(name)
        else:
            people.append(Person(name, user.email, user.full_name or ""))
    organizer = next((p for p in people if p.name == invite.facilitator), None)
    return Invitees(
        organizer or Person("incidentflow", sender, "incidentflow"), people, without_email
    )


def review_uid(number: str) -> str:
    """Stable per review: every (re)send of the invite names the same event."""
    return f"review-{number}@incidentflow"


def _address(person: Person) -> vCalAddress:
    address = vCalAddress(f"mailto:{person.email}")
    address.params["CN"] = vText(person.display_name or person.name)
    return address


def build_invite(
    invite: ReviewInviteInput,
    *,
    organizer: Person,
    attendees: list[Person],
    link: str,
) -> bytes:
    """The .ics bytes for one version of the invite: METHOD:REQUEST, or METHOD:CANCEL with
    STATUS:CANCELLED when the review was waived (RFC 5546)."""
    zone = zone_named(invite.zone) or UTC
    cancel = invite.method == "CANCEL"
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", invite.method)

    event = Event()
    event.add("uid", review_uid(invite.number))
    event.add("sequence", invite.sequence)
    event.add("dtstamp", invite.stamp.astimezone(UTC))
    event.add("dtstart", invite.start.astimezone(zone))
    event.add("dtend", invite.end.astimezone(zone))
    event.add("summary", f"Post-incident review: {invite.number} {' '.join(invite.title.split())}")
    event.add(
        "description",
        f"Post-incident review of {invite.number} ({invite.severity}, service "
        f"{invite.service}).\nPostmortem draft and timeline: {link}",
    )
    event.add("url", link)
    event.add("status", "CANCELLED" if cancel else "CONFIRMED")
    event.add("organizer", _address(organizer))
    for person in attendees:
        address = _address(person)
        is_chair = person.email == organizer.email
        address.params["ROLE"] = vText("CHAIR" if is_chair else "REQ-PARTICIPANT")
        address.params["PARTSTAT"] = vText("ACCEPTED" if is_chair else "NEEDS-ACTION")
        address.params["RSVP"] = vText("FALSE" if is_chair else "TRUE")
        event.add("attendee", address)
    calendar.add_component(event)
    # VTIMEZONE only for the span the invite needs, not the zone's whole history
    calendar.add_missing_timezones(
        first_date=(invite.start - timedelta(days=366)).date(),
        last_date=(invite.end + timedelta(days=366)).date(),
    )
    ics: bytes = calendar.to_ical()
    return ics
