"""Our own worker metrics: their names, labels and buckets in one place, recorded through
the Temporal SDK's metric meter.

Recording through ``activity.metric_meter()`` / ``workflow.metric_meter()`` (not a second
prometheus-client registry) puts them on the worker runtime's Prometheus endpoint beside
the SDK's own ``temporal_*`` metrics (``WORKER_METRICS_ADDRESS``, docs/observability.md):
one port to scrape, and the meter tags each point with ``namespace`` and ``task_queue``.
The workflow meter records nothing while a history replays, so a metric recorded in
workflow code counts an escalation once, however often it is replayed; recording adds no
command to the history (no ``workflow.patched`` needed).

The runtime appends ``_total`` to counters (``counters_total_suffix``): the names here are
the stems, :data:`EXPORTED` the series names as scraped.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.common import MetricMeter

INCIDENTS_STARTED = "incidentflow_incidents_started"
PAGES_SENT = "incidentflow_pages_sent"
PAGES_FAILED = "incidentflow_pages_failed"
ESCALATIONS_FIRED = "incidentflow_escalations_fired"
ESCALATION_LATENESS = "incidentflow_escalation_lateness_seconds"
TICKET_WRITE_DURATION = "incidentflow_ticket_write_duration_seconds"

#: histogram buckets (seconds): escalation lateness is alerted on at p99 > 5 s
LATENESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
TICKET_WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
HISTOGRAM_BUCKETS: dict[str, tuple[float, ...]] = {
    ESCALATION_LATENESS: LATENESS_BUCKETS,
    TICKET_WRITE_DURATION: TICKET_WRITE_BUCKETS,
}

#: series name as scraped → Prometheus type
EXPORTED: dict[str, str] = {
    f"{INCIDENTS_STARTED}_total": "counter",
    f"{PAGES_SENT}_total": "counter",
    f"{PAGES_FAILED}_total": "counter",
    f"{ESCALATIONS_FIRED}_total": "counter",
    ESCALATION_LATENESS: "histogram",
    TICKET_WRITE_DURATION: "histogram",
}


def activity_meter() -> MetricMeter:
    """The running activity's meter; a no-op one outside an activity (a seed script, a test
    calling the method directly)."""
    return activity.metric_meter() if activity.in_activity() else MetricMeter.noop


def incident_started(meter: MetricMeter, *, severity: str, source: str) -> None:
    """A new incident got its number, on any path: the API's create, the integrations' fast
    path (which the API cannot count: it answers before the number exists), a heartbeat, or
    the next incident a closing run's queued alerts open."""
    meter.create_counter(INCIDENTS_STARTED, "Incidents opened, by severity and source").add(
        1, {"severity": severity, "source": source}
    )


def page_sent(meter: MetricMeter, channel: str) -> None:
    """One notification delivered to one recipient on ``channel``."""
    meter.create_counter(PAGES_SENT, "Notifications delivered, per channel").add(
        1, {"channel": channel}
    )


def page_failed(meter: MetricMeter, channel: str, *, retryable: bool) -> None:
    """One delivery attempt that failed: for good (``retryable="false"``, recorded as
    ``failed``) or to be retried by the activity's retry policy."""
    meter.create_counter(PAGES_FAILED, "Failed notification delivery attempts, per channel").add(
        1, {"channel": channel, "retryable": str(retryable).lower()}
    )


def escalation_fired(meter: MetricMeter, *, manual: bool) -> None:
    """One escalation to a level of the policy: by its timer or by hand."""
    meter.create_counter(ESCALATIONS_FIRED, "Escalations fired, by trigger").add(
        1, {"trigger": "manual" if manual else "timer"}
    )


def escalation_lateness(meter: MetricMeter, seconds: float) -> None:
    """How long after its deadline a timed escalation fired (workflow time)."""
    meter.create_histogram_float(
        ESCALATION_LATENESS, "Escalation fire time minus its deadline", "s"
    ).record(max(seconds, 0.0))


def ticket_write(meter: MetricMeter, seconds: float) -> None:
    """One ``record_incident`` transaction (incident row and events) in PostgreSQL."""
    meter.create_histogram_float(
        TICKET_WRITE_DURATION, "Ticket write (incident row and events) duration", "s"
    ).record(seconds)
