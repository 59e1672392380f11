"""The invite email: a short text body with the .ics attached as ``text/calendar;
method=REQUEST``, which mail clients offer to add to (or update in) the calendar.

Failures are classified like the email channel's (``activities.notifications``): SMTP 5xx
and bad addresses are permanent, the rest transient.
"""

from __future__ import annotations

import hashlib
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from activities.notifications.errors import permanent, transient
from schemas.review import ReviewInviteInput
from schemas.settings import Settings

TIMEOUT = 30.0


def invite_subject(invite: ReviewInviteInput, local_start: str) -> str:
    verb = "Updated invitation" if invite.sequence else "Invitation"
    title = " ".join(invite.title.split())
    return f"{verb}: post-incident review of {invite.number} {title} @ {local_start}"


def build_invite_email(
    settings: Settings,
    to: Address,
    invite: ReviewInviteInput,
    *,
    ics: bytes,
    subject: str,
    text: str,
    key: str,
) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = subject
    mail["From"] = settings.smtp_from
    mail["To"] = to
    mail["Date"] = formatdate(localtime=False, usegmt=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    mail["Message-ID"] = f"<{digest}@incidentflow>"
    mail["X-Incidentflow-Delivery"] = key
    mail.set_content(text)
    mail.add_attachment(
        ics,
        maintype="text",
        subtype="calendar",
        filename="invite.ics",
        params={"method": "REQUEST", "charset": "utf-8"},
    )
    return mail


async def send_message(settings: Settings, mail: EmailMessage) -> None:
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
            f"SMTP {r.code} {' '.join(r.message.split())[:200]}" for r in exc.recipients
        )
        if codes and all(code >= 500 for code in codes):
            raise permanent(reason) from exc
        raise transient(reason) from exc
    except aiosmtplib.SMTPResponseException as exc:
        reason = f"{type(exc).__name__}: SMTP {exc.code} {' '.join(exc.message.split())[:200]}"
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
