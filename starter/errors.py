"""Typed errors of the client facade; the HTTP API maps each to one status code."""


class IncidentError(Exception):
    """Base class: ``str(err)`` is a message fit to show a user."""


class IncidentNotFound(IncidentError):
    """No incident with that number (HTTP 404)."""


class ActionRejected(IncidentError):
    """The workflow's validator refused the action: illegal transition or bad input (409)."""


class InvalidAction(IncidentError):
    """A workflow's validator refused a well-formed input given the current state ("INC-7 is
    already SEV2") (HTTP 409; the API's request models refuse malformed input with 422)."""


class UnknownService(IncidentError):
    """An alert named a service the policy does not have, or none and no rule routes it
    (rejected before any workflow starts; HTTP 404)."""


class ServiceUnavailable(IncidentError):
    """Temporal or PostgreSQL is unreachable (HTTP 503)."""
