"""A loopback Slack: the Web API methods incidentflow's bot calls (slack_sdk's real
``AsyncWebClient`` is pointed at it through the policy's ``slack.api_url``), the
``response_url`` Slack hands each interaction and command, and requests signed the way Slack
signs them (``slack_sdk.signature.SignatureVerifier`` checks them on our side).

Every call is recorded with its method and decoded arguments, so tests assert the exact
``chat.postMessage``, ``chat.update``, ``conversations.create`` … calls and blocks.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest

from schemas.policy import Policy
from tests.conftest import wait_for
from tests.support_receivers import HttpReceiver

RESPOND_PREFIX = "/respond/"


@dataclass(frozen=True)
class SlackCall:
    """One Web API call (``method``: ``chat.postMessage``) or one ``response_url`` post
    (``method``: ``respond``), with its decoded arguments."""

    method: str
    args: dict[str, Any]
    path: str


class SlackApi(HttpReceiver):
    """A Slack Web API on 127.0.0.1 that answers ``ok`` and records every call (the
    loopback server of :class:`HttpReceiver`, with Slack's answers)."""

    def __init__(self) -> None:
        self._calls: list[SlackCall] = []
        self._ts = itertools.count(1)
        super().__init__()

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    def response_url(self) -> str:
        """A fresh ``response_url`` for one interaction or command."""
        return f"{self.base_url}{RESPOND_PREFIX}{uuid.uuid4().hex}"

    def calls(self, method: str | None = None, **match: Any) -> list[SlackCall]:
        with self._lock:
            calls = list(self._calls)
        return [
            c
            for c in calls
            if (method is None or c.method == method)
            and all(c.args.get(k) == v for k, v in match.items())
        ]

    def responses(self, url: str) -> list[dict[str, Any]]:
        path = url.removeprefix(self.base_url)
        return [c.args for c in self.calls("respond") if c.path == path]

    async def wait_calls(
        self, method: str, count: int = 1, *, within: float = 15.0, **match: Any
    ) -> list[SlackCall]:
        await wait_for(
            lambda: len(self.calls(method, **match)) >= count,
            timeout=within,
            message=f"{count} Slack {method} call(s) matching {match}",
        )
        return self.calls(method, **match)

    async def wait_response(self, url: str, *, within: float = 15.0) -> dict[str, Any]:
        found = await wait_for(
            lambda: self.responses(url), timeout=within, message=f"an answer to {url}"
        )
        return found[0]

    def _reply(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "chat.postMessage":
            channel = str(args.get("channel", ""))
            if channel.startswith("U"):  # a DM: Slack answers with the IM channel
                channel = "D" + channel[1:]
            return {"ok": True, "channel": channel, "ts": f"1700000000.{next(self._ts):06d}"}
        if method == "chat.update":
            return {"ok": True, "channel": args.get("channel"), "ts": args.get("ts")}
        if method == "conversations.create":
            name = args.get("name")
            return {"ok": True, "channel": {"id": f"C{uuid.uuid4().hex[:9].upper()}", "name": name}}
        return {"ok": True}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                if kind == "application/json":
                    args: dict[str, Any] = json.loads(raw or b"{}")
                else:
                    args = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                path, _, query = self.path.partition("?")
                args.update({k: v[0] for k, v in parse_qs(query).items()})
                if self.path.startswith(RESPOND_PREFIX):
                    method, reply = "respond", b"ok"
                    content_type = "text/plain"
                else:
                    method = path.removeprefix("/api/")
                    with api._lock:
                        body = api._reply(method, args)
                    reply, content_type = json.dumps(body).encode(), "application/json"
                with api._lock:
                    api._calls.append(SlackCall(method, args, path))
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                """Silence the default stderr access log."""

        return Handler


@pytest.fixture(name="slack_api")
def slack_api_fixture() -> Iterator[SlackApi]:
    with SlackApi() as api:
        yield api


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends with ``body``: its timestamp and ``v0=`` HMAC-SHA256."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def interaction_body(user_id: str, action_id: str, number: str, response_url: str) -> bytes:
    """A ``block_actions`` payload as Slack posts it when a page's button is pressed."""
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_id.lower(), "team_id": "T0001"},
        "api_app_id": "A0001",
        "container": {"type": "message", "message_ts": "1700000000.000001"},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "incidentflow_actions",
                "type": "button",
                "value": number,
                "action_ts": "1700000001.000001",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def command_body(user_id: str, text: str, response_url: str, *, channel_name: str = "ops") -> bytes:
    """A slash command's form body as Slack posts it."""
    return urlencode(
        {
            "token": "deprecated",
            "team_id": "T0001",
            "channel_id": "C0OPS",
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user_id.lower(),
            "command": "/incident",
            "text": text,
            "response_url": response_url,
            "trigger_id": "1.2.3",
        }
    ).encode()


#: the Slack member IDs the test policies give their users
SLACK_IDS = {"alice": "UALICE01", "bob": "UBOB0001", "carol": "UCAROL01", "dave": "UDAVE001"}


def with_slack(policy: Policy, api: SlackApi, **slack: Any) -> Policy:
    """``policy`` with a ``slack:`` section pointing at ``api`` and ``slack_id`` on its users
    (environment variable names unique to the test)."""
    suffix = uuid.uuid4().hex[:8].upper()
    data = policy.model_dump(mode="json", exclude_none=True)
    for user in data["users"]:
        if user["name"] in SLACK_IDS:
            user["slack_id"] = SLACK_IDS[user["name"]]
    data["slack"] = {
        "bot_token_env": f"TEST_SLACK_BOT_TOKEN_{suffix}",
        "signing_secret_env": f"TEST_SLACK_SIGNING_SECRET_{suffix}",
        "api_url": api.api_url,
        **slack,
    }
    return Policy.model_validate(data)
