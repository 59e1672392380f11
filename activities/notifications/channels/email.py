"""Email over SMTP: one multipart/alternative message (plain text + HTML) per recipient.

The Message-ID is derived from the delivery key, so if a duplicate ever gets through (the
process died between send and record) mail systems that drop repeated Message-IDs hide it.
"""

from __future__ import annotations

import hashlib
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from activities.notifications.errors import permanent, transient
from activities.notifications.rendering import RenderedMessage
from schemas.settings import Settings

TIMEOUT = 30.0


def parse_address(value: str) -> Address:
    """A single ``user@domain`` address; anything else is a permanent (config) error."""
    text = value.strip()
    if text.count("@") != 1 or any(c.isspace() or c in '<>,;"()' for c in text):
        raise permanent(f"invalid email address {text!r}")
    local, domain = text.split("@")
    if not local or not domain or "." not in domain.strip("."):
        raise permanent(f"invalid email address {text!r}")
    try:
        return Address(username=local, domain=domain)
    except (ValueError, IndexError) as exc:
        raise permanent(f"invalid email address {text!r}") from exc


def build_email(
    settings: Settings, to: Address, message: RenderedMessage, *, key: str
) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = settings.smtp_from
    mail["To"] = to
    mail["Date"] = formatdate(localtime=False, usegmt=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    mail["Message-ID"] = f"<{digest}@incidentflow>"
    mail["X-Incidentflow-Delivery"] = key
    mail.set_content(message.text)
    mail.add_alternative(message.html, subtype="html")
    return mail


def _refused(code: int, text: str) -> str:
    return f"SMTP {code} {' '.join(text.split())[:200]}"


async def send_email(settings: Settings, to: str, message: RenderedMessage, *, key: str) -> None:
    """Send one rendered notification to ``to``; see :func:`send_message` for failures."""
    address = parse_address(to)
    await send_message(settings, build_email(settings, address, message, key=key))


async def send_message(settings: Settings, mail: EmailMessage) -> None:
    """Send a built message, classifying failures: 5xx replies and bad addresses are
    permanent, the rest (4xx, connection loss, timeouts) transient. Review invites use it
    too, so both speak SMTP the same way."""
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    try:
        await aiosmtplib.send(
            mail,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=password,
            use_tls=settings.smtp_ssl,
            start_tls=False if settings.smtp_ssl else settings.smtp_starttls,
            timeout=TIMEOUT,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        reason = "recipient refused: " + "; ".join(
            _refused(r.code, r.message) for r in exc.recipients
        )
        if codes and all(code >= 500 for code in codes):
            raise permanent(reason) from exc
        raise transient(reason) from exc
    except aiosmtplib.SMTPResponseException as exc:
        # connect/helo/auth/sender/data replies; the exception text never holds the password
        reason = f"{type(exc).__name__}: {_refused(exc.code, exc.message)}"
        if exc.code >= 500:
            raise permanent(reason) from exc
        raise transient(reason) from exc
    except aiosmtplib.SMTPNotSupported as exc:
        raise permanent(f"SMTP server does not support a required feature: {exc}") from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise transient(
            f"SMTP connection to {settings.smtp_host}:{settings.smtp_port} failed: "
            f"{type(exc).__name__}"
        ) from exc
