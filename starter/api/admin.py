"""Admin routes: reload the policy file without a restart (what SIGHUP does, over HTTP).

The answer and the ``incidentflow_policy_info`` metric carry the policy's hash, never its
content: errors name a file, a line and a field, and no resolved secret is ever quoted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, Field

from schemas.enums import Scope
from schemas.policy_file import PolicyError
from schemas.policy_holder import POLICY_INFO_METRIC, PolicyHolder
from starter.api.auth import Principal, require
from starter.api.context import ApiContext, get_context
from starter.api.errors import ERROR_RESPONSES, ApiError, ErrorBody

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

Admin = Annotated[Principal, Depends(require(Scope.ADMIN))]


class PolicyReloaded(BaseModel):
    """The policy file validated and is now in force."""

    hash: str = Field(description="truncated SHA-256 of the resolved policy now in force")
    previous_hash: str
    changed: bool = Field(description="the file differs from the policy it replaced")


class PolicyInfoCollector(Collector):
    """``incidentflow_policy_info{hash="…"} 1``: which policy this process serves, read at
    scrape time so a reload shows at once."""

    def __init__(self, holder: PolicyHolder) -> None:
        self.holder = holder

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            POLICY_INFO_METRIC,
            "The policy in force, by the truncated SHA-256 of its resolved content",
            labels=["hash"],
        )
        family.add_metric([self.holder.hash], 1)
        yield family


@router.post(
    "/policy/reload",
    response_model=PolicyReloaded,
    responses={
        **{k: v for k, v in ERROR_RESPONSES.items() if k in (401, 403, 429)},
        409: {"model": ErrorBody, "description": "the API was started without a policy file"},
        422: {
            "model": ErrorBody,
            "description": "the file has errors (listed in details.errors, file:line: field: "
            "message); the policy in force is unchanged",
        },
    },
)
async def reload_policy(
    _: Admin, ctx: Annotated[ApiContext, Depends(get_context)]
) -> PolicyReloaded:
    """Validate the policy file again and, when it is valid, swap it in for API auth and
    new incidents (running incidents keep their snapshot). Each API replica and worker
    reloads on its own: send this to every replica, or SIGHUP every process."""
    holder = ctx.policies
    if holder.path is None:
        raise ApiError(409, "this API was started without a policy file to reload")
    previous = holder.hash
    try:
        new = await asyncio.to_thread(holder.reload)
    except PolicyError as err:
        raise ApiError(
            422,
            f"the policy file has {len(err.errors)} error(s); policy {previous} stays in force",
            code="invalid_policy",
            details={"errors": err.errors, "hash": previous},
        ) from None
    return PolicyReloaded(hash=new, previous_hash=previous, changed=new != previous)
