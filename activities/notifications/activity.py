"""The ``notify`` activity: resolve targets, then deliver to each recipient exactly as often
as the ``notifications`` table allows.

Per delivery: insert its key if absent, claim it (``attempts + 1``) only while it is
``pending``, send, then record ``sent`` or ``failed``. A key already ``sent`` or ``failed`` is
skipped, so Temporal retries of this activity never re-send what went out. Deliveries run
concurrently and are independent: a permanent failure is recorded and returned in
``NotifyResult.failed``; transient failures are left ``pending`` and, once every delivery of
this attempt has finished, raised as one retryable ``ApplicationError`` so the activity's
retry policy (with the receiver's ``Retry-After``, if any) tries again.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.knowledge import seen_before
from activities.notifications import ledger
from activities.notifications.channels.apprise_channel import send_apprise
from activities.notifications.channels.console import send_console
from activities.notifications.channels.email import send_email
from activities.notifications.channels.http import redact_url
from activities.notifications.channels.slack import send_slack
from activities.notifications.channels.slack_app import bot_token, post_message, web_client
from activities.notifications.channels.webhook import send_webhook
from activities.notifications.delivery import Delivery, default_channel_page, on_console, resolve
from activities.notifications.errors import DeliveryError, permanent, transient
from activities.notifications.rendering import RenderedMessage, Renderer
from schemas.ack_tokens import AckClaim, sign_ack
from schemas.activity_io import NOTIFY, FailedDelivery, NotifyInput, NotifyResult
from schemas.enums import Action, ChannelKind, EventKind, TargetKind
from schemas.failures import FailureType
from schemas.incident import SlackMessage
from schemas.lifecycle import is_legal
from schemas.links import ack_url, incident_url
from schemas.policy import Policy
from schemas.policy_holder import PolicyHolder
from schemas.settings import Settings
from schemas.telemetry import activity_meter, page_failed, page_sent

#: ``ApplicationError.type`` of the retryable error raised for transient failures
TRANSIENT_ERROR_TYPE = FailureType.NOTIFICATION_DELIVERY_RETRY
#: the longest a trigger's page waits for its "Seen before" line
SEEN_BEFORE_TIMEOUT_SECONDS = 2.0


@dataclass
class _Outcome:
    delivery: Delivery
    status: Literal["delivered", "skipped", "failed", "retry"]
    reason: str | None = None
    retry_after: float | None = None
    #: the Slack bot's message, to keep current (``chat.update``)
    slack: SlackMessage | None = None


async def _heartbeat(every: float) -> None:
    """Tell the server this attempt is alive while its deliveries run (a worker that dies
    stops beating, and the page is retried elsewhere after the heartbeat timeout)."""
    while True:
        activity.heartbeat()
        await asyncio.sleep(every)


def _stored_address(delivery: Delivery) -> str | None:
    """What the table keeps of the address: URLs redacted (they often embed tokens)."""
    if delivery.address is None:
        return None
    if delivery.channel == ChannelKind.EMAIL.value:
        return delivery.address
    return redact_url(delivery.address)


class NotifyActivities:
    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        policy: Policy | PolicyHolder,
        settings: Settings,
        http: httpx.AsyncClient | None = None,
        renderer: Renderer | None = None,
    ) -> None:
        self.pool = pool
        #: read at each delivery: a reload changes targets for the next page
        self.policies = PolicyHolder.of(policy)
        self.settings = settings
        #: one client for every HTTP delivery, made on first use: building one loads the CA
        #: bundle (~45 ms of CPU), which per activity was a third of the worker's ingest time
        self.http = http
        self.renderer = renderer or Renderer(settings.incidentflow_templates)
        secret = settings.incidentflow_link_secret
        self.link_secret = secret.get_secret_value().encode() if secret else None

    @property
    def policy(self) -> Policy:
        return self.policies.current

    @property
    def base_url(self) -> str:
        return self.settings.incidentflow_base_url or self.policy.base_url

    def ack_link(self, input: NotifyInput, delivery: Delivery) -> str | None:
        """A signed one-tap acknowledge link for a page to a user, while acknowledging is
        legal; ``None`` for channels (nobody in particular to act as), for the console (a log
        is no place for a credential) or without a secret."""
        if self.link_secret is None or delivery.target.startswith(f"{TargetKind.CHANNEL.value}:"):
            return None
        if delivery.channel == ChannelKind.CONSOLE.value:
            return None
        if self.policy.user(delivery.recipient) is None:
            return None
        if not is_legal(Action.ACKNOWLEDGE, input.incident.status):
            return None
        claim = AckClaim(
            number=input.incident.number,
            user=delivery.recipient,
            expires=datetime.now(UTC)
            + timedelta(seconds=self.settings.incidentflow_ack_link_ttl_seconds),
            id=secrets.token_urlsafe(12),
        )
        return ack_url(self.base_url, sign_ack(self.link_secret, claim))

    @activity.defn(name=NOTIFY)
    async def notify(self, input: NotifyInput) -> NotifyResult:
        timeout = activity.info().heartbeat_timeout
        if not timeout:  # scheduled before the notify-heartbeats patch
            return await self._notify(input)
        beating = asyncio.create_task(_heartbeat(timeout.total_seconds() / 5))
        try:
            return await self._notify(input)
        finally:
            beating.cancel()

    async def _notify(self, input: NotifyInput) -> NotifyResult:
        seen = await self._seen_before(input)
        token = bot_token(self.policy.slack)
        resolution = resolve(
            self.policy,
            input.incident.number,
            input.event.seq,
            input.targets,
            input.event.at,
            slack_bot=token is not None,
        )
        if token is not None:
            resolution.deliveries.extend(
                default_channel_page(self.policy, input.incident, input.event)
            )
        deliveries = resolution.deliveries
        if input.incident.drill and self.policy.drills.page == "console":
            deliveries = on_console(deliveries)  # nobody is woken by a game day
        outcomes = await asyncio.gather(
            *(self._deliver(input, d, seen) for d in deliveries),
            return_exceptions=True,
        )
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors:
            # e.g. the database went away: retry the whole activity; sent keys stay skipped
            raise errors[0]
        done = [o for o in outcomes if isinstance(o, _Outcome)]
        retry = [o for o in done if o.status == "retry"]
        if retry:
            delays = [o.retry_after for o in retry if o.retry_after is not None]
            reasons = "; ".join(f"{o.delivery.key}: {o.reason}" for o in retry)
            raise ApplicationError(
                f"{len(retry)} of {len(done)} notification deliveries failed transiently: "
                f"{reasons}",
                type=TRANSIENT_ERROR_TYPE,
                next_retry_delay=timedelta(seconds=max(delays)) if delays else None,
            )
        return NotifyResult(
            delivered=[o.delivery.key for o in done if o.status == "delivered"],
            skipped=[o.delivery.key for o in done if o.status == "skipped"],
            failed=[
                FailedDelivery(
                    target=o.delivery.target,
                    recipient=o.delivery.recipient,
                    channel=o.delivery.channel,
                    reason=o.reason or "unknown",
                )
                for o in done
                if o.status == "failed" or (o.status == "skipped" and o.reason is not None)
            ],
            recipients=resolution.recipients,
            slack_messages=[o.slack for o in done if o.slack is not None],
        )

    async def _seen_before(self, input: NotifyInput) -> str | None:
        """The "Seen before" line of a trigger's page; a page never waits on it for long
        nor fails for it (the knowledge base is a help, the page is the duty)."""
        if input.event.kind != EventKind.TRIGGERED:
            return None
        try:
            return await asyncio.wait_for(
                seen_before(self.pool, input.incident), SEEN_BEFORE_TIMEOUT_SECONDS
            )
        except Exception as exc:
            activity.logger.warning(
                "similar incidents of %s not looked up: %s", input.incident.number, exc
            )
            return None

    def _client(self) -> httpx.AsyncClient:
        if self.http is None:
            self.http = httpx.AsyncClient(follow_redirects=False)
        return self.http

    async def _deliver(
        self, input: NotifyInput, delivery: Delivery, seen_before: str | None = None
    ) -> _Outcome:
        key = delivery.key
        async with self.pool.connection() as conn:
            claim = await conn.execute(
                ledger.CLAIM,
                (
                    key,
                    delivery.number,
                    delivery.seq,
                    str(input.event.kind),
                    delivery.target,
                    delivery.recipient,
                    delivery.channel,
                    _stored_address(delivery),
                ),
            )
            claimed = await claim.fetchone()
            prior = None if claimed else await (await conn.execute(ledger.PRIOR, (key,))).fetchone()
        if prior is not None:
            status, last_error, slack_channel, slack_ts = prior
            activity.logger.info("notification %s already %s, skipped", key, status)
            posted = SlackMessage(channel=slack_channel, ts=slack_ts) if slack_ts else None
            # a failure recorded by an earlier attempt is reported again, so it is not lost
            reason = last_error if status == "failed" else None
            return _Outcome(delivery, "skipped", reason, slack=posted)

        try:
            if delivery.problem is not None:
                raise permanent(delivery.problem)
            ack_link = self.ack_link(input, delivery)
            try:
                message = self.renderer.render(
                    input.incident,
                    input.event,
                    recipient=delivery.display_name or delivery.recipient,
                    link=incident_url(self.base_url, input.incident.number),
                    ack_link=ack_link,
                    seen_before=seen_before,
                )
            except Exception as exc:  # a broken (override) template must not block others
                raise permanent(f"template error: {type(exc).__name__}: {exc}") from exc
            try:
                posted = await self._send(input, delivery, message, ack_link)
            except DeliveryError:
                raise
            except Exception as exc:
                # unforeseen: retry rather than drop a page; only the type, as the message
                # of a library error may quote a secret-bearing URL
                raise transient(f"unexpected {type(exc).__name__} while sending") from exc
        except DeliveryError as exc:
            if exc.transient:
                await self._record(ledger.RETRY, (exc.reason, key))
                page_failed(activity_meter(), delivery.channel, retryable=True)
                activity.logger.warning("notification %s will be retried: %s", key, exc.reason)
                return _Outcome(delivery, "retry", exc.reason, exc.retry_after)
            await self._record(ledger.FAILED, (exc.reason, key))
            page_failed(activity_meter(), delivery.channel, retryable=False)
            activity.logger.warning("notification %s failed: %s", key, exc.reason)
            return _Outcome(delivery, "failed", exc.reason)
        slack = (posted.channel, posted.ts) if posted else (None, None)
        await self._record(ledger.SENT, (*slack, key))
        page_sent(activity_meter(), delivery.channel)
        activity.logger.info("notification %s sent", key)
        return _Outcome(delivery, "delivered", slack=posted)

    async def _record(self, sql: str, params: tuple[Any, ...]) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(sql, params)

    async def _send(
        self,
        input: NotifyInput,
        delivery: Delivery,
        message: RenderedMessage,
        ack_link: str | None = None,
    ) -> SlackMessage | None:
        """Send one delivery; the Slack bot's message when it posted one."""
        channel = ChannelKind(delivery.channel)
        address = delivery.address or ""
        if channel != ChannelKind.CONSOLE and not address:
            raise permanent(f"{channel.value} channel has no address")
        if channel == ChannelKind.EMAIL:
            await send_email(self.settings, address, message, key=delivery.key)
        elif channel == ChannelKind.SLACK and not address.lower().startswith(("http:", "https:")):
            # a channel or member ID: the bot posts the page with its buttons
            slack = self.policy.slack
            token = bot_token(slack)
            if slack is None or token is None:
                raise permanent(f"Slack {address} needs the bot token (policy slack.bot_token_env)")
            link = incident_url(self.base_url, input.incident.number)
            client = web_client(slack, token)
            posted = await post_message(client, address, message, input.incident, link, input.page)
            return posted if input.page else None
        elif channel == ChannelKind.SLACK:
            await send_slack(self._client(), address, message)
        elif channel == ChannelKind.WEBHOOK:
            payload = {
                "type": "incidentflow.notification",
                "version": 1,
                "key": delivery.key,
                "target": delivery.target,
                "recipient": delivery.recipient,
                "link": incident_url(self.base_url, input.incident.number),
                **({"ack_link": ack_link} if ack_link else {}),
                "subject": message.subject,
                "text": message.text,
                "event": input.event.model_dump(mode="json"),
                "incident": input.incident.summary().model_dump(mode="json"),
            }
            await send_webhook(
                self._client(), address, payload, key=delivery.key, secret=delivery.secret
            )
        elif channel == ChannelKind.APPRISE:
            await send_apprise(address, message)
        else:
            await send_console(delivery.recipient, message, key=delivery.key)
        return None
