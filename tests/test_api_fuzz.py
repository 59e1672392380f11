"""Schemathesis over the app's own OpenAPI document, with every check, against the real stack.

The app (a real worker behind it) is served by uvicorn on a loopback port, and the document
is the one it serves at ``/openapi.json``. Each operation runs schemathesis's unit phases:
the document's examples, the coverage phase (boundary values, NUL and control characters,
over-long strings, missing parameters, methods the path does not document) and then
property-based fuzzing in positive and negative modes. Every response goes through every
check schemathesis registers: no 5xx; documented status codes, content types, headers and
bodies; schema-valid requests accepted (2xx, or 401/403/404/409/429) and schema-violating
ones refused; 405 with a complete ``Allow`` for an undocumented method; authentication
enforced (``ignored_auth`` probes an operation without and with a bad token once, as the
schemathesis CLI does); the stateful ones, which need nothing here; and one of ours: every
405's ``Allow`` names every method the path documents.

Cases are generated in a process of its own and sent with ``requests``; the server runs
on the test's event loop beside the Temporal client and the worker. Well-formed incident
numbers and keys are steered to ones that exist, so handlers run to the end instead of
stopping at 404/401. The time budget is shared out among the operations as the run goes;
within an operation the coverage cases run first, so a slow machine trims fuzzing before
coverage. Failures are collected over the whole run and reported together, one per
operation, check and answer.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import re
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck
from schemathesis.checks import CHECKS as REGISTERED_CHECKS
from schemathesis.checks import CheckContext, CheckFunction, load_all_checks
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.hypothesis.builder import (
    HypothesisTestConfig,
    HypothesisTestMode,
    create_test,
)
from schemathesis.specs.openapi.checks import HTTP_METHODS_SCHEMA, ignored_auth
from temporalio.client import Client

from schemas.settings import Settings
from starter.api.app import create_app
from starter.api.context import ApiOptions
from starter.api.params import NUMBER_PATTERN
from tests.support_api import ApiNames, api_policy
from tests.support_incidents import running_stack
from tests.support_surfaces import serve_http

load_all_checks()
#: fuzzing examples per operation, after its examples and coverage cases
FUZZ_EXAMPLES = 10
#: generating and sending; with the stack's start the test stays around two minutes
BUDGET_SECONDS = 95
#: processes sending cases at once, each with every PARTS-th operation
PARTS = 2
#: an operation that sent fewer requests than this was not really exercised
MIN_REQUESTS = 5
#: the least time an operation gets, whatever is left of the budget
MIN_SHARE_SECONDS = 1.5

SETTINGS = hypothesis.settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)


def allow_lists_documented_methods(ctx: CheckContext, response: Any, case: Any) -> None:
    """Every 405's ``Allow`` names every method documented for the path (schemathesis's own
    checks only look for the header on a 405, and compare it to the document on OPTIONS)."""
    if response.status_code != 405:
        return
    documented = {m.upper() for m in case.operation.schema[case.operation.path]}
    documented &= {m.upper() for m in HTTP_METHODS_SCHEMA}
    sent = ",".join(response.headers.get("allow", []))
    allowed = {m.strip().upper() for m in sent.split(",") if m.strip()}
    assert documented <= allowed, f"405 Allow: {sent!r} lacks {sorted(documented - allowed)}"


def every_check(enforced: set[str]) -> list[CheckFunction]:
    """Every check schemathesis registers (a newer schemathesis's new ones join by
    themselves), and ours on ``Allow``; ``ignored_auth`` shares the operations it has proven
    across the run."""

    def ignored_auth_once(ctx: CheckContext, response: Any, case: Any) -> bool | None:
        ctx.auth_enforced_operations = enforced
        return ignored_auth(ctx, response, case)

    ignored_auth_once.__name__ = ignored_auth.__name__
    checks = REGISTERED_CHECKS.get_all()
    assert ignored_auth in checks
    swapped = [ignored_auth_once if check is ignored_auth else check for check in checks]
    return [*swapped, allow_lists_documented_methods]


@dataclass
class Run:
    url: str
    names: ApiNames
    deadline: float
    session: requests.Session = field(default_factory=requests.Session)
    checks: list[CheckFunction] = field(default_factory=lambda: every_check(set()))
    sent: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    #: (operation, check, status and message of the answer) -> the first report of it
    failures: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def create_incident(self, title: str) -> str:
        response = self.session.post(
            f"{self.url}/api/v1/incidents",
            json={"title": title, "service": self.names.service},
            headers={"Authorization": f"Bearer {self.names.tokens['ingest']}"},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        number: str = response.json()["number"]
        return number

    def record(self, label: str, group: FailureGroup, response: Any) -> None:
        try:
            message = str(response.json().get("message", ""))[:60]
        except (ValueError, AttributeError):
            message = response.text[:60]
        for failure in group.exceptions:
            key = (label, failure.title, f"{response.status_code} {message}")
            self.failures.setdefault(key, str(group)[:2500])


def _fits(value: object, longest: int) -> bool:
    """A well-formed key or name (replacing a malformed one would undo a negative case)."""
    return isinstance(value, str) and 0 < len(value) <= longest


#: alert keys the run's alerts share, so most triggers count a repeat against an open
#: incident instead of starting one more workflow (whose worker load slows every answer)
ALERT_KEYS = ("fuzz-a", "fuzz-b", "fuzz-c")


def _steer(case: Any, run: Run, numbers: Iterator[str], keys: Iterator[str]) -> None:
    """Point well-formed incident numbers, keys, services and alert keys at few that exist."""
    params = case.path_parameters
    if params and re.fullmatch(NUMBER_PATTERN, str(params.get("number", ""))):
        params["number"] = next(numbers)
    if params and _fits(params.get("integration_key"), 256):
        params["integration_key"] = next(keys)
    body = case.body
    if not isinstance(body, dict):
        return
    if _fits(body.get("routing_key"), 256):
        # PagerDuty answers 400 to an unknown routing key (a credential in the body)
        body["routing_key"] = run.names.other_key
    if case.operation.path == "/api/v1/incidents":
        if _fits(body.get("service"), 200):
            body["service"] = run.names.service
        body.setdefault("dedup_key", ALERT_KEYS[0])  # none would mean a new incident each
    if _fits(body.get("dedup_key"), 255):
        body["dedup_key"] = ALERT_KEYS[len(body["dedup_key"]) % len(ALERT_KEYS)]
    if _fits(body.get("groupKey"), 10_000):
        body["groupKey"] = ALERT_KEYS[len(body["groupKey"]) % len(ALERT_KEYS)]
    for alert in body.get("alerts") if isinstance(body.get("alerts"), list) else []:
        if isinstance(alert, dict) and _fits(alert.get("fingerprint"), 255):
            alert["fingerprint"] = ALERT_KEYS[len(alert["fingerprint"]) % len(ALERT_KEYS)]


def _fuzz_operation(run: Run, operation: Any, numbers: list[str], remaining: int) -> None:
    """Fuzz one operation within its share of what is left of the budget (``remaining``
    operations share it, this one included)."""
    label = operation.label
    names = run.names
    tokens = itertools.cycle(
        [names.tokens["admin"]] * 4 + [names.tokens["read"], names.tokens["respond"], "nope"]
    )
    number_cycle = itertools.cycle([*numbers, "INC-999999999999"])
    keys = itertools.cycle([names.key, names.key, names.other_key, "nope"])

    deadline = 0.0

    def check(case: Any) -> None:
        if time.monotonic() > deadline:
            run.skipped[label] += 1
            return
        _steer(case, run, number_cycle, keys)
        headers = {"Authorization": f"Bearer {next(tokens)}"}
        try:
            response = case.call(base_url=run.url, session=run.session, headers=headers, timeout=60)
        except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, UnicodeError):
            return  # a request no HTTP client can send (e.g. a header with a newline)
        run.sent[label] += 1
        try:
            case.validate_response(response, checks=run.checks, headers=headers)
        except FailureGroup as group:
            run.record(label, group, response)

    test = create_test(
        operation=operation,
        test_func=check,
        config=HypothesisTestConfig(
            project=operation.schema.config,
            modes=list(HypothesisTestMode),
            settings=SETTINGS,
        ),
    )
    # the share starts once the coverage cases exist (long strings take seconds to build);
    # never below MIN_SHARE_SECONDS, so the last operations are not starved when earlier
    # ones overran theirs on a busy machine
    share = max(MIN_SHARE_SECONDS, (run.deadline - time.monotonic()) / remaining)
    deadline = time.monotonic() + share
    test()


@dataclass
class Outcome:
    """What a run found, sent back from the process that ran it."""

    labels: list[str]
    sent: Counter[str]
    skipped: Counter[str]
    failures: dict[tuple[str, str, str], str]


def fuzz(url: str, names: ApiNames, deadline: float, part: int) -> Outcome:
    """Fuzz one part of the operations of the app at ``url`` (every ``PARTS``-th, from
    ``part``) until ``deadline`` (``time.monotonic``, the system's clock).

    Runs in a process of its own, beside the other parts: most of a request's time is spent
    waiting for Temporal (an Update is a round trip through the worker), and generating
    cases takes the CPU that serving them needs in the test process's interpreter.
    """
    run = Run(url=url, names=names, deadline=deadline)
    numbers = [run.create_incident(title) for title in ("fuzz one", "fuzz two")]
    document = run.session.get(f"{run.url}/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()][part::PARTS]
    for index, operation in enumerate(operations):
        targets = list(numbers)
        if "{number}" in operation.path:
            # new incidents per operation, so each action meets some that it may act on
            targets += [run.create_incident(f"fuzz {operation.path}") for _ in range(2)]
        _fuzz_operation(run, operation, targets, len(operations) - index)
    labels = [operation.label for operation in operations]
    return Outcome(labels=labels, sent=run.sent, skipped=run.skipped, failures=run.failures)


async def test_openapi_fuzz_every_check_passes(
    temporal_client: Client, database_url: str, task_queue: str
) -> None:
    policy, names = api_policy()
    async with running_stack(temporal_client, database_url, task_queue, policy):
        settings = Settings(database_url=database_url, temporal_task_queue=task_queue)
        options = ApiOptions(rate_limit=1_000_000)  # the run itself must not be throttled
        app = create_app(settings, policy, temporal=temporal_client, options=options)
        async with serve_http(app) as url:
            deadline = time.monotonic() + BUDGET_SECONDS
            spawn = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=PARTS, mp_context=spawn) as processes:
                loop = asyncio.get_running_loop()
                parts = await asyncio.gather(
                    *(
                        loop.run_in_executor(processes, fuzz, url, names, deadline, part)
                        for part in range(PARTS)
                    )
                )
    found = Outcome(labels=[], sent=Counter(), skipped=Counter(), failures={})
    for outcome in parts:
        found.labels += outcome.labels
        found.sent += outcome.sent
        found.skipped += outcome.skipped
        found.failures |= outcome.failures
    report = "\n\n".join(
        f"== {operation}: {check} [{answer}]\n{text}"
        for (operation, check, answer), text in found.failures.items()
    )
    assert not found.failures, f"{len(found.failures)} failures:\n{report}"
    idle = [label for label in found.labels if found.sent[label] < MIN_REQUESTS]
    assert not idle, f"not exercised: {idle}; sent {found.sent}, out of time {found.skipped}"
