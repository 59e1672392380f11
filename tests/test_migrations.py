"""SQL migrations against a real PostgreSQL: ordered, recorded, idempotent, serialised."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from activities.db import Migration, load_migrations, migrate, migrate_sync
from worker.devinfra import fresh_database

TABLES = {
    "schema_migrations",
    "incidents",
    "incident_events",
    "notifications",
    "reviews",
    "action_items",
}


@pytest.fixture
def fresh_db(postgres_server: str) -> Iterator[str]:
    """An empty database (not migrated), dropped after the test."""
    with fresh_database(postgres_server, "incidentflow_mig", migrate=False) as url:
        yield url


def rows(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def tables(url: str) -> set[str]:
    return {r[0] for r in rows(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def test_packaged_migrations_are_found_in_order() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions[0] == "0001_initial"
    assert versions == sorted(versions)
    assert "CREATE TABLE incidents" in load_migrations()[0].sql


def test_migrate_twice_is_a_noop(fresh_db: str) -> None:
    first = migrate_sync(fresh_db)
    assert first == [m.version for m in load_migrations()]
    assert tables(fresh_db) >= TABLES
    recorded = rows(fresh_db, "SELECT version, applied_at FROM schema_migrations ORDER BY 1")
    assert [r[0] for r in recorded] == first

    assert migrate_sync(fresh_db) == []
    assert rows(fresh_db, "SELECT version, applied_at FROM schema_migrations ORDER BY 1") == (
        recorded
    )


def test_session_database_is_already_migrated(database_url: str) -> None:
    assert migrate_sync(database_url) == []
    assert tables(database_url) >= TABLES


async def test_concurrent_migrators_apply_each_version_once(fresh_db: str) -> None:
    results = await asyncio.gather(*(migrate(fresh_db) for _ in range(4)))
    applied = [version for result in results for version in result]
    assert sorted(applied) == [m.version for m in load_migrations()]
    assert len(rows(fresh_db, "SELECT version FROM schema_migrations")) == len(applied)


def test_migrations_run_in_name_order(fresh_db: str) -> None:
    given = [
        Migration("0002_add_b", "ALTER TABLE t ADD COLUMN b int"),
        Migration("0001_create", "CREATE TABLE t (a int); INSERT INTO t VALUES (1);"),
    ]
    assert migrate_sync(fresh_db, given) == ["0001_create", "0002_add_b"]
    assert rows(fresh_db, "SELECT a, b FROM t") == [(1, None)]


def test_failed_migration_leaves_nothing_behind(fresh_db: str) -> None:
    good = Migration("0001_create", "CREATE TABLE t (a int)")
    broken = Migration("0002_half", "CREATE TABLE half_done (id int); SELECT no_such_fn();")
    with pytest.raises(psycopg.errors.UndefinedFunction):
        migrate_sync(fresh_db, [good, broken])
    assert rows(fresh_db, "SELECT version FROM schema_migrations") == [("0001_create",)]
    assert "half_done" not in tables(fresh_db)

    fixed = Migration("0002_half", "CREATE TABLE half_done (id int)")
    assert migrate_sync(fresh_db, [good, fixed]) == ["0002_half"]
    assert "half_done" in tables(fresh_db)
