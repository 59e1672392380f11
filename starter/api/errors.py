"""One JSON error shape for the whole API, and the handlers that produce it.

Native routes answer ``{"error": code, "message": ..., "details": ...}``. The PagerDuty
compatible route answers the way PagerDuty does (``{"status", "message", "errors"}``), so a
PagerDuty client's error handling keeps working; :func:`error_response` picks the shape from
the request path. Messages never carry a secret: no token, no integration key, no DSN.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from starter.errors import (
    ActionRejected,
    IncidentNotFound,
    InvalidAction,
    ServiceUnavailable,
    UnknownService,
)

log = logging.getLogger("incidentflow.api")

#: seconds a client should wait before retrying after a 503
RETRY_AFTER_UNAVAILABLE = 5

PAGERDUTY_PREFIX = "/v2/"

#: code of each status when nothing more specific is known
STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ErrorBody(BaseModel):
    """Every native error response."""

    error: str
    message: str
    details: Any = None


class PagerDutyError(BaseModel):
    """PagerDuty Events API v2 error body."""

    status: str
    message: str
    errors: list[str] = []


class ApiError(Exception):
    """Raise from a handler or dependency to answer with :class:`ErrorBody`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or STATUS_CODES.get(status, "error")
        self.message = message
        self.details = details
        self.headers = headers or {}


def is_pagerduty_path(path: str) -> bool:
    return path.startswith(PAGERDUTY_PREFIX)


def error_content(
    path: str, status: int, code: str, message: str, details: Any = None
) -> dict[str, Any]:
    """The body of an error for ``path``: PagerDuty's shape on ``/v2/``, ours elsewhere."""
    if is_pagerduty_path(path):
        word = {429: "throttle event"}.get(status, "invalid event" if status < 500 else "error")
        errors = details if isinstance(details, list) else [message]
        return PagerDutyError(
            status=word, message=message, errors=[str(e) for e in errors]
        ).model_dump()
    return ErrorBody(error=code, message=message, details=details).model_dump()


def error_response(
    path: str,
    status: int,
    message: str,
    *,
    code: str | None = None,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    code = code or STATUS_CODES.get(status, "error")
    if is_pagerduty_path(path) and status == 422:
        status = 400  # PagerDuty reports every invalid event as 400
    return JSONResponse(
        error_content(path, status, code, message, details), status_code=status, headers=headers
    )


def unavailable(path: str, message: str) -> JSONResponse:
    return error_response(path, 503, message, headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE)})


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "alerts", 0, "labels")`` → ``alerts.0.labels``; query/path keep their prefix."""
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_details(errors: list[Any]) -> list[dict[str, Any]]:
    """Pydantic errors without their ``input`` (it may be large, or something private)."""
    return [
        {
            "loc": [p if isinstance(p, int) else str(p) for p in err.get("loc", ())],
            "field": field_path(err.get("loc", ())),
            "message": str(err.get("msg", "invalid")),
            "type": str(err.get("type", "value_error")),
        }
        for err in errors
    ]


def pagerduty_messages(details: list[dict[str, Any]]) -> list[str]:
    """Validation errors worded as PagerDuty words them: ``'payload.summary' is missing``."""
    out = []
    for d in details:
        if d["type"] == "missing":
            out.append(f"'{d['field']}' is missing or blank")
        else:
            out.append(f"'{d['field']}' is invalid: {d['message']}")
    return out


#: the methods an OpenAPI path item may document
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def _documented_methods(app: FastAPI) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    """Each documented path as a regex with its methods, static paths first; cached."""
    cached: list[tuple[re.Pattern[str], frozenset[str]]] | None = getattr(
        app.state, "documented_methods", None
    )
    if cached is None:
        paths: dict[str, dict[str, Any]] = app.openapi().get("paths", {})
        cached = []
        for template in sorted(paths, key=lambda t: (t.count("{"), t)):
            pattern = re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template))
            methods = {m.upper() for m in paths[template] if m in _HTTP_METHODS}
            if "GET" in methods:
                methods.add("HEAD")  # Starlette answers HEAD wherever it answers GET
            cached.append((re.compile(pattern), frozenset(methods)))
        app.state.documented_methods = cached
    return cached


def allowed_methods(request: Request, starlette_allow: str | None) -> str:
    """``Allow`` for a 405: every method documented for the path (Starlette's own header
    names only the first route that matched it: POST where GET and POST share a path),
    with Starlette's for paths the document leaves out (the dashboard)."""
    methods = {m.strip() for m in (starlette_allow or "").split(",") if m.strip()}
    path = request.scope["path"]
    for regex, documented in _documented_methods(request.app):
        if regex.fullmatch(path):
            methods |= documented
            break
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception a handler can meet to one status and the one error shape."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(
            request.url.path,
            exc.status,
            exc.message,
            code=exc.code,
            details=exc.details,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        path = request.url.path
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(path, 400, "request body is not valid JSON", code="invalid_json")
        details = validation_details(errors)
        if is_pagerduty_path(path):
            return error_response(
                path, 400, "Event object is invalid", details=pagerduty_messages(details)
            )
        fields = ", ".join(sorted({d["field"] for d in details}))
        return error_response(path, 422, f"invalid request: {fields}", details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code
        message = exc.detail if isinstance(exc.detail, str) else STATUS_CODES.get(status, "error")
        if status == 400 and "parsing the body" in message:
            # FastAPI's answer to a body it could not decode (bad UTF-8, nesting too deep)
            return error_response(
                request.url.path, 400, "request body is not valid JSON", code="invalid_json"
            )
        headers = exc.headers
        if status == 405:
            allow = allowed_methods(request, (headers or {}).get("Allow"))
            headers = {**(headers or {}), "Allow": allow}
        return error_response(request.url.path, status, message, headers=headers)

    @app.exception_handler(IncidentNotFound)
    async def _not_found(request: Request, exc: IncidentNotFound) -> JSONResponse:
        return error_response(request.url.path, 404, str(exc))

    @app.exception_handler(ActionRejected)
    async def _rejected(request: Request, exc: ActionRejected) -> JSONResponse:
        return error_response(request.url.path, 409, str(exc), code="action_rejected")

    @app.exception_handler(InvalidAction)
    async def _invalid(request: Request, exc: InvalidAction) -> JSONResponse:
        # a workflow's validator judged a well-formed request against the incident's current
        # state ("INC-7 is already SEV2"): a conflict, not malformed input (the request
        # models refuse malformed input with 422 before any workflow sees it)
        return error_response(request.url.path, 409, str(exc), code="invalid_action")

    @app.exception_handler(UnknownService)
    async def _unknown_service(request: Request, exc: UnknownService) -> JSONResponse:
        # which services exist is the policy's state, not the request's shape: like an
        # unknown incident number, 404 (with the field that named it)
        return error_response(
            request.url.path,
            404,
            str(exc),
            code="unknown_service",
            details=[{"loc": ["body", "service"], "field": "service", "message": str(exc)}],
        )

    @app.exception_handler(ServiceUnavailable)
    async def _unavailable(request: Request, exc: ServiceUnavailable) -> JSONResponse:
        return unavailable(request.url.path, str(exc))

    @app.exception_handler(TimeoutError)
    async def _timeout(request: Request, exc: TimeoutError) -> JSONResponse:
        return unavailable(request.url.path, "Temporal did not answer in time; try again")

    @app.exception_handler(WorkflowUpdateRPCTimeoutOrCancelledError)
    async def _update_timeout(
        request: Request, exc: WorkflowUpdateRPCTimeoutOrCancelledError
    ) -> JSONResponse:
        # our deadline (or the server's) passed while an Update was in flight; the outcome is
        # unknown, so the client should retry (an applied action then answers 409)
        return unavailable(request.url.path, "Temporal did not answer in time; try again")

    @app.exception_handler(PoolTimeout)
    async def _pool_timeout(request: Request, exc: PoolTimeout) -> JSONResponse:
        return unavailable(request.url.path, "PostgreSQL is unreachable; try again")

    @app.exception_handler(psycopg.OperationalError)
    async def _pg_down(request: Request, exc: psycopg.OperationalError) -> JSONResponse:
        log.warning("PostgreSQL unavailable: %s", type(exc).__name__)
        return unavailable(request.url.path, "PostgreSQL is unreachable; try again")

    @app.exception_handler(psycopg.DataError)
    async def _pg_data(request: Request, exc: psycopg.DataError) -> JSONResponse:
        # a value PostgreSQL cannot take (out of range, bad encoding): bad input, not a 500
        return error_response(request.url.path, 422, "a value is out of range for the database")

    @app.exception_handler(RPCError)
    async def _rpc(request: Request, exc: RPCError) -> JSONResponse:
        if exc.status in (
            RPCStatusCode.UNAVAILABLE,
            RPCStatusCode.DEADLINE_EXCEEDED,
            RPCStatusCode.RESOURCE_EXHAUSTED,
            RPCStatusCode.ABORTED,
            RPCStatusCode.CANCELLED,
        ):
            return unavailable(request.url.path, "Temporal is unavailable; try again")
        log.error("Temporal call failed: %s %s", exc.status, exc.message)
        return error_response(request.url.path, 500, "internal error")

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.scope.get("route"))
        return error_response(request.url.path, 500, "internal error")


#: OpenAPI ``responses`` of the error statuses every native route can answer
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": STATUS_CODES[status].replace("_", " ")}
    for status in (400, 401, 403, 404, 409, 413, 415, 422, 429, 503)
}
