"""The ticketing story: "create jira task and assign to Ravi" becomes one Jira issue, assigned by
accountId, described in ADF, and the outcome goes back on the bus once."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import nats.errors
import pytest
from fakes.jira_fake import FakeJira
from faststream.nats import NatsBroker

from services.contracts import consumers, streams, subjects
from services.contracts.models import Diagnosis, TicketCreated, TicketFailed, TicketRequested
from services.runtime.bus import Bus
from services.runtime.service import ServiceContext
from services.runtime.settings import Settings
from services.ticketing import app
from services.ticketing.jira import JiraClient, JiraError
from services.ticketing.tickets import NOT_CONFIGURED, delivery_key, handle_ticket_request, open_ticket


def _request(assignee: str | None = "Ravi", **overrides: Any) -> TicketRequested:
    fields: dict[str, Any] = {
        "request_id": f"req-{uuid.uuid4().hex[:12]}",
        "incident_id": "a1b2c3",
        "requested_by": "+15551234567",
        "title": "HighErrorRate on inventory",
        "summary": "5xx on POST /api/v1/reservations since 06:02 UTC.",
        "priority": "P2",
        "assignee": assignee,
        "service": "inventory",
        "diagnosis": Diagnosis(
            root_cause="reserve_stock indexes a cache entry that is None for uncached SKUs.",
            affected_file="inventory_service.py",
            line=42,
            evidence=["TypeError: 'NoneType' object is not subscriptable"],
            suggested_fix="Fall back to the database on a cache miss.",
            next_steps=["Hotfix", "Add a regression test"],
        ),
    }
    fields.update(overrides)
    return TicketRequested(**fields)


def _create_bodies(fake: FakeJira) -> list[dict[str, Any]]:
    return [r.json() for r in fake.requests if r.method == "POST" and r.path == "/rest/api/3/issue"]


# --- assignee ----------------------------------------------------------------------------------


async def test_one_match_is_assigned_by_account_id(
    fake_jira: FakeJira, jira: JiraClient, check_issue_request: Callable[[Any], None]
) -> None:
    req = _request("Ravi")

    result = await open_ticket(req, jira, "OPS", "Task")

    assert result == TicketCreated(
        request_id=req.request_id, incident_id="a1b2c3", key="OPS-1", url=f"{fake_jira.url}/browse/OPS-1",
        assignee_name="Ravi Kumar", assignee_account_id="acc-ravi",
    )  # fmt: skip
    (body,) = _create_bodies(fake_jira)
    check_issue_request(body)
    fields = body["fields"]
    assert fields["assignee"] == {"accountId": "acc-ravi"}
    assert fields["project"] == {"key": "OPS"} and fields["issuetype"] == {"name": "Task"}
    assert fields["summary"] == "[P2] HighErrorRate on inventory"
    assert fields["labels"] == ["oncall-agent", "incident-a1b2c3"]
    assert fields["description"]["type"] == "doc"


async def test_several_matches_with_one_exact_first_name_picks_it(
    fake_jira: FakeJira, jira: JiraClient
) -> None:
    # "Priya" matches Priya Raman and Priyanka Shah; only one is called Priya.
    result = await open_ticket(_request("priya"), jira, "OPS", "Task")

    assert isinstance(result, TicketCreated)
    assert (result.assignee_account_id, result.note) == ("acc-priya", None)


async def test_several_equal_matches_leave_it_unassigned_and_name_them(
    fake_jira: FakeJira, jira: JiraClient, check_issue_request: Callable[[Any], None]
) -> None:
    result = await open_ticket(_request("Sam"), jira, "OPS", "Task")

    assert isinstance(result, TicketCreated)
    assert result.assignee_account_id is None and result.assignee_name is None
    assert result.note == "Several people called 'Sam' can be assigned in OPS (Sam Lee, Sam Patel); " \
        "the ticket is unassigned."  # fmt: skip
    (body,) = _create_bodies(fake_jira)
    check_issue_request(body)
    assert "assignee" not in body["fields"]


async def test_nobody_matching_leaves_it_unassigned_with_a_note(
    fake_jira: FakeJira, jira: JiraClient
) -> None:
    result = await open_ticket(_request("Zed"), jira, "OPS", "Task")

    assert isinstance(result, TicketCreated)
    assert result.note == "Nobody called 'Zed' can be assigned in OPS; the ticket is unassigned."
    assert "assignee" not in fake_jira.issues[0]


async def test_no_assignee_asked_means_no_user_search(fake_jira: FakeJira, jira: JiraClient) -> None:
    result = await open_ticket(_request(None), jira, "OPS", "Task")

    assert isinstance(result, TicketCreated) and result.note is None
    assert [r.method for r in fake_jira.requests] == ["POST"]


async def test_a_refused_user_search_still_creates_the_ticket(fake_jira: FakeJira, jira: JiraClient) -> None:
    fake_jira.fail_next(403, {"errorMessages": ["No permission to browse users."], "errors": {}})

    result = await open_ticket(_request("Ravi"), jira, "OPS", "Task")

    assert isinstance(result, TicketCreated) and result.assignee_account_id is None
    assert result.note is not None and "No permission to browse users." in result.note


# --- failures ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("configured", "project_key"), [(False, "OPS"), (True, None)])
async def test_jira_not_configured_fails_with_the_settings_to_set(
    jira: JiraClient, configured: bool, project_key: str | None
) -> None:
    req = _request()

    result = await open_ticket(req, jira if configured else None, project_key, "Task")

    assert result == TicketFailed(request_id=req.request_id, incident_id="a1b2c3", reason=NOT_CONFIGURED)
    assert NOT_CONFIGURED == (
        "Jira is not configured: set JIRA_URL, JIRA_EMAIL, JIRA_API_TOKEN and JIRA_PROJECT_KEY"
    )


async def test_a_400_becomes_a_readable_reason(fake_jira: FakeJira, jira: JiraClient) -> None:
    result = await open_ticket(_request(), jira, "OPS", "Epic")  # JIRA_ISSUE_TYPE the project lacks

    assert isinstance(result, TicketFailed)
    assert result.reason == "Jira did not create the ticket: issuetype: The issue type selected is invalid."


async def test_a_transient_error_is_raised_for_redelivery(fake_jira: FakeJira, jira: JiraClient) -> None:
    fake_jira.fail_next(502)

    with pytest.raises(JiraError) as raised:
        await open_ticket(_request(None), jira, "OPS", "Task")

    assert raised.value.transient
    assert fake_jira.issues == []


async def test_429_with_retry_after_is_created_after_a_retry(fake_jira: FakeJira, jira: JiraClient) -> None:
    fake_jira.fail_next(429, {"errorMessages": ["Rate limit exceeded."], "errors": {}}, {"Retry-After": "1"})

    result = await open_ticket(_request(None), jira, "OPS", "Task")

    assert isinstance(result, TicketCreated) and result.key == "OPS-1"
    assert len(_create_bodies(fake_jira)) == 2 and len(fake_jira.issues) == 1


async def test_summary_is_one_line_within_255_characters(fake_jira: FakeJira, jira: JiraClient) -> None:
    result = await open_ticket(_request(None, title="Checkout\nis down " + "x" * 400), jira, "OPS", "Task")

    assert isinstance(result, TicketCreated)
    summary = fake_jira.issues[0]["summary"]
    assert len(summary) == 255 and summary.startswith("[P2] Checkout is down xx") and summary.endswith("…")


# --- idempotency and the bus ---------------------------------------------------------------------


async def _events(bus: Bus, subject: str, request_id: str) -> list[dict[str, Any]]:
    """Every message on `subject` in the stream for this request (an ephemeral consumer reads them all)."""
    sub = await bus.js.pull_subscribe(subject, stream=streams.EVENTS.name)
    found: list[dict[str, Any]] = []
    try:
        while True:
            for msg in await sub.fetch(100, timeout=0.5):
                body = json.loads(msg.data)
                if body["request_id"] == request_id:
                    found.append(body)
    except nats.errors.TimeoutError:
        return found
    finally:
        await sub.unsubscribe()


async def test_the_same_request_twice_makes_one_jira_issue(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    req = _request("Ravi")

    first = await handle_ticket_request(req, bus, jira, "OPS", "Task")
    second = await handle_ticket_request(req, bus, jira, "OPS", "Task")

    assert isinstance(first, TicketCreated) and second == first
    assert len(fake_jira.issues) == 1 and len(_create_bodies(fake_jira)) == 1
    stored, _ = await bus.kv_get(streams.DELIVERIES, delivery_key(req.request_id), TicketCreated)
    assert stored == first
    created = await _events(bus, subjects.TICKETS_CREATED, req.request_id)
    assert [e["key"] for e in created] == ["OPS-1"]  # the repeat publish was deduplicated


async def test_a_failure_is_published_and_not_remembered(bus: Bus) -> None:
    req = _request()

    result = await handle_ticket_request(req, bus, None, None, "Task")

    assert isinstance(result, TicketFailed)
    assert [e["reason"] for e in await _events(bus, subjects.TICKETS_FAILED, req.request_id)] == [
        NOT_CONFIGURED
    ]
    # Nothing stored: once Jira is configured, a replay of the request creates the ticket.
    assert await bus.kv_get(streams.DELIVERIES, delivery_key(req.request_id), TicketCreated) == (None, 0)


async def test_through_the_broker_a_replayed_request_is_answered_once(
    clean_bus: str, fake_jira: FakeJira, broker: NatsBroker
) -> None:
    settings = Settings(
        NATS_URL=clean_bus, JIRA_URL=fake_jira.url, JIRA_EMAIL=fake_jira.email,
        JIRA_API_TOKEN=fake_jira.api_token, JIRA_PROJECT_KEY="OPS",
    )  # fmt: skip
    bus = Bus(broker)
    parts = app.wire(ServiceContext(settings=settings, broker=broker, bus=bus))
    await broker.connect()
    await bus.declare()
    await broker.start()
    req = _request("Ravi")

    # The same request twice under different Nats-Msg-Ids, as a `nats pub` replay would be.
    await bus.publish_event(subjects.TICKETS_REQUESTED, req, msg_id=f"{req.request_id}-1")
    last = await bus.publish_event(subjects.TICKETS_REQUESTED, req, msg_id=f"{req.request_id}-2")
    await _wait_until_acked(bus, last.seq)
    for hook in parts.on_stop:
        await hook()

    assert len(fake_jira.issues) == 1 and fake_jira.issues[0]["assignee"] == {"accountId": "acc-ravi"}
    created = await _events(bus, subjects.TICKETS_CREATED, req.request_id)
    assert [(e["key"], e["assignee_name"]) for e in created] == [("OPS-1", "Ravi Kumar")]


async def _wait_until_acked(bus: Bus, stream_seq: int) -> None:
    """Until the ticketing consumer has acked everything up to `stream_seq` in the stream."""
    async with asyncio.timeout(10):
        while True:
            info = await bus.js.consumer_info(streams.EVENTS.name, consumers.TICKETING_REQUESTED.durable)
            if info.ack_floor is not None and (info.ack_floor.stream_seq or 0) >= stream_seq:
                return
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("request_id", ["abc", "a.b", ".a", "a..b", "a b", "a*b>", "", "é" * 300])
def test_delivery_keys_are_valid_nats_keys(request_id: str) -> None:
    key = delivery_key(request_id)

    assert all(
        token and all(c.isascii() and (c.isalnum() or c in "-_=") for c in token) for token in key.split(".")
    )
    assert len(key) <= 200


def test_different_ids_never_share_a_delivery_key() -> None:
    ids = ["a b", "a_b", "a*b", "a.b", "a..b", "a.b.", "a_b-"]
    assert len({delivery_key(i) for i in ids}) == len(ids)
