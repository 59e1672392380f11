"""A development mail catcher: `incidentflow dev` receives its own email on loopback.

Without it the example policy's email contacts would fail against a missing SMTP server
and the dev worker would retry them noisily. Each message lands in ``<data-dir>/mail`` as
an ``.eml`` file (open it in any mail client) and its subject is logged. Set ``SMTP_HOST``
to send real mail instead.
"""

from __future__ import annotations

import logging
import time
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from worker.devinfra import free_port

log = logging.getLogger("incidentflow.mail")


class _SaveToDirectory:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        raw: bytes = envelope.original_content or envelope.content
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{self.count:05d}.eml"
        (self.directory / name).write_bytes(raw)
        subject = message_from_bytes(raw, policy=default_policy).get("Subject", "")
        log.info("mail to %s: %s (%s)", ", ".join(envelope.rcpt_tos), subject, name)
        return "250 OK"


class MailCatcher:
    """aiosmtpd on a free loopback port, saving every message to ``directory``."""

    def __init__(self, directory: Path, host: str = "127.0.0.1") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.host = host
        self.port = free_port(host)
        self._controller = Controller(_SaveToDirectory(directory), hostname=host, port=self.port)

    def start(self) -> MailCatcher:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()
