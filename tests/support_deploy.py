"""The deployment tests' parts: ``incidentflow`` processes as an operator starts them.

Each process is a real subprocess of the installed console script, configured only through
environment variables (as in docker-compose.yml), with its output in a log file the test
reads to know when it is up. Every child is SIGKILLed when the test ends, pass or fail, and
gets SIGTERM should pytest itself die (Linux parent-death signal).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg.rows import dict_row

from schemas.policy import Policy
from schemas.policy_file import load_policy
from schemas.settings import Settings
from schemas.tokens import hash_token
from tests.conftest import wait_for
from worker.devinfra import dev_server_argv, parent_death_signal
from worker.devinfra import free_ports as free_ports  # the deployment tests' import

INCIDENTFLOW = str(Path(sys.executable).parent / "incidentflow")

#: an API token of the deployment tests' policy (only its hash is in the file)
API_TOKEN = "deploy-test-token"


def process_env(**settings: str) -> dict[str, str]:
    """This environment without any incidentflow setting, plus ``settings`` (upper-cased).

    Dropping inherited settings keeps a developer's own TEMPORAL_ADDRESS or DATABASE_URL
    from pointing a child at the wrong server.
    """
    fields = {name.upper() for name in Settings.model_fields}
    env = {
        k: v
        for k, v in os.environ.items()
        if k.upper() not in fields and not k.upper().startswith(("TEMPORAL_", "INCIDENTFLOW_"))
    }
    env.update({k.upper(): v for k, v in settings.items()})
    return env


def deploy_policy(
    *,
    alice_webhook: str | None = None,
    first_delay: float = 600,
    second_delay: float = 600,
) -> Policy:
    """Service ``checkout``: level 1 pages alice after the trigger, level 2 (bob) after
    ``first_delay`` seconds. SLA clocks are long, so escalation is the only clock that runs.
    """
    sla = {"ack_within": 3600, "mitigate_within": 7200, "resolve_within": 14400}
    alice: dict[str, Any] = {"name": "alice"}
    if alice_webhook:
        alice["webhook"] = alice_webhook
    return Policy.model_validate(
        {
            "users": [alice, {"name": "bob"}],
            "escalation_policies": [
                {
                    "name": "two-levels",
                    "levels": [
                        {"targets": ["user:alice"], "delay": first_delay},
                        {"targets": ["user:bob"], "delay": second_delay},
                    ],
                }
            ],
            "severities": {sev: sla for sev in ("SEV1", "SEV2", "SEV3", "SEV4")},
            "services": [{"name": "checkout", "escalation_policy": "two-levels"}],
            "tokens": [
                {
                    "name": "deploy-test",
                    "user": "alice",
                    "sha256": hash_token(API_TOKEN),
                    "scopes": ["ingest", "respond", "read", "admin"],
                }
            ],
        }
    )


def write_policy(path: Path, policy: Policy) -> Path:
    """Write ``policy`` as the YAML file a process loads, and prove it loads back equal."""
    path.write_text(
        yaml.safe_dump(policy.model_dump(mode="json", exclude_defaults=True), sort_keys=False),
        encoding="utf-8",
    )
    assert load_policy(path) == policy, "the policy file does not round-trip"
    return path


@dataclass
class Child:
    """One subprocess with its output in ``log_path``."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    async def wait_log(self, text: str, *, within: float = 30.0) -> None:
        """Wait until ``text`` appears in the output; fail early if the process exits."""

        def seen() -> bool:
            if text in self.log():
                return True
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode} before printing "
                    f"{text!r}:\n{self.tail()}"
                )
            return False

        try:
            await wait_for(seen, timeout=within, interval=0.1, message=f"{self.name}: {text!r}")
        except AssertionError as err:
            raise AssertionError(f"{err}\n--- {self.name} log:\n{self.tail()}") from None

    async def wait_exit(self, *, within: float) -> int:
        """The exit code, or fail (the process is killed by the finally of ``children``)."""
        await wait_for(
            lambda: self.process.poll() is not None,
            timeout=within,
            message=f"{self.name} (pid {self.pid}) to exit; log:\n{self.tail()}",
        )
        return int(self.process.returncode)

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


@dataclass
class Children:
    """Starts children into ``log_dir``; :func:`children` kills whatever is left."""

    log_dir: Path
    started: list[Child] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: Mapping[str, str]) -> Child:
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                args,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C is for pytest, not for them
                preexec_fn=parent_death_signal(),  # pytest dies: they too
            )
        child = Child(name, process, log_path)
        self.started.append(child)
        return child

    def worker(self, name: str, env: Mapping[str, str]) -> Child:
        return self.start(name, [INCIDENTFLOW, "worker", "--log-level", "info"], env)

    def api(self, name: str, env: Mapping[str, str], port: int) -> Child:
        return self.start(
            name, [INCIDENTFLOW, "api", "--host", "127.0.0.1", "--port", str(port)], env
        )

    def temporal_dev_server(
        self, name: str, grpc_port: int, http_port: int, *, search_attributes: bool = True
    ) -> Child:
        """``temporal server start-dev`` on its own, as an operator runs it; without
        ``search_attributes`` they are left for an init step to register."""
        args = dev_server_argv(
            grpc_port, http_port=http_port, with_search_attributes=search_attributes
        )
        return self.start(name, args, process_env())


@contextmanager
def children(log_dir: Path) -> Iterator[Children]:
    group = Children(log_dir)
    try:
        yield group
    finally:
        for child in group.started:
            child.kill()


async def rows(database_url: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(sql, params)
        return await cur.fetchall()


# -- an HTTP receiver that takes its time ----------------------------------------------------


class SlowReceiver:
    """HTTP server on 127.0.0.1 that answers every request ``delay`` seconds after it came.

    ``arrived`` is set when a request is in (so the test can act while it is in flight);
    ``answered`` counts responses fully written to the client.
    """

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.arrived = threading.Event()
        self.requests: list[tuple[float, str]] = []
        self.answered: list[float] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,))
        self._thread.daemon = True

    def url(self, path: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def __enter__(self) -> SlowReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append((time.monotonic(), self.path))
                receiver.arrived.set()
                # the scenario itself, not a timing guess: a receiver slow to answer
                threading.Event().wait(receiver.delay)
                body = b"ok"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                with receiver._lock:
                    receiver.answered.append(time.monotonic())

            def log_message(self, format: str, *args: Any) -> None:
                """Silence the default stderr access log."""

        return Handler


async def wait_event(event: threading.Event, *, within: float, message: str) -> None:
    await wait_for(event.is_set, timeout=within, message=message)


# -- a TLS front for a plaintext Temporal server ---------------------------------------------


class MutualTlsProxy:
    """TLS terminator on 127.0.0.1 in front of a plaintext gRPC server, as a cluster's ingress
    or Temporal Cloud would be: it requires a client certificate signed by ``ca`` and speaks
    HTTP/2 (ALPN ``h2``), then pipes bytes to ``upstream``. Runs in the test's event loop.
    """

    def __init__(self, ssl_context: ssl.SSLContext, upstream: tuple[str, int]) -> None:
        self.ssl_context = ssl_context
        self.upstream = upstream
        self.server: asyncio.Server | None = None
        self.handshakes_refused = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> MutualTlsProxy:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            try:
                await writer.start_tls(self.ssl_context)
            except (ssl.SSLError, ConnectionError, OSError):
                self.handshakes_refused += 1
                writer.close()
                return
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            await asyncio.gather(
                _pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True
            )
        finally:
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        writer.close()
