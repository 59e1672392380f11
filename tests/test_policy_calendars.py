"""``calendars:``, per-clock calendars, service SLA overrides and calendar-limited levels in
the policy file: valid ones load, broken ones are reported as ``file:line: path: message``."""

from datetime import timedelta

import pytest

from schemas.enums import Clock, Severity
from schemas.policy_file import load_policy, parse_policy
from tests.test_policy_file import BASE, EXAMPLE, SRC, edit, errors_of, line_of

CALENDARS = """\
calendars:
  - name: office
    zone: Europe/Berlin
    hours: {mon: "09:00-17:00", tue: "09:00-17:00", wed: ["08:00-12:00", "13:00-17:00"]}
    holidays: [2026-12-24]
escalation_policies:"""

WITH_CALENDARS = edit(
    BASE,
    ("escalation_policies:", CALENDARS),
    (
        "  SEV3: {ack_within: 1h, mitigate_within: 1d, resolve_within: 3d}",
        "  SEV3: {ack_within: 1h, mitigate_within: 1d, resolve_within: 3d, "
        "calendar: {resolve: office}}",
    ),
    (
        "  SEV4: {ack_within: 4h, mitigate_within: 3d, resolve_within: 7d}",
        "  SEV4: {ack_within: 4h, mitigate_within: 3d, resolve_within: 7d, calendar: office, "
        "pause_clocks: [resolve]}",
    ),
    (
        "  - name: search\n    escalation_policy: default\n",
        "  - name: search\n    escalation_policy: default\n    sla: {SEV3: {resolve_within: 2d}}\n",
    ),
    (
        "      - targets: [user:alice]\n        delay: 10m\n",
        "      - targets: [user:alice]\n        delay: 10m\n        when: office\n"
        "        out_of_hours: {targets: [channel:ops], severities: [SEV1]}\n",
    ),
)


def test_calendars_overrides_and_levels_load() -> None:
    policy = parse_policy(WITH_CALENDARS, SRC)
    office = policy.calendar("office")
    assert office is not None and office.spans_on(office.holidays[0]) == []
    sev3 = policy.severities[Severity.SEV3]
    assert (sev3.calendar_for(Clock.RESOLVE), sev3.calendar_for(Clock.ACK)) == ("office", "24x7")
    assert policy.severities[Severity.SEV4].pause_clocks == [Clock.RESOLVE]
    search = policy.service("search")
    checkout = policy.service("checkout")
    assert search is not None and checkout is not None
    assert policy.severities_for(search)[Severity.SEV3].resolve_within == timedelta(days=2)
    assert policy.severities_for(search)[Severity.SEV3].calendar_for(Clock.RESOLVE) == "office"
    assert policy.severities_for(checkout)[Severity.SEV3].resolve_within == timedelta(days=3)
    level = policy.escalation_policies[0].levels[1]
    assert level.when == "office" and level.out_of_hours is not None


@pytest.mark.parametrize(
    ("change", "needle", "path", "message"),
    [
        (
            ("calendar: office,", "calendar: ofice,"),
            "calendar: ofice",
            "severities.SEV4.calendar",
            "unknown calendar 'ofice'",
        ),
        (
            ("{resolve: office}", "{resolve: home}"),
            "{resolve: home}",
            "severities.SEV3.calendar.resolve",
            "unknown calendar 'home'",
        ),
        (
            ("when: office", "when: night"),
            "when: night",
            "escalation_policies.0.levels.1.when",
            "unknown calendar 'night'",
        ),
        (
            ("[channel:ops], severities", "[channel:nope], severities"),
            "channel:nope",
            "escalation_policies.0.levels.1.out_of_hours.targets.0",
            "unknown channel 'nope'",
        ),
        (
            ("{resolve_within: 2d}", "{resolve_within: 2d, calendar: gone}"),
            "calendar: gone",
            "services.1.sla.SEV3.calendar",
            "unknown calendar 'gone'",
        ),
        (
            ('tue: "09:00-17:00"', 'tue: "17:00-09:00"'),
            "17:00-09:00",
            "calendars.0.hours.tue.0",
            "the end must be after the start",
        ),
        (
            ("zone: Europe/Berlin\n    hours", "zone: Mars/Olympus\n    hours"),
            "Mars/Olympus",
            "calendars.0.zone",
            "unknown time zone 'Mars/Olympus'",
        ),
        (
            ("pause_clocks: [resolve]", "pause_clocks: [ack]"),
            "pause_clocks: [ack]",
            "severities.SEV4.pause_clocks",
            "the ack clock never pauses",
        ),
        (
            ("  - name: office", "  - name: 24x7"),
            "name: 24x7",
            "calendars.0.name",
            "'24x7' is built in",
        ),
    ],
)
def test_policy_check_reports_calendar_errors_on_their_line(
    change: tuple[str, str], needle: str, path: str, message: str
) -> None:
    text = edit(WITH_CALENDARS, change)
    errors = errors_of(text)
    expected = f"{SRC}:{line_of(text, needle)}: {path}: "
    assert any(e.startswith(expected) and message in e for e in errors), errors


def test_the_example_policy_uses_calendars() -> None:
    policy = load_policy(EXAMPLE)
    assert policy.calendars
    hours = policy.escalation_policy("business-hours")
    assert hours is not None and all(level.when for level in hours.levels)
    assert any(s.sla for s in policy.services)


def test_the_review_skips_its_calendars_holidays_too() -> None:
    text = edit(
        WITH_CALENDARS,
        (
            "review:\n  holidays: [2026-12-25]",
            "review:\n  holidays: [2026-12-25]\n  calendar: office",
        ),
    )
    policy = parse_policy(text, SRC)
    assert policy.review_policy().holidays == ["2026-12-25", "2026-12-24"]
    assert policy.review.holidays == ["2026-12-25"]  # the section itself is as written
    broken = edit(text, ("  calendar: office\n  owner", "  calendar: offices\n  owner"))
    errors = errors_of(broken)
    assert (
        f"{SRC}:{line_of(broken, 'calendar: offices')}: review.calendar: unknown calendar 'offices'"
        in errors
    )
