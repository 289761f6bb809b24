"""The incident's ticket and silences have one home, its conversation: the outcomes published by
ticketing and alert_ingest are recorded there (once, however often they are delivered), and
`oncall inspect` shows them."""

import json

from diagnoser_harness import Harness, alert_group
from fakes import FakeOpenAI

from services.contracts import streams, subjects
from services.contracts.models import (
    Conversation,
    HumanReplied,
    IncidentResolved,
    SilenceApplied,
    TicketCreated,
    TicketFailed,
    ToolResult,
)
from services.diagnoser import outcomes
from services.diagnoser.turns import status_text
from services.notifier.messages import format_resolved
from services.runtime.operate import describe


async def diagnosed(harness: Harness) -> Conversation:
    group = alert_group()
    await harness.diagnoser().on_alert_firing(group)
    conversation, _ = await harness.bus.kv_get(
        streams.CONVERSATIONS, group.effective_incident_id, Conversation
    )
    assert conversation is not None
    return conversation


async def current(harness: Harness, incident_id: str) -> Conversation:
    conversation, _ = await harness.bus.kv_get(streams.CONVERSATIONS, incident_id, Conversation)
    assert conversation is not None
    return conversation


async def test_a_failed_then_created_ticket_is_recorded_and_shown(harness: Harness) -> None:
    incident = (await diagnosed(harness)).incident_id
    failed = TicketFailed(request_id="r1", incident_id=incident, reason="Jira answered 403: no permission")
    await outcomes.record_ticket_failure(harness.bus, failed)
    shown = describe(await current(harness, incident))
    assert "ticket failed: Jira answered 403: no permission" in shown

    created = TicketCreated(
        request_id="r2", incident_id=incident, key="OPS-7", url="https://jira/browse/OPS-7"
    )
    await outcomes.record_ticket(harness.bus, created)
    await outcomes.record_ticket(harness.bus, created)  # redelivered
    after = await current(harness, incident)
    assert (after.ticket_key, after.ticket_url, after.ticket_error) == ("OPS-7", created.url, None)
    assert "ticket:   OPS-7 https://jira/browse/OPS-7" in describe(after)
    assert "ticket failed" not in describe(after)


async def test_silences_are_recorded_once_each_and_shown(harness: Harness) -> None:
    incident = (await diagnosed(harness)).incident_id
    made = SilenceApplied(
        request_id="s1",
        incident_id=incident,
        requested_by="+15551230001",
        action="create",
        ok=True,
        silence_id="abc-123",
        outcome="🔕 Silenced for 2h",
    )
    await outcomes.record_silence(harness.bus, made)
    await outcomes.record_silence(harness.bus, made)  # redelivered
    refused = made.model_copy(
        update={"request_id": "s2", "action": "expire", "ok": False, "silence_id": None}
    )
    refused.outcome = "Alertmanager did not accept that: 400 bad matcher"
    await outcomes.record_silence(harness.bus, refused)

    after = await current(harness, incident)
    assert [s.request_id for s in after.silences] == ["s1", "s2"]
    shown = describe(after)
    assert "silenced by +15551230001 (silence abc-123)" in shown
    assert "unsilence refused: Alertmanager did not accept that" in shown


async def test_an_outcome_for_an_unknown_incident_changes_nothing(harness: Harness) -> None:
    await outcomes.record_ticket(
        harness.bus, TicketCreated(request_id="r", incident_id="nope00", key="OPS-1", url="u")
    )
    conversation, _ = await harness.bus.kv_get(streams.CONVERSATIONS, "nope00", Conversation)
    assert conversation is None


async def test_every_reader_sees_the_conversations_ticket(harness: Harness) -> None:
    """The resolution (its event, and the message made of it), the model's context in a human
    turn and the rules' status answer all name the ticket recorded on the conversation."""
    group = alert_group()
    incident = (await diagnosed(harness)).incident_id
    created = TicketCreated(
        request_id="r3", incident_id=incident, key="OPS-9", url="https://jira/browse/OPS-9"
    )
    await outcomes.record_ticket(harness.bus, created)
    conversation = await current(harness, incident)

    with FakeOpenAI([{"content": "The ticket is OPS-9."}]) as model:
        diagnoser = harness.diagnoser(model)
        asked = HumanReplied(
            message_sid="SMt1", sender="+15551230001", body="which ticket?", incident_id=incident
        )
        await diagnoser.on_human_reply(asked)
        context = json.dumps(model.chat_requests[0]["messages"])
    assert "OPS-9" in context and created.url in context
    unreadable = ToolResult.failure("compute_error_rate", "unavailable", "Prometheus is down")
    assert "Ticket: OPS-9." in status_text(conversation, None, unreadable)

    resolved = group.model_copy(update={"status": "resolved"}, deep=True)
    await diagnoser.on_alert_resolved(resolved)
    (event,) = await harness.published(subjects.INCIDENTS_RESOLVED)
    assert (event["ticket_key"], event["ticket_url"]) == ("OPS-9", created.url)
    assert "Ticket: OPS-9 https://jira/browse/OPS-9" in format_resolved(
        IncidentResolved.model_validate(event)
    )
