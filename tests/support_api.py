"""The HTTP API under test: a real worker, the app (lifespan run) and an httpx client on it.

Each test gets its own service name, integration key and tokens, so tests sharing the session's
Temporal namespace and database never see each other's incidents in filtered listings.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from schemas.enums import Scope
from schemas.policy import Policy
from schemas.settings import Settings
from schemas.tokens import generate_token, hash_token
from starter.api.app import create_app
from starter.api.context import ApiOptions
from tests.support_incidents import Stack, make_policy, running_stack

#: token name -> (user, scopes); one token per scope, plus a responder with read
TOKEN_SPECS: dict[str, tuple[str, list[Scope]]] = {
    "ingest": ("alice", [Scope.INGEST]),
    "respond": ("bob", [Scope.RESPOND]),
    "read": ("carol", [Scope.READ]),
    "admin": ("dave", [Scope.ADMIN]),
    "responder": ("bob", [Scope.RESPOND, Scope.READ]),
}


@dataclass
class ApiNames:
    service: str
    other_service: str
    key: str
    other_key: str
    tokens: dict[str, str]

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[token]}"}


def api_policy(**clock_overrides: Any) -> tuple[Policy, ApiNames]:
    """``make_policy`` with unique service names and keys, classification rules and tokens.

    Users have no e-mail address, so notifications go to the console and count as sent.
    """
    suffix = uuid.uuid4().hex[:8]
    names = ApiNames(
        service=f"checkout-{suffix}",
        other_service=f"payments-{suffix}",
        key=f"am-{uuid.uuid4().hex}",
        other_key=f"pd-{uuid.uuid4().hex}",
        tokens={name: generate_token() for name in TOKEN_SPECS},
    )
    clocks: dict[str, Any] = {"ack_within": 600, "level_delay": 600}
    clocks.update(clock_overrides)
    data = make_policy(**clocks).model_dump(mode="json")
    data["users"] = [{"name": u["name"]} for u in data["users"]]
    base_service = data["services"][0]
    data["services"] = [
        {**base_service, "name": names.service, "integration_keys": [names.key]},
        {**base_service, "name": names.other_service, "integration_keys": [names.other_key]},
    ]
    data["classification"] = [
        {"match": {"team": "payments"}, "service": names.other_service, "category": "software"},
        {"match": {"alertname": "Disk.*"}, "category": "hardware", "impact": "high"},
        {"match": {"env": "prod"}, "urgency": "high"},
    ]
    data["tokens"] = [
        {"name": name, "user": user, "sha256": hash_token(names.tokens[name]), "scopes": scopes}
        for name, (user, scopes) in TOKEN_SPECS.items()
    ]
    return Policy.model_validate(data), names


@dataclass
class ApiStack:
    http: httpx.AsyncClient
    app: FastAPI
    stack: Stack
    names: ApiNames

    def auth(self, token: str) -> dict[str, str]:
        return self.names.auth(token)


@asynccontextmanager
async def serve(
    app: FastAPI, *, base_url: str = "http://incidentflow.test"
) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and give an httpx client talking to it in-process."""
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            yield http


@asynccontextmanager
async def api_stack(
    temporal_client: Any,
    database_url: str,
    task_queue: str,
    *,
    options: ApiOptions | None = None,
    start_worker: bool = True,
    **clock_overrides: Any,
) -> AsyncIterator[ApiStack]:
    policy, names = api_policy(**clock_overrides)
    async with running_stack(
        temporal_client, database_url, task_queue, policy, start_worker=start_worker
    ) as stack:
        settings = Settings(database_url=database_url, temporal_task_queue=task_queue)
        app = create_app(settings, policy, temporal=temporal_client, options=options)
        async with serve(app) as http:
            yield ApiStack(http=http, app=app, stack=stack, names=names)


def alertmanager_payload(
    alerts: list[dict[str, Any]], *, status: str = "firing", receiver: str = "incidentflow"
) -> dict[str, Any]:
    """An Alertmanager v4 webhook body as Alertmanager 0.27 sends it."""
    common = set.intersection(*(set(a["labels"].items()) for a in alerts)) if alerts else set()
    return {
        "receiver": receiver,
        "status": status,
        "alerts": alerts,
        "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]} if alerts else {},
        "commonLabels": dict(common),
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "version": "4",
        "groupKey": '{}/{severity="critical"}:{alertname="HighErrorRate"}',
        "truncatedAlerts": 0,
    }


def alertmanager_alert(
    fingerprint: str, instance: str, *, status: str = "firing", **labels: str
) -> dict[str, Any]:
    ends = "0001-01-01T00:00:00Z" if status == "firing" else "2026-03-02T09:41:00.123Z"
    return {
        "status": status,
        "labels": {
            "alertname": "HighErrorRate",
            "instance": instance,
            "job": "checkout",
            "severity": "critical",
            **labels,
        },
        "annotations": {
            "summary": f"5xx ratio above 5% on {instance}",
            "description": "More than 5% of requests failed over the last 5 minutes.",
            "runbook_url": "https://runbooks.example/high-error-rate",
        },
        "startsAt": "2026-03-02T09:30:12.345Z",
        "endsAt": ends,
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=job%3Acheckout%3A5xx",
        "fingerprint": fingerprint,
    }
