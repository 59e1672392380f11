"""Real loopback receivers for tests: an HTTP server that records requests and answers
scripted statuses, and an aiosmtpd SMTP server that records (or refuses) mail.

Both run in their own threads, so they serve sync and async clients alike. Use them as
fixtures (``from tests.support_receivers import http_receiver_fixture  # noqa: F401`` gives a
test module the ``http_receiver`` fixture; likewise ``smtp_server_fixture``) or directly::

    with HttpReceiver() as receiver:
        receiver.script("/hook", 500, 200)
        ...
        await receiver.wait_requests("/hook", 2)
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.conftest import wait_for
from worker.devinfra import free_port

# -- HTTP ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    #: ``time.monotonic()`` when the request arrived
    at: float

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


class HttpReceiver:
    """HTTP/1.1 server on 127.0.0.1 recording every request.

    ``script(path, …)`` queues replies for a path (ints are statuses); once a path's queue
    is empty it answers ``200 ok``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, list[Reply]] = {}
        self._requests: list[RecordedRequest] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def script(self, path: str, *replies: int | Reply) -> None:
        with self._lock:
            queue = self._scripts.setdefault(path, [])
            queue.extend(r if isinstance(r, Reply) else Reply(status=r) for r in replies)

    def requests(self, path: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self._requests if path is None or r.path == path]

    async def wait_requests(
        self, path: str | None, count: int, *, within: float = 15.0
    ) -> list[RecordedRequest]:
        """Wait until at least ``count`` requests (to ``path``) arrived; return them."""
        await wait_for(
            lambda: len(self.requests(path)) >= count,
            timeout=within,
            message=f"{count} request(s) to {path or 'any path'}",
        )
        return self.requests(path)

    def start(self) -> HttpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HttpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_reply(self, path: str) -> Reply:
        with self._lock:
            queue = self._scripts.get(path)
            return queue.pop(0) if queue else Reply()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                receiver._record(
                    RecordedRequest(
                        method=self.command,
                        path=self.path,
                        headers=dict(self.headers.items()),
                        body=body,
                        at=time.monotonic(),
                    )
                )
                reply = receiver._next_reply(self.path)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_POST = do_PUT = do_GET = do_DELETE = do_PATCH = _handle

            def log_message(self, format: str, *args: Any) -> None:
                """Silence the default stderr access log."""

        return Handler


@pytest.fixture(name="http_receiver")
def http_receiver_fixture() -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        yield receiver


# -- SMTP ---------------------------------------------------------------------------------


class SmtpSink:
    """aiosmtpd handler recording delivered mail; refuses listed recipients with 550 and,
    when ``credentials`` is set, requires AUTH with exactly that (user, password)."""

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.credentials = credentials
        self.refused: set[str] = set()
        self.envelopes: list[Envelope] = []
        self.logins: list[str] = []
        self._lock = threading.Lock()

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            envelopes = list(self.envelopes)
        parsed = []
        for env in envelopes:
            content = env.original_content or env.content or b""
            data = content if isinstance(content, bytes) else content.encode()
            message = email.message_from_bytes(data, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            parsed.append(message)
        return parsed

    async def wait_messages(self, count: int, *, within: float = 15.0) -> list[EmailMessage]:
        await wait_for(
            lambda: len(self.envelopes) >= count, timeout=within, message=f"{count} email(s)"
        )
        return self.messages

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.lower() in self.refused:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            self.credentials is not None
            and isinstance(auth_data, LoginPassword)
            and (auth_data.login.decode(), auth_data.password.decode()) == self.credentials
        )
        if ok:
            self.logins.append(auth_data.login.decode())
        # handled=False: aiosmtpd sends the 235 or 535 reply itself
        return AuthResult(success=ok, handled=False)


class SmtpServer:
    """An aiosmtpd ``Controller`` on 127.0.0.1 around a :class:`SmtpSink`."""

    def __init__(self, sink: SmtpSink | None = None) -> None:
        self.sink = sink or SmtpSink()
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if self.sink.credentials is not None:
            kwargs = {
                "authenticator": self.sink.authenticate,
                "auth_required": True,
                "auth_require_tls": False,
            }
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port, **kwargs)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


@pytest.fixture(name="smtp_server")
def smtp_server_fixture() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server
