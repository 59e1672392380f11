"""Prometheus metrics of one app instance, on its own ``CollectorRegistry``.

A registry per app (not the global default) lets several apps live in one process, as they do
in tests. Requests are labelled by route *template* (``/api/v1/incidents/{number}``), never by
the raw path: bounded cardinality, and no integration key from a URL ends up in a label.
Notification counts are read from the ``notifications`` outbox at scrape time, so they cover
every worker, not just this process.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
NOTIFICATION_STATUSES = ("sent", "failed", "pending")


class _NotificationCollector(Collector):
    """Exposes the outbox counts fetched by the last scrape (nothing if PostgreSQL was down)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] | None = None

    def collect(self) -> Iterator[Metric]:
        if self.counts is None:
            return
        # a gauge: rows move from pending to sent or failed, so "pending" goes down
        family = GaugeMetricFamily(
            "incidentflow_notifications",
            "Notifications in the outbox now, by delivery status (all workers)",
            labels=["status"],
        )
        for status in NOTIFICATION_STATUSES:
            family.add_metric([status], float(self.counts.get(status, 0)))
        yield family


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "incidentflow_http_requests",
            "HTTP requests by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "incidentflow_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route"],
            registry=self.registry,
        )
        self.incidents_opened = Counter(
            "incidentflow_incidents_opened",
            "Incidents opened through this API, by severity and source",
            ["severity", "source"],
            registry=self.registry,
        )
        self.alerts_accepted = Counter(
            "incidentflow_alerts_accepted",
            "Alerts handed to Temporal without waiting for their incident (the fast path of "
            "the integrations and Prefer: respond-async), by severity and source",
            ["severity", "source"],
            registry=self.registry,
        )
        self._notifications = _NotificationCollector()
        self.registry.register(self._notifications)

    def render(self, notification_counts: dict[str, int] | None) -> bytes:
        self._notifications.counts = notification_counts
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every request, including ones refused before routing (413, 415)."""

    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics, router_app: ASGIApp) -> None:
        self.app = app
        self.metrics = metrics
        #: the FastAPI app, whose routes name a request refused before routing reached it
        self.router_app = router_app
        self._templates: list[tuple[re.Pattern[str], str]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = self._route(scope)
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)

    def _route(self, scope: Scope) -> str:
        route = getattr(scope.get("route"), "path", None)
        if route:
            return str(route)
        # refused before routing (413, 415): name it by the documented path templates
        if self._templates is None:
            self._templates = _templates(self.router_app)
        path = scope["path"]
        return next((t for regex, t in self._templates if regex.fullmatch(path)), "unmatched")


def _templates(app: Any) -> list[tuple[re.Pattern[str], str]]:
    """Regexes of the app's OpenAPI path templates, static paths first."""
    paths = list(app.openapi().get("paths", {})) if hasattr(app, "openapi") else []
    out = []
    for template in sorted(paths, key=lambda t: (t.count("{"), t)):
        pattern = re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template))
        out.append((re.compile(pattern), template))
    return out
