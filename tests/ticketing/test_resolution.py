"""When the incident resolves, its ticket says so: a comment with the times and, when
JIRA_RESOLVE_TRANSITION is set, the workflow transition of that name. No ticket: nothing."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fakes.jira_fake import FakeJira
from faststream.nats import NatsBroker
from ticketing.helpers import run_ticketing, texts, wait_until_acked

from services.contracts import consumers, subjects
from services.contracts.models import IncidentResolved
from services.runtime.bus import Bus
from services.ticketing import records
from services.ticketing.config import TicketingConfig
from services.ticketing.jira import JiraClient
from services.ticketing.records import IncidentTicket
from services.ticketing.resolution import handle_incident_resolved

COMMENT_ONLY = TicketingConfig(project_key="OPS")
CLOSE_AS_DONE = TicketingConfig(project_key="OPS", resolve_transition="done")  # any case
TRANSITIONS = "/rest/api/3/issue/OPS-1/transitions"


def _resolved(**overrides: Any) -> IncidentResolved:
    fields: dict[str, Any] = {
        "incident_id": uuid.uuid4().hex[:6],
        "title": "HighErrorRate on inventory",
        "started_at": datetime(2024, 5, 1, 6, 2, tzinfo=UTC),
        "resolved_at": datetime(2024, 5, 1, 7, 25, 30, tzinfo=UTC),
    }
    fields.update(overrides)
    return IncidentResolved(**fields)


async def _with_ticket(fake: FakeJira, bus: Bus, event: IncidentResolved) -> str:
    """The incident's ticket, as ticketing records it when it creates one."""
    key = fake.add_issue({"summary": "[P1] HighErrorRate on inventory", "labels": ["oncall-agent"]})
    ticket = IncidentTicket(key=key, url=f"{fake.url}/browse/{key}", priority="P1")
    await records.put(bus, records.incident_key(event.incident_id), ticket)
    return key


def _calls(fake: FakeJira) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in fake.requests]


async def test_resolution_comments_the_duration_and_applies_the_transition(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    event = _resolved()
    key = await _with_ticket(fake_jira, bus, event)

    assert await handle_incident_resolved(event, bus, jira, CLOSE_AS_DONE) == key

    (comment,) = fake_jira.comments(key)
    assert texts(comment) == [
        f"Resolved after 1 h 23 min: from 06:02 to 07:25 UTC on 2024-05-01 (incident #{event.incident_id})."
    ]
    assert _calls(fake_jira) == [
        ("POST", "/rest/api/3/issue/OPS-1/comment"),
        ("GET", TRANSITIONS),
        ("POST", TRANSITIONS),
    ]
    assert fake_jira.requests[-1].json() == {"transition": {"id": "31"}}
    assert fake_jira.status(key) == "Done"


async def test_without_a_transition_configured_only_the_comment(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    event = _resolved()
    key = await _with_ticket(fake_jira, bus, event)

    await handle_incident_resolved(event, bus, jira, COMMENT_ONLY)

    assert _calls(fake_jira) == [("POST", "/rest/api/3/issue/OPS-1/comment")]
    assert fake_jira.status(key) == "To Do"


async def test_an_incident_without_a_ticket_changes_nothing(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    event = _resolved()

    assert await handle_incident_resolved(event, bus, jira, CLOSE_AS_DONE) is None

    (search,) = fake_jira.requests  # KV had nothing, so Jira was asked by label: nothing either
    assert search.json()["jql"] == (
        f'project = "OPS" AND labels = "oncall-incident-{event.incident_id}" ORDER BY created DESC'
    )


async def test_without_kv_the_ticket_is_found_by_label_or_by_the_events_key(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    by_label = _resolved()
    labelled = fake_jira.add_issue({"summary": "s", "labels": [f"oncall-incident-{by_label.incident_id}"]})
    known = fake_jira.add_issue({"summary": "s"})

    assert await handle_incident_resolved(by_label, bus, jira, COMMENT_ONLY) == labelled
    assert await handle_incident_resolved(_resolved(ticket_key=known), bus, jira, COMMENT_ONLY) == known
    assert len(fake_jira.comments(labelled)) == 1 and len(fake_jira.comments(known)) == 1


async def test_a_redelivery_after_a_failed_transition_does_not_comment_twice(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    event = _resolved()
    key = await _with_ticket(fake_jira, bus, event)
    fake_jira.fail_next(201, {"id": "10000"})  # the comment
    fake_jira.fail_next(503, headers={"Retry-After": "0"}, times=3)  # the transitions query, every try

    with pytest.raises(Exception, match="503"):
        await handle_incident_resolved(event, bus, jira, CLOSE_AS_DONE)
    assert await handle_incident_resolved(event, bus, jira, CLOSE_AS_DONE) == key  # the redelivery
    assert await handle_incident_resolved(event, bus, jira, CLOSE_AS_DONE) == key  # a replay

    comments = [c for c in _calls(fake_jira) if c[1].endswith("/comment")]
    assert len(comments) == 1
    assert fake_jira.status(key) == "Done"
    assert _calls(fake_jira).count(("POST", TRANSITIONS)) == 1


async def test_a_transition_the_workflow_does_not_offer_leaves_the_ticket_as_it_is(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    event = _resolved()
    key = await _with_ticket(fake_jira, bus, event)
    config = TicketingConfig(project_key="OPS", resolve_transition="Close Issue")

    assert await handle_incident_resolved(event, bus, jira, config) == key

    assert len(fake_jira.comments(key)) == 1 and fake_jira.status(key) == "To Do"
    assert ("POST", TRANSITIONS) not in _calls(fake_jira)
    assert "no transition 'Close Issue' available (offered: In Progress, Done)" in caplog.text


async def test_a_deleted_ticket_is_logged_not_retried(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    event = _resolved()
    await records.put(bus, records.incident_key(event.incident_id), IncidentTicket(key="OPS-404", url="u"))
    caplog.set_level(logging.WARNING)

    assert await handle_incident_resolved(event, bus, jira, CLOSE_AS_DONE) == "OPS-404"

    assert "Issue does not exist" in caplog.text
    assert await handle_incident_resolved(event, bus, jira, CLOSE_AS_DONE) == "OPS-404"
    assert len(fake_jira.requests) == 1  # recorded as done: the replay did not try again


async def test_without_jira_a_resolution_is_ignored(bus: Bus) -> None:
    assert await handle_incident_resolved(_resolved(), bus, None, CLOSE_AS_DONE) is None


async def test_through_the_broker_a_resolution_closes_the_ticket(
    clean_bus: str, fake_jira: FakeJira, broker: NatsBroker
) -> None:
    event = _resolved(
        started_at=datetime(2024, 5, 1, 23, 50, tzinfo=UTC),
        resolved_at=datetime(2024, 5, 2, 1, 15, tzinfo=UTC),
    )

    async def resolve(bus: Bus) -> None:
        await _with_ticket(fake_jira, bus, event)
        ack = await bus.publish_event(
            subjects.INCIDENTS_RESOLVED, event, msg_id=f"resolved-{event.incident_id}"
        )
        await wait_until_acked(bus, consumers.TICKETING_RESOLVED.durable, ack.seq)

    await run_ticketing(clean_bus, fake_jira, broker, resolve, JIRA_RESOLVE_TRANSITION="Done")

    assert fake_jira.status("OPS-1") == "Done"
    (comment,) = fake_jira.comments("OPS-1")
    assert texts(comment) == [
        "Resolved after 1 h 25 min: from 2024-05-01 23:50 to 2024-05-02 01:15 UTC "
        f"(incident #{event.incident_id})."
    ]
