"""The CLI's HTTP client: one place that turns API answers into exit codes and advice.

Exit codes (``starter.cli.common.ExitCode``): 0 ok; 1 the API refused the request (illegal
transition 409, invalid input 422, unknown incident 404); 2 usage or configuration (no or
bad token, missing scope, bad request); 3 unreachable (no connection, timeout, 503, or rate
limited after retries).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from starter.cli.common import CliError, ExitCode

DEFAULT_URL = "http://127.0.0.1:8000"
API = "/api/v1"

OK = ExitCode.OK
REJECTED = ExitCode.REJECTED
USAGE = ExitCode.USAGE
UNREACHABLE = ExitCode.UNREACHABLE


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def error_for(response: httpx.Response, *, number: str | None = None) -> CliError:
    """The :class:`CliError` for a non-2xx answer, with advice on what to do next."""
    status = response.status_code
    body = _body(response)
    message = body.get("message") if isinstance(body, dict) else None
    message = str(message or response.reason_phrase or f"HTTP {status}")
    hint: str | None = None
    code = REJECTED
    if status == 409:
        hint = f"see its state with `incidentflow show {number}`" if number else None
    elif status == 422:
        details = body.get("details") if isinstance(body, dict) else None
        if isinstance(details, list):
            fields = [
                f"{d.get('field')}: {d.get('message')}" for d in details if isinstance(d, dict)
            ]
            if fields:
                message = f"{message} ({'; '.join(fields)})"
        hint = "fix the input and try again"
    elif status == 404:
        hint = "`incidentflow list --status all` shows the incidents there are"
    elif status == 401:
        code = USAGE
        hint = "pass a valid API token with --token or INCIDENTFLOW_TOKEN"
    elif status == 403:
        code = USAGE
        hint = "use a token that has the scope this command needs"
    elif status in (400, 405, 413, 415):
        code = USAGE
    elif status == 429:
        code = UNREACHABLE
        retry = response.headers.get("retry-after")
        hint = f"rate limited: wait {retry} s and try again" if retry else "wait and try again"
    else:
        code = UNREACHABLE
        retry = response.headers.get("retry-after")
        hint = (
            f"the API cannot reach Temporal or PostgreSQL; retry in {retry} s"
            if status == 503 and retry
            else "check the API's logs"
        )
    return CliError(message, exit_code=code, hint=hint, status=status, body=body)


class ApiClient:
    """Synchronous client of the incidentflow HTTP API (``/api/v1``)."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        if not token:
            raise CliError(
                "no API token",
                exit_code=USAGE,
                hint="pass --token or set INCIDENTFLOW_TOKEN (a token from the policy file)",
            )
        self._http = httpx.Client(
            base_url=self.url,
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": "incidentflow-cli",
                "Accept": "application/json",
            },
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        number: str | None = None,
        retry_rate_limit: float = 0.0,
    ) -> httpx.Response:
        """One call; raises :class:`CliError`. A 429 is retried while ``retry_rate_limit``
        seconds of patience remain (the bulk import uses this)."""
        deadline = time.monotonic() + retry_rate_limit
        while True:
            try:
                response = self._http.request(method, API + path, json=json, params=params)
            except httpx.TimeoutException as exc:
                raise CliError(
                    f"the API at {self.url} did not answer in time",
                    exit_code=UNREACHABLE,
                    hint="is it overloaded? try again, or check its logs",
                ) from exc
            except httpx.TransportError as exc:
                raise self._unreachable(exc) from exc
            if response.status_code == 429 and time.monotonic() < deadline:
                wait = float(response.headers.get("retry-after") or 1)
                time.sleep(min(wait, max(0.0, deadline - time.monotonic())))
                continue
            if response.is_success:
                return response
            raise error_for(response, number=number)

    def _unreachable(self, exc: httpx.TransportError) -> CliError:
        return CliError(
            f"cannot reach the API at {self.url} ({type(exc).__name__})",
            exit_code=UNREACHABLE,
            hint="is `incidentflow api` or `incidentflow dev` running? "
            "set --url or INCIDENTFLOW_URL",
        )

    @contextmanager
    def stream(self, path: str, params: Any = None) -> Iterator[httpx.Response]:
        """A GET whose body is read as it arrives (exports); raises :class:`CliError`."""
        try:
            with self._http.stream("GET", API + path, params=params) as response:
                if not response.is_success:
                    response.read()
                    raise error_for(response)
                yield response
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, json=body, **kwargs).json()
