"""``incidentflow review …`` and ``incidentflow action-items …``: the post-incident review and
its action items, over the HTTP API (``/api/v1/incidents/{number}/review``,
``/api/v1/action-items``). Same options, output and exit codes as the incident commands
(``starter.cli.incidents``); errors say what to do next.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from starter.cli.common import CliError
from starter.cli.incidents import (
    DEFAULT_URL,
    JsonOption,
    Number,
    TokenOption,
    UrlOption,
    _number,
    _session,
)

review_app = typer.Typer(
    help="The post-incident review of an incident: show, complete, reschedule, waive, invite.",
    no_args_is_help=True,
)
items_app = typer.Typer(
    help="Action items from post-incident reviews: list, add, done, cancel, reopen, assign.",
    no_args_is_help=True,
)

ItemId = Annotated[int, typer.Argument(min=1, help="Action item id (see `action-items list`).")]
DueOption = Annotated[
    str | None,
    typer.Option(
        "--due",
        help="When it is due: a date (2026-12-01, reminded 09:00 review zone), an ISO instant "
        "with offset, or from now (90m, 36h, 7d, 2w).",
    ),
]


# ---------------------------------------------------------------------------- plumbing
def _due(value: str | None, name: str = "--due") -> str | None:
    """The API's ``due``: a date, an instant with offset, or now + a duration."""
    if value is None:
        return None
    text = value.strip()
    match = re.fullmatch(r"\+?(\d+)\s*([smhdw])", text)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit] * amount
        return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return text
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise typer.BadParameter(
            f"{value!r}: use a date (2026-12-01), an instant with offset "
            "(2026-12-01T16:00+01:00) or a duration from now (90m, 36h, 7d)",
            param_hint=name,
        )
    return parsed.isoformat()


@contextmanager
def _advice(number: str | None = None, item: int | None = None) -> Iterator[None]:
    """Review-specific next steps for the API's refusals."""

    try:
        yield
    except CliError as err:
        if err.status == 409 and number:
            err.hint = f"see the review with `incidentflow review show {number}`"
        elif err.status == 409 and item:
            err.hint = f"see the item with `incidentflow action-items list --id {item}`"
        elif err.status == 404 and number and "review" in err.message:
            err.hint = f"`incidentflow show {number}` shows the incident and its status"
        elif err.status == 404 and item:
            err.hint = "`incidentflow action-items list --status all` shows the items there are"
        elif err.status == 403:
            err.hint = "use a token with the scope this needs (waiving needs admin)"
        raise


def _when(value: str | None, zone: str | None = None) -> str:
    if not value:
        return "—"
    at = datetime.fromisoformat(value)
    utc = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if zone and zone != "UTC":
        from zoneinfo import ZoneInfo

        try:
            local = at.astimezone(ZoneInfo(zone)).strftime("%a %Y-%m-%d %H:%M")
            return f"{local} {zone} ({utc})"
        except (KeyError, ValueError):
            return utc
    return utc


def _item_due(item: dict[str, Any]) -> str:
    due = item.get("due_at") or item.get("due_date")
    if not due:
        return "—"
    text = _when(item["due_at"]) if item.get("due_at") else str(due)
    return f"{text} OVERDUE" if item.get("overdue") else text


def _items_table(out: Any, items: list[dict[str, Any]], title: str) -> None:
    out.table(
        ["id", "incident", "owner", "title", "due", "status"],
        [[i["id"], i["number"], i["owner"], i["title"], _item_due(i), i["status"]] for i in items],
        title=title,
    )


def _show_review(out: Any, data: dict[str, Any], *, postmortem: bool) -> None:
    meeting = data.get("meeting") or {}
    out.line(f"{'review':<13}", f"{data['number']} · {data['status']}")
    if meeting:
        out.line(f"{'meeting':<13}", _when(meeting.get("start"), meeting.get("zone")))
    for key in ("facilitator", "owner", "completed_by", "waived_by", "waived_reason"):
        if data.get(key):
            out.line(f"{key.replace('_', ' '):<13}", str(data[key]))
    if data.get("attendees"):
        out.line(f"{'attendees':<13}", ", ".join(data["attendees"]))
    if data.get("overdue_at"):
        out.line(f"{'overdue at':<13}", _when(data["overdue_at"]))
    if data.get("summary"):
        out.line(f"{'summary':<13}", data["summary"])
    for factor in data.get("contributing_factors") or []:
        out.line(f"{'factor':<13}", factor)
    _items_table(out, data.get("action_items") or [], "Action items")
    if postmortem and data.get("postmortem"):
        out.console.print(data["postmortem"], markup=False, highlight=False)
    elif data.get("postmortem"):
        out.line(f"{'postmortem':<13}", f"`incidentflow review show {data['number']} --postmortem`")


# ---------------------------------------------------------------------------- review
@review_app.command("show")
def review_show(
    number: Number,
    postmortem: Annotated[
        bool, typer.Option("--postmortem", help="Also print the postmortem (markdown).")
    ] = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """The review: status, meeting, facilitator, attendees, action items (and postmortem)."""
    number = _number(number)
    with _session(url, token, as_json) as (api, out), _advice(number):
        data = api.get(f"/incidents/{number}/review", number=number)
        if as_json:
            out.json(data)
            return
        _show_review(out, data, postmortem=postmortem)


def _action_item(value: str) -> dict[str, Any]:
    """``owner:title``, ``owner:title@2026-05-01``, ``owner:title@7d`` or
    ``owner:title@2026-05-01T16:00+02:00``."""
    owner, sep, rest = value.partition(":")
    if not sep or not owner.strip() or not rest.strip():
        raise typer.BadParameter(
            f"{value!r}: write owner:title or owner:title@DUE (a date or 7d)",
            param_hint="--action-item",
        )
    title, at, due = rest.rpartition("@")
    if not at or not re.match(r"\+?\d", due.strip()):
        title, due = rest, ""  # an @ inside the title, not a due
    item: dict[str, Any] = {"owner": owner.strip(), "title": title.strip()}
    if due:
        item["due"] = _due(due, "--action-item")
    return item


@review_app.command("complete")
def review_complete(
    number: Number,
    summary: Annotated[str, typer.Option(help="What happened, in a few sentences.")],
    factor: Annotated[
        list[str] | None, typer.Option("--factor", help="Contributing factor (repeatable).")
    ] = None,
    went_well: Annotated[list[str] | None, typer.Option("--went-well", help="(repeatable)")] = None,
    improve: Annotated[list[str] | None, typer.Option("--improve", help="(repeatable)")] = None,
    action_item: Annotated[
        list[str] | None,
        typer.Option("--action-item", help="owner:title[@DUE], DUE a date or 7d (repeatable)."),
    ] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Complete the review with its action items; this closes the incident."""
    number = _number(number)
    body = {
        "summary": summary,
        "contributing_factors": factor or [],
        "what_went_well": went_well or [],
        "what_to_improve": improve or [],
        "action_items": [_action_item(a) for a in action_item or []],
    }
    with _session(url, token, as_json) as (api, out), _advice(number):
        data = api.post(f"/incidents/{number}/review/complete", body, number=number)
        if as_json:
            out.json(data)
            return
        items = data.get("action_items") or []
        out.ok(f"review of {number} completed; {number} is closed ({len(items)} action items)")
        if items:
            _items_table(out, items, "Action items")
            out.line("next:", "`incidentflow action-items done <id>` when one is finished")


@review_app.command("reschedule")
def review_reschedule(
    number: Number,
    at: Annotated[
        str, typer.Option("--at", help="New start: an ISO instant with offset, or from now (2d).")
    ],
    reason: Annotated[str | None, typer.Option(help="Why (goes into the timeline).")] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move the meeting; everyone gets the updated invite."""
    number = _number(number)
    when = _due(at, "--at")
    if when is not None and re.fullmatch(r"\d{4}-\d{2}-\d{2}", when):
        raise typer.BadParameter("give a time too, e.g. 2026-12-01T14:00+01:00", param_hint="--at")
    body = {"at": when, "reason": reason} if reason else {"at": when}
    with _session(url, token, as_json) as (api, out), _advice(number):
        data = api.post(f"/incidents/{number}/review/reschedule", body, number=number)
        if as_json:
            out.json(data)
            return
        meeting = data.get("meeting") or {}
        out.ok(
            f"review of {number} moved to {_when(meeting.get('start'), meeting.get('zone'))} "
            f"(invite sequence {meeting.get('sequence')})"
        )


@review_app.command("waive")
def review_waive(
    number: Number,
    reason: Annotated[str, typer.Option(help="Why no review is needed.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Skip the review (admin token): closes the incident and cancels the meeting."""
    number = _number(number)
    with _session(url, token, as_json) as (api, out), _advice(number):
        data = api.post(f"/incidents/{number}/review/waive", {"reason": reason}, number=number)
        if as_json:
            out.json(data)
            return
        out.ok(f"review of {number} waived; {number} is closed and the meeting cancelled")


@review_app.command("invite")
def review_invite(
    number: Number,
    people: Annotated[list[str], typer.Argument(help="User names from the policy file.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add attendees: they get the meeting invite."""
    number = _number(number)
    with _session(url, token, as_json) as (api, out), _advice(number):
        data = api.post(f"/incidents/{number}/review/attendees", {"people": people}, number=number)
        if as_json:
            out.json(data)
            return
        out.ok(f"attendees of {number}'s review: {', '.join(data.get('attendees') or [])}")


# ---------------------------------------------------------------------------- action items
@items_app.command("list")
def items_list(
    owner: Annotated[str | None, typer.Option(help="Only this owner's items.")] = None,
    status: Annotated[
        str, typer.Option(help="open, done, cancelled or all.", case_sensitive=False)
    ] = "open",
    overdue: Annotated[bool, typer.Option("--overdue", help="Only open items past due.")] = False,
    incident: Annotated[str | None, typer.Option("--incident", help="Of one incident.")] = None,
    item_id: Annotated[int | None, typer.Option("--id", min=1, help="Just this item.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 200,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Action items, soonest due first."""
    status = status.lower()
    if status not in ("open", "done", "cancelled", "all"):
        raise typer.BadParameter("use open, done, cancelled or all", param_hint="--status")
    params: dict[str, Any] = {"limit": limit}
    if owner:
        params["owner"] = owner
    if status != "all":
        params["status"] = status
    if overdue:
        params["overdue"] = "true"
    if incident:
        params["number"] = _number(incident)
    with _session(url, token, as_json) as (api, out), _advice(item=item_id):
        if item_id is not None:
            items = [api.get(f"/action-items/{item_id}")]
        else:
            items = api.get("/action-items", params=params)["items"]
        if as_json:
            out.json({"items": items})
            return
        _items_table(out, items, "Overdue action items" if overdue else "Action items")


@items_app.command("add")
def items_add(
    number: Number,
    owner: Annotated[str, typer.Option(help="Who does it (a policy user).")],
    title: Annotated[str, typer.Option(help="What is to be done.")],
    due: DueOption = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add an action item to an incident's review; its owner is reminded when it is due."""
    number = _number(number)
    body: dict[str, Any] = {"owner": owner, "title": title}
    if due:
        body["due"] = _due(due)
    with _session(url, token, as_json) as (api, out), _advice(number):
        data = api.post(f"/incidents/{number}/review/action-items", body, number=number)
        if as_json:
            out.json(data)
            return
        out.ok(f"action item {data['id']} added to {number} for {data['owner']}")


def _patch(
    url: str, token: str | None, as_json: bool, item_id: int, body: dict[str, Any], verb: str
) -> None:
    with _session(url, token, as_json) as (api, out), _advice(item=item_id):
        data = api.request("PATCH", f"/action-items/{item_id}", json=body).json()
        if as_json:
            out.json(data)
            return
        out.ok(f"action item {item_id} ({data['title']}, {data['owner']}) {verb}")


@items_app.command("done")
def items_done(
    item_id: ItemId,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Mark an action item done: its reminders stop."""
    _patch(url, token, as_json, item_id, {"status": "done"}, "done")


@items_app.command("cancel")
def items_cancel(
    item_id: ItemId,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel an action item (no longer needed): its reminders stop."""
    _patch(url, token, as_json, item_id, {"status": "cancelled"}, "cancelled")


@items_app.command("reopen")
def items_reopen(
    item_id: ItemId,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Open a done or cancelled action item again."""
    _patch(url, token, as_json, item_id, {"status": "open"}, "reopened")


@items_app.command("assign")
def items_assign(
    item_id: ItemId,
    owner: Annotated[str, typer.Argument(help="The new owner (a policy user).")],
    due: DueOption = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give an action item to someone else (and optionally a new due)."""
    body: dict[str, Any] = {"owner": owner}
    if due:
        body["due"] = _due(due)
    _patch(url, token, as_json, item_id, body, f"assigned to {owner}")


def register(app: typer.Typer, panel: str) -> None:
    app.add_typer(review_app, name="review", rich_help_panel=panel)
    app.add_typer(items_app, name="action-items", rich_help_panel=panel)
