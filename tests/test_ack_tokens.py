"""The acknowledge-link token and the URL builder, as pure functions (no servers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.ack_tokens import (
    MAX_TOKEN_LENGTH,
    AckClaim,
    ExpiredAckToken,
    InvalidAckToken,
    read_ack,
    sign_ack,
)
from schemas.links import ack_url, board_url, incident_url, review_url
from starter.api.redaction import redact_path

SECRET = b"0123456789abcdef-secret"
NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def claim(**changes: object) -> AckClaim:
    values: dict[str, object] = {
        "number": "INC-7",
        "user": "alice",
        "expires": NOW + timedelta(hours=1),
        "id": "abcdefghijkl",
    }
    values.update(changes)
    return AckClaim.model_validate(values)


def test_a_token_reads_back_what_was_signed() -> None:
    token = sign_ack(SECRET, claim())
    assert read_ack(SECRET, token, now=NOW) == claim()
    assert token.isascii() and "/" not in token and "+" not in token  # URL-safe


def test_any_change_to_the_token_is_refused() -> None:
    token = sign_ack(SECRET, claim())
    payload, mac = token.split(".")
    bob = sign_ack(SECRET, claim(user="bob")).split(".")[0]
    for bad in (
        f"{bob}.{mac}",  # another user under alice's signature
        f"{payload}.{mac[:-2]}",
        token[:-1],
        token + "A",
        "nodot",
        "a.b.c",
        "x" * (MAX_TOKEN_LENGTH + 1),
    ):
        with pytest.raises(InvalidAckToken):
            read_ack(SECRET, bad, now=NOW)
    with pytest.raises(InvalidAckToken):
        read_ack(b"another-secret-of-16+", token, now=NOW)


def test_expiry_is_exclusive_and_keeps_the_claim() -> None:
    token = sign_ack(SECRET, claim())
    assert read_ack(SECRET, token, now=NOW + timedelta(minutes=59)).user == "alice"
    with pytest.raises(ExpiredAckToken) as expired:
        read_ack(SECRET, token, now=NOW + timedelta(hours=1))
    assert expired.value.claim.number == "INC-7"
    assert "expired at 2026-03-02 15:00 UTC" in str(expired.value)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        sign_ack(b"short", claim())


def test_urls_live_under_the_dashboard_of_the_base() -> None:
    for base in ("https://incidents.example", "https://incidents.example/"):
        assert board_url(base) == "https://incidents.example/dashboard/"
        assert incident_url(base, "INC-7") == "https://incidents.example/dashboard/incidents/INC-7"
        assert review_url(base, "INC-7").endswith("/dashboard/incidents/INC-7#review")
        assert ack_url(base, "a.b") == "https://incidents.example/dashboard/ack/a.b"
    # a base below a path prefix (behind a reverse proxy) keeps it
    assert incident_url("https://ops.example/ir", "INC-1") == (
        "https://ops.example/ir/dashboard/incidents/INC-1"
    )


def test_access_logs_do_not_keep_the_token() -> None:
    token = sign_ack(SECRET, claim())
    line = f'127.0.0.1 - "GET /dashboard/ack/{token}?done=1 HTTP/1.1" 200'
    assert redact_path(line) == '127.0.0.1 - "GET /dashboard/ack/***?done=1 HTTP/1.1" 200'
