"""Activities of the public status page: the confirmation mail of a subscription, and a public
status update mailed to every confirmed subscriber.

Both mails are built from public facts only (``schemas.status_page``: the component's display
name, the incident's public title, the update's text), never from the incident's own title,
labels, notes or responders. Every mail carries a signed unsubscribe link, in the body and as
``List-Unsubscribe`` (with RFC 8058 one-click ``List-Unsubscribe-Post``).

Idempotent like ``notify``: a delivery key (number, event seq, subscriber) is recorded and
claimed before sending, so a retried activity never mails anyone twice.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.notifications.channels.email import parse_address, send_message
from activities.notifications.errors import DeliveryError
from activities.notifications.rendering import _when
from schemas.activity_io import (
    MAIL_SUBSCRIBERS,
    SEND_SUBSCRIPTION_CONFIRMATION,
    PublishInput,
    PublishResult,
    SubscriptionRequest,
)
from schemas.enums import ComponentStatus, StatusPhase
from schemas.failures import FailureType
from schemas.links import confirm_subscription_url, status_url, unsubscribe_url
from schemas.policy import Policy
from schemas.policy_holder import PolicyHolder
from schemas.settings import Settings
from schemas.status_page import SEVERITY_STATUS, STATUS_WORDS, public_title
from schemas.status_tokens import CONFIRM_TTL, SubscriptionClaim, sign_subscription
from schemas.workflow_ids import subscriber_id

TEMPLATES = Path(__file__).parent / "templates"
#: at most one confirmation mail per address this often (the form is no mail cannon)
CONFIRMATION_COOLDOWN = timedelta(minutes=10)
#: subscribers mailed at once
CONCURRENCY = 10

# Record the address; an address that had unsubscribed must confirm again. Then claim the
# right to send: unless confirmed, not mailed within the cooldown (a retry of the same
# workflow run may send again, as its earlier attempt may have failed).
_REQUEST = """
INSERT INTO status_subscribers (id, email) VALUES (%(id)s, %(email)s)
ON CONFLICT (id) DO UPDATE SET
    confirmed_at = CASE WHEN status_subscribers.unsubscribed_at IS NULL
                        THEN status_subscribers.confirmed_at END,
    unsubscribed_at = NULL
"""
_CLAIM_CONFIRMATION = """
UPDATE status_subscribers
SET confirmation_sent_at = now(), confirmations_sent = confirmations_sent + 1,
    confirmation_run = %(run)s
WHERE id = %(id)s AND confirmed_at IS NULL
  AND (confirmation_run = %(run)s OR confirmation_sent_at IS NULL
       OR confirmation_sent_at < now() - %(cooldown)s)
RETURNING email
"""
_ACTIVE = """
SELECT id, email FROM status_subscribers
WHERE confirmed_at IS NOT NULL AND unsubscribed_at IS NULL ORDER BY created_at, id
"""
_CLAIM_DELIVERY = """
INSERT INTO status_deliveries (number, seq, subscriber_id, attempts) VALUES (%s, %s, %s, 1)
ON CONFLICT (number, seq, subscriber_id) DO UPDATE SET attempts = status_deliveries.attempts + 1
WHERE status_deliveries.status = 'pending'
RETURNING attempts
"""
_DELIVERED = """
UPDATE status_deliveries SET status = %s, last_error = %s,
    sent_at = CASE WHEN %s = 'sent' THEN now() END
WHERE number = %s AND seq = %s AND subscriber_id = %s
"""


class StatusPageActivities:
    def __init__(
        self, pool: AsyncConnectionPool[Any], policy: Policy | PolicyHolder, settings: Settings
    ) -> None:
        self.pool = pool
        self.policies = PolicyHolder.of(policy)
        self.settings = settings
        self.env = Environment(
            loader=FileSystemLoader(str(TEMPLATES)),
            undefined=StrictUndefined,
            autoescape=False,  # plain-text mail only
            keep_trailing_newline=True,
        )
        self.env.filters["when"] = _when

    @property
    def base_url(self) -> str:
        return self.settings.incidentflow_base_url or self.policies.current.base_url

    def _secret(self) -> bytes:
        secret = self.settings.incidentflow_link_secret
        if secret is None:
            raise ApplicationError(
                "INCIDENTFLOW_LINK_SECRET is not set: subscription links cannot be signed",
                type=FailureType.NOTIFICATION_DELIVERY_RETRY,
                non_retryable=True,
            )
        return secret.get_secret_value().encode()

    def _unsubscribe_link(self, subscriber: str) -> str:
        claim = SubscriptionClaim(purpose="unsubscribe", subscriber=subscriber)
        return unsubscribe_url(self.base_url, sign_subscription(self._secret(), claim))

    def _mail(self, to: str, subject: str, text: str, unsubscribe: str, key: str) -> EmailMessage:
        mail = EmailMessage()
        mail["Subject"] = " ".join(subject.split())
        mail["From"] = self.settings.smtp_from
        mail["To"] = parse_address(to)
        mail["Date"] = formatdate(localtime=False, usegmt=True)
        mail["Message-ID"] = f"<{key}@incidentflow>"
        mail["List-Unsubscribe"] = f"<{unsubscribe}>"
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        mail["Auto-Submitted"] = "auto-generated"
        mail.set_content(text)
        return mail

    # ------------------------------------------------------------------ confirmation
    @activity.defn(name=SEND_SUBSCRIPTION_CONFIRMATION)
    async def send_subscription_confirmation(self, request: SubscriptionRequest) -> bool:
        sub = subscriber_id(request.email)
        secret = self._secret()
        params = {
            "id": sub,
            "email": request.email.strip(),
            "run": activity.info().workflow_run_id,
            "cooldown": CONFIRMATION_COOLDOWN,
        }
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(_REQUEST, params)
            row = await (await conn.execute(_CLAIM_CONFIRMATION, params)).fetchone()
        if row is None:
            activity.logger.info("subscription %s: confirmed already or mailed lately", sub[:12])
            return False
        expires = datetime.now(UTC) + CONFIRM_TTL
        confirm = SubscriptionClaim(purpose="confirm", subscriber=sub, expires=expires)
        unsubscribe = self._unsubscribe_link(sub)
        page_name = self.policies.current.status_page.name
        text = self.env.get_template("confirm.txt.j2").render(
            page_name=page_name,
            confirm_link=confirm_subscription_url(
                self.base_url, sign_subscription(secret, confirm)
            ),
            unsubscribe_link=unsubscribe,
            expires=expires,
        )
        key = f"confirm-{sub[:32]}-{int(expires.timestamp())}"
        subject = f"Confirm your subscription to {page_name}"
        try:
            await send_message(self.settings, self._mail(row[0], subject, text, unsubscribe, key))
        except DeliveryError as exc:
            raise ApplicationError(
                f"confirmation mail not sent: {exc.reason}",
                type=FailureType.NOTIFICATION_DELIVERY_RETRY,
                non_retryable=not exc.transient,
            ) from exc
        return True

    # ------------------------------------------------------------------ public updates
    @activity.defn(name=MAIL_SUBSCRIBERS)
    async def mail_subscribers(self, input: PublishInput) -> PublishResult:
        policy = self.policies.current
        service = policy.service(input.incident.service)
        details = input.event.details
        if service is None or not service.public or details.get("public") is not True:
            return PublishResult()  # not (or no longer) on the status page
        if input.incident.drill:
            return PublishResult()  # a game day is never shown to the public (docs/drills.md)
        async with self.pool.connection() as conn:
            subscribers = await (await conn.execute(_ACTIVE)).fetchall()
        override = details.get("component_status")
        status = ComponentStatus(override) if override else SEVERITY_STATUS[input.incident.severity]
        phase = StatusPhase(details.get("phase") or StatusPhase.INVESTIGATING)
        title = public_title(service)
        context = {
            "page_name": policy.status_page.name,
            "title": title,
            "phase": phase.value,
            "at": input.event.at,
            "text": str(details.get("text", "")),
            "component": service.display_name,
            "component_status": STATUS_WORDS[status],
            "status_link": status_url(self.base_url),
        }
        limit = asyncio.Semaphore(CONCURRENCY)
        result = PublishResult()
        transient: list[str] = []

        async def deliver(sub: str, email: str) -> None:
            async with limit:
                outcome = await self._deliver(input, sub, email, context)
            if outcome == "retry":
                transient.append(sub)
            else:
                setattr(result, outcome, getattr(result, outcome) + 1)

        await asyncio.gather(*(deliver(sub, email) for sub, email in subscribers))
        if transient:
            raise ApplicationError(
                f"{len(transient)} subscriber mail(s) failed transiently",
                type=FailureType.NOTIFICATION_DELIVERY_RETRY,
            )
        return result

    async def _deliver(
        self, input: PublishInput, sub: str, email: str, context: dict[str, Any]
    ) -> str:
        number, seq = input.incident.number, input.event.seq
        async with self.pool.connection() as conn:
            claimed = await (await conn.execute(_CLAIM_DELIVERY, (number, seq, sub))).fetchone()
        if claimed is None:
            return "skipped"
        unsubscribe = self._unsubscribe_link(sub)
        text = self.env.get_template("update.txt.j2").render(
            **context, unsubscribe_link=unsubscribe
        )
        subject = f"[{context['page_name']}] {context['title']}: {context['phase']}"
        key = f"status-{number}-{seq}-{sub[:24]}"
        status, error = "sent", None
        try:
            await send_message(self.settings, self._mail(email, subject, text, unsubscribe, key))
        except DeliveryError as exc:
            if exc.transient:
                await self._record(("pending", exc.reason, "pending", number, seq, sub))
                return "retry"
            status, error = "failed", exc.reason
        await self._record((status, error, status, number, seq, sub))
        return status if status == "failed" else "sent"

    async def _record(self, params: tuple[Any, ...]) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(_DELIVERED, params)
