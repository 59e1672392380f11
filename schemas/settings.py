"""Process configuration from the environment (pydantic-settings).

This and ``policy_file`` are the only modules of ``schemas`` that read the outside world:
the environment here, one YAML file there.
"""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TASK_QUEUE = "incidentflow"
#: requests/min per credential: PagerDuty's Events API v2 default per integration key, so a
#: sender built for PagerDuty meets the same limit here and its backoff on 429 already fits;
#: an alert storm from one key is better absorbed by dedup keys than by raising it
DEFAULT_RATE_LIMIT = 120


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = TASK_QUEUE
    temporal_tls: bool = False
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_tls_ca: Path | None = None
    temporal_tls_server_name: str | None = None
    temporal_api_key: SecretStr | None = None

    database_url: str | None = None
    incidentflow_policy: Path = Path("examples/policy.yaml")
    incidentflow_base_url: str | None = None
    incidentflow_templates: Path | None = Field(
        default=None, description="directory whose templates override the built-in ones"
    )
    incidentflow_link_secret: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="signs the acknowledge links of page notifications (at least 16 bytes, "
        "the same on workers and API replicas); unset = pages carry no acknowledge link",
    )
    incidentflow_allow_dev_credentials: bool = Field(
        default=False,
        description="let `incidentflow worker` / `api` start with a policy holding the "
        "published development credentials (schemas/dev_credentials.py); never in production",
    )
    incidentflow_rate_limit: int = Field(
        default=DEFAULT_RATE_LIMIT,
        ge=0,
        description="requests/min per credential (API token or integration key); 0 = off",
    )
    incidentflow_ack_link_ttl_seconds: float = Field(
        default=24 * 3600, gt=0, description="how long a page's acknowledge link works"
    )

    @field_validator("incidentflow_link_secret", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """``INCIDENTFLOW_LINK_SECRET=`` (compose's empty default) means no secret."""
        return None if value == "" else value

    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_from: str = "incidentflow@localhost"

    db_pool_min: int = 1
    db_pool_max: int = 10

    # -- the worker process (docs/deploy.md: sizing, graceful shutdown, versioning) --------
    worker_shutdown_grace_seconds: float = Field(
        default=10.0,
        ge=0,
        description="on SIGTERM, how long in-flight activities may finish before cancellation",
    )
    worker_max_cached_workflows: int = Field(default=2000, ge=0)
    worker_max_concurrent_activities: int = Field(default=200, ge=1)
    #: A Python worker runs one workflow task at a time (they share one interpreter lock);
    #: the SDK gives each slot a thread, and 100 threads taking turns cost more than they
    #: overlap. With 16 slots and 4 pollers (from 100 and 10), 1,000 escalations due at once
    #: drained in 11.7 s instead of 16.4, 2,000 over 60 s were late by p99 0.75 s instead of
    #: 0.87, and a storm of 100 alerts/s was answered at p99 212 ms instead of 461 (README,
    #: "Benchmarks"). More throughput comes from more workers, not more slots.
    worker_max_concurrent_workflow_tasks: int = Field(default=16, ge=2)
    worker_workflow_task_pollers: int = Field(default=4, ge=2)
    worker_activity_task_pollers: int = Field(default=10, ge=1)
    worker_health_file: Path | None = Field(
        default=None,
        description="touched every 5 s while the worker polls, removed on stop (healthchecks)",
    )
    worker_metrics_address: str | None = Field(
        default=None,
        description="host:port of the worker's Prometheus /metrics (Temporal SDK and ours); "
        "unset = no endpoint",
    )
    worker_build_id: str | None = Field(
        default=None,
        description="enables Worker Versioning: this worker is version "
        "<worker_deployment_name>.<worker_build_id>; unset = unversioned",
    )
    worker_deployment_name: str = "incidentflow"
    worker_versioning_behavior: Literal["auto_upgrade", "pinned"] = Field(
        default="auto_upgrade",
        description="default versioning behaviour of workflows when worker_build_id is set",
    )

    # -- the HTTP API process --------------------------------------------------------------
    api_shutdown_grace_seconds: float = Field(
        default=30.0,
        ge=0,
        description="on SIGTERM, how long in-flight HTTP requests may finish",
    )
