"""Every answer ticketing gives to a ticket request names the human reply that asked for it, so
that `oncall reply` knows the ticket's outcome is the last answer to wait for."""

import uuid

from fakes.jira_fake import FakeJira
from ticketing.helpers import published

from services.contracts import subjects
from services.contracts.models import NotifyText, TicketCreated, TicketFailed, TicketRequested
from services.runtime.bus import Bus
from services.ticketing.config import TicketingConfig
from services.ticketing.jira import JiraClient
from services.ticketing.tickets import handle_ticket_request

CONFIG = TicketingConfig(project_key="OPS")


def request(assignee: str | None) -> TicketRequested:
    sid = f"CONSOLE{uuid.uuid4().hex[:27]}"
    return TicketRequested(
        request_id=f"{sid}-create_jira_ticket",
        incident_id=uuid.uuid4().hex[:6],
        requested_by="+15551234567",
        title="HighErrorRate on inventory",
        summary="HighErrorRate on inventory",
        assignee=assignee,
        in_reply_to=sid,
    )


async def test_the_created_ticket_names_the_reply_that_asked(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    req = request("Ravi Kumar")

    result = await handle_ticket_request(req, bus, jira, CONFIG)

    assert isinstance(result, TicketCreated) and result.in_reply_to == req.in_reply_to
    (created,) = await published(bus, subjects.TICKETS_CREATED, "request_id", req.request_id)
    assert created["in_reply_to"] == req.in_reply_to


async def test_a_failure_names_the_reply_that_asked(bus: Bus) -> None:
    req = request("Ravi Kumar")

    result = await handle_ticket_request(req, bus, None, CONFIG)  # Jira not configured here

    assert isinstance(result, TicketFailed) and result.in_reply_to == req.in_reply_to
    (failed,) = await published(bus, subjects.TICKETS_FAILED, "request_id", req.request_id)
    assert failed["in_reply_to"] == req.in_reply_to


async def test_the_question_who_is_meant_names_the_reply_and_is_its_last_answer(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    req = request("Ravi")  # Ravi Kumar and Ravi Shah

    result = await handle_ticket_request(req, bus, jira, CONFIG)

    assert isinstance(result, NotifyText)
    assert result.in_reply_to == req.in_reply_to
    assert result.follow_up_expected is False  # the person answers with a new reply


async def test_a_request_from_an_older_diagnoser_is_answered_without_a_reply_named(
    fake_jira: FakeJira, jira: JiraClient, bus: Bus
) -> None:
    req = request("Ravi Kumar").model_copy(update={"in_reply_to": None})

    result = await handle_ticket_request(req, bus, jira, CONFIG)

    assert isinstance(result, TicketCreated) and result.in_reply_to is None
