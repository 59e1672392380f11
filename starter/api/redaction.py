"""Keeps integration keys and acknowledge-link tokens out of access logs.

Alertmanager authenticates with a key in the URL path, an acknowledge link carries its token
there, and servers log request paths. :func:`install_log_redaction` adds a filter to
uvicorn's access logger that masks the segment (``/integrations/alertmanager/***``,
``/dashboard/ack/***``) before any handler formats the line.
"""

from __future__ import annotations

import logging
import re

ACCESS_LOGGER = "uvicorn.access"
_KEY_SEGMENT = re.compile(r"(/integrations/[^/\s?]+/|/ack/)[^/\s?\"]+")


def redact_path(text: str) -> str:
    return _KEY_SEGMENT.sub(r"\1***", text)


class RedactIntegrationKeys(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_path(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact_path(record.msg)
        return True


def install_log_redaction(logger_name: str = ACCESS_LOGGER) -> None:
    """Idempotent: one filter per logger however many apps are created."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactIntegrationKeys) for f in logger.filters):
        logger.addFilter(RedactIntegrationKeys())
