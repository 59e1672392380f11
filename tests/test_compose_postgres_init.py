"""deploy/compose/postgres-init.sh, the script docker-compose.yml mounts into the postgres
image's /docker-entrypoint-initdb.d, run as that image runs it (sh, psql as the superuser,
the passwords in the environment) against a fresh embedded PostgreSQL cluster: each
application gets its own role owning only its own databases."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from worker.devinfra import EmbeddedPostgres, migrate_database

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "deploy" / "compose" / "postgres-init.sh"
#: a quote and a backslash: the script must pass passwords to SQL as literals
PASSWORDS = {"INCIDENTFLOW_DB_PASSWORD": "it's-incidentflow\\", "TEMPORAL_DB_PASSWORD": "t'emp"}


@pytest.fixture
def cluster() -> Iterator[EmbeddedPostgres]:
    if shutil.which("psql") is None:
        pytest.fail("psql missing: the postgres image runs the init script with it")
    pg = EmbeddedPostgres.temporary("incidentflow-initdb-")
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()


def run_script(pg: EmbeddedPostgres, **env: str) -> subprocess.CompletedProcess[str]:
    with psycopg.connect(pg.url()) as conn:
        host, port, user = conn.info.host, conn.info.port, conn.info.user
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PG")},
        "POSTGRES_USER": user,
        "PGHOST": host,
        "PGPORT": str(port),
        **env,
    }
    return subprocess.run(
        ["sh", str(SCRIPT)], env=environ, capture_output=True, text=True, timeout=60, check=False
    )


def url_as(pg: EmbeddedPostgres, role: str, database: str) -> str:
    return pg.url(database).replace("postgresql://postgres:", f"postgresql://{role}:", 1)


def owners(pg: EmbeddedPostgres) -> dict[str, str]:
    with psycopg.connect(pg.url()) as conn:
        rows = conn.execute(
            "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE NOT datistemplate"
        ).fetchall()
    return dict(rows)


def test_each_application_owns_only_its_databases(cluster: EmbeddedPostgres) -> None:
    result = run_script(cluster, **PASSWORDS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert owners(cluster) | {"postgres": "postgres"} == {
        "postgres": "postgres",
        "incidentflow": "incidentflow",
        "temporal": "temporal",
        "temporal_visibility": "temporal",
    }
    with psycopg.connect(cluster.url()) as conn:
        roles = dict(
            conn.execute(
                "SELECT rolname, rolsuper OR rolcreatedb OR rolcreaterole FROM pg_roles "
                "WHERE rolname IN ('incidentflow', 'temporal')"
            ).fetchall()
        )
    assert roles == {"incidentflow": False, "temporal": False}, "no extra privilege"
    # incidentflow migrates its ticket store as its own role
    assert "0001_initial" in migrate_database(url_as(cluster, "incidentflow", "incidentflow"))
    # Temporal's schema tool creates tables as its role in both of its databases
    for db in ("temporal", "temporal_visibility"):
        with psycopg.connect(url_as(cluster, "temporal", db)) as conn:
            conn.execute("CREATE TABLE schema_probe (id int)")
    # neither can connect to the other's databases
    for role, db in (
        ("temporal", "incidentflow"),
        ("incidentflow", "temporal"),
        ("incidentflow", "temporal_visibility"),
    ):
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            psycopg.connect(url_as(cluster, role, db)).close()


def scram_matches(stored: str, password: str) -> bool:
    """``password`` is the one PostgreSQL stored as ``SCRAM-SHA-256$iter:salt$stored:server``
    (RFC 5802's derivation): the check a password login makes."""
    method, rest = stored.split("$", 1)
    params, keys = rest.split("$")
    iterations, salt = params.split(":")
    stored_key, server_key = (base64.b64decode(k) for k in keys.split(":"))
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return (
        method == "SCRAM-SHA-256"
        and hashlib.sha256(client_key).digest() == stored_key
        and hmac.new(salted, b"Server Key", "sha256").digest() == server_key
    )


def test_the_passwords_are_the_ones_given_hashed(cluster: EmbeddedPostgres) -> None:
    assert run_script(cluster, **PASSWORDS).returncode == 0
    with psycopg.connect(cluster.url()) as conn:
        for role, variable in (
            ("incidentflow", "INCIDENTFLOW_DB_PASSWORD"),
            ("temporal", "TEMPORAL_DB_PASSWORD"),
        ):
            row = conn.execute(
                "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)
            ).fetchone()
            assert row and row[0], role
            assert scram_matches(row[0], PASSWORDS[variable]), role
            assert not scram_matches(row[0], PASSWORDS[variable] + "x")


@pytest.mark.parametrize("missing", sorted(PASSWORDS))
def test_without_a_password_it_fails_and_creates_nothing(
    cluster: EmbeddedPostgres, missing: str
) -> None:
    env = {k: v for k, v in PASSWORDS.items() if k != missing}
    result = run_script(cluster, **env)
    assert result.returncode != 0
    assert missing in result.stderr
    assert set(owners(cluster)) == {"postgres"}
