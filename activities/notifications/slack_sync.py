"""The ``sync_slack`` activity: keep Slack current with an incident (docs/slack.md).

It rewrites the bot's pages in place (``chat.update``), opens the incident's channel
(``conversations.create``, invites the commander and the paged responders, posts and pins
the summary), posts new timeline events there and archives it once the incident is closed.

Everything is idempotent under Temporal's retries: a page rewrite writes the same blocks
again; the channel is found by name when an earlier attempt created it; the summary and
each timeline post are recorded in the ``notifications`` table (key
``<number>:<seq>:slack-channel:<channel>:slack``, the summary under seq 0) and skipped once
sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from slack_sdk.web.async_client import AsyncWebClient
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.notifications import ledger
from activities.notifications.activity import NotifyActivities
from activities.notifications.channels.slack_app import bot_token, call, slack_error, web_client
from activities.notifications.errors import DeliveryError
from schemas.activity_io import SYNC_SLACK, SyncSlackInput, SyncSlackResult
from schemas.enums import ChannelKind
from schemas.failures import FailureType
from schemas.incident import IncidentSnapshot, SlackChannel, SlackMessage
from schemas.links import incident_url
from schemas.policy import Policy
from schemas.slack_messages import (
    channel_name,
    opens_channel,
    status_blocks,
    status_text,
    timeline_text,
)


class SlackActivities:
    """Runs beside the ``notify`` activity and shares its pool, policy and base URL."""

    def __init__(self, notify: NotifyActivities) -> None:
        self.notify = notify
        self.pool = notify.pool

    @property
    def policy(self) -> Policy:
        return self.notify.policy

    @property
    def base_url(self) -> str:
        return self.notify.base_url

    @activity.defn(name=SYNC_SLACK)
    async def sync_slack(self, input: SyncSlackInput) -> SyncSlackResult:
        slack = self.policy.slack
        token = bot_token(slack)
        channel = input.incident.slack_channel
        if slack is None or token is None:
            activity.logger.warning("no Slack bot token: %s not synced", input.incident.number)
            return SyncSlackResult(channel=channel)
        client = web_client(slack, token)
        incident = input.incident
        link = incident_url(self.base_url, incident.number)
        try:
            if input.update_messages:
                for message in incident.slack_messages:
                    await call(
                        "chat.update",
                        client.chat_update(
                            channel=message.channel,
                            ts=message.ts,
                            text=status_text(incident),
                            blocks=status_blocks(incident, link),
                        ),
                    )
            summary: SlackMessage | None = None
            if channel is None and input.open_channel and opens_channel(self.policy, incident):
                channel, summary = await self._open_channel(client, incident, link)
            if channel is not None and not channel.archived:
                await self._invite(client, channel, self._slack_ids(input.invite))
                for event in input.events:
                    text = timeline_text(event)
                    await self._once(
                        incident.number,
                        event.seq,
                        str(event.kind),
                        channel,
                        lambda text=text: self._post(client, channel, text),  # type: ignore[misc]
                    )
                if input.archive and slack.archive_after_close:
                    await self._archive(client, channel)
                    channel = channel.model_copy(update={"archived": True})
        except DeliveryError as exc:
            raise ApplicationError(
                exc.reason,
                type=FailureType.NOTIFICATION_DELIVERY_RETRY,
                non_retryable=not exc.transient,
            ) from None
        return SyncSlackResult(channel=channel, summary=summary)

    # -- the channel ----------------------------------------------------------------------
    async def _open_channel(
        self, client: AsyncWebClient, incident: IncidentSnapshot, link: str
    ) -> tuple[SlackChannel, SlackMessage | None]:
        """Create (or find) the channel, then post and pin the summary once."""
        name = channel_name(incident.number, incident.title)
        try:
            response = await call("conversations.create", client.conversations_create(name=name))
            channel = SlackChannel(id=str(response["channel"]["id"]), name=name)
        except DeliveryError as exc:
            if slack_error(exc) != "name_taken":
                raise
            channel = await self._find_channel(client, name)

        async def summary() -> tuple[str, str]:
            posted = await call(
                "chat.postMessage",
                client.chat_postMessage(
                    channel=channel.id,
                    text=status_text(incident),
                    blocks=status_blocks(incident, link),
                ),
            )
            ts = str(posted["ts"])
            await call("pins.add", client.pins_add(channel=channel.id, timestamp=ts))
            return channel.id, ts

        posted = await self._once(incident.number, 0, "slack_channel_opened", channel, summary)
        return channel, posted

    async def _find_channel(self, client: AsyncWebClient, name: str) -> SlackChannel:
        """The channel an earlier attempt created (``name_taken``)."""
        cursor: str | None = None
        while True:
            response = await call(
                "conversations.list",
                client.conversations_list(
                    types="public_channel", exclude_archived=True, limit=1000, cursor=cursor
                ),
            )
            for found in response.get("channels") or []:
                if found.get("name") == name:
                    return SlackChannel(id=str(found["id"]), name=name)
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                raise DeliveryError(f"Slack channel #{name} is taken", transient=False)

    def _slack_ids(self, names: list[str]) -> list[str]:
        ids: list[str] = []
        for name in names:
            user = self.policy.user(name)
            if user is not None and user.slack_id and user.slack_id not in ids:
                ids.append(user.slack_id)
        return ids

    async def _invite(
        self, client: AsyncWebClient, channel: SlackChannel, slack_ids: list[str]
    ) -> None:
        if not slack_ids:
            return
        try:
            await call(
                "conversations.invite",
                client.conversations_invite(channel=channel.id, users=",".join(slack_ids)),
            )
        except DeliveryError as exc:
            if slack_error(exc) not in ("already_in_channel", "cant_invite_self"):
                raise

    async def _post(
        self, client: AsyncWebClient, channel: SlackChannel, text: str
    ) -> tuple[str, str]:
        posted = await call(
            "chat.postMessage",
            client.chat_postMessage(
                channel=channel.id,
                text=text,
                blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
            ),
        )
        return channel.id, str(posted["ts"])

    async def _archive(self, client: AsyncWebClient, channel: SlackChannel) -> None:
        try:
            await call("conversations.archive", client.conversations_archive(channel=channel.id))
        except DeliveryError as exc:
            if slack_error(exc) != "already_archived":
                raise

    async def _once(
        self,
        number: str,
        seq: int,
        kind: str,
        channel: SlackChannel,
        send: Callable[[], Awaitable[tuple[str, str]]],
    ) -> SlackMessage | None:
        """Send once per (incident, seq, channel): skipped once the table says sent. The
        message sent now or by an earlier attempt, if the table knows it."""
        target = f"slack-channel:{channel.name}"
        key = f"{number}:{seq}:{target}:{channel.id}:{ChannelKind.SLACK.value}"
        async with self.pool.connection() as conn:
            claim = await conn.execute(
                ledger.CLAIM,
                (key, number, seq, kind, target, channel.id, ChannelKind.SLACK.value, channel.id),
            )
            if await claim.fetchone() is None:
                prior = await (await conn.execute(ledger.PRIOR, (key,))).fetchone()
                sent = prior is not None and prior[0] == "sent" and prior[3]
                return SlackMessage(channel=prior[2], ts=prior[3]) if sent else None
        posted_channel, ts = await send()
        async with self.pool.connection() as conn:
            await conn.execute(ledger.SENT, (posted_channel, ts, key))
        return SlackMessage(channel=posted_channel, ts=ts)
