"""The ticketing story: "create jira task and assign to Ravi" becomes one Jira issue per incident,
assigned by accountId, with the mapped priority; a further request comments on it (and reassigns);
an ambiguous name is asked about on WhatsApp; and no redelivery makes a second issue."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from fakes.jira_fake import DEFAULT_SCREEN_FIELDS, FakeJira
from pydantic import BaseModel
from ticketing.conftest import JIRA_EMAIL, JIRA_TOKEN
from ticketing.helpers import published, texts, ticketing_in_memory

from services.contracts import streams, subjects
from services.contracts.models import (
    Diagnosis,
    NotifyText,
    TicketCreated,
    TicketFailed,
    TicketRequested,
)
from services.runtime.bus import Bus
from services.ticketing import records
from services.ticketing.config import TicketingConfig
from services.ticketing.jira import JiraClient, JiraError
from services.ticketing.records import IncidentTicket
from services.ticketing.tickets import NOT_CONFIGURED, handle_ticket_request, report_given_up

CONFIG = TicketingConfig(project_key="OPS")


def _request(assignee: str | None = "Ravi Kumar", **overrides: Any) -> TicketRequested:
    fields: dict[str, Any] = {
        "request_id": f"SM{uuid.uuid4().hex}-create_jira_ticket",
        "incident_id": uuid.uuid4().hex[:6],  # KV outlives a test on the session's server
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


def _again(first: TicketRequested, **overrides: Any) -> TicketRequested:
    """Another request (a new WhatsApp message) about the same incident."""
    return first.model_copy(update={"request_id": f"SM{uuid.uuid4().hex}-create_jira_ticket", **overrides})


def _calls(fake: FakeJira) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in fake.requests]


def _create_bodies(fake: FakeJira) -> list[dict[str, Any]]:
    return [r.json() for r in fake.requests if (r.method, r.path) == ("POST", "/rest/api/3/issue")]


async def _stored(bus: Bus, key: str, model: type[BaseModel]) -> Any:
    value, _ = await bus.kv_get(streams.DELIVERIES, key, model)
    return value


# --- assignee ----------------------------------------------------------------------------------


async def test_one_match_is_assigned_by_account_id_with_labels_and_priority(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    req = _request("Ravi Kumar")

    result = await handle_ticket_request(req, bus, jira, CONFIG)

    assert result == TicketCreated(
        request_id=req.request_id, incident_id=req.incident_id, key="OPS-1",
        url=f"{fake_jira.url}/browse/OPS-1", assignee_name="Ravi Kumar", assignee_account_id="acc-ravi",
    )  # fmt: skip
    (body,) = _create_bodies(fake_jira)
    fields = body["fields"]
    assert fields["assignee"] == {"accountId": "acc-ravi"}
    assert fields["project"] == {"key": "OPS"} and fields["issuetype"] == {"name": "Task"}
    assert fields["summary"] == "[P2] HighErrorRate on inventory"
    assert fields["priority"] == {"name": "High"}
    assert fields["labels"] == [
        "oncall-agent",
        f"oncall-incident-{req.incident_id}",
        f"oncall-request-{req.request_id}",
    ]
    assert fields["description"]["type"] == "doc"
    assert await _stored(bus, records.incident_key(req.incident_id), IncidentTicket) == IncidentTicket(
        key="OPS-1", url=f"{fake_jira.url}/browse/OPS-1", priority="P2"
    )


async def test_several_matches_with_one_exact_first_name_picks_it(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    # "Priya" matches Priya Raman and Priyanka Shah; only one is called Priya.
    result = await handle_ticket_request(_request("priya"), bus, jira, CONFIG)

    assert isinstance(result, TicketCreated)
    assert (result.assignee_account_id, result.note) == ("acc-priya", None)


async def test_several_matches_ask_on_whatsapp_and_create_nothing(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    req = _request("Ravi")  # Ravi Kumar and Ravi Shah; Ravindra is deactivated

    result = await handle_ticket_request(req, bus, jira, CONFIG)

    expected = (
        "Several people match 'Ravi': Ravi Kumar, Ravi Shah. "
        "Reply `create jira task and assign to Ravi Kumar`."
    )
    assert isinstance(result, NotifyText) and result.text == expected
    assert result.incident_id == req.incident_id and result.recipients is None  # every on-call number
    assert _calls(fake_jira) == [("GET", "/rest/api/3/user/assignable/search")]
    (question,) = await published(bus, subjects.NOTIFY_TEXT, "incident_id", req.incident_id)
    assert question["text"] == expected
    assert await published(bus, subjects.TICKETS_CREATED, "request_id", req.request_id) == []
    assert await _stored(bus, records.result_key(req.request_id), TicketCreated) is None


async def test_the_question_for_a_new_ticket_keeps_asking_for_a_new_one(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    result = await handle_ticket_request(_request("Ravi", new_ticket=True), bus, jira, CONFIG)

    assert isinstance(result, NotifyText)
    assert result.text.endswith("Reply `create new jira task and assign to Ravi Kumar`.")


async def test_nobody_matching_leaves_it_unassigned_with_a_note(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    result = await handle_ticket_request(_request("Zed"), bus, jira, CONFIG)

    assert isinstance(result, TicketCreated) and result.assignee_name is None
    assert result.note == "Nobody called 'Zed' can be assigned in OPS; the ticket is unassigned."
    assert "assignee" not in fake_jira.issues[0]


async def test_no_assignee_asked_means_no_user_search(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    result = await handle_ticket_request(_request(None), bus, jira, CONFIG)

    assert isinstance(result, TicketCreated) and result.note is None
    assert _calls(fake_jira) == [("POST", "/rest/api/3/search/jql"), ("POST", "/rest/api/3/issue")]


async def test_a_refused_user_search_still_creates_the_ticket(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    fake_jira.fail_next(403, {"errorMessages": ["No permission to browse users."], "errors": {}})

    result = await handle_ticket_request(_request("Ravi"), bus, jira, CONFIG)

    assert isinstance(result, TicketCreated) and result.assignee_account_id is None
    assert result.note is not None and "No permission to browse users." in result.note


# --- priority ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("priority", "name"), [("P1", "Highest"), ("P2", "High"), ("P3", "Medium"), ("P4", "Low")]
)
async def test_priorities_map_to_jira_names_by_default(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus, priority: str, name: str
) -> None:
    await handle_ticket_request(_request(None, priority=priority), bus, jira, CONFIG)

    assert fake_jira.issues[0]["priority"] == {"name": name}
    assert fake_jira.issues[0]["summary"].startswith(f"[{priority}] ")


async def test_a_custom_priority_map_and_an_unmapped_priority(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    fake_jira.priorities = {"1": "Blocker", "2": "Critical", "3": "Major"}
    config = TicketingConfig(project_key="OPS", priority_names={"P1": "Blocker", "P2": "Critical"})

    await handle_ticket_request(_request(None, priority="P1"), bus, jira, config)
    await handle_ticket_request(_request(None, priority="P3"), bus, jira, config)

    assert fake_jira.issues[0]["priority"] == {"name": "Blocker"}
    assert "priority" not in fake_jira.issues[1]  # unmapped: the project's default applies


async def test_priority_not_on_the_screen_is_dropped_once_and_the_human_told(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    fake_jira.screen_fields = DEFAULT_SCREEN_FIELDS - {"priority"}

    result = await handle_ticket_request(_request(None, priority="P1"), bus, jira, CONFIG)

    assert isinstance(result, TicketCreated) and result.key == "OPS-1"
    first, second = _create_bodies(fake_jira)
    assert first["fields"]["priority"] == {"name": "Highest"} and "priority" not in second["fields"]
    assert len(fake_jira.issues) == 1
    assert result.note == (
        "Jira refused the priority Highest (Field 'priority' cannot be set. It is not on the appropriate "
        "screen, or unknown.), so the ticket has the project's default priority."
    )


# --- failures ------------------------------------------------------------------------------------


@pytest.mark.parametrize("project_key", ["OPS", None])
async def test_jira_not_configured_fails_with_the_settings_to_set(
    jira: JiraClient, bus: Bus, project_key: str | None
) -> None:
    req = _request()

    result = await handle_ticket_request(
        req, bus, None if project_key else jira, TicketingConfig(project_key=project_key)
    )

    assert result == TicketFailed(
        request_id=req.request_id, incident_id=req.incident_id, reason=NOT_CONFIGURED
    )
    assert NOT_CONFIGURED == (
        "Jira is not configured: set JIRA_URL, JIRA_EMAIL, JIRA_API_TOKEN and JIRA_PROJECT_KEY"
    )
    assert [
        e["reason"] for e in await published(bus, subjects.TICKETS_FAILED, "request_id", req.request_id)
    ] == [NOT_CONFIGURED]
    # Nothing stored: once Jira is configured, a replay of the request creates the ticket.
    assert await _stored(bus, records.result_key(req.request_id), TicketCreated) is None


async def test_a_400_becomes_a_readable_reason_and_leaves_no_intent(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    req = _request()
    config = TicketingConfig(project_key="OPS", issue_type="Epic")  # JIRA_ISSUE_TYPE the project lacks

    result = await handle_ticket_request(req, bus, jira, config)

    assert isinstance(result, TicketFailed)
    assert result.reason == "Jira did not create the ticket: issuetype: The issue type selected is invalid."
    assert await _stored(bus, records.intent_key(req.request_id), records.TicketIntent) is None


NO_ISSUES = {"issues": [], "isLast": True}


async def test_a_transient_error_on_create_is_raised_for_redelivery_not_resent(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    fake_jira.fail_next(200, NO_ISSUES)  # the incident search
    fake_jira.fail_next(502)  # Jira may have created it: the redelivery searches first

    with pytest.raises(JiraError) as raised:
        await handle_ticket_request(_request(None), bus, jira, CONFIG)

    assert raised.value.transient
    assert len(_create_bodies(fake_jira)) == 1 and fake_jira.issues == []


async def test_429_with_retry_after_is_created_after_a_retry(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    fake_jira.fail_next(200, NO_ISSUES)
    fake_jira.fail_next(429, {"errorMessages": ["Rate limit exceeded."], "errors": {}}, {"Retry-After": "1"})

    result = await handle_ticket_request(_request(None), bus, jira, CONFIG)

    assert isinstance(result, TicketCreated) and result.key == "OPS-1"
    assert len(_create_bodies(fake_jira)) == 2 and len(fake_jira.issues) == 1


async def test_summary_is_one_line_within_255_characters(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    title = "Checkout\nis down " + "x" * 400

    result = await handle_ticket_request(_request(None, title=title), bus, jira, CONFIG)

    assert isinstance(result, TicketCreated)
    summary = fake_jira.issues[0]["summary"]
    assert len(summary) == 255 and summary.startswith("[P2] Checkout is down xx") and summary.endswith("…")


# --- one ticket per incident -----------------------------------------------------------------------


async def test_a_second_request_comments_and_reassigns_instead_of_a_second_issue(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    first = _request("Ravi Kumar")
    await handle_ticket_request(first, bus, jira, CONFIG)
    second = _again(first, assignee="Alice", priority="P1", requested_by="Priya (+15557654321)")

    result = await handle_ticket_request(second, bus, jira, CONFIG)

    assert isinstance(result, TicketCreated)
    assert (result.key, result.assignee_name, result.assignee_account_id) == (
        "OPS-1",
        "Alice Smith",
        "acc-alice",
    )
    assert result.note == (
        "OPS-1 is already open for this incident, so the request was added to it as a comment "
        "(ask for a *new* ticket to open a separate one)."
    )
    assert len(fake_jira.issues) == 1
    assert _calls(fake_jira)[-2:] == [
        ("PUT", "/rest/api/3/issue/OPS-1/assignee"),
        ("POST", "/rest/api/3/issue/OPS-1/comment"),
    ]
    assert fake_jira.issues[0]["assignee"] == {"accountId": "acc-alice"}
    (comment,) = fake_jira.comments("OPS-1")
    assert texts(comment) == [
        f"Priya (+15557654321) asked again for a ticket for incident #{first.incident_id} from WhatsApp; "
        "this ticket already covers it.",
        "Assigned to Alice Smith.",
        "Priority asked: P1 (Highest).",
    ]
    recorded = await _stored(bus, records.incident_key(first.incident_id), IncidentTicket)
    assert recorded.priority == "P1"


async def test_a_plain_repeat_comments_who_asked_and_changes_nothing(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    first = _request("Ravi Kumar")
    await handle_ticket_request(first, bus, jira, CONFIG)

    result = await handle_ticket_request(_again(first, assignee=None), bus, jira, CONFIG)

    assert isinstance(result, TicketCreated) and result.key == "OPS-1" and result.assignee_name is None
    assert ("PUT", "/rest/api/3/issue/OPS-1/assignee") not in _calls(fake_jira)
    (comment,) = fake_jira.comments("OPS-1")
    assert len(texts(comment)) == 1  # who asked; same priority, nobody new
    assert fake_jira.issues[0]["assignee"] == {"accountId": "acc-ravi"}


async def test_new_ticket_opens_a_second_issue_which_then_takes_the_follow_ups(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    first = _request(None)
    await handle_ticket_request(first, bus, jira, CONFIG)

    separate = await handle_ticket_request(_again(first, new_ticket=True), bus, jira, CONFIG)
    follow_up = await handle_ticket_request(_again(first), bus, jira, CONFIG)

    assert isinstance(separate, TicketCreated) and separate.key == "OPS-2" and separate.note is None
    assert len(fake_jira.issues) == 2
    assert isinstance(follow_up, TicketCreated) and follow_up.key == "OPS-2"
    assert fake_jira.comments("OPS-1") == [] and len(fake_jira.comments("OPS-2")) == 1


async def test_without_a_kv_record_the_incident_ticket_is_found_by_its_label(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    # A ticket from before KV was lost (or from a replica with another bucket): Jira still knows it.
    req = _request(None, priority="P3")
    key = fake_jira.add_issue(
        {"summary": "[P2] HighErrorRate on inventory", "labels": [f"oncall-incident-{req.incident_id}"]}
    )

    result = await handle_ticket_request(req, bus, jira, CONFIG)

    assert isinstance(result, TicketCreated) and result.key == key
    assert _create_bodies(fake_jira) == []
    (search,) = [r.json() for r in fake_jira.requests if r.path == "/rest/api/3/search/jql"]
    assert search == {
        "jql": f'project = "OPS" AND labels = "oncall-incident-{req.incident_id}" ORDER BY created DESC',
        "maxResults": 2,
        "fields": ["status"],
    }
    (comment,) = fake_jira.comments(key)
    assert texts(comment)[-1] == "Priority asked: P3 (Medium)."  # the ticket's priority is unknown


# --- idempotency -----------------------------------------------------------------------------------


async def test_the_same_request_twice_makes_one_jira_issue(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    req = _request("Ravi Kumar")

    first = await handle_ticket_request(req, bus, jira, CONFIG)
    second = await handle_ticket_request(req, bus, jira, CONFIG)

    assert isinstance(first, TicketCreated) and second == first
    assert len(fake_jira.issues) == 1 and len(_create_bodies(fake_jira)) == 1
    assert fake_jira.comments("OPS-1") == []
    assert await _stored(bus, records.result_key(req.request_id), TicketCreated) == first
    created = await published(bus, subjects.TICKETS_CREATED, "request_id", req.request_id)
    assert [e["key"] for e in created] == ["OPS-1"]  # the repeat publish was deduplicated


async def test_a_redelivery_after_a_crash_between_create_and_record_finds_the_issue_by_label(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    req = _request("Ravi Kumar")
    put = records.put

    async def dies_before_recording(bus: Bus, key: str, value: BaseModel) -> None:
        if key == records.incident_key(req.incident_id):
            raise RuntimeError("killed")  # the process dies right after Jira created the issue
        await put(bus, key, value)

    monkeypatch.setattr(records, "put", dies_before_recording)
    with pytest.raises(RuntimeError):
        await handle_ticket_request(req, bus, jira, CONFIG)
    monkeypatch.setattr(records, "put", put)
    assert len(fake_jira.issues) == 1
    assert await _stored(bus, records.intent_key(req.request_id), records.TicketIntent) is not None

    result = await handle_ticket_request(req, bus, jira, CONFIG)  # the redelivery

    assert isinstance(result, TicketCreated) and result.key == "OPS-1"
    assert result.assignee_name == "Ravi Kumar"
    assert len(fake_jira.issues) == 1 and fake_jira.comments("OPS-1") == []
    searches = [r.json()["jql"] for r in fake_jira.requests if r.path == "/rest/api/3/search/jql"]
    assert (
        searches[-1]
        == f'project = "OPS" AND labels = "oncall-request-{req.request_id}" ORDER BY created DESC'
    )
    assert await _stored(bus, records.incident_key(req.incident_id), IncidentTicket) is not None
    created = await published(bus, subjects.TICKETS_CREATED, "request_id", req.request_id)
    assert [e["key"] for e in created] == ["OPS-1"]


async def test_a_create_answered_after_the_client_timeout_makes_one_issue_despite_search_lag(
    fake_jira: FakeJira, bus: Bus
) -> None:
    # Jira takes longer than the client waits, and its search finds the issue only later still.
    fake_jira.create_answer_seconds = 1.0
    fake_jira.search_lag_seconds = 1.5
    impatient = JiraClient(fake_jira.url, JIRA_EMAIL, JIRA_TOKEN, timeout=httpx.Timeout(0.3))
    config = TicketingConfig(project_key="OPS", create_settle_seconds=10.0, search_poll_seconds=0.2)
    req = _request("Ravi Kumar")
    try:
        with pytest.raises(JiraError) as lost:
            await handle_ticket_request(req, bus, impatient, config)
        assert lost.value.status is None and lost.value.transient  # no answer: the outcome is unknown

        result = await handle_ticket_request(req, bus, impatient, config)  # the redelivery
    finally:
        await impatient.aclose()

    assert isinstance(result, TicketCreated) and result.key == "OPS-1"
    assert len(fake_jira.issues) == 1 and len(_create_bodies(fake_jira)) == 1


async def test_two_deliveries_racing_make_one_issue(fake_jira: FakeJira, jira: JiraClient, bus: Bus) -> None:
    fake_jira.create_answer_seconds = 0.5
    fake_jira.search_lag_seconds = 0.5
    config = TicketingConfig(project_key="OPS", create_settle_seconds=10.0, search_poll_seconds=0.2)
    req = _request(None)

    first, second = await asyncio.gather(
        handle_ticket_request(req, bus, jira, config), handle_ticket_request(req, bus, jira, config)
    )

    assert isinstance(first, TicketCreated) and first.key == "OPS-1" and second.key == "OPS-1"
    assert len(fake_jira.issues) == 1


async def test_a_create_lost_before_jira_made_it_is_made_after_the_search_settles(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    config = TicketingConfig(project_key="OPS", create_settle_seconds=0.5, search_poll_seconds=0.1)
    req = _request(None)
    # A delivery announced its create and died before sending it.
    assert await records.claim_intent(bus, req.request_id, req.incident_id) is None

    result = await handle_ticket_request(req, bus, jira, config)

    assert isinstance(result, TicketCreated) and len(fake_jira.issues) == 1


async def test_a_redelivered_new_ticket_request_finds_its_own_issue_not_the_first(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _request(None)
    await handle_ticket_request(first, bus, jira, CONFIG)
    separate = _again(first, new_ticket=True)
    put = records.put

    async def dies_before_recording(bus: Bus, key: str, value: BaseModel) -> None:
        if key == records.incident_key(first.incident_id):
            raise RuntimeError("killed")
        await put(bus, key, value)

    monkeypatch.setattr(records, "put", dies_before_recording)
    with pytest.raises(RuntimeError):
        await handle_ticket_request(separate, bus, jira, CONFIG)
    monkeypatch.setattr(records, "put", put)

    result = await handle_ticket_request(separate, bus, jira, CONFIG)

    assert isinstance(result, TicketCreated) and result.key == "OPS-2"
    assert len(fake_jira.issues) == 2


# --- the wired handler ----------------------------------------------------------------------------


async def test_the_wired_handler_answers_a_replayed_request_once(fake_jira: FakeJira, bus: Bus) -> None:
    req = _request("Ravi Kumar", priority="P1")

    async with ticketing_in_memory(bus, fake_jira, JIRA_PRIORITY_MAP="P1=Highest") as broker:
        # The same request delivered twice, as a `nats pub` replay (another Nats-Msg-Id) makes it.
        await broker.publish(req.to_bytes(), subjects.TICKETS_REQUESTED)
        await broker.publish(req.to_bytes(), subjects.TICKETS_REQUESTED)

    assert len(fake_jira.issues) == 1 and fake_jira.issues[0]["assignee"] == {"accountId": "acc-ravi"}
    assert fake_jira.issues[0]["priority"] == {"name": "Highest"}
    created = await published(bus, subjects.TICKETS_CREATED, "request_id", req.request_id)
    assert [(e["key"], e["assignee_name"]) for e in created] == [("OPS-1", "Ravi Kumar")]


async def test_a_request_given_up_on_is_reported_to_the_person_with_the_reason(bus: Bus) -> None:
    req = _request("Ravi Kumar")

    await report_given_up(req, "Jira unreachable: no answer (gave up after 5 tries)", bus)

    (failed,) = await published(bus, subjects.TICKETS_FAILED, "request_id", req.request_id)
    assert failed["reason"].endswith("Jira unreachable: no answer (gave up after 5 tries)")
    assert failed["in_reply_to"] == req.in_reply_to
