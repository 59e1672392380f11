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

from schemas.review import ReviewInviteInput
from schemas.settings import Settings

TIMEOUT = 30.0


def invite_subject(invite: ReviewInviteInput, local_start: str) -> str:
    if invite.method == "CANCEL":
        verb = "Cancelled"
    else:
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
        params={"method": invite.method, "charset": "utf-8"},
    )
    return mail
