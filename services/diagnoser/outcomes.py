"""What became of the human's requests, recorded on the incident's conversation: the one home of
its ticket and silences, which `oncall inspect`, the resolution message and the model all read."""

from collections.abc import Callable

from services.contracts import streams
from services.contracts.models import (
    Conversation,
    SilenceApplied,
    SilenceRecord,
    TicketCreated,
    TicketFailed,
    utc_now,
)
from services.diagnoser import memory
from services.runtime.bus import Bus


def with_ticket(conversation: Conversation, created: TicketCreated) -> Conversation | None:
    if conversation.ticket_key == created.key and conversation.ticket_error is None:
        return None  # a redelivery, or a comment on the ticket it already has
    return conversation.model_copy(
        update={
            "ticket_key": created.key,
            "ticket_url": created.url,
            "ticket_error": None,
            "ticket_at": conversation.ticket_at or utc_now(),
            "updated_at": utc_now(),
        }
    )


def with_ticket_failure(conversation: Conversation, failed: TicketFailed) -> Conversation | None:
    if conversation.ticket_error == failed.reason:
        return None
    return conversation.model_copy(update={"ticket_error": failed.reason, "updated_at": utc_now()})


def with_silence(conversation: Conversation, applied: SilenceApplied) -> Conversation | None:
    record = SilenceRecord(
        action=applied.action,
        ok=applied.ok,
        by=applied.requested_by,
        silence_id=applied.silence_id,
        ends_at=applied.ends_at,
        outcome=applied.outcome,
        request_id=applied.request_id,
    )
    if any(known.request_id == applied.request_id for known in conversation.silences):
        return None  # a redelivery
    return conversation.model_copy(
        update={"silences": [*conversation.silences, record], "updated_at": utc_now()}
    )


async def record_ticket(bus: Bus, created: TicketCreated) -> None:
    await _record(bus, created.incident_id, lambda c: with_ticket(c, created))
    # The problem's memory names the ticket too: a repeat comments on it, reopens or links it.
    stored, _ = await bus.kv_get(streams.CONVERSATIONS, created.incident_id, Conversation)
    await memory.remember(bus, stored, ticket_status=created.status)


async def record_ticket_failure(bus: Bus, failed: TicketFailed) -> None:
    await _record(bus, failed.incident_id, lambda c: with_ticket_failure(c, failed))


async def record_silence(bus: Bus, applied: SilenceApplied) -> None:
    await _record(bus, applied.incident_id, lambda c: with_silence(c, applied))


async def _record(bus: Bus, incident_id: str, change: Callable[[Conversation], Conversation | None]) -> None:
    """An outcome for an incident nobody recorded (state lost) changes nothing."""
    await bus.kv_update(
        streams.CONVERSATIONS, incident_id, Conversation, lambda current: change(current) if current else None
    )
