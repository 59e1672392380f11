"""Observability: the worker's Prometheus endpoint, the API's ``/metrics``, and the alert rules
and Grafana dashboard shipped in deploy/observability/ (docs/observability.md).

The rules and the dashboard are checked for shape (promtool's rule-file structure; a JSON
schema for the dashboard) and every PromQL expression is parsed. Then a real worker and a
real API (``incidentflow worker`` / ``incidentflow api`` subprocesses) handle an incident
that pages, escalates and fails one delivery; their scrapes must carry our counters with
exactly the values the ticket store shows, the Temporal SDK's metrics, and every metric
name the rules and dashboard use.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

from schemas import telemetry
from schemas.tokens import generate_token, hash_token
from starter.api.metrics import NOTIFICATION_STATUSES, ApiMetrics
from tests.conftest import wait_for
from tests.support_cli import clean_env, run_cli, spawn
from tests.support_drills import (
    WorkerProcess,
    drill_policy_yaml,
    fetch_all,
    fresh_database,
    log_tail,
    running_worker,
    terminate_all,
)
from tests.support_receivers import HttpReceiver
from worker.devinfra import free_ports

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "observability" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "observability" / "grafana-dashboard.json"
DOCS = ROOT / "docs" / "observability.md"

#: the alerts docs/observability.md promises
REQUIRED_ALERTS = {
    "IncidentflowApiDown",
    "IncidentflowWorkerNotPolling",
    "IncidentflowEscalationLate",
    "IncidentflowNotificationFailures",
    "Watchdog",
}
#: series Prometheus itself makes (scrape health, firing alerts), not exported by a target
PROMETHEUS_SERIES = {"up", "ALERTS", "ALERTS_FOR_STATE"}
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


# ---------------------------------------------------------------------------- PromQL
def metric_names(expr: str) -> set[str]:
    """Every metric name a PromQL expression selects (raises on a syntax error)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                found.add(node.name)
            return
        if isinstance(node, list | tuple):
            for item in node:
                walk(item)
            return
        if not type(node).__module__.startswith("promql_parser"):
            return
        for attr in ("expr", "lhs", "rhs", "args", "param", "vector_selector"):
            child = getattr(node, attr, None)
            if child is not None:
                walk(child)

    walk(promql_parser.parse(expr))
    return found


def test_metric_names_walks_the_whole_expression() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="1"}[5m]))) > 5 '
        "or absent(b) unless on() (c offset 5m) and -d"
    )
    assert metric_names(expr) == {"a_bucket", "b", "c", "d"}
    with pytest.raises(ValueError):
        metric_names("sum(rate(x[5m])")


# ---------------------------------------------------------------------------- rules
def load_rules() -> dict[str, Any]:
    document = yaml.safe_load(RULES.read_text())
    assert isinstance(document, dict)
    return document


def rules() -> Iterator[dict[str, Any]]:
    for group in load_rules()["groups"]:
        yield from group["rules"]


def test_rules_file_has_promtools_structure() -> None:
    """What ``promtool check rules`` enforces: groups with unique names, each rule an alert
    (or record) with an ``expr``; ``for`` a duration; labels and annotations string maps."""
    document = load_rules()
    assert set(document) == {"groups"}
    names = [g["name"] for g in document["groups"]]
    assert len(names) == len(set(names)) and all(names)
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "limit", "rules"}, group["name"]
        assert group["rules"], group["name"]
        for rule in group["rules"]:
            where = f"{group['name']}/{rule.get('alert') or rule.get('record')}"
            assert ("alert" in rule) != ("record" in rule), where
            allowed = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
            assert set(rule) <= allowed, where
            assert isinstance(rule["expr"], str) and rule["expr"].strip(), where
            assert LABEL_NAME.match(rule["alert"]), where
            if "for" in rule:
                assert DURATION.match(str(rule["for"])), where
            for field in ("labels", "annotations"):
                values = rule.get(field, {})
                assert all(LABEL_NAME.match(k) for k in values), where
                assert all(isinstance(v, str) for v in values.values()), where
            assert rule["labels"]["severity"] in {"page", "ticket", "none"}, where
            assert {"summary", "description"} <= set(rule["annotations"]), where


def test_every_rule_expression_parses() -> None:
    for rule in rules():
        names = metric_names(rule["expr"])  # raises on a syntax error
        assert names or rule["alert"] == "Watchdog", rule["alert"]  # only it selects nothing


def test_rules_cover_what_the_docs_promise() -> None:
    alerts = {r["alert"]: r for r in rules()}
    assert set(alerts) >= REQUIRED_ALERTS
    assert alerts["Watchdog"]["expr"].strip() == "vector(1)"  # always firing
    late = alerts["IncidentflowEscalationLate"]["expr"]
    assert "histogram_quantile(0.99" in late and "> 5" in late
    assert telemetry.ESCALATION_LATENESS + "_bucket" in metric_names(late)
    text = DOCS.read_text()
    for name in alerts:
        assert f"`{name}`" in text, f"docs/observability.md does not describe {name}"


def test_a_broken_rule_is_caught() -> None:
    with pytest.raises(ValueError):
        metric_names("rate(incidentflow_pages_failed_total[5m] > 0")


# ---------------------------------------------------------------------------- dashboard
#: the part of Grafana's dashboard model we rely on (import via the UI or provisioning)
DASHBOARD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["title", "uid", "schemaVersion", "panels", "templating", "time"],
    "properties": {
        "title": {"type": "string", "minLength": 1},
        "uid": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,40}$"},
        "schemaVersion": {"type": "integer", "minimum": 30},
        "refresh": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "time": {
            "type": "object",
            "required": ["from", "to"],
            "properties": {"from": {"type": "string"}, "to": {"type": "string"}},
        },
        "templating": {
            "type": "object",
            "required": ["list"],
            "properties": {
                "list": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "type"],
                        "properties": {
                            "name": {"type": "string"},
                            "type": {"enum": ["datasource", "query", "custom", "interval"]},
                        },
                    },
                }
            },
        },
        "panels": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "type", "title", "gridPos"],
                "properties": {
                    "id": {"type": "integer"},
                    "type": {"enum": ["row", "timeseries", "stat", "gauge", "table", "text"]},
                    "title": {"type": "string", "minLength": 1},
                    "gridPos": {
                        "type": "object",
                        "required": ["h", "w", "x", "y"],
                        "properties": {
                            "h": {"type": "integer", "minimum": 1},
                            "w": {"type": "integer", "minimum": 1, "maximum": 24},
                            "x": {"type": "integer", "minimum": 0, "maximum": 23},
                            "y": {"type": "integer", "minimum": 0},
                        },
                    },
                    "datasource": {
                        "type": "object",
                        "required": ["type", "uid"],
                        "properties": {"type": {"const": "prometheus"}},
                    },
                    "targets": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["refId", "expr"],
                            "properties": {
                                "refId": {"type": "string"},
                                "expr": {"type": "string", "minLength": 1},
                                "legendFormat": {"type": "string"},
                            },
                        },
                    },
                    "fieldConfig": {"type": "object"},
                    "options": {"type": "object"},
                },
                "if": {"properties": {"type": {"not": {"enum": ["row", "text"]}}}},
                "then": {"required": ["datasource", "targets"]},
            },
        },
    },
}


def load_dashboard() -> dict[str, Any]:
    document = json.loads(DASHBOARD.read_text())
    assert isinstance(document, dict)
    return document


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in load_dashboard()["panels"] for t in p.get("targets", [])]


def test_dashboard_matches_the_schema() -> None:
    dashboard = load_dashboard()
    jsonschema.validate(dashboard, DASHBOARD_SCHEMA)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = dashboard["templating"]["list"]
    sources = {"${" + v["name"] + "}" for v in variables if v["type"] == "datasource"}
    for panel in dashboard["panels"]:
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if "datasource" in panel:  # the data source picked on import, not a fixed uid
            assert panel["datasource"]["uid"] in sources, panel["title"]


def test_the_schema_refuses_a_panel_without_a_query() -> None:
    dashboard = load_dashboard()
    broken = next(p for p in dashboard["panels"] if p["type"] == "timeseries")
    del broken["targets"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(dashboard, DASHBOARD_SCHEMA)


def test_every_dashboard_query_parses() -> None:
    exprs = dashboard_exprs()
    assert exprs
    for expr in exprs:
        # Grafana's $__rate_interval is substituted before Prometheus sees the query
        assert metric_names(expr.replace("$__rate_interval", "5m")), expr


def used_metric_names() -> set[str]:
    names: set[str] = set()
    for rule in rules():
        names |= metric_names(rule["expr"])
    for expr in dashboard_exprs():
        names |= metric_names(expr.replace("$__rate_interval", "5m"))
    return names - PROMETHEUS_SERIES


def test_docs_list_every_metric_we_define() -> None:
    text = DOCS.read_text()
    for name, kind in telemetry.EXPORTED.items():
        assert f"`{name}` | {kind} |" in text, f"docs/observability.md lacks a row for {name}"
    metrics = ApiMetrics()  # the API's registry, every family it can export
    _, types = parse_scrape(metrics.render(dict.fromkeys(NOTIFICATION_STATUSES, 0)).decode())
    assert "incidentflow_notifications" in types
    for family, kind in types.items():
        name = f"{family}_total" if kind == "counter" else family
        assert f"`{name}` | {kind} |" in text, f"docs/observability.md lacks a row for {name}"
    assert "WORKER_METRICS_ADDRESS" in text
    assert "WORKER_METRICS_ADDRESS" in (ROOT / "docs" / "deploy.md").read_text()


# ---------------------------------------------------------------------------- the real stack
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_scrape(text: str) -> tuple[Samples, dict[str, str]]:
    """Every sample (name, labels) → value, and every family's declared type."""
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, types


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over the series whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def observability_policy(receiver: HttpReceiver, tokens: dict[str, str]) -> str:
    """Level 1 pages ``l1`` and ``gone`` (whose webhook answers 400: a permanent failure),
    level 2 pages ``l2`` after 2 s, then the escalation is exhausted (``l2`` again). The
    tokens' user is ``l1``, with one scope each."""
    users = [
        {"name": "l1", "webhook": receiver.url("/l1")},
        {"name": "l2", "webhook": receiver.url("/l2")},
    ]
    document = yaml.safe_load(drill_policy_yaml(users=users, level_delay="2s"))
    document["users"].append({"name": "gone", "webhook": receiver.url("/gone")})
    document["escalation_policies"][0]["levels"][0]["targets"].append("user:gone")
    document["tokens"] = [
        {"name": name, "user": "l1", "sha256": hash_token(token), "scopes": [name]}
        for name, token in tokens.items()
    ]
    return yaml.safe_dump(document, sort_keys=False)


async def scrape(http: httpx.AsyncClient, url: str, **headers: str) -> str:
    response = await http.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return response.text


async def test_worker_and_api_export_what_the_rules_and_dashboard_use(
    temporal_client: Client, postgres_server: str, task_queue: str, tmp_path: Path
) -> None:
    address = temporal_client.service_client.config.target_host
    worker_port, api_port = free_ports(2)
    tokens = {"ingest": generate_token(), "read": generate_token(), "respond": generate_token()}
    with HttpReceiver() as receiver, fresh_database(postgres_server) as database_url:
        receiver.script("/gone", *([400] * 5))
        policy = tmp_path / "policy.yaml"
        policy.write_text(observability_policy(receiver, tokens))
        worker = WorkerProcess(
            temporal_address=address,
            task_queue=task_queue,
            database_url=database_url,
            policy=policy,
            log=tmp_path / "worker.log",
            # no sticky cache: every workflow task replays the whole history, so a workflow
            # metric recorded again on replay would show as a count too high
            extra_env={
                "WORKER_METRICS_ADDRESS": f"127.0.0.1:{worker_port}",
                "WORKER_MAX_CACHED_WORKFLOWS": "0",
            },
        )
        api_log = tmp_path / "api.log"
        api = spawn(
            ["api", "--host", "127.0.0.1", "--port", str(api_port)],
            api_log,
            worker.env,
        )
        api_url = f"http://127.0.0.1:{api_port}"
        worker_metrics = f"http://127.0.0.1:{worker_port}/metrics"
        read = {"Authorization": f"Bearer {tokens['read']}"}
        try:
            async with running_worker(worker, temporal_client), httpx.AsyncClient() as http:

                async def api_ready() -> bool:
                    assert api.poll() is None, log_tail(api_log)
                    try:
                        return (await http.get(f"{api_url}/readyz")).status_code == 200
                    except httpx.TransportError:
                        return False

                await wait_for(api_ready, timeout=30, interval=0.1, message="api ready")
                created = await http.post(
                    f"{api_url}/api/v1/incidents",
                    json={"title": f"metrics {uuid.uuid4().hex[:6]}", "service": "checkout"},
                    headers={"Authorization": f"Bearer {tokens['ingest']}"},
                )
                assert created.status_code == 201, created.text
                number = created.json()["number"]

                async def outbox_holds(sent: int, failed: int) -> None:
                    want = {("webhook", "sent"): sent, ("webhook", "failed"): failed}

                    async def counts() -> bool:
                        rows = await fetch_all(
                            database_url,
                            "SELECT channel, status, count(*) FROM notifications "
                            "WHERE number = %s GROUP BY channel, status",
                            number,
                        )
                        return {(c, s): int(n) for c, s, n in rows} == want

                    await wait_for(counts, timeout=30, message=f"outbox {want}")

                # l1 + gone (failed), l2 on escalation, l2 again when exhausted
                await outbox_holds(sent=3, failed=1)
                # then by hand: level 1 again, l1 + gone (failed)
                escalated = await http.post(
                    f"{api_url}/api/v1/incidents/{number}/escalate",
                    json={"reason": "by hand"},
                    headers={"Authorization": f"Bearer {tokens['respond']}"},
                )
                assert escalated.status_code == 200, escalated.text
                await outbox_holds(sent=4, failed=2)
                kinds = [
                    k
                    for (k,) in await fetch_all(
                        database_url,
                        "SELECT kind FROM incident_events WHERE number = %s",
                        number,
                    )
                ]
                timed = kinds.count("escalated") + kinds.count("escalation_exhausted")
                assert kinds.count("escalated") == 2 and timed == 3, kinds
                timed -= 1  # the escalation by hand has no deadline to be late for
                [(severity,)] = await fetch_all(
                    database_url, "SELECT severity FROM incidents WHERE number = %s", number
                )

                async def worker_counted() -> Samples | None:
                    samples, _ = parse_scrape(await scrape(http, worker_metrics))
                    sent = total(samples, "incidentflow_pages_sent_total", channel="webhook")
                    lateness = total(samples, "incidentflow_escalation_lateness_seconds_count")
                    return samples if sent == 4 and lateness == timed else None

                samples = await wait_for(worker_counted, timeout=15, message="worker counters")
                # a workflow type no worker knows: its workflow task fails, as a
                # non-determinism error after a bad deploy would
                await temporal_client.start_workflow(
                    "NoSuchWorkflow", id=f"obs-{uuid.uuid4().hex}", task_queue=task_queue
                )

                async def task_failed() -> bool:
                    failures, _ = parse_scrape(await scrape(http, worker_metrics))
                    failed = "temporal_workflow_task_execution_failed_total"
                    return total(failures, failed, workflow_type="NoSuchWorkflow") >= 1

                await wait_for(task_failed, timeout=15, message="workflow task failure counted")
                text = await scrape(http, worker_metrics)
                api_text = await scrape(http, f"{api_url}/metrics", **read)
                (tmp_path / "worker.metrics").write_text(text)  # for a failure's post-mortem
        finally:
            if api.poll() is None:
                api.send_signal(signal.SIGTERM)
                try:
                    api.wait(20)
                except subprocess.TimeoutExpired:
                    api.kill()
            await terminate_all(temporal_client, task_queue)

    # our counters: exactly what the ticket store shows, labelled by channel
    assert total(samples, "incidentflow_pages_sent_total", channel="webhook") == 4
    assert total(samples, "incidentflow_pages_sent_total", task_queue=task_queue) == 4
    failed = "incidentflow_pages_failed_total"
    assert total(samples, failed, channel="webhook", retryable="false") == 2
    assert total(samples, failed, retryable="true") == 0
    # the incident's histories were replayed (no cache), yet each escalation counted once
    replays = "temporal_workflow_task_replay_latency_count"
    assert total(samples, replays, workflow_type="IncidentWorkflow") >= 3
    started = "incidentflow_incidents_started_total"
    assert total(samples, started, severity=severity, source="api") == 1
    assert total(samples, started) == 1  # replayed, still counted once
    assert total(samples, "incidentflow_escalations_fired_total", trigger="timer") == 1
    assert total(samples, "incidentflow_escalations_fired_total", trigger="manual") == 1
    lateness_sum = total(samples, "incidentflow_escalation_lateness_seconds_sum")
    assert 0 <= lateness_sum < 5 * timed  # fired within seconds of their deadlines
    assert total(samples, "incidentflow_ticket_write_duration_seconds_count") >= 1
    # the buckets of schemas.telemetry, so the alert's 5 s threshold is a bucket boundary
    bounds = {
        float(dict(labels)["le"])
        for name, labels in samples
        if name == "incidentflow_escalation_lateness_seconds_bucket"
    }
    assert bounds == {*telemetry.LATENESS_BUCKETS, float("inf")}
    # the Temporal SDK's own, on the same endpoint
    assert total(samples, "temporal_workflow_task_schedule_to_start_latency_count") >= 1
    assert total(samples, "temporal_request_total") >= 1
    worker_samples, worker_types = parse_scrape(text)
    for name, kind in telemetry.EXPORTED.items():
        family = name.removesuffix("_total")
        assert worker_types.get(family) == kind, (name, worker_types.get(family))
    api_samples, api_types = parse_scrape(api_text)
    assert api_types["incidentflow_notifications"] == "gauge"
    assert total(api_samples, "incidentflow_notifications", status="sent") == 4
    assert total(api_samples, "incidentflow_notifications", status="failed") == 2

    docs = DOCS.read_text()
    for family, kind in (api_types | worker_types).items():
        # (prometheus-client adds a ``<counter>_created`` timestamp gauge: not ours to list)
        if family.startswith("incidentflow_") and not family.endswith("_created"):
            name = f"{family}_total" if kind == "counter" else family
            assert f"`{name}` | {kind} |" in docs, f"docs/observability.md lacks {name}"
    exported = {name for name, _ in worker_samples} | {name for name, _ in api_samples}
    missing = used_metric_names() - exported
    assert not missing, f"rules or dashboard use metrics nobody exports: {sorted(missing)}"


async def test_a_worker_whose_metrics_port_is_taken_exits_2_naming_the_setting(
    temporal_client: Client, database_url: str, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(drill_policy_yaml(users=[{"name": "l1"}]))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        env = {
            **clean_env(),
            "INCIDENTFLOW_POLICY": str(policy),
            "DATABASE_URL": database_url,
            "TEMPORAL_ADDRESS": temporal_client.service_client.config.target_host,
            "WORKER_METRICS_ADDRESS": address,
        }
        result = run_cli("worker", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    text = " ".join(result.stderr.split())
    assert f"WORKER_METRICS_ADDRESS={address}" in text and "Address already in use" in text
    assert "Traceback" not in result.stderr
