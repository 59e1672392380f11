"""What the heartbeat workflow is given and keeps (docs/heartbeats.md).

The API reads the policy on every ping and sends the heartbeat's current settings with it
(:class:`HeartbeatPing`), so a reloaded policy takes effect at the next ping and the workflow
never reads a file. The incident it opens when a ping is late is the :class:`Alert` the API
classified (``starter.api.ingest.build_alert``, the same path as every other alert) with the
service's :class:`IncidentPolicy` (``IncidentClient.incident_policy``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from schemas.incident import Alert, IncidentPolicy
from schemas.policy import Heartbeat

#: where a ping came from: the native route, or Alertmanager's always-firing Watchdog
PingSource = Literal["api", "alertmanager"]

#: the ``source`` of a missed heartbeat's alert
SOURCE = "heartbeat"


class HeartbeatConfig(BaseModel):
    """A heartbeat as the policy declared it at the latest ping, and the incident it opens."""

    heartbeat: Heartbeat
    #: the alert of a missed heartbeat, classified; the workflow fills its dedup key, id and
    #: time
    alert: Alert
    policy: IncidentPolicy


class HeartbeatPing(BaseModel):
    """Signal payload: the monitored job is alive."""

    config: HeartbeatConfig
    source: PingSource = "api"


class HeartbeatState(BaseModel):
    """What a heartbeat's workflow knows; continue-as-new carries it whole."""

    name: str
    config: HeartbeatConfig
    last_ping: datetime
    pings: int = 0
    #: when the heartbeat was missed (the deadline that passed), while its incident is open
    missed_at: datetime | None = None
    #: the workflow ID of the incident opened for the current miss
    incident_workflow_id: str | None = None
    #: incidents opened over the heartbeat's life
    incidents: int = 0


class HeartbeatStart(BaseModel):
    """Input of ``HeartbeatWorkflow.run``."""

    config: HeartbeatConfig
    carried: HeartbeatState | None = None
    #: pings one run takes before it continues as new (bounds the history)
    pings_per_run: int = Field(default=500, ge=1)


def missed_dedup_key(name: str, missed_at: datetime) -> str:
    """The alert key of one miss: a new incident per outage, never one still running."""
    return f"heartbeat:{name}:{missed_at.strftime('%Y%m%dT%H%M%S.%fZ')}"
