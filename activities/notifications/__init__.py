"""Notifications: jinja2 templates (``rendering``), channels, and the idempotent ``notify``
activity (``activity.NotifyActivities``). Kept import-light so the API can use ``signing``
without loading the channel libraries."""
