"""The Slack app (docs/slack.md) against the real stack: a real worker and API, slack_sdk's
real clients pointed at a loopback Slack (``tests/support_slack.py``) that records every Web
API call and every ``response_url`` answer, and requests signed as Slack signs them."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import yaml
from temporalio.client import Client

from activities.notifications.delivery import resolve
from schemas.actions import CloseInput
from schemas.enums import Action, EventKind, Severity, Status
from schemas.incident import Alert, IncidentSnapshot, SlackMessage
from schemas.links import incident_url
from schemas.policy import EscalationTarget, Policy
from schemas.policy_file import load_policy
from schemas.settings import Settings
from schemas.slack_messages import (
    channel_name,
    number_of_channel,
    opens_channel,
    status_blocks,
    status_text,
)
from starter.api.app import create_app
from starter.client import IncidentClient
from starter.slack_commands import CommandError, Verb, parse
from tests.conftest import wait_for
from tests.support_api import ApiNames, api_policy, serve
from tests.support_incidents import Stack, record_history, running_stack
from tests.support_slack import (
    SLACK_IDS,
    SlackApi,
    command_body,
    interaction_body,
    sign,
    slack_api_fixture,  # noqa: F401
    with_slack,
)
from tests.support_tickets import make_snapshot

ROOT = Path(__file__).parent.parent
INTERACTIONS = "/api/v1/integrations/slack/interactions"
COMMANDS = "/api/v1/integrations/slack/commands"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-test-token"


@dataclass
class SlackStack:
    http: httpx.AsyncClient
    stack: Stack
    names: ApiNames
    slack: SlackApi
    policy: Policy

    async def post(self, path: str, body: bytes, **sign_args: Any) -> httpx.Response:
        return await self.http.post(path, content=body, headers=sign(SECRET, body, **sign_args))

    async def snapshot(self, number: str) -> IncidentSnapshot:
        return await self.stack.client.get(number)

    async def wait_snapshot(
        self, number: str, holds: Callable[[IncidentSnapshot], bool], what: str
    ) -> IncidentSnapshot:
        async def probe() -> IncidentSnapshot | None:
            snapshot = await self.snapshot(number)
            return snapshot if holds(snapshot) else None

        return await wait_for(probe, message=f"{number}: {what}")

    def link(self, number: str) -> str:
        return incident_url(self.policy.base_url, number)


@asynccontextmanager
async def slack_stack(
    temporal_client: Client,
    database_url: str,
    task_queue: str,
    slack_api: SlackApi,
    monkeypatch: pytest.MonkeyPatch,
    **slack: Any,
) -> AsyncIterator[SlackStack]:
    base, names = api_policy(ack_within=600, level_delay=600)
    policy = with_slack(base, slack_api, **slack)
    assert policy.slack is not None
    monkeypatch.setenv(policy.slack.bot_token_env, TOKEN)
    monkeypatch.setenv(policy.slack.signing_secret_env, SECRET)
    async with running_stack(temporal_client, database_url, task_queue, policy) as stack:
        settings = Settings(database_url=database_url, temporal_task_queue=task_queue)
        app = create_app(settings, policy, temporal=temporal_client)
        async with serve(app) as http:
            yield SlackStack(http, stack, names, slack_api, policy)


async def trigger(st: SlackStack, severity: Severity = Severity.SEV3) -> str:
    alert = Alert(service=st.names.service, title="Checkout 5xx", severity=severity)
    return (await st.stack.client.trigger(alert)).number


def buttons(blocks: list[dict[str, Any]]) -> list[tuple[str, str]]:
    actions = next(b for b in blocks if b["type"] == "actions")
    return [(e["action_id"], e["text"]["text"]) for e in actions["elements"]]


async def test_page_button_acknowledges_and_the_message_is_updated(
    temporal_client: Client,
    database_url: str,
    task_queue: str,
    slack_api: SlackApi,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with slack_stack(
        temporal_client,
        database_url,
        task_queue,
        slack_api,
        monkeypatch,
        default_channel="C0INCIDENTS",
    ) as st:
        number = await trigger(st)
        # the page: a DM to alice (level 1) and the default channel, each with its buttons
        dm = (await slack_api.wait_calls("chat.postMessage", channel=SLACK_IDS["alice"]))[0]
        channel = (await slack_api.wait_calls("chat.postMessage", channel="C0INCIDENTS"))[0]
        for posted in (dm, channel):
            assert posted.args["text"].startswith(f"[SEV3] {number} triggered")
            actions = posted.args["blocks"][-1]
            assert actions == {
                "type": "actions",
                "block_id": "incidentflow_actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "acknowledge",
                        "text": {"type": "plain_text", "text": "Acknowledge"},
                        "value": number,
                        "style": "primary",
                    },
                    {
                        "type": "button",
                        "action_id": "resolve",
                        "text": {"type": "plain_text", "text": "Resolve"},
                        "value": number,
                    },
                    {
                        "type": "button",
                        "action_id": "escalate",
                        "text": {"type": "plain_text", "text": "Escalate"},
                        "value": number,
                    },
                    {
                        "type": "button",
                        "action_id": "open",
                        "text": {"type": "plain_text", "text": f"Open {number}"},
                        "url": st.link(number),
                    },
                ],
            }
        # the Open link is the dashboard's incident page
        assert st.link(number).endswith(f"/dashboard/incidents/{number}")
        opened = await st.http.get(st.link(number).removeprefix(st.policy.base_url))
        assert opened.status_code in (200, 303), opened.text
        # the workflow keeps where the pages went
        await st.wait_snapshot(number, lambda s: len(s.slack_messages) == 2, "both pages kept")
        snapshot = await st.snapshot(number)
        assert {m.channel for m in snapshot.slack_messages} == {"DALICE01", "C0INCIDENTS"}

        # alice presses Acknowledge: answered at once, acted on in the background
        url = slack_api.response_url()
        started = time.monotonic()
        pressed = await st.post(
            INTERACTIONS, interaction_body(SLACK_IDS["alice"], "acknowledge", number, url)
        )
        assert pressed.status_code == 200, pressed.text
        assert time.monotonic() - started < 3
        answer = await slack_api.wait_response(url)
        assert answer["response_type"] == "ephemeral"
        assert answer["text"] == f"{number} is acknowledged: Acknowledge by alice recorded."
        acknowledged = await st.snapshot(number)
        assert acknowledged.status == Status.ACKNOWLEDGED
        assert acknowledged.timeline[-1].kind == EventKind.ACKNOWLEDGED
        assert acknowledged.timeline[-1].actor == "alice"

        # both pages are rewritten in place: acknowledged, alice commands, no Acknowledge
        updates = await slack_api.wait_calls("chat.update", 2)
        by_channel = {u.args["channel"]: u.args for u in updates}
        assert set(by_channel) == {"DALICE01", "C0INCIDENTS"}
        posted_ts = {m.channel: m.ts for m in snapshot.slack_messages}
        for where, update in by_channel.items():
            assert update["ts"] == posted_ts[where]
            assert update["blocks"] == status_blocks(acknowledged.summary(), st.link(number))
            assert update["text"] == f"[SEV3] {number} acknowledged: Checkout 5xx"
            assert buttons(update["blocks"]) == [
                ("resolve", "Resolve"),
                ("escalate", "Escalate"),
                ("open", f"Open {number}"),
            ]
            fields = [f["text"] for f in update["blocks"][1]["fields"]]
            assert fields[0] == "*Status*\nacknowledged"
            assert fields[-1] == "*Commander*\nalice"

        # pressing it again is illegal: the answer names the status, nothing changes
        again_url = slack_api.response_url()
        again = await st.post(
            INTERACTIONS, interaction_body(SLACK_IDS["bob"], "acknowledge", number, again_url)
        )
        assert again.status_code == 200
        refused = await slack_api.wait_response(again_url)
        assert refused["text"].startswith(f"{number} is acknowledged: cannot acknowledge")
        assert len((await st.snapshot(number)).timeline) == len(acknowledged.timeline)

        # Escalate pages level 2 (bob, by DM) and rewrites the pages with the new level
        escalate_url = slack_api.response_url()
        escalated = await st.post(
            INTERACTIONS, interaction_body(SLACK_IDS["alice"], "escalate", number, escalate_url)
        )
        assert escalated.status_code == 200
        answer = await slack_api.wait_response(escalate_url)
        assert answer["text"] == f"{number} is acknowledged: Escalate by alice recorded."
        await slack_api.wait_calls("chat.postMessage", channel=SLACK_IDS["bob"])
        await st.wait_snapshot(number, lambda s: len(s.slack_messages) == 3, "bob's page kept")
        level_two = await slack_api.wait_calls("chat.update", 4)
        for update in level_two[2:]:
            fields = [f["text"] for f in update.args["blocks"][1]["fields"]]
            assert "*Escalation level*\n2" in fields
        await record_history(st.stack, number, "slack_page_escalated")
        # the bot token, the signing secret and response URLs stay out of logs and history
        history = (await st.stack.client.history(number)).to_json()
        for secret in (TOKEN, SECRET, url.removeprefix(slack_api.base_url)):
            assert secret not in caplog.text
            assert secret not in history


async def test_only_signed_fresh_requests_from_known_users_change_anything(
    temporal_client: Client,
    database_url: str,
    task_queue: str,
    slack_api: SlackApi,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with slack_stack(temporal_client, database_url, task_queue, slack_api, monkeypatch) as st:
        number = await trigger(st)
        before = await st.snapshot(number)
        url = slack_api.response_url()
        body = interaction_body(SLACK_IDS["bob"], "acknowledge", number, url)
        headers = sign(SECRET, body)

        tampered = body.replace(b"acknowledge", b"resolve")
        assert (
            await st.http.post(INTERACTIONS, content=tampered, headers=headers)
        ).status_code == 401
        wrong_secret = sign("not-the-secret", body)
        assert (
            await st.http.post(INTERACTIONS, content=body, headers=wrong_secret)
        ).status_code == 401
        old = await st.post(INTERACTIONS, body, timestamp=int(time.time()) - 301)
        assert old.status_code == 401
        assert "5 minutes" in old.json()["message"]
        unsigned = {"Content-Type": "application/x-www-form-urlencoded"}
        assert (await st.http.post(INTERACTIONS, content=body, headers=unsigned)).status_code == 401
        command = command_body(SLACK_IDS["bob"], f"resolve {number}", url)
        assert (
            await st.http.post(COMMANDS, content=command + b"x", headers=sign(SECRET, command))
        ).status_code == 401

        # an unknown Slack user: an ephemeral error, nothing else
        stranger_url = slack_api.response_url()
        stranger = interaction_body("UNKNOWN99", "acknowledge", number, stranger_url)
        assert (await st.post(INTERACTIONS, stranger)).status_code == 200
        refusal = await slack_api.wait_response(stranger_url)
        assert refusal["response_type"] == "ephemeral"
        assert "UNKNOWN99 is not in incidentflow's policy" in refusal["text"]
        command_url = slack_api.response_url()
        unknown = await st.post(
            COMMANDS, command_body("UNKNOWN99", f"resolve {number}", command_url)
        )
        assert unknown.status_code == 200
        assert "Nothing was changed" in unknown.json()["text"]

        after = await st.snapshot(number)
        assert after.status == Status.TRIGGERED
        assert len(after.timeline) == len(before.timeline)
        assert slack_api.responses(url) == []  # nothing refused was acted on
        assert slack_api.responses(command_url) == []

        # the signed original goes through once; the same request again is a replay
        accepted = await st.http.post(INTERACTIONS, content=body, headers=headers)
        assert accepted.status_code == 200
        replayed = await st.http.post(INTERACTIONS, content=body, headers=headers)
        assert replayed.status_code == 401
        assert "replayed" in replayed.json()["message"]
        # another API replica (sharing the database) refuses the replay too
        settings = Settings(database_url=database_url, temporal_task_queue=task_queue)
        async with serve(create_app(settings, st.policy, temporal=temporal_client)) as replica:
            elsewhere = await replica.post(INTERACTIONS, content=body, headers=headers)
        assert elsewhere.status_code == 401
        assert "replayed" in elsewhere.json()["message"]
        await slack_api.wait_response(url)
        assert (await st.snapshot(number)).status == Status.ACKNOWLEDGED
        assert len(slack_api.responses(url)) == 1


async def test_incident_command_and_incident_channel(
    temporal_client: Client,
    database_url: str,
    task_queue: str,
    slack_api: SlackApi,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with slack_stack(temporal_client, database_url, task_queue, slack_api, monkeypatch) as st:
        bob = SLACK_IDS["bob"]
        helped = await st.post(COMMANDS, command_body(bob, "help", slack_api.response_url()))
        assert helped.json()["response_type"] == "ephemeral"
        assert "/incident new <title>" in helped.json()["text"]

        # /incident new … --sev SEV2 opens a SEV2 incident as bob, and its own channel
        url = slack_api.response_url()
        text = f'new "Payments API down" --sev SEV2 --service {st.names.service}'
        opened = await st.post(COMMANDS, command_body(bob, text, url))
        assert opened.status_code == 200 and opened.content == b""
        answer = await slack_api.wait_response(url)
        match = re.match(r"(INC-\d+) opened by bob: Payments API down", answer["text"])
        assert match, answer
        assert answer["response_type"] == "in_channel"
        number = match.group(1)
        snapshot = await st.snapshot(number)
        assert snapshot.severity == Severity.SEV2
        assert snapshot.timeline[0].actor == "bob"

        name = f"inc-{number.removeprefix('INC-')}-payments-api-down"
        created = await slack_api.wait_calls("conversations.create", name=name)
        assert len(created) == 1
        await st.wait_snapshot(number, lambda s: s.slack_channel is not None, "the channel")
        channel = (await st.snapshot(number)).slack_channel
        assert channel is not None and channel.name == name
        invites = await slack_api.wait_calls("conversations.invite", channel=channel.id)
        assert invites[0].args["users"] == SLACK_IDS["alice"]  # paged at level 1
        summary = (await slack_api.wait_calls("chat.postMessage", channel=channel.id))[0]
        assert summary.args["blocks"][0]["text"]["text"].startswith(f"{number} triggered")
        pins = await slack_api.wait_calls("pins.add", channel=channel.id)
        pinned = SlackMessage(channel=channel.id, ts=pins[0].args["timestamp"])
        await st.wait_snapshot(number, lambda s: pinned in s.slack_messages, "the summary kept")
        triggered = await slack_api.wait_calls("chat.postMessage", 2, channel=channel.id)
        assert triggered[1].args["text"] == "*triggered* by bob: Payments API down"

        # in the incident's channel the number may be left out
        note_url = slack_api.response_url()
        noted = await st.post(
            COMMANDS, command_body(bob, "note rolled back deploy 42", note_url, channel_name=name)
        )
        assert noted.status_code == 200
        assert "Add note by bob recorded" in (await slack_api.wait_response(note_url))["text"]
        note = (await st.snapshot(number)).timeline[-1]
        assert (note.kind, note.actor, note.details.get("text")) == (
            EventKind.NOTE_ADDED,
            "bob",
            "rolled back deploy 42",
        )
        await slack_api.wait_calls(
            "chat.postMessage",
            channel=channel.id,
            text="*note added* by bob: rolled back deploy 42",
        )

        status_url = slack_api.response_url()
        await st.post(COMMANDS, command_body(bob, f"status {number.lower()}", status_url))
        status = await slack_api.wait_response(status_url)
        assert status["text"].startswith(f"*{number}* Payments API down\ntriggered · SEV2")
        list_url = slack_api.response_url()
        await st.post(COMMANDS, command_body(bob, "list", list_url))
        assert f"*{number}*" in (await slack_api.wait_response(list_url))["text"]
        oncall = await st.post(
            COMMANDS, command_body(bob, "oncall nobody", slack_api.response_url())
        )
        assert oncall.json()["text"].startswith("unknown schedule 'nobody'")

        resolve_url = slack_api.response_url()
        await st.post(COMMANDS, command_body(bob, f"resolve {number} fixed", resolve_url))
        assert (await slack_api.wait_response(resolve_url))["text"].startswith(
            f"{number} is resolved"
        )
        # the pinned summary stays current like a page
        await slack_api.wait_calls(
            "chat.update",
            channel=channel.id,
            ts=pinned.ts,
            text=f"[SEV2] {number} resolved: Payments API down",
        )
        await st.stack.client.act(number, Action.CLOSE, CloseInput(actor="bob"))
        await slack_api.wait_calls("conversations.archive", channel=channel.id)
        posts = [c.args["text"] for c in slack_api.calls("chat.postMessage", channel=channel.id)]
        assert posts[-2:] == ["*resolved* by bob: fixed", "*closed* by bob"]
        await st.wait_snapshot(
            number, lambda s: s.slack_channel is not None and s.slack_channel.archived, "archived"
        )
        await record_history(st.stack, number, "slack_channel_summary_current")

        # the incident's page links its channel
        login = await st.http.get("/dashboard/login")
        csrf = re.search(r'name="csrf" value="([^"]*)"', login.text)
        assert csrf
        form = {"csrf": csrf.group(1), "next": "/dashboard/", "token": st.names.tokens["read"]}
        assert (await st.http.post("/dashboard/login", data=form)).status_code == 303
        page = await st.http.get(f"/dashboard/incidents/{number}")
        assert page.status_code == 200
        link = f'<a href="https://slack.com/app_redirect?channel={channel.id}" '
        assert f'{link}rel="noopener noreferrer">#{name}</a> (archived)' in page.text


# ---------------------------------------------------------------------------- pure parts
def test_incident_command_grammar() -> None:
    assert parse("").verb == Verb.HELP
    new = parse('new "DB down" --sev sev1 --service db')
    assert (new.verb, new.text, new.severity, new.service) == (
        Verb.NEW,
        "DB down",
        Severity.SEV1,
        "db",
    )
    assert parse("ack INC-7 on it").model_dump(exclude_none=True) == {
        "verb": Verb.ACK,
        "number": "INC-7",
        "text": "on it",
    }
    assert parse("resolve", "inc-12-db-down").number == "INC-12"
    assert parse("oncall primary").text == "primary"
    for bad, message in (
        ("ack", "name the incident"),
        ("note INC-3", "a note needs text"),
        ("new --sev SEV9 x", "unknown severity"),
        ("frobnicate", "unknown command"),
        ('new "unclosed', "cannot read"),
    ):
        with pytest.raises(CommandError, match=message):
            parse(bad)


def test_a_console_drill_opens_no_channel_and_says_drill() -> None:
    policy, _ = api_policy()
    incident = make_snapshot("INC-5", drill=True)
    assert not opens_channel(policy, incident)
    real = Policy.model_validate({**policy.model_dump(mode="json"), "drills": {"page": "real"}})
    assert opens_channel(real, incident)
    assert opens_channel(policy, incident.model_copy(update={"drill": False}))
    assert status_text(incident).startswith("DRILL [")
    header = status_blocks(incident, "http://x/dashboard/incidents/INC-5")[0]["text"]["text"]
    assert header.startswith("DRILL INC-5 triggered: ")


def test_channel_names() -> None:
    assert channel_name("INC-123", "Payments API: 5xx > 50%!") == "inc-123-payments-api-5xx-50"
    assert len(channel_name("INC-1", "x" * 200)) <= 80
    assert channel_name("INC-9", "!!!") == "inc-9"
    assert number_of_channel("inc-123-payments") == "INC-123"
    assert number_of_channel("incidents") is None


def test_manifest_in_docs_names_the_command_and_urls() -> None:
    text = (ROOT / "docs" / "slack.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert block, "docs/slack.md carries the app manifest in a ```yaml block"
    manifest = yaml.safe_load(block.group(1))
    features = manifest["features"]
    (command,) = features["slash_commands"]
    assert command["command"] == "/incident"
    assert command["url"].endswith("/api/v1/integrations/slack/commands")
    settings = manifest["settings"]["interactivity"]
    assert settings["is_enabled"] is True
    assert settings["request_url"].endswith("/api/v1/integrations/slack/interactions")
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    needed = {
        "chat:write",
        "commands",
        "channels:manage",
        "channels:read",
        "pins:write",
        "im:write",
    }
    assert needed <= scopes


def test_example_policy_has_a_slack_section() -> None:
    policy = load_policy(ROOT / "examples" / "policy.yaml", env={"ALICE_WEBHOOK": "x"})
    assert policy.slack is not None
    assert policy.slack.bot_token_env == "SLACK_BOT_TOKEN"
    assert any(u.slack_id for u in policy.users)


def test_without_a_bot_token_slack_stays_on_incoming_webhooks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, names = api_policy()
    with SlackApi() as api:
        data = with_slack(base, api).model_dump(mode="json", exclude_none=True)
    data["users"][0]["slack"] = "https://hooks.slack.test/T0/B0/secret"  # alice's webhook
    policy = Policy.model_validate(data)
    assert policy.slack is not None
    monkeypatch.delenv(policy.slack.bot_token_env, raising=False)
    at = datetime.now(UTC)
    targets = [EscalationTarget.model_validate("user:alice")]

    def slack_addresses(slack_bot: bool) -> list[str | None]:
        found = resolve(policy, "INC-1", 1, targets, at, slack_bot=slack_bot).deliveries
        return [d.address for d in found if d.channel == "slack"]

    assert slack_addresses(slack_bot=False) == ["https://hooks.slack.test/T0/B0/secret"]
    assert slack_addresses(slack_bot=True) == [
        "https://hooks.slack.test/T0/B0/secret",
        SLACK_IDS["alice"],
    ]
    # an incident started without the token runs none of the app's behaviour
    client = IncidentClient(cast(Client, None), policy)
    service = policy.service(names.service)
    assert service is not None
    assert client.incident_policy(service).slack is None
    monkeypatch.setenv(policy.slack.bot_token_env, TOKEN)
    assert client.incident_policy(service).slack == policy.slack
