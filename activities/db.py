"""PostgreSQL plumbing: the async connection pool and the SQL migrations.

Migrations are plain SQL files ``activities/migrations/NNNN_name.sql``, applied in name
order, each in its own transaction together with its row in ``schema_migrations``, so a
failed file leaves neither its changes nor its version behind. Every transaction first
takes a transaction-level advisory lock, so migrators started at once (several workers, the
dev launcher and a test) serialise instead of racing on ``CREATE TABLE``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg_pool import AsyncConnectionPool

#: arbitrary constant naming "incidentflow schema migrations" among advisory locks
MIGRATION_LOCK_KEY = 0x1F1C_D0F1
MIGRATIONS_PACKAGE = "activities.migrations"
_FILE_NAME = re.compile(r"^(\d{4}_[A-Za-z0-9_]+)\.sql$")

_CREATE_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    """One SQL file: ``version`` is its name without ``.sql`` (e.g. ``0001_initial``)."""

    version: str
    sql: str


#: how long an activity waits for a connection before its attempt fails: Temporal then
#: retries it with backoff, so an outage shows as attempts and a last failure within
#: seconds instead of one attempt silently holding its slot until start-to-close
CONNECT_WAIT = 5.0


async def create_pool(
    url: str, *, min_size: int = 1, max_size: int = 10, connect_wait: float = CONNECT_WAIT
) -> AsyncConnectionPool[psycopg.AsyncConnection]:
    """An opened pool whose ``min_size`` connections are ready (fails fast if PG is down)."""
    pool: AsyncConnectionPool[psycopg.AsyncConnection] = AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        timeout=connect_wait,
        open=False,
        kwargs={"autocommit": False},
        name="incidentflow",
    )
    await pool.open(wait=True)
    return pool


def load_migrations(package: str = MIGRATIONS_PACKAGE) -> list[Migration]:
    """The ``NNNN_name.sql`` files of ``package`` in name order (works from a wheel too)."""
    found = []
    for entry in resources.files(package).iterdir():
        match = _FILE_NAME.match(entry.name)
        if match and entry.is_file():
            found.append(Migration(match.group(1), entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def migrate_sync(url: str, migrations: Sequence[Migration] | None = None) -> list[str]:
    """Apply the pending migrations; return the versions applied now ([] when up to date)."""
    pending = load_migrations() if migrations is None else sorted(migrations, key=_version)
    applied: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            conn.execute(_CREATE_VERSION_TABLE)
        for migration in pending:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
                done = conn.execute(
                    "SELECT 1 FROM schema_migrations WHERE version = %s", (migration.version,)
                ).fetchone()
                if done:
                    continue
                # no parameters: psycopg sends the file as one simple query (many statements)
                conn.execute(migration.sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version) VALUES (%s)", (migration.version,)
                )
            applied.append(migration.version)
    return applied


async def migrate(url: str, migrations: Sequence[Migration] | None = None) -> list[str]:
    """:func:`migrate_sync` off the event loop: one code path for the CLI, tests and workers."""
    return await asyncio.to_thread(migrate_sync, url, migrations)


def _version(migration: Migration) -> str:
    return migration.version
