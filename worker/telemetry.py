"""The worker's Temporal runtime: its Prometheus endpoint, when ``WORKER_METRICS_ADDRESS`` is set.

One runtime per worker process carries the SDK's own metrics (``temporal_*``: polls,
schedule-to-start latency, workflow-task failures, request latency) and ours
(``schemas.telemetry``, recorded through the activity and workflow meters) on one
``/metrics`` endpoint; docs/observability.md lists them. Durations are exported as seconds
and counters with ``_total``, the Prometheus conventions the API's ``/metrics`` follows.
"""

from __future__ import annotations

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from schemas.settings import Settings
from schemas.telemetry import HISTOGRAM_BUCKETS


def metrics_runtime(settings: Settings) -> Runtime | None:
    """A runtime serving ``/metrics`` on ``WORKER_METRICS_ADDRESS``; ``None`` (the SDK's
    default runtime, no endpoint) when it is unset."""
    if not settings.worker_metrics_address:
        return None
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=settings.worker_metrics_address,
                counters_total_suffix=True,
                durations_as_seconds=True,
                histogram_bucket_overrides={k: list(v) for k, v in HISTOGRAM_BUCKETS.items()},
            )
        )
    )
