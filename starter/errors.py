"""Typed errors of the client facade; the HTTP API maps each to one status code."""


class IncidentError(Exception):
    """Base class: ``str(err)`` is a message fit to show a user."""


class IncidentNotFound(IncidentError):
    """No incident with that number (HTTP 404)."""


class ActionRejected(IncidentError):
    """The workflow's validator refused the action: illegal transition or bad input (409)."""


class InvalidAction(IncidentError):
    """The input itself is wrong (empty text, unknown target) (422)."""


class UnknownService(IncidentError):
    """An alert named a service the policy does not have (rejected before any workflow starts)."""


class ServiceUnavailable(IncidentError):
    """Temporal or PostgreSQL is unreachable (HTTP 503)."""
