"""Every URL of the dashboard, built in one place.

Notifications, Slack and webhook payloads, postmortems, calendar invites, the dev launcher's
banner and the dashboard's own pages all link through these functions, so a link in a page
is the route that serves it. ``base_url`` is the public root of the API server
(``INCIDENTFLOW_BASE_URL`` or the policy's ``base_url``, e.g. ``https://incidents.example``);
the dashboard is mounted under :data:`DASHBOARD_PREFIX` on that server.
"""

from __future__ import annotations

from urllib.parse import quote

#: where ``mount_dashboard`` puts the pages on the API server
DASHBOARD_PREFIX = "/dashboard"


def _root(base_url: str) -> str:
    return base_url.rstrip("/")


# ---------------------------------------------------------------------------- paths
# Paths below the dashboard's prefix: the dashboard's router and templates use these.
def board_path() -> str:
    return "/"


def incident_path(number: str) -> str:
    return f"/incidents/{quote(number, safe='')}"


def review_path(number: str) -> str:
    """The post-incident review section of the incident page."""
    return f"{incident_path(number)}#review"


def ack_path(token: str) -> str:
    """The one-tap acknowledge page of a signed link (``schemas.ack_tokens``)."""
    return f"/ack/{quote(token, safe='')}"


# ---------------------------------------------------------------------------- absolute URLs
def dashboard_url(base_url: str, path: str = "/", *, prefix: str = DASHBOARD_PREFIX) -> str:
    """``path`` (one of the ``*_path`` values) as an absolute URL under ``base_url``."""
    return f"{_root(base_url)}{prefix}{path}"


def board_url(base_url: str) -> str:
    return dashboard_url(base_url, board_path())


def incident_url(base_url: str, number: str) -> str:
    return dashboard_url(base_url, incident_path(number))


def review_url(base_url: str, number: str) -> str:
    return dashboard_url(base_url, review_path(number))


def ack_url(base_url: str, token: str) -> str:
    return dashboard_url(base_url, ack_path(token))


# ---------------------------------------------------------------------------- status page
#: where the public status page is served on the API server (no sign-in)
STATUS_PREFIX = "/status"


def status_url(base_url: str, path: str = "") -> str:
    """The status page (``path`` below it: ``/feed.atom``, ``/summary.json``)."""
    return f"{_root(base_url)}{STATUS_PREFIX}{path}"


def confirm_subscription_url(base_url: str, token: str) -> str:
    """A subscription's signed confirmation link (``schemas.status_tokens``)."""
    return status_url(base_url, f"/subscriptions/confirm/{quote(token, safe='')}")


def unsubscribe_url(base_url: str, token: str) -> str:
    """A subscriber's signed unsubscribe link, in every mail it gets."""
    return status_url(base_url, f"/subscriptions/unsubscribe/{quote(token, safe='')}")
