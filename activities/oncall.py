"""On-call look-up as an activity, so workflows can ask "who is on call now" without I/O."""

from temporalio import activity

from schemas.activity_io import RESOLVE_ON_CALL, ResolveOnCallInput, ResolveOnCallResult
from schemas.oncall import on_call
from schemas.policy import Policy


class OnCallActivities:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    @activity.defn(name=RESOLVE_ON_CALL)
    async def resolve_on_call(self, query: ResolveOnCallInput) -> ResolveOnCallResult:
        schedule = self.policy.schedule(query.schedule)
        if schedule is None:
            return ResolveOnCallResult(users=[])
        return ResolveOnCallResult(users=on_call(schedule, query.at))
