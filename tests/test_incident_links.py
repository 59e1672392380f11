"""Links between incidents over the API, the CLI, the dashboard and the postmortem: the inverse
kept by the other incident (its own Update), both sides in PostgreSQL (so an ended incident
shows them), a resolved parent offering, never forcing, to resolve its children. A real
worker, Temporal and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from html import unescape
from typing import Any

import pytest_asyncio
from temporalio.client import Client

from activities.reviews.rendering import PostmortemRenderer
from schemas.enums import LinkKind, Status
from schemas.incident import Alert
from schemas.incident_links import LinkedIncident
from tests.conftest import wait_for
from tests.support_cli import INCIDENTFLOW, clean_env
from tests.support_incidents import make_policy, record_history, running_stack
from tests.support_surfaces import Live, live_app
from tests.test_dashboard import signed_in
from tests.test_review_documents import review as review_state


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def live(temporal_client: Client, database_url: str) -> AsyncIterator[Live]:
    async with live_app(temporal_client, database_url, f"tq-links-{uuid.uuid4()}") as app:
        yield app


async def link_rows(live: Live, *numbers: str) -> set[tuple[str, str, str]]:
    rows = await live.stack.rows(
        "SELECT number, kind, other FROM incident_links WHERE number = ANY(%s)", list(numbers)
    )
    return {(r["number"], r["kind"], r["other"]) for r in rows}


async def snapshot(live: Live, number: str) -> dict[str, Any]:
    response = await live.http.get(f"/api/v1/incidents/{number}", headers=live.auth("read"))
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(INCIDENTFLOW), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=clean_env(),
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_links_keep_their_inverse_and_a_parent_offers_to_resolve_children(
    live: Live,
) -> None:
    parent = (await live.trigger("Region eu-west-1 degraded"))["number"]
    child = (await live.trigger("Checkout 5xx in eu-west-1"))["number"]
    effect = (await live.trigger("Support queue spike"))["number"]
    respond = live.auth("respond")

    url = f"/api/v1/incidents/{child}/links"
    made = await live.http.post(url, json={"kind": "child_of", "number": parent}, headers=respond)
    assert made.status_code == 200, made.text
    assert made.json()["incident_links"] == [{"kind": "child_of", "number": parent}]
    # the parent learnt the inverse through its own Update
    parent_state = await snapshot(live, parent)
    assert parent_state["incident_links"] == [{"kind": "parent_of", "number": child}]
    linked = [e for e in parent_state["timeline"] if e["kind"] == "linked"]
    assert linked[-1]["details"] == {"kind": "parent_of", "number": child, "inverse": True}
    caused = await live.http.post(
        f"/api/v1/incidents/{effect}/links",
        json={"kind": "caused_by", "number": parent},
        headers=respond,
    )
    assert caused.status_code == 200, caused.text

    # refused: itself, an unknown incident, twice, an unknown kind, the read scope
    for body, status in (
        ({"kind": "related", "number": child}, 409),
        ({"kind": "related", "number": "INC-999999999"}, 404),
        ({"kind": "child_of", "number": parent}, 409),
        ({"kind": "sibling_of", "number": parent}, 422),
    ):
        refused = await live.http.post(url, json=body, headers=respond)
        assert refused.status_code == status, (body, refused.text)
    forbidden = await live.http.post(
        url, json={"kind": "related", "number": effect}, headers=live.auth("read")
    )
    assert forbidden.status_code == 403

    want = {
        (child, "child_of", parent),
        (parent, "parent_of", child),
        (effect, "caused_by", parent),
        (parent, "causes", effect),
    }

    async def both_sides() -> bool:
        return await link_rows(live, parent, child, effect) == want

    await wait_for(both_sides, message="both sides of both links in incident_links")

    # resolving the parent leaves the child open, and the parent's page offers it
    resolved = await live.http.post(
        f"/api/v1/incidents/{parent}/resolve", json={"resolution": "failover"}, headers=respond
    )
    assert resolved.status_code == 200
    assert (await snapshot(live, child))["status"] == Status.TRIGGERED.value
    await record_history(live.stack, parent, "incident_links_parent_child")
    async with signed_in(live, "responder") as client:
        page = await client.get(f"/dashboard/incidents/{parent}")
        assert 'id="children-offer"' in page.text
        section = page.text[page.text.index('id="links"') :]
        assert f'data-number="{child}" data-kind="parent_of"' in section
        assert f'data-number="{effect}" data-kind="causes"' in section
        assert f'id="resolve-child-{effect}"' not in section  # not a child
        form = re.search(rf'id="resolve-child-{child}">(.*?)</form>', section, re.S)
        assert form is not None
        csrf = re.search(r'name="csrf" value="([^"]*)"', form.group(1))
        assert csrf is not None
        done = await client.post(
            f"/dashboard/incidents/{child}/act",
            data={"csrf": unescape(csrf.group(1)), "action": "resolve", "resolution": "parent"},
        )
        assert done.status_code == 303, done.text
        assert (await snapshot(live, child))["status"] == Status.RESOLVED.value
        again = await client.get(f"/dashboard/incidents/{parent}")
        assert 'id="children-offer"' not in again.text
        # the Link form of the incident page: the other incident learns the inverse too
        form_page = (await client.get(f"/dashboard/incidents/{effect}")).text
        assert 'id="form-link"' in form_page and 'id="form-unlink"' not in form_page
        csrf_field = re.search(r'name="csrf" value="([^"]*)"', form_page)
        assert csrf_field is not None
        linked_here = await client.post(
            f"/dashboard/incidents/{effect}/act",
            data={
                "csrf": unescape(csrf_field.group(1)),
                "action": "link",
                "kind": "related",
                "other": child,
                "inverse": "true",  # not a field of the form: ignored
            },
        )
        assert linked_here.status_code == 303, linked_here.text
        assert (await snapshot(live, child))["incident_links"][-1] == {
            "kind": "related",
            "number": effect,
        }
        want |= {(effect, "related", child), (child, "related", effect)}

    # unlink: both sides go, from both workflows and from PostgreSQL
    gone = await live.http.request(
        "DELETE",
        f"/api/v1/incidents/{effect}/links",
        json={"kind": "caused_by", "number": parent},
        headers=respond,
    )
    assert gone.status_code == 200, gone.text
    assert gone.json()["incident_links"] == [{"kind": "related", "number": child}]
    assert (await snapshot(live, parent))["incident_links"] == [
        {"kind": "parent_of", "number": child}
    ]
    want -= {(effect, "caused_by", parent), (parent, "causes", effect)}
    await wait_for(both_sides, message="the unlinked rows gone")


async def test_cli_links_and_an_ended_incident_keeps_its_side(live: Live) -> None:
    open_one = (await live.trigger("Search latency above 2s"))["number"]
    ended = (await live.trigger("Search latency (false alarm)"))["number"]
    cancelled = await live.http.post(
        f"/api/v1/incidents/{ended}/cancel", json={"reason": "noise"}, headers=live.auth("respond")
    )
    assert cancelled.status_code == 200
    await live.ticket(ended, status="closed")

    base = ("--url", live.url, "--token", live.token("admin"))
    code, out, err = await cli("link", open_one, "related", ended, *base, "--json")
    assert code == 0, err
    assert json.loads(out)["incident_links"] == [{"kind": "related", "number": ended}]

    async def linked() -> bool:
        rows = await link_rows(live, open_one, ended)
        return rows == {(open_one, "related", ended), (ended, "related", open_one)}

    await wait_for(linked, message="both sides, the ended incident's from the open one's event")
    async with signed_in(live, "read") as client:
        page = await client.get(f"/dashboard/incidents/{ended}")
        section = page.text[page.text.index('id="links"') :]
        assert f'data-number="{open_one}" data-kind="related"' in section

    code, out, err = await cli("show", open_one, *base)
    assert code == 0 and "related" in out and ended in out, out + err
    code, _, err = await cli("link", open_one, "sibling_of", ended, *base)
    assert code != 0 and "kind" in err
    code, out, err = await cli("unlink", open_one, "related", ended, *base, "--json")
    assert code == 0, err
    assert json.loads(out)["incident_links"] == []

    # resolving a parent from the CLI names its open child and how to resolve it
    parent = (await live.trigger("Search cluster red"))["number"]
    child = (await live.trigger("Search latency, again"))["number"]
    code, _, err = await cli("link", child, "child_of", parent, *base)
    assert code == 0, err
    code, out, err = await cli("resolve", parent, *base)
    assert code == 0, err
    assert f"{child} (triggered) is a child of {parent}" in out
    assert (await snapshot(live, child))["status"] == "triggered"  # offered, not done

    async def unlinked() -> bool:
        return await link_rows(live, open_one, ended) == set()

    await wait_for(unlinked, message="the link gone from incident_links")


def test_the_postmortem_lists_related_incidents() -> None:
    review = review_state()
    at = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    links = [
        LinkedIncident(
            kind=LinkKind.PARENT_OF,
            number="INC-8",
            title="Checkout | 5xx",
            status=Status.CLOSED,
            linked_at=at,
        ),
        LinkedIncident(kind=LinkKind.CAUSED_BY, number="INC-3", linked_at=at),
    ]
    text = PostmortemRenderer().render(review, [], links)
    section = text[text.index("## Related incidents") : text.index("## Timeline")]
    number = review.incident.number
    assert f"- {number} parent of INC-8: Checkout | 5xx (closed)\n" in section
    assert f"- {number} caused by INC-3\n" in section
    assert "## Related incidents" not in PostmortemRenderer().render(review, [])


async def test_a_link_to_an_incident_whose_worker_is_gone_answers_promptly(
    live: Live, temporal_client: Client, database_url: str
) -> None:
    """An open incident whose worker stopped (here: its task queue has none any more; in the
    full suite, the fuzz's ``INC-1`` is an earlier test's) admits the inverse Update and
    never answers it: the link answers anyway, both sides in the ticket store."""
    policy = make_policy()
    orphan_queue = f"tq-links-orphan-{uuid.uuid4()}"
    async with running_stack(
        temporal_client, database_url, orphan_queue, policy, start_worker=False
    ) as gone:
        async with gone.worker():
            ref = await gone.client.trigger(
                Alert(service="checkout", title="Orphaned", dedup_key=str(uuid.uuid4()))
            )
    here = (await live.trigger("Linked to an incident nobody serves"))["number"]

    started = time.monotonic()
    made = await live.http.post(
        f"/api/v1/incidents/{here}/links",
        json={"kind": "causes", "number": ref.number},
        headers=live.auth("respond"),
    )
    assert made.status_code == 200, made.text
    assert time.monotonic() - started < 5, "the link waited for the other incident"
    assert made.json()["incident_links"] == [{"kind": "causes", "number": ref.number}]

    async def both_sides() -> bool:
        rows = await link_rows(live, here, ref.number)
        return rows == {(here, "causes", ref.number), (ref.number, "caused_by", here)}

    await wait_for(both_sides, message="both sides in incident_links")
