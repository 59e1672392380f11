"""The policy loader: the shipped example loads, and a broken file reports every error as
``file:line: field.path: message`` with the line the problem is on."""

import hashlib
import pickle
from datetime import date, time, timedelta
from pathlib import Path

import pytest

from schemas.enums import ChannelKind, Scope, Severity
from schemas.policy import Policy
from schemas.policy_file import PolicyError, load_policy, parse_policy, policy_errors_text
from schemas.tokens import find_token, generate_token, hash_token

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "policy.yaml"
SRC = "p.yaml"

# A small valid policy; every broken case below edits one or more lines of it. carol is
# defined but referenced nowhere, so a duplicate "carol" is a clean single error.
BASE = """\
base_url: http://localhost:8000
users:
  - name: alice
    email: alice@example.com
  - name: bob
    email: bob@example.com
  - name: carol
    email: carol@example.com
channels:
  - name: ops
    kind: console
schedules:
  - name: primary
    users:
      - alice
      - bob
    shift: 7d
    handoff: "09:00"
    zone: Europe/Berlin
    overrides:
      - user: bob
        start: 2026-03-03T09:00:00+01:00
        end: 2026-03-03T13:00:00+01:00
escalation_policies:
  - name: default
    repeat: 1
    levels:
      - targets:
          - schedule:primary
          - channel:ops
        delay: 5m
      - targets: [user:alice]
        delay: 10m
severities:
  SEV1:
    ack_within: 5m
    mitigate_within: 1h
    resolve_within: 4h
    review_required: true
    review_after: 2
    on_breach: [channel:ops]
  SEV2: {ack_within: 15m, mitigate_within: 4h, resolve_within: 1d}
  SEV3: {ack_within: 1h, mitigate_within: 1d, resolve_within: 3d}
  SEV4: {ack_within: 4h, mitigate_within: 3d, resolve_within: 7d}
services:
  - name: checkout
    escalation_policy: default
    integration_keys: [0123456789abcdef0123456789abcdef]
  - name: search
    escalation_policy: default
classification:
  - match: {team: payments}
    service: checkout
    category: software
review:
  holidays: [2026-12-25]
  owner: alice
tokens:
  - name: ci
    user: bob
    sha256: CI_TOKEN_HASH
    scopes: [ingest]
""".replace("CI_TOKEN_HASH", hash_token("ci-token"))


def edit(text: str, *changes: tuple[str, str]) -> str:
    """Replace each ``old`` (which must occur exactly once) by ``new``."""
    for old, new in changes:
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
        text = text.replace(old, new)
    return text


def line_of(text: str, needle: str | tuple[str, int], occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th line containing ``needle``."""
    if isinstance(needle, tuple):
        needle, occurrence = needle
    hits = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) >= occurrence, f"{needle!r} not found"
    return hits[occurrence - 1]


def errors_of(text: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, SRC)
    return info.value.errors


# -- the shipped example ------------------------------------------------------------------


def test_example_policy_loads() -> None:
    policy = load_policy(EXAMPLE)
    assert [s.name for s in policy.services] == ["checkout", "search", "data-pipeline"]
    assert [s.name for s in policy.schedules] == ["primary", "secondary"]
    assert [p.name for p in policy.escalation_policies] == ["default", "business-hours"]
    assert set(policy.severities) == set(Severity)
    assert len(policy.users) >= 6 and all(u.email for u in policy.users)
    assert {c.kind for c in policy.channels} >= {
        ChannelKind.CONSOLE,
        ChannelKind.EMAIL,
        ChannelKind.SLACK,
        ChannelKind.WEBHOOK,
    }

    sev1 = policy.severities[Severity.SEV1]
    assert (sev1.ack_within, sev1.mitigate_within, sev1.resolve_within) == (
        timedelta(minutes=5),
        timedelta(hours=1),
        timedelta(hours=4),
    )
    assert sev1.update_every == timedelta(minutes=30)
    assert sev1.review_required and sev1.review_after == 2
    assert not policy.severities[Severity.SEV4].review_required

    primary = policy.schedule("primary")
    assert primary is not None
    assert (primary.shift, primary.handoff, primary.zone) == (
        timedelta(days=7),
        time(9, 0),
        "Europe/Berlin",
    )
    secondary = policy.schedule("secondary")
    assert secondary is not None and secondary.shift == timedelta(days=1)
    assert secondary.zone == "America/New_York"

    default = policy.escalation_policy("default")
    assert default is not None and default.repeat == 1 and len(default.levels) == 3
    assert [str(t) for t in default.levels[1].targets] == ["schedule:secondary", "user:alice"]

    for service in policy.services:
        assert service.integration_keys
        assert all(len(k) == 32 and int(k, 16) >= 0 for k in service.integration_keys)
    assert policy.service_for_key(policy.services[2].integration_keys[0]) is policy.services[2]
    assert date.fromisoformat(policy.review.holidays[0])


def test_example_dev_tokens() -> None:
    policy = load_policy(EXAMPLE)
    admin = find_token(policy, "dev-admin-token")
    responder = find_token(policy, "dev-responder-token")
    assert admin is not None and set(admin.scopes) == set(Scope)
    assert responder is not None
    assert set(responder.scopes) == {Scope.INGEST, Scope.RESPOND, Scope.READ}
    assert find_token(policy, "dev-admin-token ") is None
    assert find_token(policy, admin.sha256) is None  # the hash itself is not a token


def test_tokens() -> None:
    assert hash_token("abc") == hashlib.sha256(b"abc").hexdigest()
    token = generate_token()
    assert len(token) >= 43 and token != generate_token()
    policy = parse_policy(BASE)
    ci = find_token(policy, "ci-token")
    assert ci is not None and ci.name == "ci"
    assert find_token(policy, token) is None


def test_base_is_valid() -> None:
    policy = parse_policy(BASE, SRC)
    assert isinstance(policy, Policy)
    assert policy.schedules[0].handoff == time(9, 0)
    assert policy.review.holidays == ["2026-12-25"]  # an unquoted date stays ISO text


# -- broken files: one problem each -------------------------------------------------------

# (id, edits, [(needle on the reported line, path, message fragment)])
BROKEN = [
    (
        "unknown field",
        [("    email: bob@example.com", "    emial: bob@example.com")],
        [("emial:", "users.1.emial", "unknown field 'emial' (did you mean 'email'?)")],
    ),
    (
        "unknown top-level section",
        [("classification:", "clasification:")],
        [("clasification:", "clasification", "did you mean 'classification'?")],
    ),
    (
        "unknown field without a near miss lists the allowed ones",
        [("    repeat: 1", "    repeat: 1\n    pager: yes")],
        [("pager:", "escalation_policies.0.pager", "allowed: name, levels, repeat")],
    ),
    (
        "wrong type: integer",
        [("    review_after: 2", "    review_after: soon")],
        [("review_after:", "severities.SEV1.review_after", "valid integer, ")],
    ),
    (
        "wrong type: list instead of a number",
        [("    repeat: 1", "    repeat: [1]")],
        [("repeat:", "escalation_policies.0.repeat", "valid integer")],
    ),
    (
        "wrong type: duration",
        [("        delay: 10m", "        delay: ten minutes")],
        [("delay: ten", "escalation_policies.0.levels.1.delay", "durations like")],
    ),
    (
        "wrong enum value",
        [("    category: software", "    category: softwar")],
        [("category:", "classification.0.category", "'software'")],
    ),
    (
        "unknown time zone",
        [("    zone: Europe/Berlin", "    zone: Europe/Berlinn")],
        [("zone:", "schedules.0.zone", "unknown time zone 'Europe/Berlinn'")],
    ),
    (
        "handoff without a leading zero is not read as base-60 minutes",
        [('    handoff: "09:00"', "    handoff: 9:30")],
        [("handoff:", "schedules.0.handoff", '"HH:MM"')],
    ),
    (
        "duplicate name",
        [("  - name: carol", "  - name: bob")],
        [(("name: bob", 2), "users.2.name", "duplicate name 'bob'")],
    ),
    (
        "duplicate YAML key",
        [("    ack_within: 5m", "    ack_within: 5m\n    ack_within: 10m")],
        [("ack_within: 10m", "severities.SEV1.ack_within", "duplicate key 'ack_within'")],
    ),
    (
        "duplicate integration key",
        [("    escalation_policy: default\n\n", "")],  # placeholder, replaced below
        [],
    ),
    (
        "missing user",
        [("      - bob\n", "      - zed\n")],
        [("- zed", "schedules.0.users.1", "unknown user 'zed'")],
    ),
    (
        "missing schedule",
        [("          - schedule:primary", "          - schedule:tertiary")],
        [
            (
                "schedule:tertiary",
                "escalation_policies.0.levels.0.targets.0",
                "unknown schedule 'tertiary'",
            )
        ],
    ),
    (
        "missing channel in on_breach",
        [("    on_breach: [channel:ops]", "    on_breach: [channel:pager]")],
        [("on_breach:", "severities.SEV1.on_breach.0", "unknown channel 'pager'")],
    ),
    (
        "missing escalation policy",
        [
            (
                "  - name: search\n    escalation_policy: default",
                "  - name: search\n    escalation_policy: defualt",
            )
        ],
        [("defualt", "services.1.escalation_policy", "unknown escalation policy 'defualt'")],
    ),
    (
        "missing service in a classification rule",
        [("    service: checkout", "    service: chekout")],
        [("service: chekout", "classification.0.service", "unknown service 'chekout'")],
    ),
    (
        "missing token user",
        [("    user: bob\n    sha256", "    user: robert\n    sha256")],
        [("user: robert", "tokens.0.user", "unknown user 'robert'")],
    ),
    (
        "missing required field: reported on its item",
        [("  - name: search\n    escalation_policy: default\n", "  - name: search\n")],
        [("- name: search", "services.1.escalation_policy", "required field is missing")],
    ),
    (
        "missing severity",
        [("  SEV4: {ack_within: 4h, mitigate_within: 3d, resolve_within: 7d}\n", "")],
        [("severities:", "severities", "missing SEV4")],
    ),
    (
        "override ends before it starts",
        [("        end: 2026-03-03T13:00:00+01:00", "        end: 2026-03-03T08:00:00+01:00")],
        [("- user: bob", "schedules.0.overrides.0", "end must be after its start")],
    ),
    (
        "override without a UTC offset",
        [("        start: 2026-03-03T09:00:00+01:00", "        start: 2026-03-03T09:00:00")],
        [("- user: bob", "schedules.0.overrides.0", "UTC offset")],
    ),
    (
        "invalid regular expression",
        [("  - match: {team: payments}", '  - match: {team: "pay(ments"}')],
        [("pay(ments", "classification.0.match.team", "invalid regular expression")],
    ),
    (
        "holiday that is not a date",
        [("  holidays: [2026-12-25]", "  holidays: [2026-12-25, next friday]")],
        [("holidays:", "review.holidays.1", "not a date")],
    ),
    (
        "token stored in clear instead of hashed",
        [("    sha256: " + hash_token("ci-token"), "    sha256: ci-token")],
        [("sha256:", "tokens.0.sha256", "should match pattern")],
    ),
]
# the same integration key on two services
BROKEN[[b[0] for b in BROKEN].index("duplicate integration key")] = (
    "duplicate integration key",
    [
        (
            "  - name: search\n    escalation_policy: default\n",
            "  - name: search\n    escalation_policy: default\n"
            "    integration_keys:\n      - 0123456789abcdef0123456789abcdef\n",
        )
    ],
    [
        (
            "      - 0123456789abcdef0123456789abcdef",
            "services.1.integration_keys.0",
            "key already used by 'checkout'",
        )
    ],
)


@pytest.mark.parametrize(("edits", "expected"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_file_reports_line_and_path(
    edits: list[tuple[str, str]], expected: list[tuple[str | tuple[str, int], str, str]]
) -> None:
    text = edit(BASE, *edits)
    errors = errors_of(text)
    assert len(errors) == len(expected), errors
    for error, (needle, path, fragment) in zip(errors, expected, strict=True):
        assert error.startswith(f"{SRC}:{line_of(text, needle)}: {path}: "), error
        assert fragment in error, error
        assert "(got 'soon')" in error or "soon" not in text


def test_yaml_syntax_error_has_its_line() -> None:
    text = edit(BASE, ("    kind: console", "    kind: [console"))
    (error,) = errors_of(text)
    assert error.startswith(f"{SRC}:{line_of(text, 'schedules:')}: YAML syntax error: ")
    assert f"flow sequence on line {line_of(text, 'kind: [console')}" in error


def test_bad_indentation_is_a_syntax_error() -> None:
    text = edit(BASE, ("    email: bob@example.com", "   email: bob@example.com"))
    (error,) = errors_of(text)
    assert error.startswith(f"{SRC}:{line_of(text, '   email: bob')}: YAML syntax error: ")


def test_unsafe_tag_is_refused() -> None:
    text = edit(BASE, ("base_url: http://localhost:8000", "base_url: !!python/name:os.system"))
    (error,) = errors_of(text)
    assert error.startswith(f"{SRC}:1: YAML error: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the policy file is empty"),
        ("# only a comment\n", "the policy file is empty"),
        ("- users\n- services\n", "must be a mapping of sections"),
        ("just text\n", "must be a mapping of sections"),
    ],
)
def test_not_a_policy_at_all(text: str, message: str) -> None:
    (error,) = errors_of(text)
    assert error.startswith(f"{SRC}:1: ") and message in error


# -- several problems at once -------------------------------------------------------------


def test_every_problem_is_listed_in_line_order() -> None:
    text = edit(
        BASE,
        ("    email: bob@example.com", "    emial: bob@example.com"),
        ("  - name: carol", "  - name: alice"),
        ("      - bob\n", "      - zed\n"),
        ("          - schedule:primary", "          - schedule:tertiary"),
        ("    review_after: 2", "    review_after: soon"),
        ("    ack_within: 5m", "    ack_within: 5m\n    ack_within: 10m"),
        (
            "  - name: search\n    escalation_policy: default",
            "  - name: search\n    escalation_policy: nope",
        ),
        ("    user: bob\n    sha256", "    user: robert\n    sha256"),
    )
    errors = errors_of(text)
    expected = [
        (line_of(text, "emial:"), "users.1.emial: unknown field"),
        (line_of(text, "name: alice", 2), "users.2.name: duplicate name 'alice'"),
        (line_of(text, "- zed"), "schedules.0.users.1: unknown user 'zed'"),
        (line_of(text, "schedule:tertiary"), "escalation_policies.0.levels.0.targets.0: unknown"),
        (line_of(text, "ack_within: 10m"), "severities.SEV1.ack_within: duplicate key"),
        (line_of(text, "review_after:"), "severities.SEV1.review_after: input should be"),
        (line_of(text, "escalation_policy: nope"), "services.1.escalation_policy: unknown"),
        (line_of(text, "user: robert"), "tokens.0.user: unknown user 'robert'"),
    ]
    assert len(errors) == len(expected), errors
    for error, (line, start) in zip(errors, expected, strict=True):
        assert error.startswith(f"{SRC}:{line}: {start}"), error


def test_a_broken_item_keeps_its_name_for_references() -> None:
    """bob's own entry is invalid, but the schedule and token naming bob are fine: only the
    real error is reported, not "unknown user 'bob'" everywhere."""
    text = edit(BASE, ("    email: bob@example.com", "    email: [bob@example.com]"))
    (error,) = errors_of(text)
    assert error.startswith(f"{SRC}:{line_of(text, 'email: [bob')}: users.1.email: ")


def test_users_written_as_bare_names() -> None:
    text = edit(
        BASE,
        ("  - name: alice\n    email: alice@example.com", "  - alice"),
        ("  - name: bob\n    email: bob@example.com", "  - bob"),
    )
    errors = errors_of(text)
    assert [e.split(": ")[1] for e in errors] == ["users.0", "users.1"]
    assert all("valid dictionary" in e for e in errors)


# -- files on disk ------------------------------------------------------------------------


def test_load_policy_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(edit(BASE, ("      - bob\n", "      - zed\n")))
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    (error,) = info.value.errors
    assert (
        error
        == f"{path}:{line_of(path.read_text(), '- zed')}: schedules.0.users.1: unknown user 'zed'"
    )
    text = policy_errors_text(info.value)
    assert text.splitlines() == [f"{path}: invalid policy (1 error)", error]
    assert str(info.value) == text
    assert pickle.loads(pickle.dumps(info.value)).errors == info.value.errors


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    (error,) = info.value.errors
    assert error.startswith(f"{path}: policy file not found")
    assert "INCIDENTFLOW_POLICY" in error


def test_directory_is_not_a_policy(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="is a directory"):
        load_policy(tmp_path)


def test_errors_in_a_duplicated_key_point_at_the_copy_that_is_loaded() -> None:
    text = edit(
        BASE,
        (
            "  SEV2: {ack_within: 15m, mitigate_within: 4h, resolve_within: 1d}\n",
            "  SEV2: {ack_within: 15m, mitigate_within: 4h, resolve_within: 1d}\n"
            "  SEV2: {ack_within: 15m, mitigate_within: 4h, resolve_within: never}\n",
        ),
    )
    second = line_of(text, "resolve_within: never")
    duplicate, invalid = errors_of(text)
    assert duplicate == (
        f"{SRC}:{second}: severities.SEV2: duplicate key 'SEV2' (first on line {second - 1}; "
        "YAML would silently keep only the last)"
    )
    assert invalid.startswith(f"{SRC}:{second}: severities.SEV2.resolve_within: ")
    assert invalid.endswith("(got 'never'); write durations like 30s, 5m, 1h30m, 2d")
