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


class MetricsAddressError(ValueError):
    """``WORKER_METRICS_ADDRESS`` cannot be served: malformed, or the port is taken."""


def metrics_runtime(settings: Settings) -> Runtime | None:
    """A runtime serving ``/metrics`` on ``WORKER_METRICS_ADDRESS``; ``None`` (the SDK's
    default runtime, no endpoint) when it is unset."""
    address = settings.worker_metrics_address
    if not address:
        return None
    config = PrometheusConfig(
        bind_address=address,
        counters_total_suffix=True,
        durations_as_seconds=True,
        histogram_bucket_overrides={k: list(v) for k, v in HISTOGRAM_BUCKETS.items()},
    )
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=config))
    except ValueError as err:  # the SDK's words: "Address already in use", "invalid socket…"
        raise MetricsAddressError(f"WORKER_METRICS_ADDRESS={address}: {err}") from err
